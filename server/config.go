package server

import (
	"crypto/tls"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/lease"
	"github.com/cairn-kv/cairn/transport"
)

// Config is everything one member needs to start. cmd/cairn fills it from
// etcd-compatible flags; tests fill it directly. Zero values take the
// defaults noted, which are etcd's.
type Config struct {
	// Name is the human-readable member name; default "default".
	Name string
	// DataDir holds the member's WAL, snapshots and engine; default
	// "${Name}.cairn".
	DataDir string
	// ClientURLs are advertised to clients in MemberList;
	// default http://localhost:2379.
	ClientURLs []string
	// PeerURLs are this member's advertised peer URLs;
	// default http://localhost:2380.
	PeerURLs []string
	// InitialCluster is etcd's "name=url,…"; default "${Name}=${PeerURLs[0]}".
	InitialCluster string
	// InitialClusterToken seeds member and cluster IDs; default "etcd-cluster".
	InitialClusterToken string
	// InitialClusterState is "new" (default) to found a cluster with
	// InitialCluster's members, or "existing" to join a running cluster
	// that already added this member (MemberAdd). Used only when the data
	// dir holds no member yet.
	InitialClusterState string
	// NoStrictReconfigCheck turns off etcd's --strict-reconfig-check:
	// refusing member changes that would leave too few started members
	// for a quorum.
	NoStrictReconfigCheck bool
	// HealthInterval is how long this member must have been connected to
	// its peers before --strict-reconfig-check lets a membership change
	// count on them; default 5s, etcd's fixed value.
	HealthInterval time.Duration
	// MaxLearners bounds the learners in the cluster; default 1 (etcd's
	// --max-learners).
	MaxLearners int
	// ForceNewCluster restarts the member as the only member of its
	// cluster, keeping its data (etcd's --force-new-cluster).
	ForceNewCluster bool
	// MaxConcurrentStreams is etcd's --max-concurrent-streams: how many
	// gRPC streams a client connection may have open at once; 0 means no
	// limit beyond HTTP/2's (math.MaxUint32), etcd's default.
	MaxConcurrentStreams uint32
	// NoPreVote is etcd's --pre-vote=false: raft's pre-vote, on by
	// default as in etcd, is off.
	NoPreVote bool
	// NoInitialElectionTickAdvance is etcd's
	// --initial-election-tick-advance=false: a member of a cluster of
	// several does not fast-forward its election clock once its peers
	// are connected (ticks.go).
	NoInitialElectionTickAdvance bool
	// WALDir, when set, is where the member's WAL lives instead of
	// DataDir/member/wal (etcd's --wal-dir): on a disk of its own, the
	// WAL's fsyncs do not queue behind the engine's writes.
	WALDir string
	// PeerDialTLS is how the member dials other members' https peer URLs
	// (raft messages, joining, corruption checks): the --peer-* options'
	// client side. Nil verifies those members against the system's roots
	// and presents no certificate.
	PeerDialTLS *tls.Config
	// ClientDialTLS is how the member dials the leader's https client URL
	// to forward lease renewals: the client options' client side, nil as
	// for PeerDialTLS.
	ClientDialTLS *tls.Config
	// PeerFaults, when set, injects faults into the peer transport (tests).
	PeerFaults *transport.Faults
	// BeforeApply, when set, runs in the apply loop before each batch of
	// committed entries is applied: a fault seam for a slow apply (tests).
	BeforeApply func()
	// BeforeHashKV, when set, runs before each pass over the member's
	// history that the corruption checks make, its own or a peer's
	// request: a fault seam for a slow hash (tests).
	BeforeHashKV func()
	// SnapshotCount is the number of applied entries between raft
	// snapshots; default 10000.
	SnapshotCount uint64
	// SnapshotCatchUpEntries are the raft log entries kept after a raft
	// snapshot for slow followers; default 5000.
	SnapshotCatchUpEntries uint64
	// MaxSnapshots bounds the raft snapshot files kept; default 5, and
	// negative keeps all (etcd's 0).
	MaxSnapshots int
	// HeartbeatInterval is raft's tick; default 100ms.
	HeartbeatInterval time.Duration
	// ElectionTimeout; default 1000ms. Must be a multiple of the heartbeat
	// interval (validated in cmd/cairn).
	ElectionTimeout time.Duration
	// MaxRequestBytes bounds one request; default 1.5 MiB.
	MaxRequestBytes uint
	// MaxTxnOps bounds operations per txn; default 128.
	MaxTxnOps uint
	// QuotaBackendBytes is the storage quota; 0 means the default 2 GiB,
	// negative disables it.
	QuotaBackendBytes int64
	// WatchProgressNotifyInterval is the period of progress notifications
	// to watchers that asked for them; default 10 minutes.
	WatchProgressNotifyInterval time.Duration
	// WALSegmentSize is the size of WAL segment files; default 64 MiB.
	WALSegmentSize int64
	// LeaseCheckpointInterval is how often the leader records leases'
	// remaining TTLs through raft, so that they survive leader changes and
	// restarts; default 5 minutes, negative disables.
	LeaseCheckpointInterval time.Duration
	// NoInitialCorruptCheck turns off the initial corruption check, in
	// which a restarting member of a multi-member cluster compares its
	// HashKV with its peers' before it takes part in raft and refuses to
	// start on a mismatch (corrupt.go). etcd's InitialCorruptCheck, off by
	// default in etcd and on in Cairn.
	NoInitialCorruptCheck bool
	// CorruptCheckTime is the period of the leader's corruption check,
	// which compares every member's HashKV at the leader's revision and
	// raises CORRUPT on a mismatch; default 1 hour (etcd's
	// --corrupt-check-time defaults to 0, off), negative disables. Each
	// pass hashes the whole uncompacted history on every member, twice on
	// the leader.
	CorruptCheckTime time.Duration
	// NoCompactHashCheck turns off the leader's compact hash check, which
	// compares the hashes members recorded at each compaction and raises
	// CORRUPT on a mismatch. etcd's CompactHashCheck, off by default in
	// etcd and on in Cairn.
	NoCompactHashCheck bool
	// FeatureGates are etcd's feature gates as this member applies them,
	// for etcd_server_feature_enabled; none are exported when empty.
	FeatureGates []FeatureGate
	// WarningApplyDuration is etcd's --warning-apply-duration: an applied
	// request, a range or a read-only txn that takes longer is logged
	// ("apply request took too long") and counted in
	// etcd_server_slow_apply_total. Default 100ms, etcd's.
	WarningApplyDuration time.Duration
	// WarningUnaryRequestDuration is etcd's
	// --warning-unary-request-duration: a unary gRPC call that takes
	// longer is logged as "request stats" at warn level (server/v3rpc).
	// Default 300ms, etcd's.
	WarningUnaryRequestDuration time.Duration
	// CompactHashCheckTime is the period of the compact hash check;
	// default 1 minute, etcd's.
	CompactHashCheckTime time.Duration
	// LeaseClock is the lessor's time source; default the system clock.
	// Tests drive lease expiry with it.
	LeaseClock lease.Clock
	// LeaseTickInterval is how often the leader looks for expired leases;
	// default 500ms.
	LeaseTickInterval time.Duration
	// GRPCKeepaliveMinTime is the shortest interval a client may keep
	// between keepalive pings while it has a call open; one that pings
	// more often is disconnected (GOAWAY too_many_pings). Default 5s,
	// etcd's; negative leaves gRPC's own policy (one ping per 5 minutes,
	// which cuts clientv3's connections during calls longer than about
	// 40 s, such as a HashKV of a big store).
	GRPCKeepaliveMinTime time.Duration
	// GRPCKeepaliveInterval and GRPCKeepaliveTimeout: the server pings a
	// client connection silent for the interval and closes it when the
	// answer takes longer than the timeout. Defaults 2h and 20s, etcd's;
	// either negative turns the server's pings off.
	GRPCKeepaliveInterval, GRPCKeepaliveTimeout time.Duration
	// Metrics is etcd's --metrics, the detail of the exported metrics:
	// MetricsBasic (default) or MetricsExtensive, which adds the gRPC
	// handling-time histogram grpc_server_handling_seconds. Any other
	// value counts as basic, as in etcd.
	Metrics string
	// FS is the filesystem seam for WAL, snapshots and engine; default
	// vfs.Default.
	FS vfs.FS
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

// FeatureGate is one of etcd's feature gates: whether the member does
// what it names.
type FeatureGate struct {
	Name, Stage string
	Enabled     bool
}

// Defaults used when Config fields are zero.
const (
	DefaultName                = "default"
	DefaultSnapshotCount       = 10000
	DefaultHeartbeatInterval   = 100 * time.Millisecond
	DefaultElectionTimeout     = 1000 * time.Millisecond
	DefaultMaxRequestBytes     = 1536 * 1024
	DefaultMaxTxnOps           = 128
	DefaultQuotaBackendBytes   = 2 << 30
	DefaultInitialClusterToken = "etcd-cluster"
	DefaultHealthInterval      = 5 * time.Second
	// DefaultWatchProgressNotifyInterval is etcd's default.
	DefaultWatchProgressNotifyInterval = 10 * time.Minute
	// DefaultCorruptCheckTime is Cairn's; etcd's check is off by default.
	DefaultCorruptCheckTime = time.Hour
	// DefaultWarningApplyDuration is etcd's default.
	DefaultWarningApplyDuration = 100 * time.Millisecond
	// DefaultWarningUnaryRequestDuration is etcd's default.
	DefaultWarningUnaryRequestDuration = 300 * time.Millisecond
	// DefaultCompactHashCheckTime is etcd's default.
	DefaultCompactHashCheckTime = time.Minute
	// The gRPC keepalive defaults are etcd's.
	DefaultGRPCKeepaliveMinTime  = 5 * time.Second
	DefaultGRPCKeepaliveInterval = 2 * time.Hour
	DefaultGRPCKeepaliveTimeout  = 20 * time.Second
)

func (c *Config) ensureDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + ".cairn"
	}
	if len(c.ClientURLs) == 0 {
		c.ClientURLs = []string{"http://localhost:2379"}
	}
	if len(c.PeerURLs) == 0 {
		c.PeerURLs = []string{"http://localhost:2380"}
	}
	if c.InitialCluster == "" {
		c.InitialCluster = c.Name + "=" + c.PeerURLs[0]
	}
	if c.InitialClusterToken == "" {
		c.InitialClusterToken = DefaultInitialClusterToken
	}
	if c.InitialClusterState == "" {
		c.InitialClusterState = "new"
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = DefaultSnapshotCount
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.ElectionTimeout == 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = DefaultMaxTxnOps
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if c.HealthInterval == 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.WatchProgressNotifyInterval == 0 {
		c.WatchProgressNotifyInterval = DefaultWatchProgressNotifyInterval
	}
	if c.CorruptCheckTime == 0 {
		c.CorruptCheckTime = DefaultCorruptCheckTime
	}
	if c.WarningApplyDuration <= 0 {
		c.WarningApplyDuration = DefaultWarningApplyDuration
	}
	if c.WarningUnaryRequestDuration <= 0 {
		c.WarningUnaryRequestDuration = DefaultWarningUnaryRequestDuration
	}
	if c.CompactHashCheckTime <= 0 {
		c.CompactHashCheckTime = DefaultCompactHashCheckTime
	}
	if c.GRPCKeepaliveMinTime == 0 {
		c.GRPCKeepaliveMinTime = DefaultGRPCKeepaliveMinTime
	}
	if c.GRPCKeepaliveInterval == 0 {
		c.GRPCKeepaliveInterval = DefaultGRPCKeepaliveInterval
	}
	if c.GRPCKeepaliveTimeout == 0 {
		c.GRPCKeepaliveTimeout = DefaultGRPCKeepaliveTimeout
	}
	if c.FS == nil {
		c.FS = vfs.Default
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// requestTimeout is how long a proposal may take before the client gets
// "request timed out": etcd's 5s plus two election timeouts.
func (c *Config) requestTimeout() time.Duration {
	return 5*time.Second + 2*c.ElectionTimeout
}

// minLeaseTTL is the shortest TTL a lease is granted, in seconds: one and a
// half election timeouts, rounded up (etcd's rule), so a lease outlives a
// leader election.
func (c *Config) minLeaseTTL() int64 {
	return int64(math.Ceil((3 * c.ElectionTimeout / 2).Seconds()))
}
