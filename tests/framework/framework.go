package framework

import (
	"context"
	"net"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/server/v3rpc"
)

// Member is one in-process Cairn member serving clients on a loopback port.
type Member struct {
	t        testing.TB
	Config   server.Config
	Server   *server.Server
	Endpoint string
	grpc     *grpc.Server
	ln       net.Listener
}

// StartMember starts a fresh single member in a temporary data dir. edit,
// when given, adjusts the configuration first.
func StartMember(t testing.TB, edit ...func(*server.Config)) *Member {
	t.Helper()
	cfg := server.Config{
		Name:              "m0",
		DataDir:           t.TempDir(),
		HeartbeatInterval: 10 * time.Millisecond,
		ElectionTimeout:   100 * time.Millisecond,
		WALSegmentSize:    1 << 20, // cuts segments often, and keeps in-memory filesystems small
		Logger:            zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	}
	for _, e := range edit {
		e(&cfg)
	}
	m := &Member{t: t, Config: cfg}
	m.start("127.0.0.1:0")
	t.Cleanup(m.Stop)
	return m
}

func (m *Member) start(addr string) {
	m.t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		m.t.Fatalf("listen %s: %v", addr, err)
	}
	m.Config.ClientURLs = []string{"http://" + ln.Addr().String()}
	srv, err := server.New(m.Config)
	if err != nil {
		ln.Close()
		m.t.Fatalf("start member: %v", err)
	}
	select {
	case <-srv.ReadyNotify():
	case <-srv.StopNotify():
		m.t.Fatalf("member stopped before ready: %v", srv.Err())
	case <-time.After(30 * time.Second):
		srv.Stop()
		m.t.Fatal("member not ready within 30s")
	}
	m.Server, m.ln, m.Endpoint = srv, ln, ln.Addr().String()
	m.grpc = v3rpc.NewServer(srv)
	go m.grpc.Serve(ln)
}

// Stop stops the member; safe to call twice.
func (m *Member) Stop() {
	if m.Server == nil {
		return
	}
	m.grpc.Stop()
	m.Server.Stop()
	m.Server = nil
}

// Restart stops the member and starts it again on the same data dir and
// address.
func (m *Member) Restart() {
	m.t.Helper()
	addr := m.Endpoint
	m.Stop()
	m.start(addr)
}

// Client returns a clientv3 client for the member, closed at test end.
func (m *Member) Client() *clientv3.Client {
	m.t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.Endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		m.t.Fatalf("client: %v", err)
	}
	m.t.Cleanup(func() { c.Close() })
	return c
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
