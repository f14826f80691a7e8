package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

const testDir = "/member/wal"

func ent(index, term uint64) *raftpb.Entry {
	return &raftpb.Entry{
		Index: proto.Uint64(index),
		Term:  proto.Uint64(term),
		Type:  raftpb.EntryNormal.Enum(),
		Data:  []byte(fmt.Sprintf("entry %d of term %d", index, term)),
	}
}

func ents(from, to, term uint64) []*raftpb.Entry {
	var es []*raftpb.Entry
	for i := from; i <= to; i++ {
		es = append(es, ent(i, term))
	}
	return es
}

func hs(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// create makes a WAL with 4 KiB segments unless opts say otherwise: full
// size segments are slow to preallocate on a MemFS.
func create(t testing.TB, fs vfs.FS, opts ...Option) *WAL {
	t.Helper()
	opts = append([]Option{WithSegmentSize(4096)}, opts...)
	w, err := Create(fs, testDir, []byte("cluster-7"), opts...)
	must(t, err)
	return w
}

// reopen opens the WAL at snap and reads it, failing the test on error.
func reopen(t testing.TB, fs vfs.FS, snap Snapshot, opts ...Option) (*WAL, *raftpb.HardState, []*raftpb.Entry) {
	t.Helper()
	opts = append([]Option{WithSegmentSize(4096)}, opts...)
	w, err := Open(fs, testDir, snap, opts...)
	must(t, err)
	md, st, es, err := w.ReadAll()
	if err != nil {
		_ = w.Close()
		t.Fatal(err)
	}
	if string(md) != "cluster-7" {
		t.Fatalf("metadata = %q", md)
	}
	return w, st, es
}

func checkEntries(t testing.TB, got, want []*raftpb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries (%s), want %d (%s)", len(got), span(got), len(want), span(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("entry %d: got %v, want %v", i, got[i], want[i])
		}
	}
}

func span(es []*raftpb.Entry) string {
	if len(es) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d..%d", es[0].GetIndex(), es[len(es)-1].GetIndex())
}

func checkState(t testing.TB, got, want *raftpb.HardState) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Fatalf("hard state = %v, want %v", got, want)
	}
}

func readFile(t testing.TB, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	must(t, err)
	defer f.Close()
	b, err := io.ReadAll(f)
	must(t, err)
	return b
}

func writeFile(t testing.TB, fs vfs.FS, path string, data []byte) {
	t.Helper()
	must(t, fs.MkdirAll(fs.PathDir(path), 0o755))
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	must(t, err)
	_, err = f.Write(bytes.Clone(data))
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
}

func segmentPaths(t testing.TB, fs vfs.FS) []string {
	t.Helper()
	segs, err := listSegments(fs, testDir)
	must(t, err)
	var paths []string
	for _, s := range segs {
		paths = append(paths, fs.PathJoin(testDir, s.name()))
	}
	return paths
}

func TestRoundTripManySegments(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs, WithSegmentSize(4096))
	var want []*raftpb.Entry
	var st *raftpb.HardState
	for i := uint64(1); i <= 600; i += 3 {
		batch := ents(i, i+2, i/100+1)
		st = hs(i/100+1, 1, i-1)
		must(t, w.Save(st, batch))
		want = append(want, batch...)
	}
	must(t, w.Close())
	if n := len(segmentPaths(t, fs)); n < 5 {
		t.Fatalf("only %d segments; want many", n)
	}

	w, gotSt, got := reopen(t, fs, Snapshot{}, WithSegmentSize(4096))
	checkEntries(t, got, want)
	checkState(t, gotSt, st)

	// Appending continues the chain after a reopen, across more cuts.
	for i := uint64(601); i <= 900; i += 3 {
		batch := ents(i, i+2, 7)
		st = hs(7, 1, i-1)
		must(t, w.Save(st, batch))
		want = append(want, batch...)
	}
	must(t, w.Close())
	w, gotSt, got = reopen(t, fs, Snapshot{})
	defer w.Close()
	checkEntries(t, got, want)
	checkState(t, gotSt, st)
}

