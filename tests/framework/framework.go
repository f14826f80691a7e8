package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/server/v3rpc"
	"github.com/cairn-kv/cairn/transport"
)

// Member is one in-process Cairn member serving clients on a loopback port.
type Member struct {
	t        testing.TB
	Config   server.Config
	Server   *server.Server
	Endpoint string
	// PeerAddr is the member's peer listener address (host:port).
	PeerAddr string
	// Faults injects faults into the member's peer transport.
	Faults *transport.Faults
	grpc   *grpc.Server
	peers  *server.PeerServer
	// clients is the client listener, bound at launch so that no other
	// process takes the port while the member starts; served once ready.
	clients net.Listener
}

func baseConfig(t testing.TB, name string) server.Config {
	return server.Config{
		Name:              name,
		DataDir:           t.TempDir(),
		HeartbeatInterval: 10 * time.Millisecond,
		ElectionTimeout:   100 * time.Millisecond,
		HealthInterval:    50 * time.Millisecond,
		WALSegmentSize:    1 << 20, // cuts segments often, and keeps in-memory filesystems small
		Logger:            zaptest.NewLogger(t, zaptest.Level(logLevel())).Named(name),
	}
}

// logLevel is the members' log level: warn, or $CAIRN_TEST_LOG (debug,
// info, …) when debugging a test.
func logLevel() zapcore.Level {
	lvl := zap.WarnLevel
	if v := os.Getenv("CAIRN_TEST_LOG"); v != "" {
		if err := lvl.UnmarshalText([]byte(v)); err != nil {
			lvl = zap.WarnLevel
		}
	}
	return lvl
}

// StartMember starts a fresh single member in a temporary data dir. edit,
// when given, adjusts the configuration first.
func StartMember(t testing.TB, edit ...func(*server.Config)) *Member {
	t.Helper()
	return StartCluster(t, 1, edit...).Members[0]
}

// Cluster is a set of in-process members of one cluster, each with its own
// data dir and client and peer ports on loopback.
type Cluster struct {
	t       testing.TB
	Members []*Member
}

// StartCluster starts a new cluster of n members named m0, m1, … and waits
// until every one is ready and knows the others started (has applied
// their published names). edit adjusts each member's configuration.
func StartCluster(t testing.TB, n int, edit ...func(*server.Config)) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var initial []string
	addrs := freeAddrs(t, 2*n)
	for i := 0; i < n; i++ {
		m := &Member{t: t, Config: baseConfig(t, fmt.Sprintf("m%d", i)), Faults: &transport.Faults{}}
		m.PeerAddr, m.Endpoint = addrs[2*i], addrs[2*i+1]
		initial = append(initial, m.Config.Name+"=http://"+m.PeerAddr)
		c.Members = append(c.Members, m)
	}
	for _, m := range c.Members {
		m.Config.InitialCluster = strings.Join(initial, ",")
		for _, e := range edit {
			e(&m.Config)
		}
		m.launch()
		t.Cleanup(m.Stop)
	}
	for _, m := range c.Members {
		m.waitReady()
	}
	// Every name was committed before the last member became ready: a
	// linearizable read on each member waits until it applied them all.
	ctx := Context(t, 30*time.Second)
	for _, m := range c.Members {
		if _, err := m.Client().Get(ctx, "\x00"); err != nil {
			t.Fatalf("%s: %v", m.Config.Name, err)
		}
	}
	return c
}

// AddMember adds a member to the running cluster through MemberAdd (as a
// learner when learner is set), starts it with
// --initial-cluster-state=existing, and waits until it is ready.
func (c *Cluster) AddMember(ctx context.Context, learner bool, edit ...func(*server.Config)) *Member {
	c.t.Helper()
	m := &Member{t: c.t, Config: baseConfig(c.t, fmt.Sprintf("m%d", len(c.Members))), Faults: &transport.Faults{}}
	addrs := freeAddrs(c.t, 2)
	m.PeerAddr, m.Endpoint = addrs[0], addrs[1]
	urls := []string{"http://" + m.PeerAddr}
	add := c.Client().MemberAdd
	if learner {
		add = c.Client().MemberAddAsLearner
	}
	if err := Reconfigure(ctx, func() error { _, err := add(ctx, urls); return err }); err != nil {
		c.t.Fatalf("member add: %v", err)
	}
	initial := []string{m.Config.Name + "=" + urls[0]}
	for _, o := range c.Members {
		initial = append(initial, o.Config.Name+"=http://"+o.PeerAddr)
	}
	m.Config.InitialCluster = strings.Join(initial, ",")
	m.Config.InitialClusterState = "existing"
	for _, e := range edit {
		e(&m.Config)
	}
	c.Members = append(c.Members, m)
	m.launch()
	c.t.Cleanup(m.Stop)
	m.waitReady()
	return m
}

// Reconfigure calls change, a membership change, until the cluster stops
// refusing it as unhealthy (etcd and Cairn accept one only once the member
// serving it has been connected to its peers for a while, HealthInterval)
// and, for a promotion, the learner as not caught up yet. It returns
// change's last error, which is the refusal when ctx ends first.
func Reconfigure(ctx context.Context, change func() error) error {
	for {
		err := change()
		if e := rpctypes.Error(err); !errors.Is(e, rpctypes.ErrUnhealthy) && !errors.Is(e, rpctypes.ErrMemberLearnerNotReady) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago: each is held until all are chosen, since the kernel may hand out a
// port just released again (two members with one peer URL would get one
// member ID).
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		defer ln.Close()
		addrs[i] = ln.Addr().String()
	}
	return addrs
}

