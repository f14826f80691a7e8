package integration

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// TestMemberLogsStorageEngine: the storage engine of a member logs through
// the member's logger, so its write stall warnings reach the operator.
// Pebble logs its log replay when a member reopens its engine; those
// lines must arrive in the member's log, from storage/engine.go (before
// the member passed its logger, the engine logged nowhere).
func TestMemberLogsStorageEngine(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	c := framework.StartCluster(t, 1, func(cfg *server.Config) {
		cfg.Logger = zap.New(core, zap.AddCaller())
	})
	ctx := framework.Context(t, 30*time.Second)
	if _, err := c.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	m := c.Members[0]
	m.Stop()
	logs.TakeAll()
	m.Start()
	var engine []string
	for _, e := range logs.All() {
		if strings.HasSuffix(e.Caller.File, "storage/engine.go") {
			engine = append(engine, e.Message)
		}
	}
	if len(engine) == 0 {
		t.Fatalf("no line of the storage engine in the member's log across a restart (%d lines in all)", logs.Len())
	}
	t.Logf("engine lines: %q", engine)
}

// startWarnLogged starts a one-member cluster configured by edit whose
// warnings (and worse) the test reads.
func startWarnLogged(t *testing.T, edit func(*server.Config)) (*framework.Cluster, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.WarnLevel)
	return framework.StartCluster(t, 1, func(cfg *server.Config) {
		cfg.Logger = zap.New(core)
		edit(cfg)
	}), logs
}

// TestSlowRequestsLoggedAndCounted: with --warning-apply-duration below
// every request's time, an applied put, a range and a read-only txn are
// each logged as etcd logs them, "apply request took too long", without
// the put's value, and counted in etcd_server_slow_apply_total; every
// applied request is timed in etcd_server_apply_duration_seconds under
// its kind and outcome.
func TestSlowRequestsLoggedAndCounted(t *testing.T) {
	c, logs := startWarnLogged(t, func(cfg *server.Config) { cfg.WarningApplyDuration = time.Nanosecond })
	m := c.Members[0]
	ctx := framework.Context(t, 30*time.Second)
	cli := c.Client()
	slowBefore := counters(t, m, "etcd_server_slow_apply_total")[0]
	logs.TakeAll()

	if _, err := cli.Put(ctx, "k", "secret-value"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpGet("k")).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k", "v", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("put with no such lease: %v", err)
	}

	slow := logs.FilterMessage("apply request took too long").All()
	byPrefix := map[string][]string{}
	for _, e := range slow {
		f := e.ContextMap()
		byPrefix[f["prefix"].(string)] = append(byPrefix[f["prefix"].(string)], fmt.Sprintf("request %s response %s", f["request"], f["response"]))
		if _, ok := f["took"]; !ok || f["expected-duration"] != time.Nanosecond {
			t.Errorf("slow request logged without etcd's fields: %v", f)
		}
	}
	t.Logf("slow requests: %q", byPrefix)
	if got := byPrefix[""]; len(got) != 2 || !strings.Contains(got[0], `key:"k" value_size:12`) || strings.Contains(got[0], "secret") ||
		!strings.Contains(got[0], "response size:") {
		t.Errorf("applied puts logged as %q, want both, the first with its value size and not its value", got)
	}
	if got := byPrefix["read-only range "]; len(got) != 1 || !strings.Contains(got[0], "response range_response_count:1 size:") {
		t.Errorf("range logged as %q", got)
	}
	if got := byPrefix["read-only txn "]; len(got) != 1 || !strings.Contains(got[0], "responses:<range_response_count:1> size:") {
		t.Errorf("read-only txn logged as %q", got)
	}
	if d := counters(t, m, "etcd_server_slow_apply_total")[0] - slowBefore; d != float64(len(slow)) || d < 4 {
		t.Errorf("etcd_server_slow_apply_total grew by %v, with %d slow requests logged", d, len(slow))
	}

	applied := map[string]uint64{}
	for _, s := range gather(t, m, "etcd_server_apply_duration_seconds") {
		l := map[string]string{}
		for _, p := range s.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		applied[l["version"]+" "+l["op"]+" "+l["success"]] = s.GetHistogram().GetSampleCount()
	}
	if applied["v3 Put true"] != 1 || applied["v3 Put false"] != 1 {
		t.Errorf("etcd_server_apply_duration_seconds counts %v, want one Put each way", applied)
	}
}

// TestSlowUnaryRequestsLogged: with --warning-unary-request-duration below
// every call's time, each unary call is logged as etcd logs it, "request
// stats", with its method, counts and sizes, and a put's value size, never
// its value.
func TestSlowUnaryRequestsLogged(t *testing.T) {
	c, logs := startWarnLogged(t, func(cfg *server.Config) { cfg.WarningUnaryRequestDuration = time.Nanosecond })
	ctx := framework.Context(t, 30*time.Second)
	cli := c.Client()
	logs.TakeAll()
	if _, err := cli.Put(ctx, "k", "secret-value"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Get(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("k"), ">", 0)).
		Then(clientv3.OpGet("k"), clientv3.OpPut("k2", "v")).Else(clientv3.OpGet("k")).Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k", "v", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		t.Fatalf("put with no such lease: %v", err)
	}
	if _, err := cli.Status(ctx, c.Members[0].Endpoint); err != nil {
		t.Fatal(err)
	}
	type stats struct {
		method                                 string
		reqCount, reqSize, respCount, respSize int64
		content                                string
	}
	var got []stats
	for _, e := range logs.FilterMessage("request stats").All() {
		f := e.ContextMap()
		got = append(got, stats{f["response type"].(string), f["request count"].(int64), f["request size"].(int64),
			f["response count"].(int64), f["response size"].(int64), f["request content"].(string)})
	}
	t.Logf("%+v", got)
	if len(got) != 5 {
		t.Fatalf("%d calls logged, want 5: %+v", len(got), got)
	}
	put, rng, txn, failed, status := got[0], got[1], got[2], got[3], got[4]
	if put.method != "/etcdserverpb.KV/Put" || put.reqCount != 1 || put.respSize <= 0 ||
		!strings.Contains(put.content, "value_size:12") || strings.Contains(put.content, "secret") {
		t.Errorf("put logged as %+v", put)
	}
	if rng.method != "/etcdserverpb.KV/Range" || rng.respCount != 1 || rng.content != `key:"k"` {
		t.Errorf("range logged as %+v", rng)
	}
	if txn.method != "/etcdserverpb.KV/Txn" || txn.reqCount != 2 || txn.reqSize <= 0 || !strings.Contains(txn.content, "value_size:1") {
		t.Errorf("txn logged as %+v, want the 2 operations of the branch taken", txn)
	}
	if failed.reqCount != 1 || failed.respCount != 0 || failed.respSize != 0 {
		t.Errorf("failed put logged as %+v", failed)
	}
	if status.method != "/etcdserverpb.Maintenance/Status" || status.reqCount != -1 || status.respSize != -1 {
		t.Errorf("status logged as %+v", status)
	}
}
