package ctltest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ClusterServerEnv names the variable that selects the server binary of the
// multi-member tests. It is separate from ServerEnv because a server may
// pass the single-member tests long before it can form a cluster; unset,
// those tests run against ServerEnv's binary, else the reference etcd.
const ClusterServerEnv = "CAIRNCTL_DIFF_CLUSTER_SERVER"

// clusterToken is the --initial-cluster-token of every Cluster. Member and
// cluster IDs derive from it and the peer URLs, which change from run to run
// with the ports.
const clusterToken = "cairnctl-cluster"

// Member is one process of a Cluster.
type Member struct {
	*Server
	Name    string
	PeerURL string
}

// Cluster is a multi-member cluster of server processes on loopback ports.
type Cluster struct {
	bin string
	// Members are the founding members, in --initial-cluster order.
	Members []*Member
}

// StartCluster starts n members of bin as a new cluster, named m0, m1...,
// and waits until each serves linearizable reads. The ports are found by
// listening on port 0; one taken again before the server binds it fails
// the start, which is then tried again on other ports. The processes are
// killed when the test ends.
func StartCluster(t testing.TB, bin string, n int) *Cluster {
	t.Helper()
	const attempts = 3
	var errs []error
	for range attempts {
		c, err := startCluster(t, bin, n)
		if err == nil {
			return c
		}
		errs = append(errs, err)
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	t.Fatalf("cluster of %d did not start: %v", n, errors.Join(errs...))
	return nil
}

var errPortTaken = errors.New("port taken")

func startCluster(t testing.TB, bin string, n int) (*Cluster, error) {
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	var initial []string
	for i := range n {
		m := &Member{Name: fmt.Sprintf("m%d", i), PeerURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])}
		c.Members = append(c.Members, m)
		initial = append(initial, m.Name+"="+m.PeerURL)
	}
	for i, m := range c.Members {
		client := fmt.Sprintf("127.0.0.1:%d", ports[2*i])
		s, err := startProcess(t, bin, t.TempDir(), client,
			"--name", m.Name,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", clusterToken,
			"--initial-cluster-state", "new",
		)
		if err != nil {
			c.stop()
			return nil, err
		}
		m.Server = s
	}
	// A member is ready once the cluster has a leader it follows: wait for
	// all at once, as none is ready before a quorum is up, and give up on
	// all as soon as one fails (its process exited).
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range c.Members {
		wg.Go(func() {
			if errs[i] = m.waitReady(ctx); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.stop()
		for _, m := range c.Members {
			if strings.Contains(m.Log(), "address already in use") {
				return nil, fmt.Errorf("%w: %v", errPortTaken, err)
			}
		}
		return nil, err
	}
	return c, nil
}

func (c *Cluster) stop() {
	for _, m := range c.Members {
		if m.Server != nil {
			m.Stop()
		}
	}
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		// Held until all are chosen, so that none repeats.
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Endpoints returns the client addresses of the founding members.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Endpoint)
	}
	return eps
}

// Reservation holds a loopback port until Release. A port named to the
// cluster (member add) before its server binds it stays reserved in
// between: the kernel gives no outgoing connection a port that a socket
// holds.
type Reservation struct {
	l    net.Listener
	Port int
}

// Reserve holds a free loopback port until the reservation is released, at
// the latest when the test ends.
func Reserve(t testing.TB) *Reservation {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a port: %v", err)
	}
	r := &Reservation{l: l, Port: l.Addr().(*net.TCPAddr).Port}
	t.Cleanup(r.Release)
	return r
}

// URL is http://127.0.0.1:<port>.
func (r *Reservation) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", r.Port) }

// Release frees the port.
func (r *Reservation) Release() { _ = r.l.Close() }

