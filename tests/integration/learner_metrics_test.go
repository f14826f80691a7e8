package integration

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-kv/cairn/tests/framework"
)

// memberGRPCSeries gathers m's grpc_server_* series (grpcSeries) from its
// MetricsCollector, which exports them with the member's own metrics.
func memberGRPCSeries(t *testing.T, m *framework.Member) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m.Server.MetricsCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return grpcSeries(byName)
}

// TestLearnerRefusalsCounted: a learner refuses a put and a watch stream
// with etcd's "rpc not supported for learner", and the gRPC metrics, which
// run before the learner check, count both refused calls under their code.
func TestLearnerRefusalsCounted(t *testing.T) {
	c := framework.StartCluster(t, 1)
	ctx := framework.Context(t, 60*time.Second)
	l := c.AddMember(ctx, true)
	cl := l.Client()
	putRefused := series("grpc_server_handled_total", "unary", "etcdserverpb.KV/Put", "FailedPrecondition")
	watchRefused := series("grpc_server_handled_total", "bidi_stream", "etcdserverpb.Watch/Watch", "FailedPrecondition")
	before := memberGRPCSeries(t, l)

	if _, err := cl.Put(ctx, "k", "v"); rpctypes.Error(err) != rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner) {
		t.Fatalf("put on a learner: %v, want %v", err, rpctypes.ErrGRPCNotSupportedForLearner)
	}
	// The raw stream: clientv3's Watch retries a refused stream forever.
	ws, err := pb.NewWatchClient(cl.ActiveConnection()).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Recv(); rpctypes.Error(err) != rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner) {
		t.Fatalf("watch on a learner: %v, want %v", err, rpctypes.ErrGRPCNotSupportedForLearner)
	}

	after := memberGRPCSeries(t, l)
	for _, s := range []string{putRefused, watchRefused} {
		if after[s] <= before[s] {
			t.Errorf("%s = %v after a refused call, %v before", s, after[s], before[s])
		}
	}
}

// TestLearnerPromotionsCounted: the leader counts the promotions it made
// in etcd_server_learner_promote_successes and those it refused in
// etcd_server_learner_promote_failures, by the refusal's text, as etcd.
func TestLearnerPromotionsCounted(t *testing.T) {
	c := framework.StartCluster(t, 1)
	ctx := framework.Context(t, 60*time.Second)
	lead := c.Members[0]
	l := c.AddMember(ctx, true)
	cl := lead.Client()
	if err := framework.Reconfigure(ctx, func() error { _, err := cl.MemberPromote(ctx, l.Server.ID()); return err }); err != nil {
		t.Fatal(err)
	}
	if n := counters(t, lead, "etcd_server_learner_promote_successes")[0]; n != 1 {
		t.Fatalf("etcd_server_learner_promote_successes %v after one promotion, want 1", n)
	}
	if _, err := cl.MemberPromote(ctx, l.Server.ID()); rpctypes.Error(err) != rpctypes.Error(rpctypes.ErrGRPCMemberNotLearner) {
		t.Fatalf("promoting a voter: %v", err)
	}
	refused := map[string]float64{}
	for _, s := range gather(t, lead, "etcd_server_learner_promote_failures") {
		refused[metricLabels(s)] = s.GetCounter().GetValue()
	}
	if n := refused["Reason=membership: can only promote a learner member"]; n != 1 {
		t.Fatalf("etcd_server_learner_promote_failures %v, want one refusal of a voter", refused)
	}
}
