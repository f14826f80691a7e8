package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctltest"
)

// The lease cases run like the other differential cases, etcdctl against
// server A and cairnctl against its twin B, with three differences that
// leases impose:
//
//   - the twins grant different IDs, so each side's IDs become placeholders
//     in the order they were seen (ctltest.LeaseIDs), and a command line
//     names the leases the harness granted as "{name}";
//   - a remaining TTL may be a second apart (ctltest.AlignRemaining), and
//     the keys of a lease come in any order (ctltest.SortLeaseKeys), each only
//     in the cases that say so;
//   - "lease list" prints leases in order of expiry, so every lease alive
//     at a list has a TTL at least 100 s away from the others': the order is
//     then the same on both sides for as long as the test runs. Leases of
//     the server's minimum TTL (2 s in etcd) are granted after the last
//     list, as they expire at a time the test does not control.

// unknownLease is an ID no server grants: etcd's IDs start with 16 bits of
// the member ID.
const unknownLease = "1234abc"

// leaseSetup is a lease the harness grants before a case, with keys
// attached (put with the lease, the key as value).
type leaseSetup struct {
	name string
	ttl  int64
	keys []string
}

type leaseCase struct {
	name string
	// args may hold "{name}": the hex ID of the lease granted as name.
	args   []string
	before []leaseSetup
	cmp    compare
	// remaining: the output holds a remaining TTL (timetolive).
	remaining bool
	// anyKeyOrder: the lease has several keys (timetolive --keys).
	anyKeyOrder bool
}

func leaseFormats(name string, a []string, c leaseCase) []leaseCase {
	var cs []leaseCase
	for _, f := range formats {
		c := c
		c.name = name + "/" + f
		c.args = append(slices.Clone(a), "-w", f)
		cs = append(cs, c)
	}
	return cs
}

