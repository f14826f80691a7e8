package membership

import (
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/storage"
)

func openCluster(t *testing.T, dir string) (*Cluster, *mvcc.Store, func()) {
	t.Helper()
	eng, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := mvcc.Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(eng, kv, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c, kv, func() { kv.Close(); eng.Close() }
}

func cc(t raftpb.ConfChangeType, id uint64) *raftpb.ConfChange {
	return &raftpb.ConfChange{Type: t.Enum(), NodeId: &id}
}

func TestClusterChanges(t *testing.T) {
	dir := t.TempDir()
	c, kv, closeFn := openCluster(t, dir)
	a := Member{ID: 1, Name: "a", PeerURLs: []string{"http://a:2380"}}
	b := Member{ID: 2, Name: "b", PeerURLs: []string{"http://b:2380"}}
	for _, m := range []Member{a, b} {
		if err := c.Validate(cc(raftpb.ConfChangeAddNode, m.ID), Change{Member: m}); err != nil {
			t.Fatalf("add %s: %v", m.Name, err)
		}
		c.Add(m)
	}
	learner := Member{ID: 3, PeerURLs: []string{"http://c:2380"}, IsLearner: true}
	steps := []struct {
		name string
		cc   *raftpb.ConfChange
		ch   Change
		want error
	}{
		{"duplicate ID", cc(raftpb.ConfChangeAddNode, 1), Change{Member: Member{ID: 1, PeerURLs: []string{"http://z:1"}}}, ErrIDExists},
		{"duplicate peer URL", cc(raftpb.ConfChangeAddNode, 9), Change{Member: Member{ID: 9, PeerURLs: []string{"http://b:2380"}}}, ErrPeerURLExists},
		{"remove unknown", cc(raftpb.ConfChangeRemoveNode, 9), Change{}, ErrIDNotFound},
		{"update unknown", cc(raftpb.ConfChangeUpdateNode, 9), Change{Member: Member{ID: 9}}, ErrIDNotFound},
		{"update to another's URL", cc(raftpb.ConfChangeUpdateNode, 1), Change{Member: Member{ID: 1, PeerURLs: []string{"http://b:2380"}}}, ErrPeerURLExists},
		{"update to own URL", cc(raftpb.ConfChangeUpdateNode, 1), Change{Member: Member{ID: 1, PeerURLs: []string{"http://a:2380", "http://a2:2380"}}}, nil},
		{"promote a voter", cc(raftpb.ConfChangeAddNode, 1), Change{Member: a, Promote: true}, ErrNotLearner},
		{"promote unknown", cc(raftpb.ConfChangeAddNode, 3), Change{Member: learner, Promote: true}, ErrIDNotFound},
		{"add learner", cc(raftpb.ConfChangeAddLearnerNode, 3), Change{Member: learner}, nil},
	}
	for _, s := range steps {
		if err := c.Validate(s.cc, s.ch); !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.want)
		}
	}
	c.UpdatePeerURLs(1, []string{"http://a:2380", "http://a2:2380"})
	c.Add(learner)
	second := Member{ID: 4, PeerURLs: []string{"http://d:2380"}, IsLearner: true}
	if err := c.Validate(cc(raftpb.ConfChangeAddLearnerNode, 4), Change{Member: second}); !errors.Is(err, ErrTooManyLearners) {
		t.Fatalf("second learner: %v", err)
	}
	if err := c.Validate(cc(raftpb.ConfChangeAddNode, 3), Change{Member: learner, Promote: true}); err != nil {
		t.Fatalf("promote learner: %v", err)
	}
	c.Promote(3)
	c.SetAttributes(3, "c", []string{"http://c:2379"})
	c.Remove(2)
	if err := c.Validate(cc(raftpb.ConfChangeAddNode, 2), Change{Member: b}); !errors.Is(err, ErrIDRemoved) {
		t.Fatalf("re-adding a removed ID: %v", err)
	}
	want := fmt.Sprint(c.Members())
	if err := kv.Commit(mvcc.Meta{AppliedIndex: 1}, true); err != nil {
		t.Fatal(err)
	}
	closeFn()

	c, _, closeFn = openCluster(t, dir)
	defer closeFn()
	if got := fmt.Sprint(c.Members()); got != want {
		t.Fatalf("after reload:\n got %s\nwant %s", got, want)
	}
	if !c.IsRemoved(2) || c.VotingMembers() != 2 {
		t.Fatalf("after reload: removed(2)=%v voting=%d", c.IsRemoved(2), c.VotingMembers())
	}
	if m, _ := c.Member(3); m.IsLearner || m.Name != "c" || len(m.ClientURLs) != 1 {
		t.Fatalf("member 3 after reload: %+v", m)
	}
}

func TestChangeContextRoundTrip(t *testing.T) {
	ch := Change{Member: Member{ID: 7, Name: "x", PeerURLs: []string{"http://x:1"}, IsLearner: true}, Promote: true}
	got, err := DecodeChange(ch.Encode())
	if err != nil || fmt.Sprint(got) != fmt.Sprint(ch) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if _, err := DecodeChange([]byte("{")); err == nil {
		t.Fatal("bad context decoded")
	}
}

// TestReloadAndRejected: IsLearner and WasRejected read what was applied,
// and Reload replaces the list with what the engine holds now (a snapshot
// from the leader replaced its contents).
func TestReloadAndRejected(t *testing.T) {
	c, kv, closeFn := openCluster(t, t.TempDir())
	defer closeFn()
	c.Add(Member{ID: 1, PeerURLs: []string{"http://a:2380"}})
	c.Add(Member{ID: 3, PeerURLs: []string{"http://c:2380"}, IsLearner: true})
	c.RecordRejected(7)
	if err := kv.Commit(mvcc.Meta{AppliedIndex: 9, AppliedTerm: 2}, false); err != nil {
		t.Fatal(err)
	}
	if !c.IsLearner(3) || c.IsLearner(1) || c.IsLearner(99) {
		t.Fatalf("IsLearner(3, 1, 99) = %v, %v, %v; want true, false, false", c.IsLearner(3), c.IsLearner(1), c.IsLearner(99))
	}
	for index, want := range map[uint64]bool{7: true, 8: false} {
		if got, err := c.WasRejected(index); err != nil || got != want {
			t.Fatalf("WasRejected(%d) = %v, %v; want %v", index, got, err, want)
		}
	}

	if err := ResetMembers(c.eng, []Member{{ID: 5, PeerURLs: []string{"http://e:2380"}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); err != nil {
		t.Fatal(err)
	}
	if ms := c.Members(); len(ms) != 1 || ms[0].ID != 5 || c.IsLearner(3) {
		t.Fatalf("after Reload: members %+v, IsLearner(3) %v", ms, c.IsLearner(3))
	}
}