func TestEmptyWAL(t *testing.T) {
	fs := vfs.NewMem()
	must(t, create(t, fs).Close())
	if !Exist(fs, testDir) || Exist(fs, "/elsewhere") {
		t.Fatal("Exist is wrong")
	}
	w, st, es := reopen(t, fs, Snapshot{})
	defer w.Close()
	checkState(t, st, &raftpb.HardState{})
	checkEntries(t, es, nil)
}

func TestOverwriteUncommittedTail(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs, WithSegmentSize(4096))
	must(t, w.Save(hs(1, 1, 5), ents(1, 120, 1)))
	// A new leader rewrites from 100; the cut in between must not matter.
	must(t, w.Save(hs(2, 2, 5), ents(100, 105, 2)))
	must(t, w.Save(hs(3, 3, 5), ents(104, 104, 3)))
	must(t, w.Close())

	want := append(ents(1, 99, 1), ents(100, 103, 2)...)
	want = append(want, ent(104, 3))
	w, st, got := reopen(t, fs, Snapshot{})
	checkEntries(t, got, want)
	checkState(t, st, hs(3, 3, 5))

	must(t, w.Save(nil, ents(105, 106, 3)))
	must(t, w.Close())
	w, _, got = reopen(t, fs, Snapshot{})
	defer w.Close()
	checkEntries(t, got, append(want, ents(105, 106, 3)...))
}

func TestSaveValidation(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs)
	must(t, w.Save(nil, ents(1, 3, 1)))
	for _, bad := range [][]*raftpb.Entry{
		ents(5, 6, 1),                    // gap after 3
		{ent(4, 1), ent(6, 1)},           // not contiguous
		{{Term: proto.Uint64(1)}},        // index 0
		append(ents(2, 2, 1), ent(2, 1)), // repeated index
	} {
		if err := w.Save(nil, bad); err == nil {
			t.Fatalf("Save(%s) succeeded", span(bad))
		}
	}
	// Validation errors write nothing and are not sticky.
	must(t, w.Save(nil, ents(4, 4, 1)))
	must(t, w.Close())

	w, err := Open(fs, testDir, Snapshot{})
	must(t, err)
	if err := w.Save(nil, ents(5, 5, 1)); !errors.Is(err, errNotReady) {
		t.Fatalf("Save before ReadAll: %v", err)
	}
	must(t, w.Close())
}

// gatedFS lets a test turn every fsync (files and directories) into a
// no-op, modelling operations issued but never made durable before a crash.
type gatedFS struct {
	vfs.FS
	skipSync *atomic.Bool
}

type gatedFile struct {
	vfs.File
	skipSync *atomic.Bool
}

func (g gatedFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := g.FS.Create(name, c)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g.skipSync}, nil
}

func (g gatedFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := g.FS.OpenReadWrite(name, c, opts...)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g.skipSync}, nil
}

func (g gatedFS) OpenDir(name string) (vfs.File, error) {
	f, err := g.FS.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return gatedFile{f, g.skipSync}, nil
}

func (f gatedFile) Sync() error {
	if f.skipSync.Load() {
		return nil
	}
	return f.File.Sync()
}

func (f gatedFile) SyncData() error {
	if f.skipSync.Load() {
		return nil
	}
	return f.File.SyncData()
}

func TestCrashKeepsSyncedPrefix(t *testing.T) {
	for _, segSize := range []int64{4096, 1 << 20} {
		t.Run(fmt.Sprint(segSize), func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			skip := new(atomic.Bool)
			fs := gatedFS{mem, skip}
			w := create(t, fs, WithSegmentSize(segSize))
			must(t, w.Save(hs(1, 1, 0), ents(1, 50, 1)))
			must(t, w.Save(hs(1, 1, 40), nil)) // commit only: not synced
			must(t, w.Save(nil, ents(51, 60, 1)))
			skip.Store(true)
			must(t, w.Save(hs(2, 2, 60), ents(61, 200, 2)))
			must(t, w.SaveSnapshot(Snapshot{Index: 50, Term: 1}))

			crashed := mem.CrashClone(vfs.CrashCloneCfg{})
			_ = w.Close()

			w, st, got := reopen(t, crashed, Snapshot{}, WithSegmentSize(segSize))
			checkEntries(t, got, ents(1, 60, 1))
			checkState(t, st, hs(1, 1, 40))
			must(t, w.Save(hs(3, 3, 60), ents(61, 70, 3)))
			must(t, w.Close())

			w, st, got = reopen(t, crashed, Snapshot{}, WithSegmentSize(segSize))
			defer w.Close()
			checkEntries(t, got, append(ents(1, 60, 1), ents(61, 70, 3)...))
			checkState(t, st, hs(3, 3, 60))
		})
	}
}