// Join starts a member that the cluster already knows (added with member
// add) as name at peer, with initialCluster as printed by member add. The
// peer port is released just before the process starts; Join does not wait
// for the member to catch up (see WaitCaughtUp).
func (c *Cluster) Join(t testing.TB, name string, peer *Reservation, initialCluster string) (*Member, error) {
	t.Helper()
	client := Reserve(t)
	m := &Member{Name: name, PeerURL: peer.URL()}
	peer.Release()
	client.Release()
	s, err := startProcess(t, c.bin, t.TempDir(), fmt.Sprintf("127.0.0.1:%d", client.Port),
		"--name", name,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--initial-cluster", initialCluster,
		"--initial-cluster-token", clusterToken,
		"--initial-cluster-state", "existing",
	)
	if err != nil {
		return nil, err
	}
	m.Server = s
	return m, nil
}

// poll calls cond at once and then at every tick of interval until it
// reports true or fails, or ctx ends. On ctx's end it returns the last
// error cond returned along with ctx's, so that a time-out says what was
// still wrong.
func poll(ctx context.Context, interval time.Duration, cond func(context.Context) (bool, error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// pollInterval is how often conditions on the cluster are checked.
const pollInterval = 20 * time.Millisecond

// Client returns a client of the given endpoints, closed when the test
// ends.
func Client(t testing.TB, eps ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// statuses asks every endpoint for its status, each through a client of its
// own (a client sends a request to any of its endpoints).
func statuses(ctx context.Context, eps []string) ([]*clientv3.StatusResponse, error) {
	out := make([]*clientv3.StatusResponse, len(eps))
	for i, ep := range eps {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, Logger: zap.NewNop()})
		if err != nil {
			return nil, err
		}
		out[i], err = cli.Status(ctx, ep)
		cli.Close()
		if err != nil {
			return nil, fmt.Errorf("status of %s: %w", ep, err)
		}
	}
	return out, nil
}

// Leader returns the endpoint among eps whose member leads, and its ID.
func Leader(ctx context.Context, eps []string) (string, uint64, error) {
	sts, err := statuses(ctx, eps)
	if err != nil {
		return "", 0, err
	}
	for i, st := range sts {
		if st.Header.GetMemberId() == st.Leader {
			return eps[i], st.Leader, nil
		}
	}
	return "", 0, fmt.Errorf("no leader among %v", eps)
}

// MoveLeader makes member to the leader, through whichever of eps
// leads now, and returns once every one of eps follows it.
func MoveLeader(ctx context.Context, eps []string, to uint64) error {
	ep, id, err := Leader(ctx, eps)
	if err != nil {
		return err
	}
	if id != to {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		_, err = cli.MoveLeader(ctx, to)
		cli.Close()
		if err != nil {
			return fmt.Errorf("move leader to %x: %w", to, err)
		}
	}
	return poll(ctx, pollInterval, func(ctx context.Context) (bool, error) {
		sts, err := statuses(ctx, eps)
		if err != nil {
			return false, err
		}
		for _, st := range sts {
			if st.Leader != to {
				return false, fmt.Errorf("%x follows %x", st.Header.GetMemberId(), st.Leader)
			}
		}
		return true, nil
	})
}

// WaitSettled waits until the members at eps agree on the leader and have
// all applied the leader's whole log, including the entries a new etcd
// cluster writes by itself shortly after starting (cluster and storage
// version, the latter reported as soon as it is set), and until the
// database sizes they report have stopped moving. Call it before comparing
// output that shows raft indexes or sizes, before the first run only:
// nothing read-only moves them again.
//
// It forces no backend commit (Maintenance.Hash would): in etcd a commit
// itself moves the size in use, as the pages it frees return to the free
// list only at a later commit.
func WaitSettled(ctx context.Context, eps []string) error {
	if err := waitApplied(ctx, eps, true); err != nil {
		return err
	}
	return waitQuiet(ctx, eps)
}

// quietInterval spans etcd's backend commit interval (100 ms): a status
// that stays the same across it will not change by itself.
const quietInterval = 150 * time.Millisecond

// waitQuiet waits until two statuses of every member, quietInterval apart,
// show the same sizes and indexes: etcd commits what was applied on a
// timer, and the size in use can move once more after the log is applied.
func waitQuiet(ctx context.Context, eps []string) error {
	type sizes struct{ size, inUse, index, applied int64 }
	var last []sizes
	return poll(ctx, quietInterval, func(ctx context.Context) (bool, error) {
		sts, err := statuses(ctx, eps)
		if err != nil {
			return false, err
		}
		cur := make([]sizes, len(sts))
		for i, st := range sts {
			cur[i] = sizes{st.DbSize, st.DbSizeInUse, int64(st.RaftIndex), int64(st.RaftAppliedIndex)}
		}
		same := slices.Equal(cur, last)
		last = cur
		if !same {
			return false, fmt.Errorf("statuses still changing: %v", cur)
		}
		return true, nil
	})
}

// waitApplied waits until every member at eps follows the same leader,
// which is among them, and has applied its whole log; with storage, until
// each also reports the storage version it settles on (see waitReady).
func waitApplied(ctx context.Context, eps []string, storage bool) error {
	return poll(ctx, pollInterval, func(ctx context.Context) (bool, error) {
		sts, err := statuses(ctx, eps)
		if err != nil {
			return false, err
		}
		var lead *clientv3.StatusResponse
		for _, st := range sts {
			if st.Header.GetMemberId() == st.Leader {
				lead = st
			}
		}
		if lead == nil {
			return false, errors.New("no leader")
		}
		for i, st := range sts {
			switch {
			case st.Leader != lead.Leader:
				return false, fmt.Errorf("%s follows %x, not %x", eps[i], st.Leader, lead.Leader)
			case storage && (st.StorageVersion == "" || st.StorageVersion != storageVersionOf(st.Version)):
				return false, fmt.Errorf("%s has storage version %q yet", eps[i], st.StorageVersion)
			case st.RaftAppliedIndex != lead.RaftIndex:
				return false, fmt.Errorf("%s applied %d of %d", eps[i], st.RaftAppliedIndex, lead.RaftIndex)
			}
		}
		return true, nil
	})
}

// WaitCaughtUp waits until m (a learner that just joined) and the members
// at eps (among them the leader) have all applied the leader's whole log.
// The learner is then as far as etcd requires before it promotes one, and
// its own entry (its name and client URLs) is applied everywhere, so every
// member lists it the same way. It gives up as soon as m exits.
func WaitCaughtUp(ctx context.Context, m *Member, eps []string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-m.Exited():
			cancel(fmt.Errorf("%s exited (%v); log tail:\n%s", m.Name, m.err, tail(m.Log(), 10)))
		case <-ctx.Done():
		}
	}()
	err := waitApplied(ctx, append([]string{m.Endpoint}, eps...), false)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, ctx.Err()) {
		return cause
	}
	return err
}

