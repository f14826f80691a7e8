package raftnode

import (
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/transport"
)

// dropFirst is a fault seam in front of the real transport: once armed, it
// loses the next message of one type, as a broken link would.
type dropFirst struct {
	*transport.Transport
	typ   raftpb.MessageType
	mu    sync.Mutex
	armed bool
}

func (d *dropFirst) arm() {
	d.mu.Lock()
	d.armed = true
	d.mu.Unlock()
}

func (d *dropFirst) Send(msgs []*raftpb.Message) {
	d.mu.Lock()
	out := msgs[:0:0]
	for _, m := range msgs {
		if d.armed && m.GetType() == d.typ {
			d.armed = false
			continue
		}
		out = append(out, m)
	}
	d.mu.Unlock()
	d.Transport.Send(out)
}

// startPair starts a two-member cluster over the real peer transport on
// loopback, each member sending through a dropFirst for typ, and returns
// its follower with that follower's seam.
func startPair(t *testing.T, typ raftpb.MessageType) (*Node, *dropFirst) {
	t.Helper()
	var lns [2]net.Listener
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
	}
	nodes := make([]*Node, 2)
	seams := make([]*dropFirst, 2)
	for i := range nodes {
		id := uint64(i + 1)
		late := &lateReceiver{ready: make(chan struct{})}
		tr, err := transport.New(transport.Config{
			ID: id, ClusterID: 7, Receiver: late,
			// Members start one after the other: retry refused streams soon.
			BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		g := grpc.NewServer()
		tr.Register(g)
		go g.Serve(lns[i]) //nolint:errcheck // ends at Stop
		seams[i] = &dropFirst{Transport: tr, typ: typ}
		n, err := Start(Config{
			ID: id, Peers: []uint64{1, 2}, Dir: "/m", FS: vfs.NewMem(), Metadata: []byte("md"),
			TickInterval: 10 * time.Millisecond, Transport: seams[i],
		})
		if err != nil {
			t.Fatal(err)
		}
		late.n = n
		close(late.ready)
		other := lns[1-i].Addr().String()
		if err := tr.AddPeer(uint64(2-i), []string{"http://" + other}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close(); g.Stop(); n.Stop() })
		nodes[i] = n
		go func() { // the apply loop's part: take what commits
			for {
				select {
				case <-n.Apply():
				case <-n.Done():
					return
				}
			}
		}()
	}
	for nodes[1].Status().Lead == 0 || nodes[1].Status().Lead != nodes[0].Status().Lead {
		select {
		case <-nodes[0].LeaderChanged():
		case <-nodes[1].LeaderChanged():
		case <-ctx(t).Done():
			t.Fatal("no leader elected")
		}
	}
	f := 0
	if !nodes[1].Status().IsLeader {
		f = 1
	}
	return nodes[f], seams[f]
}

// lateReceiver hands the transport's deliveries to a node started after
// the transport.
type lateReceiver struct {
	ready chan struct{}
	n     *Node
}

func (l *lateReceiver) Process(ctx context.Context, m *raftpb.Message) error {
	select {
	case <-l.ready:
		return l.n.Process(ctx, m)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *lateReceiver) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, body io.Reader) error {
	<-l.ready
	return l.n.ReceiveSnapshot(ctx, m, body)
}

func (l *lateReceiver) ReportUnreachable(id uint64) {
	select {
	case <-l.ready:
		l.n.ReportUnreachable(id)
	default:
	}
}

func (l *lateReceiver) ReportSnapshot(id uint64, s raft.SnapshotStatus) {
	<-l.ready
	l.n.ReportSnapshot(id, s)
}

// TestReadIndexRetriedAfterLoss: a ReadIndex request lost on its way to the
// leader is sent again, so the read completes within a fraction of the
// election timeout instead of hanging until its caller gives up.
func TestReadIndexRetriedAfterLoss(t *testing.T) {
	follower, seam := startPair(t, raftpb.MessageType_MsgReadIndex)
	seam.arm()
	c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := follower.ReadIndex(c); err != nil {
		t.Fatalf("read on the follower after its ReadIndex request was lost: %v", err)
	}
	seam.mu.Lock()
	defer seam.mu.Unlock()
	if seam.armed {
		t.Fatal("no ReadIndex request was lost: the test did not exercise the retry")
	}
}

// TestSnapshotStorageAtApplied: the snapshot raft sends a member behind
// the log is at the state machine's applied index, with the configuration
// there, not the older periodic one.
func TestSnapshotStorageAtApplied(t *testing.T) {
	ms := raft.NewMemoryStorage()
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(2)})
	}
	if err := ms.Append(ents); err != nil {
		t.Fatal(err)
	}
	old := &raftpb.ConfState{Voters: []uint64{1}}
	if _, err := ms.CreateSnapshot(3, old, nil); err != nil {
		t.Fatal(err)
	}
	n := &Node{}
	st := snapshotStorage{ms, n}
	check := func(what string, index uint64, cs *raftpb.ConfState) {
		t.Helper()
		s, err := st.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		md := s.GetMetadata()
		if md.GetIndex() != index || md.GetTerm() != 2 || !slices.Equal(md.GetConfState().GetVoters(), cs.GetVoters()) {
			t.Fatalf("%s: snapshot at %d term %d voters %v; want %d term 2 voters %v",
				what, md.GetIndex(), md.GetTerm(), md.GetConfState().GetVoters(), index, cs.GetVoters())
		}
	}
	check("nothing applied yet", 3, old)
	cur := &raftpb.ConfState{Voters: []uint64{1, 2}}
	n.SetApplied(8, cur)
	check("applied past the last snapshot", 8, cur)
}

// TestReportsCoalesce: the transport's reports never block it; repeated
// unreachable reports for one peer collapse into one, while every
// snapshot report is kept, since raft waits for each.
func TestReportsCoalesce(t *testing.T) {
	n := &Node{reports: reports{wake: make(chan struct{}, 1)}}
	for range 3 {
		n.ReportUnreachable(2)
	}
	n.ReportUnreachable(3)
	n.ReportSnapshot(2, raft.SnapshotFinish)
	n.ReportSnapshot(2, raft.SnapshotFailure)
	n.ReportUnreachable(2)
	want := []report{{id: 2}, {id: 3}, {id: 2, snapshot: true, status: raft.SnapshotFinish}, {id: 2, snapshot: true, status: raft.SnapshotFailure}}
	if !slices.Equal(n.reports.q, want) {
		t.Fatalf("queued reports %+v, want %+v", n.reports.q, want)
	}
	select {
	case <-n.reports.wake:
	default:
		t.Fatal("the raft loop was not woken")
	}
}