func leaseCases() []leaseCase {
	var cs []leaseCase
	add := func(c ...leaseCase) { cs = append(cs, c...) }

	// grant: every lease alive at a "lease list" has its own TTL, 100 s
	// or more away from the others.
	for i, f := range formats {
		add(leaseCase{name: "grant/" + f, args: args("lease", "grant", fmt.Sprint(400+100*i), "-w", f)})
	}
	add(
		leaseCase{name: "grant/hex/fields", args: args("lease", "grant", "900", "--hex", "-w", "fields")},
		leaseCase{name: "grant/hex/json", args: args("lease", "grant", "1000", "--hex", "-w", "json")},
		leaseCase{name: "grant/max", args: args("lease", "grant", "9000000000")},
		leaseCase{name: "grant/too-large", args: args("lease", "grant", "9000000001")},
		leaseCase{name: "grant/not-a-number", args: args("lease", "grant", "x")},
		leaseCase{name: "grant/fraction", args: args("lease", "grant", "1.5")},
		leaseCase{name: "grant/no-args", args: args("lease", "grant")},
		leaseCase{name: "grant/two-args", args: args("lease", "grant", "1", "2")},
		leaseCase{name: "grant/negative-flag", args: args("lease", "grant", "-5"), cmp: usage},
		leaseCase{name: "grant/bad-format", args: args("lease", "grant", "10", "-w", "yaml")},
	)

	// timetolive
	before := []leaseSetup{
		{name: "a", ttl: 3000, keys: []string{"la/k1"}},
		{name: "multi", ttl: 3100, keys: []string{"lm/x", "lm/y", "lm/z"}},
		{name: "nokeys", ttl: 3200},
	}
	add(leaseCase{name: "timetolive/setup", args: args("lease", "timetolive", "{a}"), before: before, remaining: true})
	add(leaseFormats("timetolive", args("lease", "timetolive", "{a}"), leaseCase{remaining: true})...)
	add(leaseFormats("timetolive/keys", args("lease", "timetolive", "{a}", "--keys"), leaseCase{remaining: true})...)
	add(leaseFormats("timetolive/keys-multi", args("lease", "timetolive", "{multi}", "--keys"), leaseCase{remaining: true, anyKeyOrder: true})...)
	add(leaseFormats("timetolive/keys-none", args("lease", "timetolive", "{nokeys}", "--keys"), leaseCase{remaining: true})...)
	add(leaseFormats("timetolive/unknown", args("lease", "timetolive", unknownLease, "--keys"), leaseCase{})...)
	add(
		leaseCase{name: "timetolive/hex/fields", args: args("lease", "timetolive", "{a}", "--keys", "--hex", "-w", "fields"), remaining: true},
		leaseCase{name: "timetolive/hex/json", args: args("lease", "timetolive", "{a}", "--keys", "--hex", "-w", "json"), remaining: true},
		leaseCase{name: "timetolive/hex/simple", args: args("lease", "timetolive", "{a}", "--keys", "--hex"), remaining: true},
		leaseCase{name: "timetolive/bad-id", args: args("lease", "timetolive", "zz")},
		leaseCase{name: "timetolive/bad-id-bad-format", args: args("lease", "timetolive", "zz", "-w", "yaml")},
		leaseCase{name: "timetolive/no-args", args: args("lease", "timetolive")},
		leaseCase{name: "timetolive/two-args", args: args("lease", "timetolive", "{a}", "{multi}")},
	)

	// list
	add(leaseFormats("list", args("lease", "list"), leaseCase{})...)
	add(
		leaseCase{name: "list/hex/fields", args: args("lease", "list", "--hex", "-w", "fields")},
		leaseCase{name: "list/hex/json", args: args("lease", "list", "--hex", "-w", "json")},
		leaseCase{name: "list/extra-arg", args: args("lease", "list", "extra")},
	)

	// keep-alive: --once here, the long-running form in testKeepAlive.
	add(leaseFormats("keep-alive-once", args("lease", "keep-alive", "--once", "{a}"), leaseCase{})...)
	add(
		leaseCase{name: "keep-alive-once/hex/fields", args: args("lease", "keep-alive", "--once", "{a}", "--hex", "-w", "fields")},
		leaseCase{name: "keep-alive-once/unknown", args: args("lease", "keep-alive", "--once", unknownLease)},
		leaseCase{name: "keep-alive-once/bad-id", args: args("lease", "keep-alive", "--once", "zz")},
		leaseCase{name: "keep-alive-once/bad-id-bad-format", args: args("lease", "keep-alive", "--once", "zz", "-w", "yaml")},
		leaseCase{name: "keep-alive-once/no-args", args: args("lease", "keep-alive", "--once")},
		leaseCase{name: "keep-alive/two-args", args: args("lease", "keep-alive", "{a}", "{multi}")},
		// A lease the server does not know ends the loop at once.
		leaseCase{name: "keep-alive/unknown", args: args("lease", "keep-alive", unknownLease)},
		leaseCase{name: "keep-alive/unknown/json", args: args("lease", "keep-alive", unknownLease, "-w", "json")},
		leaseCase{name: "keep-alive/bad-id", args: args("lease", "keep-alive", "0x10")},
	)

	// put --lease, and the lease as get shows it.
	add(
		leaseCase{name: "put-lease/simple", args: args("put", "--lease", "{p}", "lp/k", "v1"), before: []leaseSetup{{name: "p", ttl: 3300}}},
		leaseCase{name: "put-lease/prev-kv/fields", args: args("put", "--lease", "{p}", "lp/k", "v2", "--prev-kv", "-w", "fields")},
		leaseCase{name: "put-lease/prev-kv/json", args: args("put", "--lease", "{p}", "lp/k", "v3", "--prev-kv", "-w", "json")},
		leaseCase{name: "put-lease/prev-kv/hex-fields", args: args("put", "--lease", "{p}", "lp/k", "v4", "--prev-kv", "--hex", "-w", "fields")},
		leaseCase{name: "put-lease/ignore-lease", args: args("put", "--ignore-lease", "lp/k", "v5", "--prev-kv", "-w", "json")},
		leaseCase{name: "put-lease/ignore-value", args: args("put", "--ignore-value", "--lease", "{p}", "lp/v", "--prev-kv")},
		leaseCase{name: "put-lease/get/json", args: args("get", "lp/k", "-w", "json")},
		leaseCase{name: "put-lease/get/fields", args: args("get", "lp/k", "-w", "fields")},
		leaseCase{name: "put-lease/get/hex-fields", args: args("get", "lp/k", "--hex", "-w", "fields")},
		leaseCase{name: "put-lease/timetolive", args: args("lease", "timetolive", "{p}", "--keys"), remaining: true},
		leaseCase{name: "put-lease/unknown", args: args("put", "--lease", unknownLease, "lp/x", "v")},
		leaseCase{name: "put-lease/bad-id", args: args("put", "--lease", "zz", "lp/x", "v")},
	)

	// revoke: one lease per format, each with a key that goes with it.
	for i, f := range formats {
		name := "r" + fmt.Sprint(i)
		add(leaseCase{
			name:   "revoke/" + f,
			args:   args("lease", "revoke", "{"+name+"}", "-w", f),
			before: []leaseSetup{{name: name, ttl: int64(3400 + 100*i), keys: []string{"lr/" + f}}},
		})
	}
	add(
		leaseCase{
			name:   "revoke/hex/fields",
			args:   args("lease", "revoke", "{rh}", "--hex", "-w", "fields"),
			before: []leaseSetup{{name: "rh", ttl: 3900}},
		},
		leaseCase{name: "revoke/keys-gone", args: args("get", "lr/", "--prefix", "-w", "json")},
		leaseCase{name: "revoke/timetolive", args: args("lease", "timetolive", "{r0}", "--keys")},
		leaseCase{name: "revoke/timetolive/json", args: args("lease", "timetolive", "{r0}", "-w", "json")},
		leaseCase{name: "revoke/keep-alive-once", args: args("lease", "keep-alive", "--once", "{r0}")},
		leaseCase{name: "revoke/again", args: args("lease", "revoke", "{r0}")},
		leaseCase{name: "revoke/unknown", args: args("lease", "revoke", unknownLease)},
		leaseCase{name: "revoke/bad-id", args: args("lease", "revoke", "zz")},
		leaseCase{name: "revoke/bad-id-bad-format", args: args("lease", "revoke", "zz", "-w", "yaml")},
		leaseCase{name: "revoke/no-args", args: args("lease", "revoke")},
		leaseCase{name: "revoke/two-args", args: args("lease", "revoke", "{a}", "{multi}")},
		leaseCase{name: "revoke/put-revoked", args: args("put", "--lease", "{r0}", "lp/x", "v")},
		leaseCase{name: "list/after-revoke", args: args("lease", "list")},
		leaseCase{name: "list/after-revoke/json", args: args("lease", "list", "-w", "json")},
	)

	// Below the server's minimum TTL: no "lease list" after these.
	add(
		leaseCase{name: "grant/zero", args: args("lease", "grant", "0")},
		leaseCase{name: "grant/one", args: args("lease", "grant", "1", "-w", "json")},
		leaseCase{name: "grant/negative", args: args("lease", "grant", "--", "-5", "-w", "fields")},
	)

	// The command group itself; its help is our own prose.
	add(
		leaseCase{name: "help", args: args("lease"), cmp: usage},
		leaseCase{name: "unknown-subcommand", args: args("lease", "frobnicate"), cmp: usage},
		leaseCase{name: "prefix-match", args: args("lea", "li", "-w", "fields")},
	)
	return cs
}

