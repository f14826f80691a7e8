package snap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// backupFile reads a whole Backup of a small engine in chunks of varying
// sizes and checks it against Size and PayloadSize.
func backupFile(t *testing.T) ([]byte, []kv) {
	t.Helper()
	fs := vfs.NewMem()
	src := openEngine(t, fs, "/src")
	defer src.Close()
	fillEngine(t, src, 300, 9)
	b, err := OpenBackup(src, "/scratch")
	must(t, err)
	defer b.Close()
	var file []byte
	sizes := []int{1, 33, 4096, 100_000}
	for i := 0; ; i++ {
		buf := make([]byte, sizes[i%len(sizes)])
		n, err := b.Read(buf)
		file = append(file, buf[:n]...)
		if err == io.EOF {
			break
		}
		must(t, err)
	}
	if int64(len(file)) != b.Size() || b.Size() != b.PayloadSize()+sha256.Size {
		t.Fatalf("read %d bytes; Size %d, PayloadSize %d", len(file), b.Size(), b.PayloadSize())
	}
	if b.PayloadSize()%BackupAlign != 0 {
		t.Fatalf("payload of %d bytes is not a multiple of %d", b.PayloadSize(), BackupAlign)
	}
	return file, dump(t, src)
}

func TestBackupRoundTrip(t *testing.T) {
	file, want := backupFile(t)
	ctx := context.Background()
	// etcd's shape: a payload whose length is a multiple of 512, then
	// its SHA-256.
	if len(file)%512 != sha256.Size {
		t.Fatalf("file of %d bytes: etcdctl would find no checksum", len(file))
	}
	if n, err := CheckTrailer(bytes.NewReader(file)); err != nil || n != int64(len(file)) {
		t.Fatalf("CheckTrailer: %d, %v", n, err)
	}
	if !IsBackupHeader(file) {
		t.Fatal("IsBackupHeader is false for a backup")
	}
	info, err := VerifyBackup(ctx, bytes.NewReader(file))
	must(t, err)
	if info.Size != int64(len(file)) || !info.HasTrailer || !bytes.Equal(info.SHA256[:], file[len(file)-32:]) || info.Body.Files == 0 {
		t.Fatalf("info %+v", info)
	}
	fs := vfs.NewMem()
	rinfo, err := ReceiveBackup(ctx, fs, bytes.NewReader(file), "/dst", false)
	must(t, err)
	if rinfo != info {
		t.Fatalf("ReceiveBackup says %+v, VerifyBackup %+v", rinfo, info)
	}
	dst := openEngine(t, fs, "/dst")
	defer dst.Close()
	checkSameContents(t, dump(t, dst), want)
}

func TestBackupTruncated(t *testing.T) {
	file, _ := backupFile(t)
	ctx := context.Background()
	fs := vfs.NewMem()
	offsets := []int{0, 1, 8, 19, 23, 24, 25}
	for off := 26; off < len(file); off += len(file)/40 + 1 {
		offsets = append(offsets, off)
	}
	for off := len(file) - sha256.Size - 2; off < len(file); off++ {
		offsets = append(offsets, off)
	}
	for _, off := range offsets {
		cut := file[:off]
		if _, err := VerifyBackup(ctx, bytes.NewReader(cut)); !errors.Is(err, ErrBodyTruncated) {
			t.Fatalf("file cut at %d of %d: %v, want ErrBodyTruncated", off, len(file), err)
		}
		_, err := ReceiveBackup(ctx, fs, bytes.NewReader(cut), "/dst", false)
		if !errors.Is(err, ErrBodyTruncated) {
			t.Fatalf("receive of file cut at %d: %v", off, err)
		}
		checkAbsent(t, fs, "/dst", "/dst"+partialExt)
		if _, err := CheckTrailer(bytes.NewReader(cut)); err == nil {
			t.Fatalf("CheckTrailer accepts the file cut at %d", off)
		}
	}
	// Without its trailer the file is whole for --skip-hash-check.
	payload := file[:len(file)-sha256.Size]
	info, err := ReceiveBackup(ctx, fs, bytes.NewReader(payload), "/dst", true)
	if err != nil || info.HasTrailer {
		t.Fatalf("payload only, skipping the trailer: %+v, %v", info, err)
	}
}

