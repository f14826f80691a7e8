package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-kv/cairn/mvcc"
)

// answer is a peer's successful answer: its current revision, and its
// hash with the compact revision it was taken at.
func answer(id uint64, rev, compact int64, hash uint32) peerHashResult {
	return peerHashResult{id: id, resp: &peerHash{MemberID: id, Revision: rev, Hash: hash, CompactRevision: compact}}
}

func unreachable(id uint64) peerHashResult {
	return peerHashResult{id: id, err: errors.New("connection refused")}
}

func TestHashSuspects(t *testing.T) {
	for _, c := range []struct {
		name    string
		hashes  map[uint64]uint32
		members int
		want    []uint64
	}{
		{"all agree", map[uint64]uint32{1: 7, 2: 7, 3: 7}, 3, nil},
		{"alone", map[uint64]uint32{1: 7}, 3, nil},
		{"one follower differs", map[uint64]uint32{1: 7, 2: 7, 3: 8}, 3, []uint64{3}},
		{"the leader differs", map[uint64]uint32{1: 8, 2: 7, 3: 7}, 3, []uint64{1}},
		// Two comparable of three: no hash holds a quorum of the cluster.
		{"no quorum among the comparable", map[uint64]uint32{1: 7, 2: 8}, 3, []uint64{0}},
		{"all differ", map[uint64]uint32{1: 6, 2: 7, 3: 8}, 3, []uint64{0}},
		{"two of five differ", map[uint64]uint32{1: 7, 2: 7, 3: 7, 4: 8, 5: 9}, 5, []uint64{4, 5}},
		{"two against two of five", map[uint64]uint32{1: 7, 2: 7, 3: 8, 4: 8}, 5, []uint64{0}},
	} {
		if got := hashSuspects(c.hashes, c.members); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestPeriodicSuspects: etcd's periodic-check rules, with the quorum rule
// of its compact hash check for whom a hash mismatch blames.
func TestPeriodicSuspects(t *testing.T) {
	const self = 1
	h := peerHash{MemberID: self, Revision: 10, Hash: 7, HashRevision: 10, CompactRevision: 5}
	after := func(rev, compact int64, hash uint32) peerHash {
		return peerHash{MemberID: self, Revision: rev, Hash: hash, HashRevision: rev, CompactRevision: compact}
	}
	for _, c := range []struct {
		name     string
		h2       peerHash
		peers    []peerHashResult
		want     []uint64
		compared int
	}{
		{"all agree", after(12, 5, 3), []peerHashResult{answer(2, 10, 5, 7), answer(3, 12, 5, 7)}, nil, 2},
		{"a follower differs", h, []peerHashResult{answer(2, 10, 5, 7), answer(3, 10, 5, 9)}, []uint64{3}, 2},
		// etcd would blame follower 2 here, the first that disagrees.
		{"the leader differs", h, []peerHashResult{answer(2, 10, 5, 9), answer(3, 10, 5, 9)}, []uint64{self}, 2},
		{"one answer that differs", h, []peerHashResult{answer(2, 10, 5, 9), unreachable(3)}, []uint64{0}, 1},
		{"unreachable and behind are skipped", h, []peerHashResult{unreachable(2), {id: 3, err: mvcc.ErrFutureRev}}, nil, 0},
		// A peer that compacted since answers at another compact
		// revision: not comparable.
		{"other compact revision", after(11, 10, 3), []peerHashResult{answer(2, 11, 10, 9), answer(3, 10, 5, 7)}, nil, 1},
		{"the leader's state changed under the same revision", after(10, 5, 8), []peerHashResult{answer(2, 10, 5, 7), answer(3, 10, 5, 7)}, []uint64{self}, 2},
		{"a follower ahead of the leader after the barrier", after(11, 5, 3), []peerHashResult{answer(2, 12, 5, 7), answer(3, 10, 5, 7)}, []uint64{2}, 2},
		{"a follower compacted past the leader", after(11, 5, 3), []peerHashResult{answer(2, 11, 8, 1), answer(3, 10, 5, 7)}, []uint64{2}, 1},
	} {
		got, compared := periodicSuspects(self, h, c.h2, c.peers)
		if !slices.Equal(got, c.want) || compared != c.compared {
			t.Errorf("%s: suspects %v compared %d, want %v and %d", c.name, got, compared, c.want, c.compared)
		}
	}
}

func TestCompactSuspects(t *testing.T) {
	const self = 1
	h := mvcc.CompactHash{Hash: 7, Revision: 20, CompactRevision: 10}
	for _, c := range []struct {
		name         string
		peers        []peerHashResult
		want         []uint64
		done, agreed bool
	}{
		{"all agree", []peerHashResult{answer(2, 20, 10, 7), answer(3, 20, 10, 7)}, nil, true, true},
		// Still compacting (its hash not taken yet): look at an older
		// compaction.
		{"one not comparable", []peerHashResult{answer(2, 20, 10, 7), answer(3, 20, 20, 4)}, nil, false, false},
		{"one unreachable", []peerHashResult{answer(2, 20, 10, 7), unreachable(3)}, nil, false, false},
		{"a follower differs", []peerHashResult{answer(2, 20, 10, 7), answer(3, 20, 10, 9)}, []uint64{3}, true, false},
		{"the leader differs", []peerHashResult{answer(2, 20, 10, 9), answer(3, 20, 10, 9)}, []uint64{self}, true, false},
		{"no quorum", []peerHashResult{answer(2, 20, 10, 9), unreachable(3)}, []uint64{0}, true, false},
	} {
		got, done, agreed := compactSuspects(self, h, c.peers)
		if !slices.Equal(got, c.want) || done != c.done || agreed != c.agreed {
			t.Errorf("%s: %v done %v agreed %v, want %v %v %v", c.name, got, done, agreed, c.want, c.done, c.agreed)
		}
	}
}

// TestPeerHashKV asks a member's peer handler over HTTP for hashes as the
// corruption checks do, and checks that each refusal comes back as the
// error the checks tell apart, and that a member of another cluster is
// never compared.
func TestPeerHashKV(t *testing.T) {
	s := startTestServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte(k), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	rev := s.Rev()
	if _, err := s.Compact(ctx, &pb.CompactionRequest{Revision: rev - 1}); err != nil {
		t.Fatal(err)
	}
	peer := httptest.NewServer(s.peerHandler())
	defer peer.Close()

	h, err := s.fetchPeerHash(ctx, s.id, peer.URL, rev, false)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _, err := s.kv.HashKV(rev)
	if err != nil || h.Hash != want || h.HashRevision != rev || h.CompactRevision != rev-1 || h.MemberID != s.id {
		t.Fatalf("answer %+v, want hash %d at %d compacted at %d (%v)", h, want, rev, rev-1, err)
	}
	for _, c := range []struct {
		what       string
		id         uint64
		rev        int64
		compaction bool
		want       error
	}{
		{"future revision", s.id, rev + 1, false, mvcc.ErrFutureRev},
		{"compacted revision", s.id, rev - 2, false, mvcc.ErrCompacted},
		{"no compaction hash recorded", s.id, rev, true, errNoCompactHash},
	} {
		if _, err := s.fetchPeerHash(ctx, c.id, peer.URL, c.rev, c.compaction); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.what, err, c.want)
		}
	}
	if _, err := s.fetchPeerHash(ctx, s.id+1, peer.URL, rev, false); err == nil {
		t.Error("an answer from another member than the one asked was accepted")
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peer.URL+PathHashKV, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(clusterIDHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("a member of another cluster got HTTP %d, want %d", resp.StatusCode, http.StatusPreconditionFailed)
	}
}
