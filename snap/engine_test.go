package snap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/cairn-kv/cairn/internal/faultfs"
	"github.com/cairn-kv/cairn/storage"
)

func openEngine(t testing.TB, fs vfs.FS, dir string) *storage.Engine {
	t.Helper()
	// Small memtables, so a few thousand keys make several sstables and
	// WAL files.
	eng, err := storage.Open(dir, storage.Options{FS: fs, CacheSize: 1 << 20, MemTableSize: 256 << 10})
	must(t, err)
	return eng
}

func engineKey(i int) []byte { return fmt.Appendf(nil, "key/%06d", i) }

// fillEngine writes n keys in batches of 100 without syncing, overwrites
// and deletes some, and flushes halfway: the engine then holds sstables,
// and the rest of the data only in memtables and the WAL.
func fillEngine(t testing.TB, eng *storage.Engine, n int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0))
	db := eng.DB()
	for start := 0; start < n; start += 100 {
		b := db.NewBatch()
		for i := start; i < min(start+100, n); i++ {
			v := make([]byte, 20+rng.IntN(200))
			for j := range v {
				v[j] = byte(rng.Uint32())
			}
			must(t, b.Set(engineKey(i), v, nil))
			if i%7 == 3 && i > 0 {
				must(t, b.Delete(engineKey(i-1), nil))
			}
		}
		must(t, b.Commit(pebble.NoSync))
		if start == n/2/100*100 {
			must(t, db.Flush())
		}
	}
}

type kv struct{ k, v string }

func dump(t testing.TB, eng *storage.Engine) []kv {
	t.Helper()
	it, err := eng.DB().NewIter(nil)
	must(t, err)
	var out []kv
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		must(t, err)
		out = append(out, kv{string(it.Key()), string(v)})
	}
	must(t, it.Close())
	return out
}

func checkSameContents(t *testing.T, got, want []kv) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("received engine has %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("key %d: got %q=%.20q, want %q=%.20q", i, got[i].k, got[i].v, want[i].k, want[i].v)
		}
	}
}

func checkAbsent(t *testing.T, fs vfs.FS, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := fs.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: want it absent, Stat says %v", p, err)
		}
	}
}

func checkEmptyDir(t *testing.T, fs vfs.FS, dir string) {
	t.Helper()
	names, err := fs.List(dir)
	must(t, err)
	if len(names) != 0 {
		t.Fatalf("%s still holds %v", dir, names)
	}
}

// snapshotBody returns the whole body of a snapshot of eng, read in
// chunks of varying sizes, and checks its length against Size.
func snapshotBody(t *testing.T, eng *storage.Engine, scratch string) []byte {
	t.Helper()
	s, err := OpenEngineSnapshot(eng, scratch)
	must(t, err)
	defer s.Close()
	var body []byte
	sizes := []int{1, 7, 4096, 100_000}
	for i := 0; ; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		n, err := s.Read(buf)
		body = append(body, buf[:n]...)
		if err == io.EOF {
			break
		}
		must(t, err)
	}
	if int64(len(body)) != s.Size() {
		t.Fatalf("read %d bytes, Size() = %d", len(body), s.Size())
	}
	return body
}

// TestEngineSnapshotRoundTrip streams an engine into a new directory on
// the OS and on an in-memory filesystem and opens the result.
func TestEngineSnapshotRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func(t *testing.T) (vfs.FS, string)
	}{
		{"disk", func(t *testing.T) (vfs.FS, string) { return vfs.Default, t.TempDir() }},
		{"mem", func(t *testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, root := tc.fs(t)
			srcDir, scratch, dstDir := fs.PathJoin(root, "src"), fs.PathJoin(root, "scratch"), fs.PathJoin(root, "dst")
			src := openEngine(t, fs, srcDir)
			defer src.Close()
			fillEngine(t, src, 3000, 1)
			want := dump(t, src)

			s, err := OpenEngineSnapshot(src, scratch)
			must(t, err)
			size := s.Size()
			var progress []int64
			pr := &progressReader{R: s, Every: 32 << 10, Fn: func(n int64) { progress = append(progress, n) }}
			n, err := ReceiveEngineSnapshot(context.Background(), fs, pr, dstDir)
			must(t, err)
			if n != size {
				t.Errorf("received %d bytes, Size() = %d", n, size)
			}
			if len(progress) < 2 || progress[len(progress)-1] != size || !slices.IsSorted(progress) {
				t.Errorf("progress reports %v, want increasing up to %d", progress, size)
			}
			must(t, s.Close())
			checkEmptyDir(t, fs, scratch)
			checkAbsent(t, fs, dstDir+partialExt)

			dst, err := storage.Open(dstDir, storage.Options{FS: fs})
			must(t, err)
			defer dst.Close()
			checkSameContents(t, dump(t, dst), want)
		})
	}
}