// WaitReconfigurable waits until the cluster accepts a membership change.
// etcd refuses one (ErrUnhealthy) until the member serving the request
// has been connected to a quorum of its peers for five seconds, which
// nothing but trying shows: this adds a learner at an address nobody
// listens on and removes it at once.
func WaitReconfigurable(ctx context.Context, ep string) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	var added uint64
	var failed error
	err = poll(ctx, 100*time.Millisecond, func(ctx context.Context) (bool, error) {
		ports, err := freePorts(1)
		if err != nil {
			failed = err
			return true, nil
		}
		// One attempt may hang on a cluster electing a leader: bound it,
		// and try again while ctx lasts.
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := cli.MemberAddAsLearner(actx, []string{fmt.Sprintf("http://127.0.0.1:%d", ports[0])})
		cancel()
		switch {
		case errors.Is(err, rpctypes.ErrUnhealthy), errors.Is(err, rpctypes.ErrTimeout),
			errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail), errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost),
			err != nil && ctx.Err() == nil && actx.Err() != nil:
			// The server gave up on this attempt (a cluster still
			// electing or reconnecting): try again while ctx lasts.
			return false, err
		case err != nil:
			failed = err
			return true, nil
		}
		added = resp.Member.ID
		return true, nil
	})
	if err != nil {
		return err
	}
	if failed != nil {
		return fmt.Errorf("member add: %w", failed)
	}
	_, err = cli.MemberRemove(ctx, added)
	return err
}