func TestCrashDuringCreate(t *testing.T) {
	mem := vfs.NewCrashableMem()
	w := create(t, mem)
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	must(t, w.Close())
	if !Exist(crashed, testDir) {
		t.Fatal("created WAL did not survive a crash")
	}
	w, _, _ = reopen(t, crashed, Snapshot{})
	must(t, w.Close())
}

func TestCreateRefusesExisting(t *testing.T) {
	fs := vfs.NewMem()
	must(t, create(t, fs).Close())
	if _, err := Create(fs, testDir, nil); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over a WAL: %v", err)
	}
	writeFile(t, fs, "/other/notes.txt", []byte("x"))
	if _, err := Create(fs, "/other", nil); err == nil {
		t.Fatal("Create in a non-empty directory succeeded")
	}
	must(t, fs.MkdirAll("/empty", 0o755))
	w, err := Create(fs, "/empty", nil, WithSegmentSize(4096))
	must(t, err)
	must(t, w.Close())
}

func TestOpenLocks(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs)
	if _, err := Open(fs, testDir, Snapshot{}); err == nil {
		t.Fatal("second Open of a locked WAL succeeded")
	}
	must(t, w.Close())
	w, err := Open(fs, testDir, Snapshot{})
	must(t, err)
	must(t, w.Close())
}

// buildTail writes a WAL whose tail segment ends with entry 6, and returns
// the tail's bytes plus the offset and unpadded length of that last record.
func buildTail(t *testing.T) (fs *vfs.MemFS, path string, data []byte, off, length int64) {
	fs = vfs.NewMem()
	w := create(t, fs, WithSegmentSize(4096))
	must(t, w.Save(hs(1, 1, 3), ents(1, 5, 1)))
	off = w.off
	must(t, w.Save(nil, []*raftpb.Entry{{
		Index: proto.Uint64(6), Term: proto.Uint64(1), Data: bytes.Repeat([]byte("x"), 100),
	}}))
	path = w.tailName()
	must(t, w.Close())
	data = readFile(t, fs, path)
	length = int64(binaryLength(data[off:]))
	return fs, path, data, off, length
}

func binaryLength(h []byte) uint32 {
	return uint32(h[0]) | uint32(h[1])<<8 | uint32(h[2])<<16 | uint32(h[3])<<24
}

func TestTornLastRecordAtEveryOffset(t *testing.T) {
	_, path, data, off, length := buildTail(t)
	variants := map[string]func(d []byte, cut int64) []byte{
		// The rest of a preallocated file was never written.
		"zeros": func(d []byte, cut int64) []byte { clear(d[cut : off+length]); return d },
		// The rest holds bytes from some earlier, unrelated write.
		"garbage": func(d []byte, cut int64) []byte {
			for i := cut; i < off+length; i++ {
				d[i] = byte(0xa5 ^ i)
			}
			return d
		},
		// The file ends mid-record (a record that had grown the file).
		"truncated": func(d []byte, cut int64) []byte { return d[:cut] },
	}
	for name, tear := range variants {
		t.Run(name, func(t *testing.T) {
			for cut := off; cut < off+length; cut++ {
				fs := vfs.NewMem()
				writeFile(t, fs, path, tear(bytes.Clone(data), cut))
				w, st, got := reopen(t, fs, Snapshot{})
				checkEntries(t, got, ents(1, 5, 1))
				checkState(t, st, hs(1, 1, 3))
				must(t, w.Save(nil, ents(6, 7, 2)))
				must(t, w.Close())
				w, _, got = reopen(t, fs, Snapshot{})
				checkEntries(t, got, append(ents(1, 5, 1), ents(6, 7, 2)...))
				must(t, w.Close())
			}
		})
	}
}