// TestEngineSnapshotWithoutWAL: a member's engine keeps no WAL of its own
// (storage.Options.DisableWAL), so its latest writes live only in
// memtables; the snapshot still holds every committed write.
func TestEngineSnapshotWithoutWAL(t *testing.T) {
	fs := vfs.NewMem()
	src, err := storage.Open("/src", storage.Options{FS: fs, CacheSize: 1 << 20, MemTableSize: 4 << 20, DisableWAL: true})
	must(t, err)
	defer src.Close()
	fillEngine(t, src, 1000, 3) // the second half stays in the memtable
	want := dump(t, src)
	body := snapshotBody(t, src, "/scratch")
	_, err = ReceiveEngineSnapshot(context.Background(), fs, bytes.NewReader(body), "/dst")
	must(t, err)
	dst, err := storage.Open("/dst", storage.Options{FS: fs})
	must(t, err)
	defer dst.Close()
	checkSameContents(t, dump(t, dst), want)
}

// TestVerifyEngineSnapshot: Verify accepts a saved body and describes it.
func TestVerifyEngineSnapshot(t *testing.T) {
	fs := vfs.NewMem()
	src := openEngine(t, fs, "/src")
	defer src.Close()
	fillEngine(t, src, 1000, 2)
	body := snapshotBody(t, src, "/scratch")
	info, err := VerifyEngineSnapshot(context.Background(), bytes.NewReader(body))
	must(t, err)
	if info.Size != int64(len(body)) || info.SHA256 != sha256.Sum256(body[:len(body)-sha256.Size]) {
		t.Errorf("Info %+v for a body of %d bytes", info, len(body))
	}
	if info.Files < 4 || info.FileBytes <= 0 || info.FileBytes >= info.Size {
		t.Errorf("implausible Info %+v", info)
	}
	n, err := ReceiveEngineSnapshot(context.Background(), fs, bytes.NewReader(body), "/dst")
	must(t, err)
	names, err := fs.List("/dst")
	must(t, err)
	if n != info.Size || int64(len(names)) != info.Files {
		t.Errorf("received %d bytes and %d files, Verify says %+v", n, len(names), info)
	}
}

// TestEngineSnapshotPointInTime: writes, flushes and compactions of the
// source while the body streams, and even closing it, do not change what
// arrives.
func TestEngineSnapshotPointInTime(t *testing.T) {
	fs, root := vfs.Default, t.TempDir()
	src := openEngine(t, fs, fs.PathJoin(root, "src"))
	fillEngine(t, src, 3000, 3)
	want := dump(t, src)
	s, err := OpenEngineSnapshot(src, fs.PathJoin(root, "scratch"))
	must(t, err)
	defer s.Close()

	started, stop, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			b := src.DB().NewBatch()
			_ = b.Set(engineKey(i%4000), []byte("overwritten"), nil)
			_ = b.Delete(engineKey((i*7)%3000), nil)
			if err := b.Commit(pebble.NoSync); err != nil {
				done <- err
				return
			}
			if i == 100 {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("writer: %v", err)
	}
	// Halfway through the body: stop writing, flush and compact the whole
	// source (deleting the sstables the checkpoint links to) and close it.
	midway := func() {
		close(stop)
		must(t, <-done)
		must(t, src.DB().Flush())
		must(t, src.CompactAll(context.Background()))
		if got := dump(t, src); slices.Equal(got, want) {
			t.Fatal("writes did not change the source")
		}
		must(t, src.Close())
	}
	r := &progressReader{R: s, Every: s.Size() / 2, Fn: func(n int64) {
		if midway != nil {
			midway()
			midway = nil
		}
	}}
	dstDir := fs.PathJoin(root, "dst")
	_, err = ReceiveEngineSnapshot(context.Background(), fs, r, dstDir)
	must(t, err)
	if midway != nil {
		t.Fatal("the source was never modified")
	}
	dst, err := storage.Open(dstDir, storage.Options{FS: fs})
	must(t, err)
	defer dst.Close()
	checkSameContents(t, dump(t, dst), want)
}

