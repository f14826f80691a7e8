package transport

import (
	"context"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

const testCluster = 0xc1

// waitFor polls cond until it holds, failing the test after a deadline. It
// is how tests wait for something to happen; no test sleeps.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// recorder is a Receiver that remembers everything it is given.
type recorder struct {
	mu          sync.Mutex
	msgs        map[uint64][]*raftpb.Message // by sender
	unreachable map[uint64]int
	snapStatus  map[uint64][]raft.SnapshotStatus
	snaps       []gotSnapshot
	// onSnapshot, when set, consumes a snapshot body instead of the
	// default (read it all, remember length and CRC).
	onSnapshot func(ctx context.Context, m *raftpb.Message, body io.Reader) error
	// process, when set, runs before a message is recorded; an error
	// drops it.
	process func(ctx context.Context, m *raftpb.Message) error
}

type gotSnapshot struct {
	m   *raftpb.Message
	n   int64
	crc uint32
	err error
}

func newRecorder() *recorder {
	return &recorder{msgs: map[uint64][]*raftpb.Message{}, unreachable: map[uint64]int{}, snapStatus: map[uint64][]raft.SnapshotStatus{}}
}

func (r *recorder) Process(ctx context.Context, m *raftpb.Message) error {
	if r.process != nil {
		if err := r.process(ctx, m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[m.GetFrom()] = append(r.msgs[m.GetFrom()], m)
	return nil
}

func (r *recorder) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error {
	if r.onSnapshot != nil {
		return r.onSnapshot(ctx, m, body)
	}
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, body)
	r.mu.Lock()
	r.snaps = append(r.snaps, gotSnapshot{m: m, n: n, crc: h.Sum32(), err: err})
	r.mu.Unlock()
	return err
}

func (r *recorder) ReportUnreachable(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[id]++
}

func (r *recorder) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapStatus[id] = append(r.snapStatus[id], status)
}

func (r *recorder) count(from uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs[from])
}

func (r *recorder) from(from uint64) []*raftpb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*raftpb.Message(nil), r.msgs[from]...)
}

func (r *recorder) unreachableCount(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

func (r *recorder) statuses(id uint64) []raft.SnapshotStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]raft.SnapshotStatus(nil), r.snapStatus[id]...)
}

func (r *recorder) snapshots() []gotSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]gotSnapshot(nil), r.snaps...)
}

// node is one member: a Transport served by its own gRPC server on a
// loopback port.
type node struct {
	tb     testing.TB
	id     uint64
	addr   string
	tr     *Transport
	rec    *recorder
	reg    *prometheus.Registry
	faults *Faults
	logs   *observer.ObservedLogs

	mu  sync.Mutex
	srv *grpc.Server
}

// testConfig makes the timings short so failures show quickly.
func testConfig(c *Config) {
	c.DialTimeout = time.Second
	c.BackoffMin = 5 * time.Millisecond
	c.BackoffMax = 50 * time.Millisecond
	c.PingInterval = 20 * time.Millisecond
	c.PongTimeout = 2 * time.Second
	c.SnapshotStallTimeout = 10 * time.Second
}

func startNode(tb testing.TB, id, cluster uint64, mod func(*Config)) *node {
	tb.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	n := &node{tb: tb, id: id, rec: newRecorder(), reg: prometheus.NewRegistry(), faults: new(Faults), logs: logs}
	cfg := Config{
		ID: id, ClusterID: cluster, Receiver: n.rec,
		Logger: zap.New(core), Metrics: n.reg, Faults: n.faults,
	}
	testConfig(&cfg)
	if mod != nil {
		mod(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	n.tr = tr
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	n.addr = lis.Addr().String()
	n.serve(lis)
	tb.Cleanup(func() {
		n.stop()
		if tb.Failed() {
			for _, e := range n.logs.FilterLevelExact(zapcore.WarnLevel).All() {
				tb.Logf("member %x: %s %v", id, e.Message, e.ContextMap())
			}
			for _, e := range n.logs.FilterLevelExact(zapcore.ErrorLevel).All() {
				tb.Logf("member %x: %s %v", id, e.Message, e.ContextMap())
			}
		}
	})
	return n
}

func (n *node) url() string { return "http://" + n.addr }

// serve starts a fresh gRPC server for the node's transport on lis.
func (n *node) serve(lis net.Listener) {
	srv := grpc.NewServer()
	n.tr.Register(srv)
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	go srv.Serve(lis) //nolint:errcheck // returns when stopped
}

// restartServer serves again on the node's address after stopServer.
func (n *node) restartServer() {
	lis, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.tb.Fatal(err)
	}
	n.serve(lis)
}

func (n *node) stopServer() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

func (n *node) stop() {
	n.tr.Close()
	n.stopServer()
}

func (n *node) peer(id uint64) *peer {
	n.tr.mu.RLock()
	defer n.tr.mu.RUnlock()
	return n.tr.mu.peers[id]
}

// mesh makes every node a peer of every other and waits until every link
// is up. (Until both sides have added each other, a stream is refused as
// from an unknown member and what is sent meanwhile is dropped, as raft
// expects.)
func mesh(tb testing.TB, nodes ...*node) {
	tb.Helper()
	addPeers(tb, nodes...)
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				waitActive(tb, a, b)
			}
		}
	}
}

// addPeers makes every node a peer of every other.
func addPeers(tb testing.TB, nodes ...*node) {
	tb.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if err := a.tr.AddPeer(b.id, []string{b.url()}); err != nil {
					tb.Fatal(err)
				}
			}
		}
	}
}

func waitActive(tb testing.TB, a, b *node) {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("stream %x→%x active", a.id, b.id), func() bool { return !a.tr.ActiveSince(b.id).IsZero() })
}

// metric sums the samples of a metric family whose labels include want
// (counter values, or histogram sample counts).
func (n *node) metric(name string, want map[string]string) float64 {
	fams, err := n.reg.Gather()
	if err != nil {
		n.tb.Fatal(err)
	}
	var sum float64
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// logCount counts log entries at level whose message contains msg and whose
// fields include every one in fields.
func (n *node) logCount(level zapcore.Level, msg string, fields map[string]string) int {
	c := 0
	for _, e := range n.logs.All() {
		if e.Level != level || !strings.Contains(e.Message, msg) {
			continue
		}
		ctx := e.ContextMap()
		ok := true
		for k, v := range fields {
			if fmt.Sprint(ctx[k]) != v {
				ok = false
			}
		}
		if ok {
			c++
		}
	}
	return c
}

func msg(typ raftpb.MessageType, from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{
		Type: typ.Enum(), From: proto.Uint64(from), To: proto.Uint64(to),
		Term: proto.Uint64(7), Index: proto.Uint64(index),
	}
}

func newCRC() hash.Hash32 { return crc32.New(castagnoli) }

func crcOf(t testing.TB, r io.Reader) uint32 {
	h := newCRC()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return h.Sum32()
}

// goroutineDump is every goroutine's stack, for leak reports.
func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
