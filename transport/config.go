package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

var (
	// ErrInvalidConfig is wrapped by Validate's errors.
	ErrInvalidConfig = errors.New("transport: invalid config")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("transport: closed")
	// ErrPeerExists is returned by AddPeer for a peer already added.
	ErrPeerExists = errors.New("transport: peer already exists")
	// ErrPeerNotFound is returned by UpdatePeer for a peer never added or
	// already removed.
	ErrPeerNotFound = errors.New("transport: peer not found")
	// ErrPeerRemoved is returned by AddPeer for a member ID that was
	// removed: raft never reuses a removed member's ID.
	ErrPeerRemoved = errors.New("transport: peer was removed")
	// ErrBadPeer is returned by AddPeer and UpdatePeer for an invalid
	// member ID or URL.
	ErrBadPeer = errors.New("transport: invalid peer")
	// ErrSnapshotCorrupt is returned by a snapshot body's Read when the
	// bytes received do not match the length and CRC the sender declared.
	ErrSnapshotCorrupt = errors.New("transport: snapshot body corrupt")
	// ErrSnapshotTruncated is returned by a snapshot body's Read when the
	// stream ends before the sender declared the body complete.
	ErrSnapshotTruncated = errors.New("transport: snapshot body truncated")
	// ErrMessageTooLarge ends a stream whose sender announced a message
	// above Config.MaxMessageBytes.
	ErrMessageTooLarge = errors.New("transport: message too large")
)

// Receiver is what the transport needs from the local raft member. The raft
// node implements it.
//
// Threading: the transport never calls a Receiver method from inside Send,
// SendSnapshot, AddPeer, UpdatePeer or RemovePeer, nor while holding a lock
// of its own, so the raft loop may call those while a Receiver method waits
// for the raft loop. No method is called after Close has returned.
type Receiver interface {
	// Process hands one message from a peer to raft (RawNode.Step on the
	// raft loop). Messages from one peer arrive in the order that peer
	// sent them, on one goroutine per inbound stream; messages from
	// different peers arrive concurrently. Process must return when ctx
	// is done (the stream ended or the transport is closing). An error is
	// logged and the message dropped.
	Process(ctx context.Context, m *raftpb.Message) error
	// ReceiveSnapshot hands a MsgSnap and the state-machine snapshot that
	// comes with it to the member. body streams the bytes the sender's
	// SendSnapshot was given; it returns io.EOF only after the whole body
	// arrived and matched its length and CRC, and ErrSnapshotCorrupt,
	// ErrSnapshotTruncated or a stream error otherwise. The body is valid
	// only during the call. Return nil only after the body was read to
	// io.EOF, stored durably and m was handed to raft: the sender's raft
	// then learns SnapshotFinish. Any error (and returning nil before
	// io.EOF) makes it SnapshotFailure. ctx is done when the stream breaks
	// or the transport is closing.
	ReceiveSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error
	// ReportUnreachable tells raft that messages to the peer were lost
	// (RawNode.ReportUnreachable): its queue was full, its stream broke,
	// or it is unreachable. Calls are coalesced, from one goroutine. It
	// must not block for long.
	ReportUnreachable(id uint64)
	// ReportSnapshot reports the outcome of a SendSnapshot to the peer
	// (RawNode.ReportSnapshot), exactly once per SendSnapshot unless the
	// transport closes first. It must not block for long.
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// TryProcessor is a Receiver that can also take a message without
// blocking. When nothing from the peer is queued ahead of a message, the
// transport then hands it over on the stream's own goroutine instead of
// queueing it for the delivery goroutine: one goroutine hand-off less on
// every message's way to raft, which is on every write's critical path.
type TryProcessor interface {
	// TryProcess hands m to raft if that needs no waiting, and reports
	// whether it did.
	TryProcess(m *raftpb.Message) bool
}

// Config configures a Transport. Zero values take the defaults noted;
// EnsureDefaults fills them in and Validate checks the rest.
type Config struct {
	// ID is the local member ID; never 0.
	ID uint64
	// ClusterID is the local cluster ID; never 0. Streams from members of
	// another cluster are refused.
	ClusterID uint64
	// Receiver gets incoming messages and status reports; required.
	Receiver Receiver
	// Logger; default zap.NewNop().
	Logger *zap.Logger
	// Metrics, when set, registers the transport's etcd_network_* metrics;
	// nil registers none (they are still counted, just not exported).
	Metrics prometheus.Registerer
	// Faults is the fault-injection seam for tests; nil injects none.
	Faults *Faults
	// TLS is how peers with https URLs are dialed (the --peer-* options'
	// client side); nil verifies them against the system's roots and
	// presents no certificate. http URLs are dialed in plain TCP.
	TLS *tls.Config
	// OnRemoved, when set, is called once, on a goroutine of its own, when
	// a peer of this cluster refuses a stream because it removed this
	// member: the member learns that it was removed even when the conf
	// change removing it never reaches it.
	OnRemoved func()

	// QueueSize bounds each peer's outgoing queue, in messages; default
	// 4096. Send drops a message for a peer whose queue is full. Bytes are
	// bounded by raft's own flow control (MaxInflightMsgs × MaxSizePerMsg
	// per follower); the queue holds the messages raft produced, no copies.
	QueueSize int
	// RecvQueueSize bounds each inbound stream's queue of decoded messages
	// waiting for Receiver.Process; default 4096. A message arriving when
	// it is full is dropped (raft retries), so a slow raft loop never
	// stalls the stream, nor through it the sender.
	RecvQueueSize int
	// FrameSize is the largest payload of one gRPC message the transport
	// sends, in bytes; default 1 MiB. Batches of raft messages and
	// snapshot chunks are cut into frames of at most this size. It must
	// stay below the peers' gRPC server MaxRecvMsgSize (4 MiB by default).
	FrameSize int
	// MaxMessageBytes is the largest encoded raft message accepted from a
	// peer, in bytes; default 256 MiB. A larger one ends the stream. The
	// snapshot body is not a message and has no limit.
	MaxMessageBytes int

	// DialTimeout bounds connecting to a peer (TCP and HTTP/2 handshake);
	// default 1s.
	DialTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait before reconnecting after a
	// failed or broken stream, doubling from min to max; defaults 100ms
	// and 2s. A refused stream (wrong cluster, unknown or removed member)
	// waits BackoffMax.
	BackoffMin, BackoffMax time.Duration
	// PingInterval is how often each peer is probed with a Ping call,
	// whose round trip is etcd_network_peer_round_trip_time_seconds; an
	// idle message stream also sends an empty frame this often, so the
	// receiver notices a removal or its own Close. Default 1s.
	PingInterval time.Duration
	// PongTimeout: a stream whose Ping gets no answer within this long, or
	// that is not accepted within DialTimeout+PongTimeout, is torn down and
	// reconnected (a hung peer, a black-holed link); default 5s. Must
	// exceed PingInterval.
	PongTimeout time.Duration
	// SnapshotStallTimeout fails a snapshot send that makes no progress
	// for this long: no chunk both read from the body and written, or no
	// verdict from the receiver after the last one; default 30s.
	SnapshotStallTimeout time.Duration
}

// EnsureDefaults fills in the zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.QueueSize == 0 {
		c.QueueSize = 4096
	}
	if c.RecvQueueSize == 0 {
		c.RecvQueueSize = 4096
	}
	if c.FrameSize == 0 {
		c.FrameSize = 1 << 20
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 256 << 20
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = time.Second
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 100 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 2 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = time.Second
	}
	if c.PongTimeout == 0 {
		c.PongTimeout = 5 * time.Second
	}
	if c.SnapshotStallTimeout == 0 {
		c.SnapshotStallTimeout = 30 * time.Second
	}
}

