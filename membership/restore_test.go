package membership

import (
	"errors"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/storage"
)

func TestResetMembers(t *testing.T) {
	dir := t.TempDir()
	c, kv, closeFn := openCluster(t, dir)
	old := []Member{
		{ID: 1, Name: "a", PeerURLs: []string{"http://a:2380"}, ClientURLs: []string{"http://a:2379"}},
		{ID: 2, Name: "b", PeerURLs: []string{"http://b:2380"}},
		{ID: 3, Name: "c", PeerURLs: []string{"http://c:2380"}, IsLearner: true},
	}
	for _, m := range old {
		c.Add(m)
	}
	c.Remove(2)
	c.RecordRejected(7)
	if err := kv.Commit(mvcc.Meta{AppliedIndex: 9, AppliedTerm: 2}, true); err != nil {
		t.Fatal(err)
	}
	closeFn()

	eng, err := storage.Open(dir, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	initial, err := ParseInitialCluster("x=http://x:2380,y=http://y:2380,y=http://y2:2380", "tok")
	if err != nil {
		t.Fatal(err)
	}
	if err := ResetMembers(eng, initial); err != nil {
		t.Fatal(err)
	}
	if err := ResetMembers(eng, nil); !errors.Is(err, ErrBadInitialCluster) {
		t.Fatalf("no members: %v", err)
	}
	if err := ResetMembers(eng, []Member{initial[0], initial[0]}); !errors.Is(err, ErrBadInitialCluster) {
		t.Fatalf("repeated member: %v", err)
	}
	eng.Close()

	c, _, closeFn = openCluster(t, dir)
	defer closeFn()
	got := c.Members()
	want := []Member{{ID: initial[0].ID, PeerURLs: initial[0].PeerURLs}, {ID: initial[1].ID, PeerURLs: initial[1].PeerURLs}}
	slices.SortFunc(want, func(a, b Member) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	if len(got) != 2 {
		t.Fatalf("members: %+v", got)
	}
	for i := range want {
		if got[i].ID != want[i].ID || !slices.Equal(got[i].PeerURLs, want[i].PeerURLs) || got[i].Name != "" || got[i].IsLearner {
			t.Errorf("member %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if c.IsRemoved(2) {
		t.Error("the old cluster's removed ID is still removed")
	}
	if rej, err := c.WasRejected(7); err != nil || rej {
		t.Errorf("the old cluster's rejected conf change survives: %v %v", rej, err)
	}
	// The new list takes conf changes as usual.
	id := uint64(42)
	add := &raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: &id}
	if err := c.Validate(add, Change{Member: Member{ID: 42, PeerURLs: []string{"http://z:2380"}}}); err != nil {
		t.Fatal(err)
	}
}
