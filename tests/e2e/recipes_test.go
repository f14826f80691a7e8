package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"

	"github.com/cairn-kv/cairn/api/v3electionpb"
	"github.com/cairn-kv/cairn/api/v3lockpb"
)

// TestLockElectionDifferentialEtcd: the Lock and Election services, called
// as jetcd calls them (their gRPC methods, through the generated clients of
// Cairn's own .proto files), answer on Cairn what they answer on the
// reference etcd, step by step: a lock held, waited for and released, a
// lease that does not exist, an election led, proclaimed, observed and
// resigned so that a waiting campaigner's key takes over, and the errors
// of a wrong or missing leader key and of an election without a leader.
// That the same clients reach etcd shows the .proto files are etcd's wire
// format.
func TestLockElectionDifferentialEtcd(t *testing.T) {
	var runs [2][]string
	for i, bin := range []string{etcdBin, cairnBin} {
		client, peer := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
		dir := filepath.Join(t.TempDir(), "data")
		p := &proc{t: t, bin: bin, Endpoint: client, DataDir: dir, args: []string{
			"--name", "m", "--data-dir", dir,
			"--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client,
			"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
			"--initial-cluster", "m=http://" + peer,
		}}
		p.start()
		t.Cleanup(p.Kill)
		start := time.Now()
		runs[i] = lockElectionSteps(t, client)
		t.Logf("%s: %v", filepath.Base(bin), time.Since(start))
	}
	if len(runs[0]) < 15 {
		t.Fatalf("only %d steps ran against etcd: %q", len(runs[0]), runs[0])
	}
	for i := range max(len(runs[0]), len(runs[1])) {
		var e, c string
		if i < len(runs[0]) {
			e = runs[0][i]
		}
		if i < len(runs[1]) {
			c = runs[1][i]
		}
		if e != c {
			t.Errorf("step %d:\n etcd:  %s\n cairn: %s", i, e, c)
		} else {
			t.Logf("step %d: %s", i, e)
		}
	}
}

