package integration

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
)

// BenchmarkWatchFanout: 1000 watchers over 10 streams on 100 keys, puts
// from 10 goroutines; b.N puts, each delivered to 10 watchers. For
// profiling the watch path in-process (-cpuprofile).
func BenchmarkWatchFanout(b *testing.B) {
	m := framework.StartMember(b)
	ctx := framework.Context(b, 10*time.Minute)
	const watchers, streams, keys = 1000, 10, 100
	cs := make([]*clientv3.Client, streams)
	for i := range cs {
		cs[i] = m.Client()
	}
	var received atomic.Int64
	want := int64(b.N) * watchers / keys
	all := make(chan struct{})
	for i := 0; i < watchers; i++ {
		wc := cs[i%streams].Watch(ctx, fmt.Sprintf("key-%03d", i%keys), clientv3.WithCreatedNotify())
		<-wc
		go func() {
			for r := range wc {
				n := int64(len(r.Events))
				if got := received.Add(n); got >= want && got-n < want {
					close(all)
				}
			}
		}()
	}
	writer := m.Client()
	b.ResetTimer()
	var next atomic.Int64
	var pw sync.WaitGroup
	for g := 0; g < 10; g++ {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, err := writer.Put(ctx, fmt.Sprintf("key-%03d", i%keys), "v"); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	pw.Wait()
	select {
	case <-all:
	case <-ctx.Done():
		b.Fatalf("received %d of %d events", received.Load(), want)
	}
}