func expectCorrupt(t *testing.T, fs vfs.FS, snap Snapshot, path string, off int64) {
	t.Helper()
	w, err := Open(fs, testDir, snap)
	must(t, err)
	defer w.Close()
	_, _, _, err = w.ReadAll()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadAll: %v, want ErrCorrupt", err)
	}
	where := fmt.Sprintf("%s at offset %d", path, off)
	if !strings.Contains(err.Error(), where) {
		t.Fatalf("error %q does not say %q", err, where)
	}
	if err := w.Save(nil, ents(1, 1, 9)); err == nil {
		t.Fatal("Save after a failed ReadAll succeeded")
	}
}

func TestCorruptionInsideLastSegment(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs, WithSegmentSize(4096))
	var offs []int64
	for i := uint64(1); i <= 10; i++ {
		offs = append(offs, w.off)
		must(t, w.Save(hs(1, 1, i-1), ents(i, i, 1)))
	}
	path := w.tailName()
	must(t, w.Close())
	data := readFile(t, fs, path)

	// A flipped bit in the payload of entry 5, with valid records after it.
	d := bytes.Clone(data)
	d[offs[4]+headerSize+3] ^= 0x10
	writeFile(t, fs, path, d)
	expectCorrupt(t, fs, Snapshot{}, path, offs[4])

	// A flipped bit in its CRC field.
	d = bytes.Clone(data)
	d[offs[4]+9] ^= 0x01
	writeFile(t, fs, path, d)
	expectCorrupt(t, fs, Snapshot{}, path, offs[4])
}

func TestCorruptionInEarlierSegment(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs, WithSegmentSize(4096))
	type pos struct {
		seg int
		off int64
	}
	var last pos // the last record of the first segment
	for i := uint64(1); len(w.segs) < 4; i++ {
		if len(w.segs) == 1 {
			last = pos{0, w.off}
		}
		must(t, w.Save(nil, ents(i, i, 1)))
	}
	must(t, w.Close())
	paths := segmentPaths(t, fs)
	orig := make([][]byte, len(paths))
	for i, p := range paths {
		orig[i] = readFile(t, fs, p)
	}
	restore := func() {
		for i, p := range paths {
			writeFile(t, fs, p, orig[i])
		}
	}

	t.Run("flip in final record of a non-last segment", func(t *testing.T) {
		defer restore()
		d := bytes.Clone(orig[0])
		d[last.off+headerSize+1] ^= 0x40
		writeFile(t, fs, paths[0], d)
		expectCorrupt(t, fs, Snapshot{}, paths[0], last.off)
	})
	t.Run("truncated non-last segment", func(t *testing.T) {
		defer restore()
		d := bytes.Clone(orig[0])
		clear(d[last.off:])
		writeFile(t, fs, paths[0], d)
		// The chain check at the next segment's carry catches the loss.
		expectCorrupt(t, fs, Snapshot{}, paths[1], 0)
	})
	t.Run("carry of a later segment", func(t *testing.T) {
		defer restore()
		d := bytes.Clone(orig[2])
		d[headerSize+14] ^= 0x01
		writeFile(t, fs, paths[2], d)
		expectCorrupt(t, fs, Snapshot{}, paths[2], 0)
	})
	t.Run("missing segment", func(t *testing.T) {
		defer restore()
		must(t, fs.Remove(paths[1]))
		expectCorrupt(t, fs, Snapshot{}, paths[2], 0)
	})
	t.Run("segments swapped", func(t *testing.T) {
		defer restore()
		writeFile(t, fs, paths[1], orig[2])
		writeFile(t, fs, paths[2], orig[1])
		expectCorrupt(t, fs, Snapshot{}, paths[1], 0)
	})
	t.Run("segment from another WAL", func(t *testing.T) {
		defer restore()
		other := vfs.NewMem()
		ow := create(t, other, WithSegmentSize(4096))
		for i := uint64(1); len(ow.segs) < 2; i++ {
			must(t, ow.Save(nil, ents(i, i, 2)))
		}
		must(t, ow.Close())
		op := segmentPaths(t, other)[1]
		if other.PathBase(op) != fs.PathBase(paths[1]) {
			t.Skip("segment names differ; nothing to paste")
		}
		writeFile(t, fs, paths[1], readFile(t, other, op))
		expectCorrupt(t, fs, Snapshot{}, paths[1], 0)
	})
}

