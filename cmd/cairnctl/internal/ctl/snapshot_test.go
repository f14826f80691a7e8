package ctl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/snap"
	"github.com/cairn-kv/cairn/storage"
)

// cairnSnapshot returns a snapshot file of a small store.
func cairnSnapshot(t *testing.T) []byte {
	t.Helper()
	eng, err := storage.Open("/db", storage.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	kv, err := mvcc.Open(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := kv.Write()
	w.Put([]byte("k"), []byte("v"), 0)
	w.End()
	if err := kv.Commit(mvcc.Meta{AppliedIndex: 2, AppliedTerm: 1}, true); err != nil {
		t.Fatal(err)
	}
	kv.Close()
	b, err := snap.OpenBackup(eng, "/scratch")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	file, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

func TestVerifySnapshot(t *testing.T) {
	ctx := context.Background()
	good := cairnSnapshot(t)
	if n, err := verifySnapshot(ctx, bytes.NewReader(good)); err != nil || n != int64(len(good)) {
		t.Fatalf("good file: %d, %v", n, err)
	}
	// A file of another format is checked by its trailer, as etcd's.
	other := make([]byte, 1024+sha256.Size)
	other[16] = 0xed
	sum := sha256.Sum256(other[:1024])
	copy(other[1024:], sum[:])
	if _, err := verifySnapshot(ctx, bytes.NewReader(other)); err != nil {
		t.Fatalf("etcd-shaped file: %v", err)
	}
	other[5] = 1
	if _, err := verifySnapshot(ctx, bytes.NewReader(other)); !errors.Is(err, snap.ErrBodyChecksum) {
		t.Fatalf("changed etcd-shaped file: %v", err)
	}
	// Damage is found even where the trailer still matches: the engine
	// inside carries its own checksum.
	resummed := bytes.Clone(good)
	resummed[len(resummed)/2] ^= 1
	payload := resummed[:len(resummed)-sha256.Size]
	sum = sha256.Sum256(payload)
	copy(resummed[len(payload):], sum[:])
	for name, b := range map[string][]byte{
		"flipped":    func() []byte { b := bytes.Clone(good); b[len(b)/3] ^= 0x08; return b }(),
		"resummed":   resummed,
		"truncated":  good[:len(good)-100],
		"extra byte": append(bytes.Clone(good), 0),
	} {
		n, err := verifySnapshot(ctx, bytes.NewReader(b))
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if n != int64(len(b)) {
			t.Errorf("%s: counted %d of %d bytes", name, n, len(b))
		}
	}
}

func TestSaveProgress(t *testing.T) {
	now := time.Unix(0, 0)
	type call struct{ received, total int64 }
	var calls []call
	p := newSaveProgress(5*time.Second, func() time.Time { return now }, func(r, tot int64) { calls = append(calls, call{r, tot}) })
	p.update(10, 100)
	now = now.Add(4 * time.Second)
	p.update(20, 0) // total unknown in this chunk: the last one stays
	now = now.Add(time.Second)
	p.update(30, 0)
	now = now.Add(time.Second)
	p.update(40, 100)
	now = now.Add(5 * time.Second)
	p.update(50, 100)
	want := []call{{30, 100}, {50, 100}}
	if len(calls) != len(want) || calls[0] != want[0] || calls[1] != want[1] {
		t.Fatalf("reports %v, want %v", calls, want)
	}
}
