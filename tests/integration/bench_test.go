package integration

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/tests/framework"
)

// BenchmarkPutConcurrent puts 256-byte values from 1000 goroutines over 100
// connections to an in-process member: the throughput workload,
// runnable under -cpuprofile to see where the server's time goes.
func BenchmarkPutConcurrent(b *testing.B) {
	m := framework.StartMember(b)
	const conns, clients = 100, 1000
	cs := make([]*clientv3.Client, conns)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	ctx := framework.Context(b, 10*time.Minute)
	val := strings.Repeat("v", 256)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := 0; g < clients; g++ {
		wg.Add(1)
		go func(c *clientv3.Client) {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if _, err := c.Put(ctx, fmt.Sprintf("%08d", i), val); err != nil {
					b.Error(err)
					return
				}
			}
		}(cs[g%conns])
	}
	wg.Wait()
}
