package snap

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/cairn-kv/cairn/wal"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

const testDir = "/member/snap"

func snapshot(term, index uint64) *raftpb.Snapshot {
	return &raftpb.Snapshot{
		Data: []byte("state at " + string(rune('a'+index%26))),
		Metadata: &raftpb.SnapshotMetadata{
			Term:      proto.Uint64(term),
			Index:     proto.Uint64(index),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
		},
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func checkSnap(t *testing.T, got *raftpb.Snapshot, err error, want *raftpb.Snapshot) {
	t.Helper()
	must(t, err)
	if !proto.Equal(got, want) {
		t.Fatalf("got snapshot %v, want %v", got.GetMetadata(), want.GetMetadata())
	}
}

func files(t *testing.T, fs vfs.FS) []string {
	t.Helper()
	names, err := fs.List(testDir)
	must(t, err)
	slices.Sort(names)
	return names
}

func readFile(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	must(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	must(t, err)
	return b
}

func putFile(t *testing.T, fs vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	must(t, err)
	_, err = f.Write(bytes.Clone(b))
	must(t, err)
	must(t, f.Close())
}

func TestSaveLoad(t *testing.T) {
	fs := vfs.NewMem()
	s := New(fs, testDir)
	if _, err := s.Load(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Load of empty dir: %v", err)
	}
	must(t, s.SaveSnap(&raftpb.Snapshot{})) // empty: no-op
	if n := len(files(t, fs)); n != 0 {
		t.Fatalf("empty snapshot wrote %d files", n)
	}
	want := snapshot(2, 100)
	must(t, s.SaveSnap(want))
	got, err := New(fs, testDir).Load()
	checkSnap(t, got, err, want)
	if names := files(t, fs); !slices.Equal(names, []string{"0000000000000002-0000000000000064.snap"}) {
		t.Fatalf("files = %v", names)
	}
}

// TestSaveObserved: every snapshot saved is reported once, with its
// encoding, its file's write and the whole save; an empty one, not saved,
// is not reported.
func TestSaveObserved(t *testing.T) {
	s := New(vfs.NewMem(), testDir)
	var saves []time.Duration
	s.ObserveSaves(func(encode, write, total time.Duration) {
		if encode < 0 || write < 0 || total < encode+write {
			t.Errorf("save reported as encode %v, write %v, total %v", encode, write, total)
		}
		saves = append(saves, total)
	})
	must(t, s.SaveSnap(&raftpb.Snapshot{}))
	must(t, s.SaveSnap(snapshot(1, 7)))
	must(t, s.SaveSnap(snapshot(1, 8)))
	if len(saves) != 2 {
		t.Fatalf("%d saves reported, want 2", len(saves))
	}
}

func TestSaveIsDurable(t *testing.T) {
	mem := vfs.NewCrashableMem()
	s := New(mem, testDir)
	want := snapshot(1, 7)
	must(t, s.SaveSnap(want))
	got, err := New(mem.CrashClone(vfs.CrashCloneCfg{}), testDir).Load()
	checkSnap(t, got, err, want)
}

func TestNewestWins(t *testing.T) {
	fs := vfs.NewMem()
	s := New(fs, testDir)
	for _, sn := range []*raftpb.Snapshot{snapshot(1, 10), snapshot(3, 300), snapshot(2, 200)} {
		must(t, s.SaveSnap(sn))
	}
	got, err := s.Load()
	checkSnap(t, got, err, snapshot(3, 300))
}

func TestCorruptNewestFallsBack(t *testing.T) {
	fs := vfs.NewMem()
	s := New(fs, testDir)
	must(t, s.SaveSnap(snapshot(1, 10)))
	must(t, s.SaveSnap(snapshot(2, 20)))
	must(t, s.SaveSnap(snapshot(3, 30)))

	// Newest: a flipped bit. Second newest: claims another snapshot.
	p30 := fs.PathJoin(testDir, id{3, 30}.name())
	b := readFile(t, fs, p30)
	b[len(b)-2] ^= 0x04
	putFile(t, fs, p30, b)
	p20 := fs.PathJoin(testDir, id{2, 20}.name())
	putFile(t, fs, p20, readFile(t, fs, fs.PathJoin(testDir, id{1, 10}.name())))

	got, err := s.Load()
	checkSnap(t, got, err, snapshot(1, 10))
	want := []string{
		id{1, 10}.name(),
		id{2, 20}.name() + brokenExt,
		id{3, 30}.name() + brokenExt,
	}
	if names := files(t, fs); !slices.Equal(names, want) {
		t.Fatalf("files = %v, want %v", names, want)
	}

	// Nothing valid left: ErrNoSnapshot, and the broken files stay.
	putFile(t, fs, fs.PathJoin(testDir, id{1, 10}.name()), []byte("junk"))
	if _, err := s.Load(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Load: %v", err)
	}
}

func TestReadErrorIsNotCorruption(t *testing.T) {
	tog := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileRead {
			return errorfs.ErrInjected
		}
		return nil
	})}
	fs := errorfs.Wrap(vfs.NewMem(), tog)
	s := New(fs, testDir)
	must(t, s.SaveSnap(snapshot(1, 10)))
	tog.On()
	if _, err := s.Load(); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("Load: %v", err)
	}
	tog.Off()
	got, err := s.Load()
	checkSnap(t, got, err, snapshot(1, 10)) // not renamed to .broken
}

