package wal

import (
	"bytes"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// fuzzSegment is the first segment of a small valid WAL: entries (all of
// term 1, so any entry that verifies must equal ent(index, 1)), hard
// states, a rewritten tail and snapshot markers.
func fuzzSegment(t testing.TB) []byte {
	fs := vfs.NewMem()
	w := create(t, fs)
	must(t, w.Save(hs(1, 1, 0), ents(1, 8, 1)))
	must(t, w.SaveSnapshot(Snapshot{Index: 3, Term: 1}))
	must(t, w.Save(hs(1, 1, 5), ents(7, 12, 1)))
	must(t, w.Save(hs(1, 2, 6), nil))
	path := w.tailName()
	must(t, w.Close())
	d := readFile(t, fs, path)
	end := len(d)
	for end > 0 && d[end-1] == 0 {
		end--
	}
	return d[:alignUp(int64(end))]
}

// FuzzReadAll feeds arbitrary bytes as the only segment of a WAL. ReadAll
// must not panic, must return only entries whose records verified, and
// when it succeeds the WAL must accept an append that a reopen then sees.
func FuzzReadAll(f *testing.F) {
	seg := fuzzSegment(f)
	f.Add(seg)
	f.Add(seg[:len(seg)/2])
	f.Add(seg[:headerSize+carryPayloadSize])
	flipped := bytes.Clone(seg)
	flipped[len(seg)/2] ^= 0x80
	f.Add(flipped)
	f.Add([]byte{})

	path := vfs.NewMem().PathJoin(testDir, segment{seq: 0, first: 1}.name())
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := vfs.NewMem()
		writeFile(t, fs, path, data)
		w, err := Open(fs, testDir, Snapshot{})
		must(t, err)
		_, _, es, err := w.ReadAll()
		if err != nil {
			_ = w.Close()
			return
		}
		checkFuzzEntries(t, es)
		if len(es) == 0 {
			must(t, w.Close())
			return
		}
		next := ent(es[len(es)-1].GetIndex()+1, 1)
		must(t, w.Save(nil, []*raftpb.Entry{next}))
		must(t, w.Close())

		w, err = Open(fs, testDir, Snapshot{})
		must(t, err)
		defer w.Close()
		_, _, es2, err := w.ReadAll()
		must(t, err)
		checkEntries(t, es2, append(es, next))
	})
}

func checkFuzzEntries(t *testing.T, es []*raftpb.Entry) {
	t.Helper()
	for i, e := range es {
		if !proto.Equal(e, ent(e.GetIndex(), 1)) {
			t.Fatalf("entry %d was never written: %v", i, e)
		}
		if i > 0 && e.GetIndex() != es[i-1].GetIndex()+1 {
			t.Fatalf("entries not contiguous: %d after %d", e.GetIndex(), es[i-1].GetIndex())
		}
	}
}