// TestEngineSnapshotConsistentPrefix: a snapshot taken while unsynced
// writes pour in holds every write committed before OpenEngineSnapshot
// was called, and a prefix of the writes in flight.
func TestEngineSnapshotConsistentPrefix(t *testing.T) {
	fs := vfs.NewMem()
	src := openEngine(t, fs, "/src")
	defer src.Close()
	var written atomic.Int64
	started, stop, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		v := bytes.Repeat([]byte("v"), 100)
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := src.DB().Set(engineKey(i), v, pebble.NoSync); err != nil {
				done <- err
				return
			}
			written.Store(int64(i + 1))
			if i == 2000 {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("writer: %v", err)
	}
	before := written.Load()
	s, err := OpenEngineSnapshot(src, "/scratch")
	after := written.Load()
	close(stop)
	must(t, <-done)
	must(t, err)
	defer s.Close()
	_, err = ReceiveEngineSnapshot(context.Background(), fs, s, "/dst")
	must(t, err)
	dst, err := storage.Open("/dst", storage.Options{FS: fs})
	must(t, err)
	defer dst.Close()
	got := dump(t, dst)
	for i, e := range got {
		if e.k != string(engineKey(i)) {
			t.Fatalf("key %d is %q: not a prefix of the writes", i, e.k)
		}
	}
	// One write may have committed without its writer having counted it.
	if m := int64(len(got)); m < before || m > after+1 {
		t.Fatalf("snapshot holds writes [0, %d), want at least %d and at most %d", m, before, after+1)
	}
	t.Logf("%d writes before the call, %d after, %d in the snapshot", before, after, len(got))
}

// smallBody is the body of a snapshot of a small engine, for the tests
// that try every offset.
func smallBody(t *testing.T) []byte {
	fs := vfs.NewMem()
	src := openEngine(t, fs, "/src")
	defer src.Close()
	fillEngine(t, src, 40, 4) // one sstable, a WAL tail
	return snapshotBody(t, src, "/scratch")
}

func TestEngineSnapshotTruncated(t *testing.T) {
	body := smallBody(t)
	ctx := context.Background()
	offsets := []int{0, 1, 8, 11, 12, 13, 14, 15}
	for off := 16; off < len(body); off += len(body)/50 + 1 {
		offsets = append(offsets, off)
	}
	for off := len(body) - sha256.Size - endRecSize - 1; off < len(body); off++ {
		offsets = append(offsets, off)
	}
	fs := vfs.NewMem()
	for _, off := range offsets {
		n, err := ReceiveEngineSnapshot(ctx, fs, bytes.NewReader(body[:off]), "/dst")
		if !errors.Is(err, ErrBodyTruncated) {
			t.Fatalf("body cut at %d of %d: got %v, want ErrBodyTruncated", off, len(body), err)
		}
		if n != int64(off) {
			t.Errorf("body cut at %d: reports %d bytes read", off, n)
		}
		checkAbsent(t, fs, "/dst", "/dst"+partialExt)
		if _, err := VerifyEngineSnapshot(ctx, bytes.NewReader(body[:off])); !errors.Is(err, ErrBodyTruncated) {
			t.Fatalf("Verify of body cut at %d: got %v, want ErrBodyTruncated", off, err)
		}
	}
	_, err := ReceiveEngineSnapshot(ctx, fs, io.MultiReader(bytes.NewReader(body), strings.NewReader("x")), "/dst")
	if !errors.Is(err, ErrBodyCorrupt) {
		t.Fatalf("body with a byte after the trailer: got %v, want ErrBodyCorrupt", err)
	}
	checkAbsent(t, fs, "/dst", "/dst"+partialExt)
}

