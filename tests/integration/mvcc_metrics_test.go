package integration

import (
	"fmt"
	"maps"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/tests/framework"
)

// requestCounters are etcd's counters of the calls each request makes on
// its store, and of leases (the TTL histogram by its count).
var requestCounters = []string{
	"etcd_mvcc_range_total", "etcd_mvcc_put_total", "etcd_mvcc_delete_total", "etcd_mvcc_txn_total",
	"etcd_debugging_lease_granted_total", "etcd_debugging_lease_revoked_total",
	"etcd_debugging_lease_renewed_total", "etcd_debugging_server_lease_expired_total",
	"etcd_debugging_lease_ttl_total", "etcd_debugging_mvcc_total_put_size_in_bytes",
	"etcd_debugging_mvcc_keys_total",
}

// counterValues returns the values of the unlabeled counters (and gauges)
// names, and the sample counts of the unlabeled histograms among them.
func counterValues(t *testing.T, mfs map[string]*dto.MetricFamily, names []string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, n := range names {
		ms := mfs[n].GetMetric()
		switch {
		case len(ms) != 1:
			t.Fatalf("%s: %d series, want one", n, len(ms))
		case ms[0].Counter != nil:
			out[n] = ms[0].GetCounter().GetValue()
		case ms[0].Gauge != nil:
			out[n] = ms[0].GetGauge().GetValue()
		case ms[0].Histogram != nil:
			out[n] = float64(ms[0].GetHistogram().GetSampleCount())
		default:
			t.Fatalf("%s: neither a counter nor a histogram", n)
		}
	}
	return out
}

// counterSide is one server of TestCountersDifferentialEtcd.
type counterSide struct {
	name, base string
	c          *clientv3.Client
	lease      clientv3.LeaseID // granted by the latest "grant" step
	counts     map[string]float64
}