// leaseSide is one of the twins, with what the harness knows of its leases.
type leaseSide struct {
	srv   *ctltest.Server
	cli   *clientv3.Client
	ids   *ctltest.LeaseIDs
	named map[string]clientv3.LeaseID
}

func newLeaseSide(t *testing.T, srv *ctltest.Server) *leaseSide {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	s := &leaseSide{srv: srv, cli: cli, ids: ctltest.NewLeaseIDs(), named: map[string]clientv3.LeaseID{}}
	s.ids.Keep(mustHex(unknownLease))
	return s
}

func mustHex(s string) int64 {
	var v int64
	if _, err := fmt.Sscanf(s, "%x", &v); err != nil {
		panic(err)
	}
	return v
}

// grant grants the leases of setups, registering them in order.
func (s *leaseSide) grant(ctx context.Context, setups []leaseSetup) error {
	for _, l := range setups {
		r, err := s.cli.Grant(ctx, l.ttl)
		if err != nil {
			return fmt.Errorf("grant %s: %w", l.name, err)
		}
		s.named[l.name] = r.ID
		s.ids.Add(int64(r.ID))
		for _, k := range l.keys {
			if _, err := s.cli.Put(ctx, k, k, clientv3.WithLease(r.ID)); err != nil {
				return fmt.Errorf("put %s: %w", k, err)
			}
		}
	}
	return nil
}

// args replaces "{name}" by the ID of a lease granted as name.
func (s *leaseSide) args(t *testing.T, a []string) []string {
	t.Helper()
	out := make([]string, len(a))
	for i, w := range a {
		if strings.HasPrefix(w, "{") && strings.HasSuffix(w, "}") {
			id, ok := s.named[strings.Trim(w, "{}")]
			if !ok {
				t.Fatalf("no lease named %s", w)
			}
			w = fmt.Sprintf("%x", int64(id))
		}
		out[i] = w
	}
	return out
}

func TestLeaseDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers")
	}
	ctlBin, srvA, srvB := startTwins(t)
	a, b := newLeaseSide(t, srvA), newLeaseSide(t, srvB)
	for _, c := range leaseCases() {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, s := range []*leaseSide{a, b} {
				if err := s.grant(ctx, c.before); err != nil {
					t.Fatal(err)
				}
			}
			invA := ctltest.Invocation{Args: append([]string{"--endpoints=" + srvA.Endpoint}, a.args(t, c.args)...)}
			invB := ctltest.Invocation{Args: append([]string{"--endpoints=" + srvB.Endpoint}, b.args(t, c.args)...)}
			var want, got ctltest.Result
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); want = ctltest.RunBinary(ctlBin, invA) }()
			got = runCairnctl(invB)
			wg.Wait()
			compareLeaseRuns(t, c, want, got, a, b, srvA.Endpoint, srvB.Endpoint)
		})
	}
	testKeepAlive(t, ctlBin, a, b)
}

// compareLeaseRuns normalizes the lease IDs of each side, then, where the
// case allows it, the remaining TTL and the order of keys, and compares.
func compareLeaseRuns(t *testing.T, c leaseCase, want, got ctltest.Result, a, b *leaseSide, epA, epB string) {
	t.Helper()
	hex := slices.Contains(c.args, "--hex")
	want.Stdout = a.ids.Normalize(want.Stdout, hex)
	got.Stdout = b.ids.Normalize(got.Stdout, hex)
	if c.remaining {
		got.Stdout = ctltest.AlignRemaining(want.Stdout, got.Stdout)
	}
	if c.anyKeyOrder {
		want.Stdout, got.Stdout = ctltest.SortLeaseKeys(want.Stdout), ctltest.SortLeaseKeys(got.Stdout)
	}
	checkSame(t, diffCase{name: c.name, cmp: c.cmp}, want, got, []string{epA}, []string{epB})
}

// keepAliveCase is a "lease keep-alive" without --once, which renews until
// the lease is gone. The CLI goes through a proxy that lets a fixed number
// of renewals through and holds the next ones, so the number of renewals
// printed is the same on every run; then the case ends the lease one way
// or another.
type keepAliveCase struct {
	name string
	// args may hold "{lease}", a lease of ttl seconds granted for the case.
	args []string
	ttl  int64
	// renewals is how many renewals reach the server before the end.
	renewals int
	end      keepAliveEnd
}

type keepAliveEnd int

const (
	// revoked: the lease is revoked, then the held renewal is let
	// through; the server answers that the lease is gone.
	revoked keepAliveEnd = iota
	// expired: the renewal stays held; the lease runs out and the client
	// gives up on it after its TTL.
	expired
	// interrupted: the run is stopped as Ctrl-C would, after printing.
	interrupted
	// failed: the CLI ends by itself at the first renewal.
	failed
)

func keepAliveCases() []keepAliveCase {
	var cs []keepAliveCase
	for _, f := range formats {
		c := keepAliveCase{name: "revoked/" + f, args: args("lease", "keep-alive", "{lease}", "-w", f), ttl: 3, renewals: 2, end: revoked}
		switch f {
		case "fields", "protobuf":
			c.renewals = 1
		case "table":
			c.name, c.renewals, c.end = "table", 1, failed
		}
		cs = append(cs, c)
	}
	return append(cs,
		keepAliveCase{name: "revoked/hex-fields", args: args("lease", "keep-alive", "{lease}", "--hex", "-w", "fields"), ttl: 3, renewals: 1, end: revoked},
		keepAliveCase{name: "revoked/hex", args: args("lease", "keep-alive", "--hex", "{lease}"), ttl: 3, renewals: 1, end: revoked},
		keepAliveCase{name: "expired", args: args("lease", "keep-alive", "{lease}"), ttl: 2, renewals: 1, end: expired},
		keepAliveCase{name: "expired/json", args: args("lease", "keep-alive", "{lease}", "-w", "json"), ttl: 2, renewals: 1, end: expired},
		keepAliveCase{name: "interrupted", args: args("lease", "keep-alive", "{lease}"), ttl: 3, renewals: 1, end: interrupted},
	)
}