// launch starts the member's server and peer port; clients are served
// once it is ready (waitReady).
func (m *Member) launch() {
	m.t.Helper()
	pln, err := listen(m.PeerAddr)
	if err != nil {
		m.t.Fatalf("peer listener: %v", err)
	}
	cln, err := listen(m.Endpoint)
	if err != nil {
		pln.Close()
		m.t.Fatalf("client listener: %v", err)
	}
	m.Config.PeerURLs = []string{"http://" + m.PeerAddr}
	m.Config.ClientURLs = []string{"http://" + m.Endpoint}
	m.Config.PeerFaults = m.Faults
	srv, err := server.New(m.Config)
	if err != nil {
		pln.Close()
		cln.Close()
		m.t.Fatalf("start member %s: %v", m.Config.Name, err)
	}
	m.clients = cln
	m.Server = srv
	m.peers = srv.ServePeers([]server.Listener{{Listener: pln}})
}

// listen binds addr, retrying briefly: a port just released by a stopped
// member may still be in use by connections closing.
func listen(addr string) (net.Listener, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return ln, err
		}
		time.Sleep(20 * time.Millisecond) // retry pacing, not waiting for a condition
	}
}

func (m *Member) waitReady() {
	m.t.Helper()
	select {
	case <-m.Server.ReadyNotify():
	case <-m.Server.StopNotify():
		m.t.Fatalf("member %s stopped before ready: %v", m.Config.Name, m.Server.Err())
	case <-time.After(30 * time.Second):
		m.Server.Stop()
		m.t.Fatalf("member %s not ready within 30s", m.Config.Name)
	}
	m.grpc = v3rpc.NewServer(m.Server)
	go m.grpc.Serve(m.clients)
}

// Stop stops the member; safe to call twice.
func (m *Member) Stop() {
	if m.Server == nil {
		return
	}
	if m.grpc != nil {
		m.grpc.Stop() // closes m.clients
		m.grpc = nil
	} else if m.clients != nil {
		m.clients.Close()
	}
	m.clients = nil
	m.Server.Stop()
	m.peers.Stop()
	m.Server = nil
}

// Restart stops the member and starts it again on the same data dir and
// addresses.
func (m *Member) Restart() {
	m.t.Helper()
	m.Stop()
	m.Start()
}

// Start starts a stopped member again and waits until it is ready.
func (m *Member) Start() {
	m.t.Helper()
	m.launch()
	m.waitReady()
}

// Client returns a clientv3 client for the member, closed at test end.
func (m *Member) Client() *clientv3.Client {
	m.t.Helper()
	return newClient(m.t, m.Endpoint)
}

// Client returns a clientv3 client with every member's endpoint.
func (c *Cluster) Client() *clientv3.Client {
	c.t.Helper()
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Endpoint)
	}
	return newClient(c.t, eps...)
}

func newClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Leader waits until the running members agree on a leader among them, and
// returns it.
func (c *Cluster) Leader(ctx context.Context) *Member {
	c.t.Helper()
	var lead *Member
	WaitUntil(ctx, c.t, "the running members agree on a running leader", func() bool {
		lead = c.agreedLeader()
		return lead != nil
	})
	return lead
}

// agreedLeader returns the running member that every running member names
// as its leader, or nil.
func (c *Cluster) agreedLeader() *Member {
	var lead uint64
	for _, m := range c.Members {
		if m.Server == nil {
			continue
		}
		l := m.Server.Status().Leader
		if l == 0 || lead != 0 && l != lead {
			return nil
		}
		lead = l
	}
	for _, m := range c.Members {
		if m.Server != nil && m.Server.ID() == lead {
			return m
		}
	}
	return nil
}

// Follower waits for an agreed leader (see Leader) and returns a running
// voting member other than it.
func (c *Cluster) Follower(ctx context.Context) *Member {
	c.t.Helper()
	lead := c.Leader(ctx)
	for _, m := range c.Members {
		if m != lead && m.Server != nil && !m.Server.IsLearner() {
			return m
		}
	}
	c.t.Fatalf("no running voter besides the leader %s", lead.Config.Name)
	return nil
}

// Isolate cuts every link between m and the other members, both ways. All
// of them must be running.
func (c *Cluster) Isolate(m *Member) {
	for _, o := range c.Members {
		if o != m {
			o.Faults.Cut(transport.Both, m.Server.ID())
			m.Faults.Cut(transport.Both, o.Server.ID())
		}
	}
}

// Heal removes every cut and pause between the members.
func (c *Cluster) Heal() {
	for _, m := range c.Members {
		m.Faults.Heal()
	}
}

// WaitUntil polls cond every 10 ms until it holds, and fails t, naming
// what it waited for, when ctx ends first. cond runs on the caller's
// goroutine, so it may call t.Fatal.
func WaitUntil(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waited in vain for %s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond): // polling pace
		}
	}
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