// TestCountersDifferentialEtcd: the same requests, sent to etcd v3.7.3
// and to a Cairn member, move etcd_mvcc_{range,put,delete,txn}_total and
// the lease counters by the same amounts, request by request, and fail
// with the same errors.
// etcd counts the calls each of its internal store transactions makes, so
// the cases cover what changes the count: prev_kv and ignore_* puts, a
// check that fails, a txn that may write (its compares and checks count
// apart from its execution) against a read-only one, nested txns, range
// deletes, a lease revoked with its keys, one kept alive, one expired, and
// reads that fail.
func TestCountersDifferentialEtcd(t *testing.T) {
	etcdURL, _ := startReference(t, func() []string { return nil })
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdURL}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	m := startHTTPMember(t)
	sides := []*counterSide{{name: "etcd", base: etcdURL, c: ec}, {name: "cairn", base: "http://" + m.Addr, c: m.client(t)}}
	ctx := framework.Context(t, 60*time.Second)

	put := func(k, v string, o ...clientv3.OpOption) func(*counterSide) error {
		return func(s *counterSide) error { _, err := s.c.Put(ctx, k, v, o...); return err }
	}
	get := func(k string, o ...clientv3.OpOption) func(*counterSide) error {
		return func(s *counterSide) error { _, err := s.c.Get(ctx, k, o...); return err }
	}
	del := func(k string, o ...clientv3.OpOption) func(*counterSide) error {
		return func(s *counterSide) error { _, err := s.c.Delete(ctx, k, o...); return err }
	}
	txn := func(if_ []clientv3.Cmp, then, els []clientv3.Op) func(*counterSide) error {
		return func(s *counterSide) error {
			_, err := s.c.Txn(ctx).If(if_...).Then(then...).Else(els...).Commit()
			return err
		}
	}
	steps := []struct {
		name string
		do   func(*counterSide) error
	}{
		{"put", put("a", "1")},
		{"put prev_kv", put("a", "2", clientv3.WithPrevKV())},
		{"put ignore_value", put("a", "", clientv3.WithIgnoreValue())},
		{"put ignore_lease of no key", put("zz", "v", clientv3.WithIgnoreLease())},
		{"put with no such lease", put("b", "v", clientv3.WithLease(12345))},
		{"get", get("a")},
		{"get serializable", get("a", clientv3.WithSerializable())},
		{"get prefix limit", get("", clientv3.WithPrefix(), clientv3.WithLimit(1))},
		{"get count only", get("", clientv3.WithPrefix(), clientv3.WithCountOnly())},
		{"get future revision", get("a", clientv3.WithRev(1000))},
		{"delete no key", del("nope")},
		{"put b", put("b", "1")},
		{"put c", put("c", "1")},
		{"put d", put("d", "1")},
		{"delete prev_kv", del("a", clientv3.WithPrevKV())},
		{"delete range", del("b", clientv3.WithRange("d"))},
		{"delete range prev_kv", del("c", clientv3.WithFromKey(), clientv3.WithPrevKV())},
		{"txn empty", txn(nil, nil, nil)},
		{"txn write, compare fails", txn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value("a"), "=", "x")},
			[]clientv3.Op{clientv3.OpPut("a", "y")},
			[]clientv3.Op{clientv3.OpGet("a")})},
		{"txn write, compares hold", txn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Version("b"), "=", 0), clientv3.Compare(clientv3.CreateRevision("c"), "=", 0)},
			[]clientv3.Op{clientv3.OpPut("b", "2", clientv3.WithPrevKV()), clientv3.OpGet("b"), clientv3.OpDelete("b", clientv3.WithPrevKV()), clientv3.OpPut("e", "1")},
			nil)},
		{"txn second compare short-circuited", txn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Version("e"), "=", 0), clientv3.Compare(clientv3.Version("b"), "=", 0)},
			nil,
			[]clientv3.Op{clientv3.OpPut("e", "", clientv3.WithIgnoreValue())})},
		{"txn read-only", txn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Version("e"), ">", 0)},
			[]clientv3.Op{clientv3.OpGet("e"), clientv3.OpGet("", clientv3.WithPrefix())},
			[]clientv3.Op{clientv3.OpGet("b")})},
		{"txn read-only serializable, one range", txn(nil, []clientv3.Op{clientv3.OpGet("e", clientv3.WithSerializable())}, nil)},
		{"txn nested", txn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Version("e"), ">", 0)},
			[]clientv3.Op{
				clientv3.OpTxn(
					[]clientv3.Cmp{clientv3.Compare(clientv3.Value("e"), "=", "1")},
					[]clientv3.Op{clientv3.OpPut("f", "1", clientv3.WithPrevKV()), clientv3.OpGet("f")},
					nil),
				clientv3.OpPut("g", "1"),
			},
			nil)},
		{"txn check fails: ignore_lease of no key", txn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Version("e"), ">", 0)},
			[]clientv3.Op{clientv3.OpPut("g", "2"), clientv3.OpPut("zz", "v", clientv3.WithIgnoreLease())},
			nil)},
		{"txn check fails: future revision", txn(nil, []clientv3.Op{clientv3.OpGet("e", clientv3.WithRev(1000)), clientv3.OpPut("g", "3")}, nil)},
		{"grant", func(s *counterSide) error {
			r, err := s.c.Grant(ctx, 60)
			if err == nil {
				s.lease = r.ID
			}
			return err
		}},
		{"put h with the lease", func(s *counterSide) error { return put("h", "1", clientv3.WithLease(s.lease))(s) }},
		{"put i with the lease", func(s *counterSide) error { return put("i", "1", clientv3.WithLease(s.lease))(s) }},
		{"put j with the lease", func(s *counterSide) error { return put("j", "1", clientv3.WithLease(s.lease))(s) }},
		{"revoke the lease and its 3 keys", func(s *counterSide) error { _, err := s.c.Revoke(ctx, s.lease); return err }},
		{"grant another", func(s *counterSide) error {
			r, err := s.c.Grant(ctx, 60)
			if err == nil {
				s.lease = r.ID
			}
			return err
		}},
		{"keep the lease alive once", func(s *counterSide) error { _, err := s.c.KeepAliveOnce(ctx, s.lease); return err }},
		{"revoke a lease with no key", func(s *counterSide) error { _, err := s.c.Revoke(ctx, s.lease); return err }},
		{"revoke it again", func(s *counterSide) error { _, err := s.c.Revoke(ctx, s.lease); return err }},
		{"keep a revoked lease alive", func(s *counterSide) error { _, err := s.c.KeepAliveOnce(ctx, s.lease); return err }},
		{"grant a lease of 1 s, put k with it, let it expire", func(s *counterSide) error {
			r, err := s.c.Grant(ctx, 1)
			if err != nil {
				return err
			}
			if _, err := s.c.Put(ctx, "k", "v", clientv3.WithLease(r.ID)); err != nil {
				return err
			}
			// The leader revokes it, then counts it expired.
			expired := "etcd_debugging_server_lease_expired_total"
			framework.WaitUntil(ctx, t, s.name+" revoking the expired lease", func() bool {
				return counterValues(t, scrapeMetrics(t, s.base), []string{expired})[expired] > s.counts[expired]
			})
			return nil
		}},
		{"compact", func(s *counterSide) error { _, err := s.c.Compact(ctx, 5); return err }},
		{"get compacted revision", get("e", clientv3.WithRev(2))},
	}

	for _, s := range sides {
		s.counts = counterValues(t, scrapeMetrics(t, s.base), requestCounters)
	}
	moved := 0.0
	for _, st := range steps {
		var deltas [2]map[string]float64
		var errs [2]string
		for i, s := range sides {
			errs[i] = fmt.Sprint(st.do(s))
			now := counterValues(t, scrapeMetrics(t, s.base), requestCounters)
			deltas[i] = map[string]float64{}
			for _, n := range requestCounters {
				if d := now[n] - s.counts[n]; d != 0 {
					deltas[i][n] = d
				}
			}
			s.counts = now
		}
		if errs[0] != errs[1] {
			t.Errorf("%s: etcd's error %s, cairn's %s", st.name, errs[0], errs[1])
		}
		if !maps.Equal(deltas[0], deltas[1]) {
			t.Errorf("%s: etcd's counters moved by %v, cairn's by %v", st.name, deltas[0], deltas[1])
		}
		for _, d := range deltas[0] {
			moved += d
		}
	}
	// The counters moved in etcd, so the comparison compared something.
	if moved < float64(len(steps)) {
		t.Fatalf("etcd's counters moved by %v in all over %d steps", moved, len(steps))
	}
}