// injectOn returns an FS that fails operations of the given kind on
// segment files while the returned toggle is on.
func injectOn(kind errorfs.OpKind) (vfs.FS, *errorfs.Toggle) {
	tog := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == kind && strings.Contains(op.Path, segmentExt) {
			return errorfs.ErrInjected
		}
		return nil
	})}
	return errorfs.Wrap(vfs.NewMem(), tog), tog
}

func TestWriteErrorsAreSticky(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind errorfs.OpKind
		save func(w *WAL) error
	}{
		{"write", errorfs.OpFileWriteAt, func(w *WAL) error { return w.Save(hs(1, 1, 0), ents(1, 1, 1)) }},
		{"fsync", errorfs.OpFileSyncData, func(w *WAL) error { return w.Save(nil, ents(1, 1, 1)) }},
		{"marker fsync", errorfs.OpFileSyncData, func(w *WAL) error { return w.SaveSnapshot(Snapshot{Index: 1, Term: 1}) }},
		// With 4 KiB segments the batch forces a cut, whose new segment
		// cannot be renamed into place.
		{"cut", errorfs.OpRename, func(w *WAL) error { return w.Save(nil, ents(1, 100, 1)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, tog := injectOn(tc.kind)
			w := create(t, fs, WithSegmentSize(4096))
			tog.On()
			err := tc.save(w)
			if !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("first failure: %v", err)
			}
			tog.Off()
			if err2 := w.Save(nil, ents(1, 1, 1)); !errors.Is(err2, errorfs.ErrInjected) {
				t.Fatalf("Save after failure: %v", err2)
			}
			if err2 := w.SaveSnapshot(Snapshot{}); !errors.Is(err2, errorfs.ErrInjected) {
				t.Fatalf("SaveSnapshot after failure: %v", err2)
			}
			_ = w.Close()
		})
	}
}

func TestSnapshotMarkers(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs)
	must(t, w.Save(hs(1, 1, 20), ents(1, 20, 1)))
	must(t, w.SaveSnapshot(Snapshot{Index: 10, Term: 1}))
	must(t, w.Save(hs(2, 1, 25), ents(21, 30, 2)))
	must(t, w.Close())

	w, st, got := reopen(t, fs, Snapshot{Index: 10, Term: 1})
	checkEntries(t, got, append(ents(11, 20, 1), ents(21, 30, 2)...))
	checkState(t, st, hs(2, 1, 25))
	must(t, w.Close())

	for snap, want := range map[Snapshot]error{
		{Index: 10, Term: 2}: ErrSnapshotMismatch,
		{Index: 11, Term: 1}: ErrSnapshotNotFound,
	} {
		w, err := Open(fs, testDir, snap)
		must(t, err)
		if _, _, _, err := w.ReadAll(); !errors.Is(err, want) {
			t.Fatalf("ReadAll at %v: %v, want %v", snap, err, want)
		}
		must(t, w.Close())
	}
}

