package main

import (
	"context"
	"io"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-kv/cairn/tests/framework"
)

// TestLeaseKeepAliveMember runs the workload briefly against an in-process
// Cairn member and checks that the counts add up: every keep-alive answered
// once, every lease revoked, and keep-alives of a lease the server does not
// have counted as failures.
func TestLeaseKeepAliveMember(t *testing.T) {
	m := framework.StartMember(t)
	ctx := framework.Context(t, 2*time.Minute)
	cli := m.Client()
	o := &options{
		endpoints: []string{m.Endpoint}, clients: 6, conns: 2, total: 5000,
		requestTimeout: 10 * time.Second, dialTimeout: 5 * time.Second, maxErrors: 100, seed: 1,
	}
	l := &leaseOptions{leases: 50, ttl: 60, inFlight: 16}

	res, err := runLeaseKeepAlive(ctx, o, l, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != o.total || res.Errors != 0 || res.failed() {
		t.Fatalf("%d succeeded, %d failed (%q), failed() %v; want %d, 0, false", res.Succeeded, res.Errors, res.ErrorSamples, res.failed(), o.total)
	}
	if s := res.Lease; s.Leases != l.leases || s.Revoked != l.leases || s.NotRevoked != 0 || s.TTL != l.ttl {
		t.Fatalf("lease summary %+v, want %d leases of TTL %d all revoked", *s, l.leases, l.ttl)
	}
	if lat := res.Latency; lat.Min <= 0 || lat.P50 < lat.Min || lat.P99 < lat.P50 || lat.Max < lat.P99 {
		t.Fatalf("latencies out of order: %+v", lat)
	}
	left, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Leases) != 0 {
		t.Fatalf("%d leases left after the run, want 0", len(left.Leases))
	}

	// --existing-leases keeps alive what the server has and leaves it.
	var ids []int64
	for range 3 {
		g, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, int64(g.ID))
	}
	one := *o
	one.clients, one.conns, one.total, one.maxErrors = 3, 1, 600, 0
	res, err = runLeaseKeepAlive(ctx, &one, &leaseOptions{existing: true, keep: true, inFlight: 4}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != one.total || res.Errors != 0 || res.Lease.Leases != 3 || res.Lease.NotRevoked != 3 {
		t.Fatalf("existing leases: %d succeeded, %d failed, summary %+v; want %d, 0, 3 leases kept", res.Succeeded, res.Errors, *res.Lease, one.total)
	}

	// A lease the server does not have is answered TTL 0: a failure. One
	// client keeps its leases alive round-robin, so it is every 4th.
	one.clients = 1
	clients, err := connect(ctx, &one)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(clients)
	missing := append(slices.Clone(ids), 0x7eadbeef)
	res = keepAlive(ctx, &one, &leaseOptions{inFlight: 8}, clients, missing, io.Discard)
	if res.Succeeded != 450 || res.Errors != 150 {
		t.Fatalf("%d succeeded, %d failed, want 450 and 150", res.Succeeded, res.Errors)
	}
	if !slices.ContainsFunc(res.ErrorSamples, func(s string) bool { return strings.Contains(s, errLeaseNotFound.Error()) }) {
		t.Fatalf("error samples %q, want %q", res.ErrorSamples, errLeaseNotFound)
	}
	for _, id := range ids {
		ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(id))
		if err != nil || ttl.TTL <= 0 {
			t.Fatalf("lease %x after the runs: TTL %v, %v; want it alive", id, ttl, err)
		}
	}
}

// BenchmarkLeaseKeepAlive sends b.N keep-alives for 10000 leases from 100
// clients over 10 connections, 64 in flight per stream, to an in-process
// member. The client runs under the pprof label side=client, so that
//
//	go test -run XXX -bench LeaseKeepAlive -benchtime 400000x -cpuprofile cpu.out ./cmd/cairn-bench/
//	go tool pprof -tagignore side=client cpu.out
//
// shows the server's share alone.
func BenchmarkLeaseKeepAlive(b *testing.B) {
	m := framework.StartMember(b)
	ctx := framework.Context(b, 10*time.Minute)
	o := &options{
		endpoints: []string{m.Endpoint}, clients: 100, conns: 10, total: uint64(b.N),
		requestTimeout: 10 * time.Second, dialTimeout: 5 * time.Second, maxErrors: 1,
	}
	l := &leaseOptions{leases: 10000, ttl: 60, inFlight: 64}
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		clients, err := connect(ctx, o)
		if err != nil {
			b.Fatal(err)
		}
		defer closeAll(clients)
		ids, err := grantLeases(ctx, o, l, clients)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		res := keepAlive(ctx, o, l, clients, ids, io.Discard)
		b.StopTimer()
		if res.Errors > 0 || res.Succeeded != o.total {
			b.Fatalf("%d succeeded, %d failed (%q)", res.Succeeded, res.Errors, res.ErrorSamples)
		}
	})
}