// TestEngineSnapshotFlippedByte flips each byte of a body in turn.
func TestEngineSnapshotFlippedByte(t *testing.T) {
	body := smallBody(t)
	t.Logf("body of %d bytes", len(body))
	ctx := context.Background()
	fs := vfs.NewMem()
	b := slices.Clone(body)
	for i := range b {
		b[i] ^= 0x20
		_, err := VerifyEngineSnapshot(ctx, bytes.NewReader(b))
		if !errors.Is(err, ErrBodyCorrupt) && !errors.Is(err, ErrBodyChecksum) && !errors.Is(err, ErrBodyTruncated) {
			t.Fatalf("byte %d flipped: Verify says %v", i, err)
		}
		if i%97 == 0 || i >= len(b)-sha256.Size-endRecSize {
			if _, err := ReceiveEngineSnapshot(ctx, fs, bytes.NewReader(b), "/dst"); err == nil {
				t.Fatalf("byte %d flipped: received", i)
			}
			checkAbsent(t, fs, "/dst", "/dst"+partialExt)
		}
		b[i] ^= 0x20
	}
	// A flip in the contents of any file is caught by the checksum.
	for _, c := range contentSpans(t, body) {
		if c.size == 0 {
			continue
		}
		i := c.off + c.size/2
		b[i] ^= 1
		if _, err := VerifyEngineSnapshot(ctx, bytes.NewReader(b)); !errors.Is(err, ErrBodyChecksum) {
			t.Fatalf("byte %d of %s flipped: got %v, want ErrBodyChecksum", c.size/2, c.name, err)
		}
		b[i] ^= 1
	}
}

type span struct {
	name      string
	off, size int
}

// contentSpans locates each file's contents in a valid body.
func contentSpans(t *testing.T, body []byte) []span {
	t.Helper()
	var out []span
	for off := bodyHeaderSize; body[off] == recFile; {
		n := int(binary.LittleEndian.Uint16(body[off+1:]))
		name := string(body[off+3 : off+3+n])
		size := int(binary.LittleEndian.Uint64(body[off+3+n:]))
		off += 3 + n + 8
		out = append(out, span{name, off, size})
		off += size
	}
	if len(out) == 0 {
		t.Fatal("body holds no files")
	}
	return out
}

func TestEngineSnapshotCloseMidway(t *testing.T) {
	fs := vfs.NewMem()
	src := openEngine(t, fs, "/src")
	defer src.Close()
	fillEngine(t, src, 1000, 5)
	s, err := OpenEngineSnapshot(src, "/scratch")
	must(t, err)
	if names, _ := fs.List("/scratch"); len(names) != 1 || !strings.HasPrefix(names[0], checkpointPrefix) {
		t.Fatalf("scratch dir holds %v, want one checkpoint", names)
	}
	_, err = io.ReadFull(s, make([]byte, s.Size()/2))
	must(t, err)
	must(t, s.Close())
	checkEmptyDir(t, fs, "/scratch")
	if _, err := s.Read(make([]byte, 10)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	must(t, s.Close())
}

// TestEngineSnapshotCloseDuringRead: the transport closes the body from
// another goroutine to interrupt a send. The snapshot is closed while a
// Read of a checkpoint file is in the middle of its IO.
func TestEngineSnapshotCloseDuringRead(t *testing.T) {
	read := faultfs.NewHold(t, errorfs.OpFileRead, func(path string) bool { return strings.Contains(path, checkpointPrefix) })
	fs := read.Wrap(vfs.NewMem())
	src := openEngine(t, fs, "/src")
	defer src.Close()
	fillEngine(t, src, 1000, 6)
	s, err := OpenEngineSnapshot(src, "/scratch")
	must(t, err)
	read.Arm()
	readErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s)
		readErr <- err
	}()
	<-read.Held()
	must(t, s.Close()) // returns at once; the Read cleans up
	read.Release()
	if err := <-readErr; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read interrupted by Close: %v", err)
	}
	checkEmptyDir(t, fs, "/scratch")
}

// testFile is one file of a hand-made body.
type testFile struct{ name, data string }