func TestSaveErrors(t *testing.T) {
	for _, kind := range []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileSync, errorfs.OpRename} {
		tog := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
			if op.Kind == kind {
				return errorfs.ErrInjected
			}
			return nil
		})}
		mem := vfs.NewMem()
		s := New(errorfs.Wrap(mem, tog), testDir)
		tog.On()
		if err := s.SaveSnap(snapshot(1, 10)); !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("op %v: SaveSnap: %v", kind, err)
		}
		if names, _ := mem.List(testDir); len(names) != 0 {
			t.Fatalf("op %v: failed save left %v", kind, names)
		}
	}
}

func TestPurge(t *testing.T) {
	fs := vfs.NewMem()
	s := New(fs, testDir)
	for i := uint64(1); i <= 5; i++ {
		must(t, s.SaveSnap(snapshot(i, i*10)))
	}
	putFile(t, fs, fs.PathJoin(testDir, "notes.txt"), []byte("keep me"))
	must(t, s.Purge(0))
	if n := len(files(t, fs)); n != 6 {
		t.Fatalf("Purge(0) left %d files", n)
	}
	must(t, s.Purge(2))
	want := []string{id{4, 40}.name(), id{5, 50}.name(), "notes.txt"}
	if names := files(t, fs); !slices.Equal(names, want) {
		t.Fatalf("files = %v, want %v", names, want)
	}
}

func TestLoadNewestAvailable(t *testing.T) {
	fs := vfs.NewMem()
	s := New(fs, testDir)
	for i := uint64(1); i <= 4; i++ {
		must(t, s.SaveSnap(snapshot(i, i*10)))
	}
	got, err := s.LoadNewestAvailable([]wal.Snapshot{{}, {Index: 10, Term: 1}, {Index: 30, Term: 3}})
	checkSnap(t, got, err, snapshot(3, 30))
	// Term must match as well as index.
	got, err = s.LoadNewestAvailable([]wal.Snapshot{{Index: 10, Term: 1}, {Index: 30, Term: 2}})
	checkSnap(t, got, err, snapshot(1, 10))
	if _, err := s.LoadNewestAvailable([]wal.Snapshot{{}, {Index: 99, Term: 9}}); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("no matching marker: %v", err)
	}
}

// The restart path end to end: markers from a real WAL pick the snapshot.
func TestLoadNewestAvailableWithWAL(t *testing.T) {
	fs := vfs.NewMem()
	w, err := wal.Create(fs, "/member/wal", nil, wal.WithSegmentSize(4096))
	must(t, err)
	s := New(fs, testDir)
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 30; i++ {
		ents = append(ents, &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1)})
	}
	must(t, w.Save(&raftpb.HardState{Term: proto.Uint64(1), Commit: proto.Uint64(25)}, ents))
	must(t, s.SaveSnap(snapshot(1, 20)))
	must(t, w.SaveSnapshot(wal.Snapshot{Index: 20, Term: 1}))
	// Snapshot and marker beyond the durable commit index: not usable.
	must(t, s.SaveSnap(snapshot(1, 28)))
	must(t, w.SaveSnapshot(wal.Snapshot{Index: 28, Term: 1}))
	must(t, w.Close())

	markers, err := wal.ValidSnapshotEntries(fs, "/member/wal")
	must(t, err)
	got, err := s.LoadNewestAvailable(markers)
	checkSnap(t, got, err, snapshot(1, 20))
}

func FuzzDecode(f *testing.F) {
	valid, err := proto.Marshal(snapshot(3, 42))
	must(f, err)
	file := encode(valid)
	f.Add(file)
	f.Add(file[:headerSize])
	f.Add(encode(nil))
	f.Add([]byte("cairnsnp"))
	f.Fuzz(func(t *testing.T, b []byte) {
		snap, err := decode(b)
		if err != nil {
			if snap != nil {
				t.Fatal("snapshot returned with an error")
			}
			return
		}
		// Whatever decodes must carry a valid checksum and re-encode to
		// the same bytes' meaning.
		if checksum(b) != uint32(b[12])|uint32(b[13])<<8|uint32(b[14])<<16|uint32(b[15])<<24 {
			t.Fatal("accepted a file whose checksum does not match")
		}
		payload, err := proto.Marshal(snap)
		must(t, err)
		again, err := decode(encode(payload))
		must(t, err)
		if !proto.Equal(again, snap) {
			t.Fatal("re-encoding changed the snapshot")
		}
	})
}