// A follower that installs a leader's snapshot records the marker, then
// continues its log after the snapshot's index.
func TestMarkerBeyondLog(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs, WithSegmentSize(4096))
	must(t, w.Save(hs(1, 1, 5), ents(1, 10, 1)))
	must(t, w.SaveSnapshot(Snapshot{Index: 1000, Term: 4}))
	must(t, w.Save(hs(4, 2, 1000), nil))
	must(t, w.Save(hs(4, 2, 1100), ents(1001, 1200, 4)))
	must(t, w.Close())
	w, st, got := reopen(t, fs, Snapshot{Index: 1000, Term: 4})
	defer w.Close()
	checkEntries(t, got, ents(1001, 1200, 4))
	checkState(t, st, hs(4, 2, 1100))
	for _, s := range w.segs[1:] {
		if s.first <= 1000 {
			t.Fatalf("segment %s cut after the marker may hold entry %d", s.name(), s.first)
		}
	}
}

func TestReleaseTo(t *testing.T) {
	fs := vfs.NewMem()
	opt := WithSegmentSize(4096)
	w := create(t, fs, opt)
	// The hard state is saved once; releasing must not lose it.
	must(t, w.Save(hs(5, 2, 1), ents(1, 1, 5)))
	for i := uint64(2); i <= 300; i++ {
		must(t, w.Save(nil, ents(i, i, 5)))
		switch i {
		case 150:
			must(t, w.SaveSnapshot(Snapshot{Index: 100, Term: 5}))
		case 250:
			must(t, w.SaveSnapshot(Snapshot{Index: 200, Term: 5}))
		}
	}
	before := len(w.segs)

	// No marker other than {0,0} is at or below 99: nothing goes.
	must(t, w.ReleaseTo(99))
	if len(w.segs) != before {
		t.Fatalf("ReleaseTo(99) removed segments")
	}
	must(t, w.ReleaseTo(220))
	if len(w.segs) >= before {
		t.Fatalf("ReleaseTo(220) kept all %d segments", before)
	}
	if got := len(segmentPaths(t, fs)); got != len(w.segs) {
		t.Fatalf("%d segment files, WAL tracks %d", got, len(w.segs))
	}
	must(t, w.Save(nil, ents(301, 310, 5)))
	must(t, w.Close())

	w, st, got := reopen(t, fs, Snapshot{Index: 200, Term: 5}, opt)
	checkEntries(t, got, ents(201, 310, 5))
	checkState(t, st, hs(5, 2, 1))
	// Releasing everything up to the tail still keeps what Open needs.
	must(t, w.SaveSnapshot(Snapshot{Index: 310, Term: 5}))
	must(t, w.ReleaseTo(1_000_000))
	must(t, w.Close())
	w, _, got = reopen(t, fs, Snapshot{Index: 310, Term: 5}, opt)
	checkEntries(t, got, nil)
	must(t, w.Close())
}

func TestValidSnapshotEntries(t *testing.T) {
	fs := vfs.NewMem()
	w := create(t, fs, WithSegmentSize(4096))
	must(t, w.Save(hs(1, 1, 0), ents(1, 100, 1)))
	must(t, w.Save(hs(1, 1, 60), nil))
	must(t, w.SaveSnapshot(Snapshot{Index: 50, Term: 1}))
	must(t, w.Save(hs(2, 1, 150), ents(101, 200, 2)))
	must(t, w.SaveSnapshot(Snapshot{Index: 150, Term: 2}))
	// Recorded before a hard state covering it: not usable yet.
	must(t, w.SaveSnapshot(Snapshot{Index: 180, Term: 2}))
	// A torn record at the end of the tail.
	tail, off := w.tailName(), w.off
	must(t, w.Close())
	d := readFile(t, fs, tail)
	copy(d[off:], []byte{40, 0, 0, 0, byte(typeEntry), 0, 0, 0, 1, 2, 3, 4, 5})
	writeFile(t, fs, tail, d)

	got, err := ValidSnapshotEntries(fs, testDir)
	must(t, err)
	want := []Snapshot{{}, {Index: 50, Term: 1}, {Index: 150, Term: 2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("markers = %v, want %v", got, want)
	}
	if !bytes.Equal(readFile(t, fs, tail), d) {
		t.Fatal("ValidSnapshotEntries modified the tail")
	}
	if _, err := ValidSnapshotEntries(fs, "/nowhere"); err == nil {
		t.Fatal("no error for a missing WAL")
	}
}