// encodeBody builds a body from the format in doc.go, independently of
// EngineSnapshot; count < 0 means the true file count.
func encodeBody(files []testFile, count int) []byte {
	b := append([]byte("cairneng"), 1, 0, 0, 0)
	for _, f := range files {
		b = append(b, 1)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(f.name)))
		b = append(b, f.name...)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(f.data)))
		b = append(b, f.data...)
	}
	if count < 0 {
		count = len(files)
	}
	b = append(b, 2)
	b = binary.LittleEndian.AppendUint64(b, uint64(count))
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

func TestReceiveEngineSnapshotValidates(t *testing.T) {
	one := func(name string) []byte { return encodeBody([]testFile{{name, "x"}}, -1) }
	badVersion := one("a")
	badVersion[8] = 2
	for _, tc := range []struct {
		name string
		body []byte
		want error
	}{
		{"valid", encodeBody([]testFile{{"000001.sst", "abc"}, {"MANIFEST-000001", ""}, {"marker.x.000001.y", ""}}, -1), nil},
		{"empty name", one(""), ErrBodyCorrupt},
		{"dot", one("."), ErrBodyCorrupt},
		{"dotdot", one(".."), ErrBodyCorrupt},
		{"parent path", one("../x"), ErrBodyCorrupt},
		{"dotdot inside", one("x..y"), ErrBodyCorrupt},
		{"slash", one("a/b"), ErrBodyCorrupt},
		{"absolute", one("/etc"), ErrBodyCorrupt},
		{"backslash", one(`a\b`), ErrBodyCorrupt},
		{"NUL", one("a\x00b"), ErrBodyCorrupt},
		{"space", one("a b"), ErrBodyCorrupt},
		{"too long", one(strings.Repeat("a", 256)), ErrBodyCorrupt},
		{"duplicate", encodeBody([]testFile{{"a", "1"}, {"a", "2"}}, -1), ErrBodyCorrupt},
		{"out of order", encodeBody([]testFile{{"b", "1"}, {"a", "2"}}, -1), ErrBodyCorrupt},
		{"no files", encodeBody(nil, -1), ErrBodyCorrupt},
		{"wrong count", encodeBody([]testFile{{"a", "1"}}, 2), ErrBodyCorrupt},
		{"bad magic", append([]byte("cairnsnp"), one("a")[8:]...), ErrBodyCorrupt},
		{"bad version", badVersion, ErrBodyCorrupt},
		{"bad record type", slices.Concat(one("a")[:12], []byte{3}, one("a")[13:]), ErrBodyCorrupt},
		{"bad checksum", func() []byte { b := one("a"); b[len(b)-1] ^= 1; return b }(), ErrBodyChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewMem()
			n, err := ReceiveEngineSnapshot(context.Background(), fs, bytes.NewReader(tc.body), "/a/dst")
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, verr := VerifyEngineSnapshot(context.Background(), bytes.NewReader(tc.body)); !errors.Is(verr, tc.want) || (tc.want == nil) != (verr == nil) {
				t.Fatalf("Verify says %v, Receive %v", verr, err)
			}
			if err != nil {
				checkAbsent(t, fs, "/a/dst", "/a/dst"+partialExt)
				return
			}
			if n != int64(len(tc.body)) {
				t.Errorf("read %d of %d bytes", n, len(tc.body))
			}
			names, err := fs.List("/a/dst")
			must(t, err)
			slices.Sort(names)
			if want := []string{"000001.sst", "MANIFEST-000001", "marker.x.000001.y"}; !slices.Equal(names, want) {
				t.Fatalf("received %v, want %v", names, want)
			}
			if got := readFile(t, fs, "/a/dst/000001.sst"); string(got) != "abc" {
				t.Fatalf("000001.sst holds %q", got)
			}
		})
	}
}

