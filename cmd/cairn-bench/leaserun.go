package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

const leaseWorkload = "lease-keepalive"

// leaseRun is the shared state of the keep-alive phase of one run.
type leaseRun struct {
	o     *options
	l     *leaseOptions
	t     *tally
	next  atomic.Uint64 // next keep-alive number to claim
	start time.Time
}

// runLeaseKeepAlive grants the leases (or lists the server's), sends
// o.total keep-alives over one stream per client, revokes the leases
// unless asked to keep them, and reports the keep-alive phase.
func runLeaseKeepAlive(parent context.Context, o *options, l *leaseOptions, progress io.Writer) (*result, error) {
	clients, err := connect(parent, o)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)

	sum := &leaseSummary{TTL: l.ttl, InFlight: l.inFlight}
	var ids []int64
	if l.existing {
		if ids, err = listLeases(parent, o, clients[0]); err != nil {
			return nil, err
		}
		if len(ids) < o.clients {
			return nil, fmt.Errorf("--existing-leases: the server has %d leases, fewer than --clients %d", len(ids), o.clients)
		}
		sum.TTL = 0
	} else {
		t0 := time.Now()
		ids, err = grantLeases(parent, o, l, clients)
		sum.GrantDuration = time.Since(t0)
		if err != nil {
			sum.finish(parent, o, l, clients, ids, progress)
			if sum.NotRevoked > 0 {
				err = fmt.Errorf("%w (%d leases granted so far left to expire)", err, sum.NotRevoked)
			}
			return nil, err
		}
		fmt.Fprintf(progress, "%s: granted %d leases of TTL %d s in %v\n", leaseWorkload, len(ids), l.ttl, sum.GrantDuration.Round(time.Millisecond))
	}
	sum.Leases = len(ids)
	res := keepAlive(parent, o, l, clients, ids, progress)
	res.Lease = sum
	sum.finish(parent, o, l, clients, ids, progress)
	return res, nil
}

// keepAlive sends o.total keep-alives for ids over one stream per client
// and reports them.
func keepAlive(parent context.Context, o *options, l *leaseOptions, clients []*clientv3.Client, ids []int64, progress io.Writer) *result {
	ctx, abort := context.WithCancel(parent)
	defer abort()
	r := &leaseRun{o: o, l: l, t: newTally(o, abort), start: time.Now()}
	var workers sync.WaitGroup
	for i := range o.clients {
		lc := pb.NewLeaseClient(clients[i%len(clients)].ActiveConnection())
		share := leaseShare(ids, i, o.clients)
		workers.Go(func() { r.client(ctx, lc, share) })
	}
	p := r.t.startProgress(progress, leaseWorkload, o.total, r.start)
	workers.Wait()
	elapsed := time.Since(r.start)
	p.stop()
	return r.t.result(o, leaseWorkload, parent, ctx, elapsed)
}

// finish revokes ids unless the leases are to be kept or the run was
// interrupted, and records the outcome.
func (sum *leaseSummary) finish(ctx context.Context, o *options, l *leaseOptions, clients []*clientv3.Client, ids []int64, progress io.Writer) {
	if l.keep || ctx.Err() != nil {
		sum.NotRevoked = len(ids)
		return
	}
	t0 := time.Now()
	revokeLeases(ctx, o, clients, ids, sum)
	fmt.Fprintf(progress, "%s: revoked %d leases in %v\n", leaseWorkload, sum.Revoked, time.Since(t0).Round(time.Millisecond))
}

// listLeases returns the IDs of every lease the server has.
func listLeases(ctx context.Context, o *options, cli *clientv3.Client) ([]int64, error) {
	rctx, cancel := withTimeout(ctx, o.requestTimeout)
	defer cancel()
	resp, err := cli.Leases(rctx)
	if err != nil {
		return nil, fmt.Errorf("listing the leases: %w", err)
	}
	ids := make([]int64, len(resp.Leases))
	for i, ls := range resp.Leases {
		ids[i] = int64(ls.ID)
	}
	return ids, nil
}

// grantLeases grants l.leases leases from o.clients goroutines. On an
// error it returns the IDs granted so far (unordered) with the error.
func grantLeases(ctx context.Context, o *options, l *leaseOptions, clients []*clientv3.Client) ([]int64, error) {
	ids := make([]int64, l.leases) // 0: not granted; etcd never grants ID 0
	err := forEach(ctx, l.leases, o.clients, func(ctx context.Context, w, i int) error {
		rctx, cancel := withTimeout(ctx, o.requestTimeout)
		defer cancel()
		resp, err := clients[w%len(clients)].Grant(rctx, l.ttl)
		if err != nil {
			return fmt.Errorf("granting lease %d of %d: %w", i+1, l.leases, err)
		}
		ids[i] = int64(resp.ID)
		return nil
	})
	if err != nil {
		granted := ids[:0]
		for _, id := range ids {
			if id != 0 {
				granted = append(granted, id)
			}
		}
		return granted, err
	}
	return ids, nil
}

