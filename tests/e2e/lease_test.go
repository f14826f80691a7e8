package e2e

import (
	"bufio"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestServiceDiscovery is the pattern leases exist for: a service registers
// its key under a lease and keeps the lease alive (here the real etcdctl,
// `lease keep-alive`); a watcher on the prefix sees it join, the key
// outlives several TTLs while the keeper runs, and once the keeper is
// killed the watcher sees it leave within the TTL (plus the leader's
// 500 ms expiry check).
func TestServiceDiscovery(t *testing.T) {
	p := startCairn(t, "")
	c := newClient(t, p.Endpoint)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	wc := c.Watch(ctx, "svc/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	<-wc

	const ttl = 3
	out, stderr, code := p.ctl(etcdctlBin, "", "lease", "grant", strconv.Itoa(ttl))
	m := regexp.MustCompile(`^lease ([0-9a-f]+) granted with TTL\(3s\)\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("etcdctl lease grant: %q %q %d", out, stderr, code)
	}
	id := m[1]
	if out, stderr, code := p.ctl(etcdctlBin, "", "put", "--lease="+id, "svc/api-1", "10.0.0.1:80"); code != 0 {
		t.Fatalf("etcdctl put --lease: %q %q", out, stderr)
	}
	ev := nextEvent(t, ctx, wc)
	if ev.Type != mvccpb.PUT || string(ev.Kv.Key) != "svc/api-1" || strconv.FormatInt(ev.Kv.Lease, 16) != id {
		t.Fatalf("join event: %v", ev)
	}

	keeper := exec.Command(etcdctlBin, "--endpoints", p.Endpoint, "lease", "keep-alive", id)
	stdout, err := keeper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer keeper.Process.Kill()
	// etcdctl renews every TTL/3: five renewals span more than one TTL.
	sc := bufio.NewScanner(stdout)
	for i := 0; i < 5; i++ {
		if !sc.Scan() {
			t.Fatalf("keep-alive ended after %d renewals: %v", i, sc.Err())
		}
		if want := "lease " + id + " keepalived with TTL(3)"; sc.Text() != want {
			t.Fatalf("keep-alive printed %q, want %q", sc.Text(), want)
		}
	}
	if g, err := c.Get(ctx, "svc/api-1"); err != nil || len(g.Kvs) != 1 {
		t.Fatalf("registered key after more than a TTL of keep-alives: %v, %v", g, err)
	}

	keeper.Process.Kill()
	keeper.Wait()
	killed := time.Now()
	ev = nextEvent(t, ctx, wc)
	left := time.Since(killed)
	if ev.Type != mvccpb.DELETE || string(ev.Kv.Key) != "svc/api-1" {
		t.Fatalf("leave event: %v", ev)
	}
	t.Logf("left %v after the keeper was killed (TTL %ds)", left, ttl)
	if left > ttl*time.Second+2*time.Second {
		t.Fatalf("the key left %v after its keeper died, TTL is %ds", left, ttl)
	}
}

func nextEvent(t *testing.T, ctx context.Context, wc clientv3.WatchChan) *clientv3.Event {
	t.Helper()
	for {
		select {
		case r, ok := <-wc:
			if !ok || r.Err() != nil {
				t.Fatalf("watch ended: %v", r.Err())
			}
			if len(r.Events) > 0 {
				return r.Events[0]
			}
		case <-ctx.Done():
			t.Fatal("no watch event before the deadline")
		}
	}
}

// TestLeaseTTLSurvivesKill9 shows the periodic checkpoints at work: with
// --lease-checkpoint-interval 1s, a member killed with SIGKILL several
// seconds into a lease's life resumes it close to its real remaining TTL,
// not at the full TTL as etcd does by default.
func TestLeaseTTLSurvivesKill9(t *testing.T) {
	p := startCairn(t, "", "--lease-checkpoint-interval", "1s")
	c := newClient(t, p.Endpoint)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	// Wait (polling TimeToLive, which counts down on the server's clock)
	// until at least four seconds, so several checkpoints, have passed.
	for {
		r, err := c.TimeToLive(ctx, l.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.TTL <= 55 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("lease TTL does not count down")
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.Kill()
	p.Restart()
	c2 := newClient(t, p.Endpoint)
	defer c2.Close()
	r, err := c2.TimeToLive(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TTL after kill -9 and restart: %d of %d", r.TTL, r.GrantedTTL)
	// The last applied checkpoint is at most a couple of intervals old;
	// the new term adds one election timeout (1 s).
	if r.TTL > 58 || r.TTL < 50 {
		t.Fatalf("TTL after kill -9 and restart: %d, want within a few seconds of 55 (60 means no checkpoint survived)", r.TTL)
	}
}