// testKeepAlive runs the keep-alive cases, both sides at once: each has its
// own server, proxy and lease.
func testKeepAlive(t *testing.T, ctlBin string, a, b *leaseSide) {
	for _, c := range keepAliveCases() {
		t.Run("keep-alive/"+c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ra, rb := prepareKeepAlive(ctx, t, c, a), prepareKeepAlive(ctx, t, c, b)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				ra.run(ctx, func(inv ctltest.Invocation) (*ctltest.Live, error) { return ctltest.StartBinary(ctlBin, inv) })
			}()
			rb.run(ctx, func(inv ctltest.Invocation) (*ctltest.Live, error) { return ctltest.StartFunc(cairnctlRun, inv) })
			wg.Wait()
			want, got := ra.res, rb.res
			if ra.err != nil || rb.err != nil {
				t.Fatalf("etcdctl: %v\ncairnctl: %v\netcdctl: %+v\ncairnctl: %+v", ra.err, rb.err, want, got)
			}
			if want.Stopped != got.Stopped {
				t.Errorf("etcdctl stopped: %v (exit %d), cairnctl stopped: %v (exit %d)", want.Stopped, want.Code, got.Stopped, got.Code)
			}
			if want.Stopped || got.Stopped {
				// A stopped run has no exit code to compare.
				got.Code = want.Code
			}
			// A fresh numbering per case: the lease is <lease#0>.
			hex := slices.Contains(c.args, "--hex")
			want.Stdout = ctltest.NewLeaseIDs().Normalize(want.Stdout, hex)
			got.Stdout = ctltest.NewLeaseIDs().Normalize(got.Stdout, hex)
			checkSame(t, diffCase{name: c.name}, want, got, []string{ra.proxy.Endpoint}, []string{rb.proxy.Endpoint})
		})
	}
}

// keepAliveRun is one side of a keep-alive case.
type keepAliveRun struct {
	c     keepAliveCase
	side  *leaseSide
	lease clientv3.LeaseID
	proxy *ctltest.Proxy
	inv   ctltest.Invocation

	res ctltest.Result
	err error
}

// prepareKeepAlive grants the case's lease and starts the proxy that holds
// the renewals after the first c.renewals.
func prepareKeepAlive(ctx context.Context, t *testing.T, c keepAliveCase, s *leaseSide) *keepAliveRun {
	t.Helper()
	lease, err := s.cli.Grant(ctx, c.ttl)
	if err != nil {
		t.Fatal(err)
	}
	r := &keepAliveRun{c: c, side: s, lease: lease.ID, proxy: ctltest.StartProxy(t, s.srv.Endpoint)}
	r.proxy.HoldKeepAlives(c.renewals)
	r.inv.Args = []string{"--endpoints=" + r.proxy.Endpoint}
	for _, w := range c.args {
		r.inv.Args = append(r.inv.Args, strings.ReplaceAll(w, "{lease}", fmt.Sprintf("%x", int64(lease.ID))))
	}
	return r
}

// run starts the CLI and ends the lease as the case says. It may run
// outside the test's goroutine: failures go to r.err.
func (r *keepAliveRun) run(ctx context.Context, start func(ctltest.Invocation) (*ctltest.Live, error)) {
	live, err := start(r.inv)
	if err != nil {
		r.err = err
		return
	}
	// Waits end early when the CLI exits.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go func() {
		select {
		case <-live.Exited():
			wcancel()
		case <-wctx.Done():
		}
	}()
	fail := func(what string, err error) {
		r.res = live.Stop()
		r.err = fmt.Errorf("%s: %w", what, err)
	}
	if r.c.end != failed {
		if err := r.proxy.WaitKeepAlives(wctx, r.c.renewals); err != nil {
			fail(fmt.Sprintf("waiting for %d renewals", r.c.renewals), err)
			return
		}
	}
	switch r.c.end {
	case interrupted:
		// The renewal reached the CLI; stop once it printed it.
		if err := live.WaitStdout(wctx, "keepalived"); err != nil {
			fail("waiting for the output", err)
			return
		}
		r.res = live.Stop()
		return
	case revoked:
		if _, err := r.side.cli.Revoke(ctx, r.lease); err != nil {
			fail("revoke", err)
			return
		}
		r.proxy.ReleaseKeepAlives()
	case expired, failed:
	}
	r.res = live.Wait(ctx)
	if r.res.Stopped {
		r.err = errors.New("did not exit by itself")
	}
}