// lockElectionSteps runs the steps against the server at endpoint and
// returns what each answered, with lease IDs named L1 and L2.
func lockElectionSteps(t *testing.T, endpoint string) []string {
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var leases [2]clientv3.LeaseID
	for i := range leases {
		g, err := c.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		leases[i] = g.ID
	}
	names := strings.NewReplacer(fmt.Sprintf("%x", leases[0]), "L1", fmt.Sprintf("%x", leases[1]), "L2",
		fmt.Sprint(leases[0]), "L1", fmt.Sprint(leases[1]), "L2")
	var out []string
	record := func(step string, answer any, err error) {
		switch st, ok := status.FromError(err); {
		case err == nil:
			out = append(out, step+": "+names.Replace(fmt.Sprint(answer)))
		case errors.Is(err, context.DeadlineExceeded) || ok && st.Code().String() == "DeadlineExceeded":
			out = append(out, step+": still waiting")
		case ok:
			out = append(out, step+": "+st.Code().String()+" "+st.Message())
		default:
			out = append(out, step+": "+err.Error())
		}
	}
	// waiting calls a method that should wait, and ends its wait.
	waiting := func(f func(ctx context.Context) error) error {
		wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer wcancel()
		return f(wctx)
	}
	// settled waits until prefix holds n keys: a wait that timed out
	// deletes its key (the recipes clean up), on the server's time.
	settled := func(prefix string, n int64) {
		for {
			r, err := c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				t.Fatal(err)
			}
			if r.Count == n {
				return
			}
			wctx, wcancel := context.WithCancel(ctx)
			<-c.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(r.Header.Revision+1))
			wcancel()
			if ctx.Err() != nil {
				t.Fatalf("%s never held %d keys", prefix, n)
			}
		}
	}
	locks := v3lockpb.NewLockClient(c.ActiveConnection())
	elections := v3electionpb.NewElectionClient(c.ActiveConnection())

	l1, err := locks.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("lk"), Lease: int64(leases[0])})
	record("lock with L1", fmt.Sprintf("key %s revision %d", l1.GetKey(), l1.GetHeader().GetRevision()), err)
	err = waiting(func(ctx context.Context) error {
		_, err := locks.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("lk"), Lease: int64(leases[1])})
		return err
	})
	record("lock with L2 while L1 holds it", "acquired", err)
	settled("lk/", 1)
	u, err := locks.Unlock(ctx, &v3lockpb.UnlockRequest{Key: l1.GetKey()})
	record("unlock L1", fmt.Sprintf("revision %d", u.GetHeader().GetRevision()), err)
	l2, err := locks.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("lk"), Lease: int64(leases[1])})
	record("lock with L2", fmt.Sprintf("key %s revision %d", l2.GetKey(), l2.GetHeader().GetRevision()), err)
	// The client-side recipe (etcdctl lock, clientv3/concurrency) sees
	// the lock the service handed out.
	s, err := concurrency.NewSession(c, concurrency.WithTTL(60))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = concurrency.NewMutex(s, "lk").TryLock(ctx)
	record("client-side TryLock while L2 holds it", "acquired", err)
	_, err = locks.Lock(ctx, &v3lockpb.LockRequest{Name: []byte("other"), Lease: 12345})
	record("lock with a lease that does not exist", "acquired", err)
	u, err = locks.Unlock(ctx, &v3lockpb.UnlockRequest{Key: []byte("no/such/key")})
	record("unlock a key that does not exist", fmt.Sprintf("revision %d", u.GetHeader().GetRevision()), err)

	camp, err := elections.Campaign(ctx, &v3electionpb.CampaignRequest{Name: []byte("el"), Lease: int64(leases[0]), Value: []byte("v1")})
	leader := camp.GetLeader()
	record("campaign with L1", fmt.Sprintf("leader %s rev %d lease %d", leader.GetKey(), leader.GetRev(), leader.GetLease()), err)
	lead, err := elections.Leader(ctx, &v3electionpb.LeaderRequest{Name: []byte("el")})
	record("leader", fmt.Sprintf("%s=%s", lead.GetKv().GetKey(), lead.GetKv().GetValue()), err)
	err = waiting(func(ctx context.Context) error {
		_, err := elections.Campaign(ctx, &v3electionpb.CampaignRequest{Name: []byte("el"), Lease: int64(leases[1]), Value: []byte("v2")})
		return err
	})
	record("campaign with L2 while L1 leads", "elected", err)
	settled("el/", 1)
	pr, err := elections.Proclaim(ctx, &v3electionpb.ProclaimRequest{Leader: leader, Value: []byte("v1b")})
	record("proclaim", fmt.Sprintf("revision %d", pr.GetHeader().GetRevision()), err)
	_, err = elections.Proclaim(ctx, &v3electionpb.ProclaimRequest{Leader: &v3electionpb.LeaderKey{Name: []byte("el"), Key: []byte("el/bogus"), Rev: 1, Lease: int64(leases[0])}, Value: []byte("x")})
	record("proclaim with another key", "proclaimed", err)
	_, err = elections.Proclaim(ctx, &v3electionpb.ProclaimRequest{Value: []byte("x")})
	record("proclaim without a leader key", "proclaimed", err)
	_, err = elections.Resign(ctx, &v3electionpb.ResignRequest{})
	record("resign without a leader key", "resigned", err)
	_, err = elections.Leader(ctx, &v3electionpb.LeaderRequest{Name: []byte("nobody")})
	record("leader of an election nobody runs", "a leader", err)

	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	obs, err := elections.Observe(octx, &v3electionpb.LeaderRequest{Name: []byte("el")})
	if err != nil {
		t.Fatal(err)
	}
	seen := func(step string) {
		r, err := obs.Recv()
		record(step, fmt.Sprintf("%s=%s", r.GetKv().GetKey(), r.GetKv().GetValue()), err)
	}
	seen("observe")
	// L2 campaigns again, without a deadline this time, and leads once L1
	// resigns.
	elected := make(chan string, 1)
	go func() {
		r, err := elections.Campaign(ctx, &v3electionpb.CampaignRequest{Name: []byte("el"), Lease: int64(leases[1]), Value: []byte("v2")})
		if err != nil {
			elected <- err.Error()
			return
		}
		elected <- names.Replace(fmt.Sprintf("leader %s lease %d", r.GetLeader().GetKey(), r.GetLeader().GetLease()))
	}()
	settled("el/", 2)
	rs, err := elections.Resign(ctx, &v3electionpb.ResignRequest{Leader: leader})
	record("resign L1", fmt.Sprintf("revision %d", rs.GetHeader().GetRevision()), err)
	record("campaign with L2 after the resignation", <-elected, nil)
	seen("observe after the resignation")
	lead, err = elections.Leader(ctx, &v3electionpb.LeaderRequest{Name: []byte("el")})
	record("leader after the resignation", fmt.Sprintf("%s=%s", lead.GetKv().GetKey(), lead.GetKv().GetValue()), err)

	// The JSON gateway's routes for both services, as curl would call them.
	post := func(step, path, body string) {
		resp, err := http.Post("http://"+endpoint+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer struct {
			Key     []byte
			Kv      struct{ Key, Value []byte }
			Message string
		}
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		record(step, fmt.Sprintf("%d key=%s kv=%s=%s message=%q", resp.StatusCode, answer.Key, answer.Kv.Key, answer.Kv.Value, answer.Message), nil)
	}
	b64 := base64.StdEncoding.EncodeToString
	post("gateway lock", "/v3/lock/lock", fmt.Sprintf(`{"name":%q,"lease":"%d"}`, b64([]byte("gw")), leases[0]))
	post("gateway unlock", "/v3/lock/unlock", fmt.Sprintf(`{"key":%q}`, b64([]byte(fmt.Sprintf("gw/%x", leases[0])))))
	post("gateway leader", "/v3/election/leader", fmt.Sprintf(`{"name":%q}`, b64([]byte("el"))))
	post("gateway leader of nobody", "/v3/election/leader", fmt.Sprintf(`{"name":%q}`, b64([]byte("nobody"))))
	return out
}