// TestClusterTxnRangesRunWhereAnswered: the ranges inside a txn that
// writes run only on the member whose client waits for the answer, as in
// etcd; every member applies the txn's put. The answer still carries the
// range's result.
func TestClusterTxnRangesRunWhereAnswered(t *testing.T) {
	c := framework.StartCluster(t, 3)
	ctx := framework.Context(t, 60*time.Second)
	via := c.Members[1]
	if _, err := via.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	ranges := make([]float64, len(c.Members))
	puts := make([]float64, len(c.Members))
	for i, m := range c.Members {
		framework.WaitUntil(ctx, t, m.Config.Name+" applying the put", func() bool {
			return counters(t, m, "etcd_mvcc_put_total")[0] == 1
		})
		ranges[i] = counters(t, m, "etcd_mvcc_range_total")[0]
		puts[i] = counters(t, m, "etcd_mvcc_put_total")[0]
	}
	resp, err := via.Client().Txn(ctx).Then(clientv3.OpGet("k"), clientv3.OpPut("k2", "x")).Commit()
	if err != nil {
		t.Fatal(err)
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) != 1 || string(kvs[0].Value) != "v" {
		t.Fatalf("the txn's range answered %v, want k=v", kvs)
	}
	for i, m := range c.Members {
		framework.WaitUntil(ctx, t, m.Config.Name+" applying the txn", func() bool {
			return counters(t, m, "etcd_mvcc_put_total")[0] == puts[i]+1
		})
		want := ranges[i]
		if m == via {
			want++
		}
		if got := counters(t, m, "etcd_mvcc_range_total")[0]; got != want {
			t.Errorf("%s counted %v ranges after the txn, want %v", m.Config.Name, got, want)
		}
	}
}