func TestBackupCorrupt(t *testing.T) {
	file, _ := backupFile(t)
	ctx := context.Background()
	fs := vfs.NewMem()
	check := func(name string, b []byte, skip bool, want ...error) {
		t.Helper()
		_, err := ReceiveBackup(ctx, fs, bytes.NewReader(b), "/dst", skip)
		for _, w := range want {
			if !errors.Is(err, w) {
				t.Fatalf("%s: %v, want %v", name, err, w)
			}
		}
		checkAbsent(t, fs, "/dst", "/dst"+partialExt)
		if !skip {
			if _, err := VerifyBackup(ctx, bytes.NewReader(b)); err == nil {
				t.Fatalf("%s: VerifyBackup accepts it", name)
			}
		}
	}
	flip := func(off int) []byte {
		b := bytes.Clone(file)
		b[off] ^= 0x10
		return b
	}
	check("magic", flip(0), false, ErrNotBackup, ErrBodyCorrupt)
	check("version", flip(8), false, ErrBodyCorrupt)
	// A wrong body length: too short cuts the body, too long swallows the
	// padding.
	short := bytes.Clone(file)
	binary.LittleEndian.PutUint64(short[16:], binary.LittleEndian.Uint64(short[16:])-1)
	check("short length", short, false, ErrBodyCorrupt)
	long := bytes.Clone(file)
	binary.LittleEndian.PutUint64(long[16:], binary.LittleEndian.Uint64(long[16:])+1)
	check("long length", long, false, ErrBodyCorrupt)
	check("body", flip(len(file)/2), false)
	check("body, skipping the trailer", flip(len(file)/2), true)
	check("trailer", flip(len(file)-1), false, ErrBodyChecksum)
	check("after the trailer", append(bytes.Clone(file), 0), false, ErrBodyCorrupt)
	check("after the trailer, skipping it", append(bytes.Clone(file), 0), true, ErrBodyCorrupt)
	// Padding must be zero (the last byte before the trailer is padding
	// unless the body happens to fill the last block exactly).
	if pad := len(file) - sha256.Size - 1; file[pad] == 0 {
		check("padding", flip(pad), false, ErrBodyCorrupt)
	}

	// A flipped trailer is accepted when the trailer check is skipped.
	if _, err := ReceiveBackup(ctx, fs, bytes.NewReader(flip(len(file)-1)), "/dst", true); err != nil {
		t.Fatalf("bad trailer, skipped: %v", err)
	}
}

func TestBackupRefusesOtherFiles(t *testing.T) {
	ctx := context.Background()
	// The first page of a bbolt database, as etcd's snapshot files start.
	bolt := make([]byte, 4096+32)
	binary.LittleEndian.PutUint32(bolt[16:], 0xED0CDAED)
	for name, b := range map[string][]byte{
		"etcd":       bolt,
		"etcd short": bolt[:20],
	} {
		if _, err := VerifyBackup(ctx, bytes.NewReader(b)); !errors.Is(err, ErrEtcdSnapshot) {
			t.Errorf("%s: %v, want ErrEtcdSnapshot", name, err)
		}
	}
	for name, b := range map[string]string{
		"text":  "hello, this is not a snapshot at all",
		"short": "hello!!!!",
	} {
		_, err := VerifyBackup(ctx, strings.NewReader(b))
		if !errors.Is(err, ErrNotBackup) || errors.Is(err, ErrEtcdSnapshot) {
			t.Errorf("%s: %v, want ErrNotBackup", name, err)
		}
	}
	if _, err := VerifyBackup(ctx, strings.NewReader("")); !errors.Is(err, ErrBodyTruncated) {
		t.Errorf("empty: %v", err)
	}
	// etcd's files carry the same kind of trailer.
	sum := sha256.Sum256(bolt[:4096])
	copy(bolt[4096:], sum[:])
	if _, err := CheckTrailer(bytes.NewReader(bolt)); err != nil {
		t.Errorf("CheckTrailer of an etcd-shaped file: %v", err)
	}
	bolt[100] = 1
	if _, err := CheckTrailer(bytes.NewReader(bolt)); !errors.Is(err, ErrBodyChecksum) {
		t.Errorf("CheckTrailer of a changed file: %v", err)
	}
}

func FuzzVerifyBackup(f *testing.F) {
	body := encodeBody([]testFile{{"000001.sst", "abc"}, {"MANIFEST-000001", "m"}}, -1)
	hdr := append([]byte("cairnbak"), 1, 0, 0, 0, 0, 0, 0, 0)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(body)))
	payload := append(hdr, body...)
	payload = append(payload, make([]byte, int(backupPayloadSize(int64(len(body))))-len(payload))...)
	sum := sha256.Sum256(payload)
	valid := append(payload, sum[:]...)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(valid[:len(valid)-32])
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := VerifyBackup(context.Background(), bytes.NewReader(b))
		switch {
		case err == nil && info.Size != int64(len(b)):
			t.Fatalf("verified %d of %d bytes", info.Size, len(b))
		case err != nil && !errors.Is(err, ErrBodyCorrupt) && !errors.Is(err, ErrBodyChecksum) && !errors.Is(err, ErrBodyTruncated):
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
