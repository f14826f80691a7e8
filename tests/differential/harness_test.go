package differential

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/tests/reference"
)

// options are the settings both members of a pair start with.
type options struct {
	// maxRequestBytes is --max-request-bytes / Config.MaxRequestBytes;
	// 0 keeps the default (1.5 MiB on both).
	maxRequestBytes uint
	// watchProgressNotifyInterval is --watch-progress-notify-interval /
	// Config.WatchProgressNotifyInterval; 0 keeps the default (10 minutes
	// on etcd). etcd raises anything under 100ms to 100ms.
	watchProgressNotifyInterval time.Duration
}

// side is one server under test, reached through a real client.
type side struct {
	name  string
	c     *clientv3.Client
	kv    pb.KVClient
	maint pb.MaintenanceClient
	lease pb.LeaseClient
}

func newSide(name string, c *clientv3.Client) *side {
	conn := c.ActiveConnection()
	return &side{name: name, c: c, kv: pb.NewKVClient(conn), maint: pb.NewMaintenanceClient(conn), lease: pb.NewLeaseClient(conn)}
}

// starter starts one server with o and returns a client for it, closed
// and stopped at test end.
type starter func(t *testing.T, o options) *clientv3.Client

// startCairn is set by cairn_test.go. Keeping it a variable lets the
// harness check itself against a second etcd (CAIRN_DIFF_AGAINST=etcd).
var startCairn starter

// pair is a fresh etcd and a fresh Cairn with the same options. Its
// helpers run each request on etcd, then on Cairn, and report differences
// to t.
type pair struct {
	t    *testing.T
	etcd *side
	// other is Cairn, or a second etcd when the harness checks itself.
	other *side
	// diffs counts the differences this pair has seen, across sub-tests.
	diffs *int
	// last is etcd's outcome of the latest step.
	last outcome
}

func newPair(t *testing.T, o options) *pair {
	t.Helper()
	otherName, start := "cairn", startCairn
	if os.Getenv("CAIRN_DIFF_AGAINST") == "etcd" || start == nil {
		otherName, start = "etcd2", startEtcd
	}
	e := newSide("etcd", startEtcd(t, o))
	c := newSide(otherName, start(t, o))
	return &pair{t: t, etcd: e, other: c, diffs: new(int)}
}

// in returns the pair reporting to t (a sub-test), sharing the servers.
func (p *pair) in(t *testing.T) *pair {
	q := *p
	q.t = t
	return &q
}

// run runs f as a sub-test on the same servers.
func (p *pair) run(name string, f func(p *pair)) {
	p.t.Helper()
	p.t.Run(name, func(t *testing.T) { f(p.in(t)) })
}

func (p *pair) sides() []*side { return []*side{p.etcd, p.other} }

// reqCtx bounds one request.
func reqCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 20*time.Second)
}

// freePort returns a loopback port that was free a moment ago; startEtcd
// retries when another process takes it first.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startEtcd starts a single-member reference etcd in a fresh data dir.
func startEtcd(t *testing.T, o options) *clientv3.Client {
	t.Helper()
	return startEtcdProc(t, o, true)
}

// startEtcdProc starts etcd; with checkExit, an etcd that has exited by
// the end of the test fails it and shows etcd's output.
func startEtcdProc(t *testing.T, o options, checkExit bool) *clientv3.Client {
	t.Helper()
	bin, _, err := reference.Binaries()
	if err != nil {
		t.Fatalf("reference etcd: %v", err)
	}
	var lastLog string
	for attempt := 0; attempt < 3; attempt++ {
		c, log, ok := tryStartEtcd(t, bin, o, checkExit)
		if ok {
			return c
		}
		lastLog = log
		if !strings.Contains(log, "address already in use") {
			break
		}
	}
	t.Fatalf("etcd did not become ready:\n%s", lastLog)
	return nil
}

func tryStartEtcd(t *testing.T, bin string, o options, checkExit bool) (*clientv3.Client, string, bool) {
	client := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	args := []string{
		"--name", "ref", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "ref=" + peer,
		// The same raft timing as tests/framework gives Cairn.
		"--heartbeat-interval", "10", "--election-timeout", "100",
		// Durability is not under test here; fsync only slows the run.
		"--unsafe-no-fsync",
		"--log-level", "error",
	}
	if o.maxRequestBytes != 0 {
		args = append(args, "--max-request-bytes", strconv.FormatUint(uint64(o.maxRequestBytes), 10))
	}
	if o.watchProgressNotifyInterval != 0 {
		args = append(args, "--watch-progress-notify-interval", o.watchProgressNotifyInterval.String())
	}
	cmd := exec.Command(bin, args...)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	kill := func() {
		cmd.Process.Kill()
		<-exited
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{client},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		kill()
		t.Fatalf("etcd client: %v", err)
	}
	if !waitReady(c, exited, 30*time.Second) {
		c.Close()
		kill()
		return nil, log.String(), false
	}
	t.Cleanup(func() {
		c.Close()
		select {
		case <-exited:
			if !checkExit {
				return
			}
			t.Errorf("etcd exited during the test (%v); its output:\n%s", cmd.ProcessState, log.String())
		default:
			kill()
		}
	})
	return c, "", true
}

// waitReady retries a read with a short per-try timeout until the server
// answers, the process exits, or d passes. A read changes no revision, so
// the store stays as fresh as the other side's.
func waitReady(c *clientv3.Client, exited <-chan struct{}, d time.Duration) bool {
	kv := pb.NewKVClient(c.ActiveConnection())
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		_, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("ready")})
		if err == nil {
			cancel()
			return true
		}
		// The client waits for a ready connection, so a failed try has
		// normally used its whole timeout; if it failed at once (the server
		// refusing while it starts), wait out the try before the next one.
		<-ctx.Done()
		cancel()
	}
	return false
}