// revokeLeases revokes ids from o.clients goroutines and records the
// outcome in sum. A lease already gone counts as revoked. It stops at the
// first failure, leaving the rest to expire.
func revokeLeases(ctx context.Context, o *options, clients []*clientv3.Client, ids []int64, sum *leaseSummary) {
	var revoked atomic.Int64
	err := forEach(ctx, len(ids), o.clients, func(ctx context.Context, w, i int) error {
		rctx, cancel := withTimeout(ctx, o.requestTimeout)
		defer cancel()
		_, err := clients[w%len(clients)].Revoke(rctx, clientv3.LeaseID(ids[i]))
		if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return fmt.Errorf("revoking lease %016x: %w", ids[i], err)
		}
		revoked.Add(1)
		return nil
	})
	sum.Revoked = int(revoked.Load())
	sum.NotRevoked = len(ids) - sum.Revoked
	if err != nil {
		sum.RevokeError = err.Error()
	}
}

// forEach calls f(ctx, w, i) for every i in [0, n) from at most parallel
// goroutines, w being the goroutine's number. It hands out no more work
// once ctx ends or a call fails, and returns the first error.
func forEach(ctx context.Context, n, parallel int, f func(ctx context.Context, w, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next    atomic.Int64
		workers sync.WaitGroup
	)
	for w := range min(parallel, n) {
		workers.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, w, i); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	workers.Wait()
	return context.Cause(ctx)
}

// claim takes the number of the next keep-alive; false once all are taken.
func (r *leaseRun) claim() (uint64, bool) {
	n := r.next.Add(1) - 1
	return n, n < r.o.total
}

// client keeps its share of the leases alive until every keep-alive of the
// run is claimed, on one stream at a time: a stream that fails is counted
// and replaced.
func (r *leaseRun) client(ctx context.Context, lc pb.LeaseClient, ids []int64) {
	if len(ids) == 0 {
		return // validation gives every client a lease; nothing to do without
	}
	pos := 0 // the share's next lease, carried over to a new stream
	for ctx.Err() == nil && r.next.Load() < r.o.total {
		r.stream(ctx, lc, ids, &pos)
	}
}

// errStreamClosed is why a stream ended when the server closed it; harmless
// once nothing is in flight.
var errStreamClosed = errors.New("the server closed the keep-alive stream")

// stream runs one keep-alive stream: a sender goroutine pipelines the
// requests, this one reads the responses in order. Every keep-alive it
// claims ends as a success or a failure, unless the run is stopped.
func (r *leaseRun) stream(ctx context.Context, lc pb.LeaseClient, ids []int64, pos *int) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := lc.LeaseKeepAlive(sctx)
	if err != nil {
		// Count the failure against a keep-alive, so that a server that
		// refuses every stream cannot keep the run going forever.
		if _, ok := r.claim(); ok && ctx.Err() == nil {
			r.t.fail(fmt.Errorf("opening a keep-alive stream: %w", err))
		}
		return
	}
	q := newPipeline(r.l.inFlight)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		r.send(ctx, sctx, stream, q, ids, pos)
	}()
	if r.o.requestTimeout > 0 {
		go r.watchdog(sctx, cancel, q) // ends with sctx
	}
	cancel(r.receive(stream, q))
	<-sent
	n := q.drain()
	if n == 0 || ctx.Err() != nil {
		return // nothing lost, or the run was stopped: not the server's failure
	}
	err = context.Cause(sctx)
	for range n {
		r.t.fail(err)
	}
}

// send claims keep-alives and sends them, round-robin over ids, as the
// pipeline frees slots. When none are left it half-closes the stream, so
// that the server ends it after the last response.
func (r *leaseRun) send(ctx, sctx context.Context, stream pb.Lease_LeaseKeepAliveClient, q *pipeline, ids []int64, pos *int) {
	for q.acquire(sctx.Done()) {
		if sctx.Err() != nil { // acquire may pick the slot over a done stream
			q.release()
			return
		}
		n, ok := r.claim()
		if !ok {
			q.release()
			stream.CloseSend()
			return
		}
		if r.o.rate > 0 && !waitUntil(sctx, scheduled(r.start, n, r.o.rate)) {
			q.release()
			if ctx.Err() == nil {
				r.t.fail(context.Cause(sctx)) // claimed, never sent: the stream failed meanwhile
			}
			return
		}
		id := ids[*pos]
		*pos = (*pos + 1) % len(ids)
		q.push(sentKeepAlive{id: id, sent: time.Now()})
		if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			return // the receiver sees the stream fail and counts what is in flight
		}
	}
}

// receive reads responses until the stream ends, matching each with the
// oldest keep-alive in flight. It returns why the stream ended.
func (r *leaseRun) receive(stream pb.Lease_LeaseKeepAliveClient, q *pipeline) error {
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return errStreamClosed
		}
		if err != nil {
			return err
		}
		now := time.Now()
		s, ok := q.pop()
		if !ok {
			return fmt.Errorf("response for lease %016x with no keep-alive in flight", resp.ID)
		}
		if err := checkKeepAlive(s.id, resp); err != nil {
			r.t.fail(err)
			continue
		}
		r.t.lat.record(now.Sub(s.sent))
	}
}

// watchdog fails the stream once its oldest keep-alive has waited longer
// than --request-timeout, checking four times per timeout.
func (r *leaseRun) watchdog(sctx context.Context, cancel context.CancelCauseFunc, q *pipeline) {
	d := r.o.requestTimeout
	tick := time.NewTicker(d / 4)
	defer tick.Stop()
	for {
		select {
		case <-sctx.Done():
			return
		case now := <-tick.C:
			if sent, ok := q.oldest(); ok && now.Sub(sent) > d {
				cancel(fmt.Errorf("no keep-alive response within --request-timeout %v", d))
				return
			}
		}
	}
}