// Validate checks a config after EnsureDefaults.
func (c *Config) Validate() error {
	switch {
	case c.ID == 0:
		return fmt.Errorf("%w: member ID 0", ErrInvalidConfig)
	case c.ClusterID == 0:
		return fmt.Errorf("%w: cluster ID 0", ErrInvalidConfig)
	case c.Receiver == nil:
		return fmt.Errorf("%w: no Receiver", ErrInvalidConfig)
	case c.QueueSize < 1 || c.RecvQueueSize < 1:
		return fmt.Errorf("%w: queue sizes must be positive", ErrInvalidConfig)
	case c.FrameSize < 64 || c.FrameSize > 4<<20-64:
		return fmt.Errorf("%w: FrameSize %d outside [64, 4 MiB-64]", ErrInvalidConfig, c.FrameSize)
	case c.MaxMessageBytes < 1:
		return fmt.Errorf("%w: MaxMessageBytes must be positive", ErrInvalidConfig)
	case c.DialTimeout <= 0 || c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return fmt.Errorf("%w: need 0 < DialTimeout, 0 < BackoffMin <= BackoffMax", ErrInvalidConfig)
	case c.PingInterval <= 0 || c.PongTimeout <= c.PingInterval:
		return fmt.Errorf("%w: need 0 < PingInterval < PongTimeout", ErrInvalidConfig)
	case c.SnapshotStallTimeout <= 0:
		return fmt.Errorf("%w: SnapshotStallTimeout must be positive", ErrInvalidConfig)
	}
	return nil
}