func TestReceiveEngineSnapshotDirs(t *testing.T) {
	ctx := context.Background()
	body := encodeBody([]testFile{{"a", "new"}}, -1)
	fs := vfs.NewMem()
	must(t, fs.MkdirAll("/dst", 0o755))
	putFile(t, fs, "/dst/a", []byte("old"))
	if _, err := ReceiveEngineSnapshot(ctx, fs, bytes.NewReader(body), "/dst"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("receive into an existing dir: %v", err)
	}
	if got := readFile(t, fs, "/dst/a"); string(got) != "old" {
		t.Fatalf("existing dir was changed: %q", got)
	}
	// A crashed receive's leftover is replaced.
	must(t, fs.MkdirAll("/new"+partialExt, 0o755))
	putFile(t, fs, "/new"+partialExt+"/stale", []byte("x"))
	_, err := ReceiveEngineSnapshot(ctx, fs, bytes.NewReader(body), "/new")
	must(t, err)
	names, err := fs.List("/new")
	must(t, err)
	if !slices.Equal(names, []string{"a"}) {
		t.Fatalf("received dir holds %v", names)
	}
	checkAbsent(t, fs, "/new"+partialExt)
}

func TestReceiveEngineSnapshotCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fs := vfs.NewMem()
	body := encodeBody([]testFile{{"a", "contents"}}, -1)
	if _, err := ReceiveEngineSnapshot(ctx, fs, bytes.NewReader(body), "/dst"); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	checkAbsent(t, fs, "/dst", "/dst"+partialExt)
}

// progressReader reads from R and calls Fn with the number of bytes read
// so far each time that number passes another multiple of Every, and once
// more when R returns an error or io.EOF.
type progressReader struct {
	R     io.Reader
	Every int64
	Fn    func(total int64)

	total, reported int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.R.Read(b)
	p.total += int64(n)
	if err != nil || p.total/p.Every != p.reported/p.Every {
		p.reported = p.total
		p.Fn(p.total)
	}
	return n, err
}

func FuzzVerifyEngineSnapshot(f *testing.F) {
	valid := encodeBody([]testFile{{"000001.sst", "abc"}, {"MANIFEST-000001", "m"}}, -1)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(encodeBody(nil, -1))
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := VerifyEngineSnapshot(context.Background(), bytes.NewReader(b))
		switch {
		case err == nil && info.Size != int64(len(b)):
			t.Fatalf("verified %d of %d bytes", info.Size, len(b))
		case err != nil && !errors.Is(err, ErrBodyCorrupt) && !errors.Is(err, ErrBodyChecksum) && !errors.Is(err, ErrBodyTruncated):
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// BenchmarkEngineSnapshot streams a ~100 MB engine (incompressible values)
// from disk.
func BenchmarkEngineSnapshot(b *testing.B) {
	fs, root := vfs.Default, b.TempDir()
	eng, err := storage.Open(fs.PathJoin(root, "src"), storage.Options{FS: fs})
	must(b, err)
	defer eng.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	v := make([]byte, 64<<10)
	for i := 0; i < 1600; i += 16 {
		batch := eng.DB().NewBatch()
		for j := i; j < i+16; j++ {
			for k := 0; k < len(v); k += 8 {
				binary.LittleEndian.PutUint64(v[k:], rng.Uint64())
			}
			must(b, batch.Set(engineKey(j), v, nil))
		}
		must(b, batch.Commit(pebble.NoSync))
	}
	must(b, eng.DB().Flush())
	scratch := fs.PathJoin(root, "scratch")

	b.Run("discard", func(b *testing.B) {
		var size int64
		for b.Loop() {
			s, err := OpenEngineSnapshot(eng, scratch)
			must(b, err)
			size = s.Size()
			if _, err := io.Copy(io.Discard, s); err != nil {
				b.Fatal(err)
			}
			must(b, s.Close())
		}
		b.SetBytes(size)
	})
	b.Run("receive", func(b *testing.B) {
		var size int64
		i := 0
		for b.Loop() {
			s, err := OpenEngineSnapshot(eng, scratch)
			must(b, err)
			size = s.Size()
			dst := fs.PathJoin(root, fmt.Sprintf("dst-%d", i))
			i++
			if _, err := ReceiveEngineSnapshot(context.Background(), fs, s, dst); err != nil {
				b.Fatal(err)
			}
			must(b, s.Close())
			must(b, fs.RemoveAll(dst))
		}
		b.SetBytes(size)
	})
}
