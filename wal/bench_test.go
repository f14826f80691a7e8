package wal

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// BenchmarkSave measures Save on the real disk: every call carries entries,
// so every call fsyncs.
func BenchmarkSave(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			w, err := Create(vfs.Default, filepath.Join(b.TempDir(), "wal"), []byte("bench"))
			must(b, err)
			defer w.Close()
			data := make([]byte, 256)
			batch := make([]*raftpb.Entry, n)
			var index uint64
			b.SetBytes(int64(n * len(data)))
			b.ReportAllocs()
			for b.Loop() {
				for j := range batch {
					index++
					batch[j] = &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(1), Data: data}
				}
				if err := w.Save(hs(1, 1, index), batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
