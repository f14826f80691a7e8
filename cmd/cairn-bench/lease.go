package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// maxLeaseTTL is etcd's largest lease TTL in seconds (MaxLeaseTTL).
const maxLeaseTTL = 9_000_000_000

// leaseOptions are the flags of the lease-keepalive workload.
type leaseOptions struct {
	leases   int   // granted before the keep-alives; default 10000
	ttl      int64 // seconds; default 60
	inFlight int   // keep-alives in flight per stream; default 64
	keep     bool  // leave the leases to expire instead of revoking them
	existing bool  // keep alive the server's leases instead of granting
}

func (l *leaseOptions) validate(clients int) error {
	switch {
	case l.existing:
		// --leases and --ttl do not apply; the leases are counted once listed.
	case l.leases < 1:
		return fmt.Errorf("--leases %d: must be at least 1", l.leases)
	case l.leases < clients:
		return fmt.Errorf("--leases %d: fewer than --clients %d would leave streams without a lease", l.leases, clients)
	case l.ttl < 1:
		return fmt.Errorf("--ttl %d: must be at least 1", l.ttl)
	case l.ttl > maxLeaseTTL:
		return fmt.Errorf("--ttl %d: etcd allows at most %d", l.ttl, int64(maxLeaseTTL))
	}
	if l.inFlight < 1 {
		return fmt.Errorf("--in-flight %d: must be at least 1", l.inFlight)
	}
	return nil
}

// leaseShare is the leases client i of n keeps alive: every n-th lease from
// the i-th, so shares differ in size by at most one and every lease is in
// exactly one.
func leaseShare(ids []int64, i, n int) []int64 {
	share := make([]int64, 0, (len(ids)+n-1)/n)
	for j := i; j < len(ids); j += n {
		share = append(share, ids[j])
	}
	return share
}

// errLeaseNotFound is a keep-alive answered with TTL 0: the lease does not
// exist, or expired.
var errLeaseNotFound = errors.New("keep-alive answered TTL 0: lease not found")

// checkKeepAlive checks the response to a keep-alive of lease id. The
// server answers a stream's requests in order, so any other ID is a
// protocol error.
func checkKeepAlive(id int64, resp *pb.LeaseKeepAliveResponse) error {
	switch {
	case resp.ID != id:
		return fmt.Errorf("keep-alive of lease %016x answered for lease %016x", id, resp.ID)
	case resp.TTL <= 0:
		return errLeaseNotFound
	}
	return nil
}

// sentKeepAlive is one keep-alive in flight.
type sentKeepAlive struct {
	id   int64
	sent time.Time
}

// pipeline holds the keep-alives in flight on one stream, oldest first,
// and bounds their number: the sender takes a slot before each request
// and the receiver frees it with the response.
type pipeline struct {
	slots chan struct{} // one token per request in flight or about to be
	mu    struct {
		sync.Mutex
		ring    []sentKeepAlive // len(ring) == cap(slots)
		head, n int
	}
}

func newPipeline(depth int) *pipeline {
	p := &pipeline{slots: make(chan struct{}, depth)}
	p.mu.ring = make([]sentKeepAlive, depth)
	return p
}

// acquire waits for a free slot; false when done closes first.
func (p *pipeline) acquire(done <-chan struct{}) bool {
	select {
	case p.slots <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

// release frees a slot taken by acquire that push did not fill.
func (p *pipeline) release() { <-p.slots }

// push records a request about to be sent, in a slot taken by acquire.
func (p *pipeline) push(s sentKeepAlive) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.n == len(p.mu.ring) {
		panic("cairn-bench: pipeline push without a slot")
	}
	p.mu.ring[(p.mu.head+p.mu.n)%len(p.mu.ring)] = s
	p.mu.n++
}

// pop removes the oldest request and frees its slot; false when none is in
// flight.
func (p *pipeline) pop() (sentKeepAlive, bool) {
	p.mu.Lock()
	if p.mu.n == 0 {
		p.mu.Unlock()
		return sentKeepAlive{}, false
	}
	s := p.mu.ring[p.mu.head]
	p.mu.head = (p.mu.head + 1) % len(p.mu.ring)
	p.mu.n--
	p.mu.Unlock()
	<-p.slots
	return s, true
}

// oldest is the send time of the oldest request in flight; false when none.
func (p *pipeline) oldest() (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.n == 0 {
		return time.Time{}, false
	}
	return p.mu.ring[p.mu.head].sent, true
}

// drain pops every request still in flight and returns how many there were.
func (p *pipeline) drain() int {
	n := 0
	for {
		if _, ok := p.pop(); !ok {
			return n
		}
		n++
	}
}

func newLeaseKeepAliveCommand(o *options) *cobra.Command {
	l := &leaseOptions{}
	cmd := &cobra.Command{
		Use:   "lease-keepalive",
		Short: "Benchmark LeaseKeepAlive: pipelined keep-alives on one stream per client",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if l.existing {
				for _, f := range []string{"leases", "ttl"} {
					if cmd.Flags().Changed(f) {
						return fmt.Errorf("--%s does not apply with --existing-leases", f)
					}
				}
				l.keep = true
			}
			if err := o.validate(); err != nil {
				return err
			}
			if err := l.validate(o.clients); err != nil {
				return err
			}
			res, err := runLeaseKeepAlive(cmd.Context(), o, l, os.Stderr)
			if err != nil {
				return err
			}
			return emit(o, res)
		},
	}
	f := cmd.Flags()
	f.IntVar(&l.leases, "leases", 10000, "leases granted before the keep-alives, shared round-robin by the clients")
	f.Int64Var(&l.ttl, "ttl", 60, "TTL of the granted leases in seconds")
	f.IntVar(&l.inFlight, "in-flight", 64, "keep-alives in flight at once on each client's stream")
	f.BoolVar(&l.keep, "keep-leases", false, "leave the leases to expire instead of revoking them at the end")
	f.BoolVar(&l.existing, "existing-leases", false, "keep alive every lease the server has (LeaseLeases) instead of granting; implies --keep-leases")
	return cmd
}
