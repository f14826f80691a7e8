package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

func TestLeaseOptionsValidate(t *testing.T) {
	ok := leaseOptions{leases: 10000, ttl: 60, inFlight: 64}
	tests := []struct {
		name    string
		edit    func(*leaseOptions)
		clients int
		wantErr bool
	}{
		{"defaults", func(*leaseOptions) {}, 100, false},
		{"no leases", func(l *leaseOptions) { l.leases = 0 }, 1, true},
		{"fewer leases than clients", func(l *leaseOptions) { l.leases = 99 }, 100, true},
		{"one lease per client", func(l *leaseOptions) { l.leases = 100 }, 100, false},
		{"zero TTL", func(l *leaseOptions) { l.ttl = 0 }, 1, true},
		{"etcd's largest TTL", func(l *leaseOptions) { l.ttl = maxLeaseTTL }, 1, false},
		{"TTL above etcd's largest", func(l *leaseOptions) { l.ttl = maxLeaseTTL + 1 }, 1, true},
		{"nothing in flight", func(l *leaseOptions) { l.inFlight = 0 }, 1, true},
		{"existing leases ignore --leases", func(l *leaseOptions) { l.existing = true; l.leases = 0 }, 100, false},
		{"existing leases still need a pipeline", func(l *leaseOptions) { l.existing = true; l.inFlight = 0 }, 1, true},
	}
	for _, tt := range tests {
		l := ok
		tt.edit(&l)
		if err := l.validate(tt.clients); (err != nil) != tt.wantErr {
			t.Errorf("%s: validate = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestLeaseCommandFlags checks the flag combinations refused before any
// connection is made.
func TestLeaseCommandFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"lease-keepalive", "--existing-leases", "--ttl", "5"}, "--ttl does not apply"},
		{[]string{"lease-keepalive", "--existing-leases", "--leases", "5"}, "--leases does not apply"},
		{[]string{"--clients", "4", "lease-keepalive", "--leases", "3"}, "fewer than --clients 4"},
		{[]string{"lease-keepalive", "--in-flight", "0"}, "--in-flight 0"},
		{[]string{"--total", "0", "lease-keepalive"}, "--total 0"},
	}
	for _, tt := range tests {
		cmd := newRootCommand()
		cmd.SetArgs(tt.args)
		cmd.SetOut(io.Discard)
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want one containing %q", tt.args, err, tt.want)
		}
	}
}

func TestLeaseShare(t *testing.T) {
	for _, tc := range []struct{ leases, clients int }{{10000, 100}, {10, 3}, {3, 3}, {7, 1}, {101, 10}} {
		ids := make([]int64, tc.leases)
		for i := range ids {
			ids[i] = int64(1000 + i)
		}
		var all []int64
		smallest, largest := tc.leases, 0
		for i := range tc.clients {
			share := leaseShare(ids, i, tc.clients)
			all = append(all, share...)
			smallest, largest = min(smallest, len(share)), max(largest, len(share))
		}
		slices.Sort(all)
		if !slices.Equal(all, ids) {
			t.Errorf("%+v: the shares do not hold every lease exactly once", tc)
		}
		if largest-smallest > 1 {
			t.Errorf("%+v: shares of %d to %d leases", tc, smallest, largest)
		}
	}
}

func TestCheckKeepAlive(t *testing.T) {
	tests := []struct {
		name     string
		resp     *pb.LeaseKeepAliveResponse
		wantErr  bool
		notFound bool
	}{
		{"renewed", &pb.LeaseKeepAliveResponse{ID: 7, TTL: 60}, false, false},
		{"not found", &pb.LeaseKeepAliveResponse{ID: 7, TTL: 0}, true, true},
		{"another lease", &pb.LeaseKeepAliveResponse{ID: 8, TTL: 60}, true, false},
	}
	for _, tt := range tests {
		err := checkKeepAlive(7, tt.resp)
		if (err != nil) != tt.wantErr || errors.Is(err, errLeaseNotFound) != tt.notFound {
			t.Errorf("%s: %v, want error %v (not found %v)", tt.name, err, tt.wantErr, tt.notFound)
		}
	}
}

func TestPipeline(t *testing.T) {
	p := newPipeline(3)
	// tryAcquire takes a slot if one is free, without waiting.
	tryAcquire := func() bool {
		select {
		case p.slots <- struct{}{}:
			return true
		default:
			return false
		}
	}
	base := time.Unix(1_795_000_000, 0)
	var want []int64
	next := int64(0)
	// Fill and partly empty the pipeline, past the ring's wrap-around,
	// checking the order and the oldest send time.
	for round := range 5 {
		for len(want) < 3 {
			if !p.acquire(nil) {
				t.Fatalf("round %d: acquire failed with a slot free", round)
			}
			p.push(sentKeepAlive{id: next, sent: base.Add(time.Duration(next))})
			want = append(want, next)
			next++
		}
		closed := make(chan struct{})
		close(closed)
		if p.acquire(closed) {
			t.Fatalf("round %d: acquire succeeded with every slot taken", round)
		}
		for range round%3 + 1 {
			oldest, ok := p.oldest()
			if !ok || !oldest.Equal(base.Add(time.Duration(want[0]))) {
				t.Fatalf("round %d: oldest %v %v, want the send time of %d", round, oldest, ok, want[0])
			}
			s, ok := p.pop()
			if !ok || s.id != want[0] {
				t.Fatalf("round %d: pop %d %v, want %d", round, s.id, ok, want[0])
			}
			want = want[1:]
		}
	}
	if n := p.drain(); n != len(want) {
		t.Fatalf("drain = %d, want %d", n, len(want))
	}
	if _, ok := p.pop(); ok {
		t.Fatal("pop after drain found a request")
	}
	if _, ok := p.oldest(); ok {
		t.Fatal("oldest after drain found a request")
	}
	for range 3 {
		if !tryAcquire() {
			t.Fatal("drain did not free every slot")
		}
	}
	if tryAcquire() {
		t.Fatal("more slots than the depth")
	}
	p.release()
	if !tryAcquire() {
		t.Fatal("release did not free a slot")
	}
}

func TestForEach(t *testing.T) {
	const n, parallel = 1000, 7
	var (
		calls       = make([]atomic.Int32, n)
		running     atomic.Int32
		mostRunning atomic.Int32
	)
	err := forEach(context.Background(), n, parallel, func(_ context.Context, w, i int) error {
		if w < 0 || w >= parallel {
			t.Errorf("worker %d out of range", w)
		}
		cur := running.Add(1)
		for m := mostRunning.Load(); cur > m && !mostRunning.CompareAndSwap(m, cur); m = mostRunning.Load() {
		}
		calls[i].Add(1)
		running.Add(-1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("item %d: %d calls, want 1", i, c)
		}
	}
	if m := mostRunning.Load(); m > parallel {
		t.Fatalf("%d calls at once, want at most %d", m, parallel)
	}

	boom := errors.New("boom")
	var after atomic.Int32
	err = forEach(context.Background(), n, 1, func(_ context.Context, _, i int) error {
		if i > 10 {
			after.Add(1)
		}
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("forEach = %v, want %v", err, boom)
	}
	if after.Load() != 0 {
		t.Fatalf("%d calls after the failure", after.Load())
	}
}

// fakeLeaseClient serves LeaseKeepAlive streams from a script: stream k
// (from 0) answers with answer(k, request number on the stream, request);
// a nil response with a nil error never answers, a non-nil error fails the
// stream. Streams listed in refuse fail to open.
type fakeLeaseClient struct {
	pb.LeaseClient
	answer  func(stream, n int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error)
	refuse  map[int]bool
	streams atomic.Int32
}

func (c *fakeLeaseClient) LeaseKeepAlive(ctx context.Context, _ ...grpc.CallOption) (grpc.BidiStreamingClient[pb.LeaseKeepAliveRequest, pb.LeaseKeepAliveResponse], error) {
	k := int(c.streams.Add(1) - 1)
	if c.refuse[k] {
		return nil, fmt.Errorf("stream %d refused", k)
	}
	return &fakeStream{ctx: ctx, k: k, c: c, reqs: make(chan *pb.LeaseKeepAliveRequest, 1<<16)}, nil
}

type fakeStream struct {
	grpc.ClientStream
	ctx  context.Context
	k, n int
	c    *fakeLeaseClient
	reqs chan *pb.LeaseKeepAliveRequest
}

func (s *fakeStream) Send(req *pb.LeaseKeepAliveRequest) error {
	select {
	case s.reqs <- req:
		return nil
	case <-s.ctx.Done():
		return io.EOF // as gRPC does; Recv tells why
	}
}

func (s *fakeStream) CloseSend() error { close(s.reqs); return nil }

func (s *fakeStream) Recv() (*pb.LeaseKeepAliveResponse, error) {
	for {
		select {
		case req, ok := <-s.reqs:
			if !ok {
				return nil, io.EOF
			}
			s.n++
			resp, err := s.c.answer(s.k, s.n-1, req)
			if resp != nil || err != nil {
				return resp, err
			}
			<-s.ctx.Done() // silent from here on
			return nil, s.ctx.Err()
		case <-s.ctx.Done():
			return nil, s.ctx.Err()
		}
	}
}

func renewed(req *pb.LeaseKeepAliveRequest) *pb.LeaseKeepAliveResponse {
	return &pb.LeaseKeepAliveResponse{ID: req.ID, TTL: 60}
}

// TestKeepAliveCounts drives one client against scripted streams and checks
// that every keep-alive ends as exactly one success or one failure, however
// the streams fail.
func TestKeepAliveCounts(t *testing.T) {
	const total = 1000
	ids := []int64{11, 12, 13, 14}
	tests := []struct {
		name        string
		answer      func(stream, n int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error)
		refuse      map[int]bool
		wantErrors  uint64 // exact; ^0: at least one, at most 2*inFlight
		wantSample  string
		wantStreams int32
	}{{
		name: "every keep-alive answered",
		answer: func(_, _ int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
			return renewed(req), nil
		},
		wantStreams: 1,
	}, {
		name: "one lease not found",
		answer: func(_, _ int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
			if req.ID == 14 {
				return &pb.LeaseKeepAliveResponse{ID: 14}, nil
			}
			return renewed(req), nil
		},
		wantErrors:  total / 4, // the leases are kept alive round-robin
		wantSample:  errLeaseNotFound.Error(),
		wantStreams: 1,
	}, {
		name: "answers for the wrong lease",
		answer: func(_, n int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
			if n%10 == 0 {
				return &pb.LeaseKeepAliveResponse{ID: req.ID + 100, TTL: 60}, nil
			}
			return renewed(req), nil
		},
		wantErrors:  total / 10,
		wantSample:  "answered for lease",
		wantStreams: 1,
	}, {
		name: "the first stream fails",
		answer: func(stream, n int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
			if stream == 0 && n == 100 {
				return nil, errors.New("connection reset")
			}
			return renewed(req), nil
		},
		wantErrors:  ^uint64(0),
		wantSample:  "connection reset",
		wantStreams: 2,
	}, {
		name: "the first stream goes silent",
		answer: func(stream, n int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
			if stream == 0 && n >= 100 {
				return nil, nil
			}
			return renewed(req), nil
		},
		wantErrors:  ^uint64(0),
		wantSample:  "no keep-alive response within --request-timeout",
		wantStreams: 2,
	}, {
		name: "the first two streams are refused",
		answer: func(_, _ int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
			return renewed(req), nil
		},
		refuse:      map[int]bool{0: true, 1: true},
		wantErrors:  2,
		wantSample:  "stream 1 refused",
		wantStreams: 3,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &options{total: total, requestTimeout: 200 * time.Millisecond}
			l := &leaseOptions{inFlight: 8}
			ctx, abort := context.WithCancel(context.Background())
			defer abort()
			r := &leaseRun{o: o, l: l, t: newTally(o, abort), start: time.Now()}
			c := &fakeLeaseClient{answer: tt.answer, refuse: tt.refuse}
			r.client(ctx, c, ids)

			ok, bad := r.t.lat.total(), r.t.failed.Load()
			if ok+bad != total {
				t.Fatalf("%d succeeded + %d failed = %d, want %d", ok, bad, ok+bad, total)
			}
			if tt.wantErrors == ^uint64(0) {
				if bad < 1 || bad > 2*uint64(l.inFlight) {
					t.Fatalf("%d failed, want 1 to %d (those in flight on the failed stream)", bad, 2*l.inFlight)
				}
			} else if bad != tt.wantErrors {
				t.Fatalf("%d failed, want %d", bad, tt.wantErrors)
			}
			if s := r.t.samples.list(); tt.wantSample != "" && !slices.ContainsFunc(s, func(m string) bool { return strings.Contains(m, tt.wantSample) }) {
				t.Fatalf("error samples %q, want one with %q", s, tt.wantSample)
			}
			if n := c.streams.Load(); n != tt.wantStreams {
				t.Fatalf("%d streams opened, want %d", n, tt.wantStreams)
			}
		})
	}
}

// TestKeepAlivePipelined checks that a stream keeps --in-flight
// keep-alives outstanding, and never more. The fake answers request n only
// once the client has claimed request n+inFlight-1 (or all there are), so a
// client that waited for each answer would never get one.
func TestKeepAlivePipelined(t *testing.T) {
	const inFlight = 8
	o := &options{total: 400, requestTimeout: 10 * time.Second}
	l := &leaseOptions{inFlight: inFlight}
	ctx, abort := context.WithCancel(context.Background())
	defer abort()
	r := &leaseRun{o: o, l: l, t: newTally(o, abort), start: time.Now()}
	var overflow atomic.Uint64 // the most claims beyond n+inFlight seen
	c := &fakeLeaseClient{answer: func(_, n int, req *pb.LeaseKeepAliveRequest) (*pb.LeaseKeepAliveResponse, error) {
		full := min(uint64(n+inFlight), o.total)
		for deadline := time.Now().Add(5 * time.Second); r.next.Load() < full; runtime.Gosched() {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("request %d: only %d claimed, the pipeline never filled", n, r.next.Load())
			}
		}
		// Answers 0..n-1 freed n slots: no more than n+inFlight claims.
		if claimed := r.next.Load(); claimed > uint64(n+inFlight) {
			overflow.Store(claimed - uint64(n+inFlight))
		}
		return renewed(req), nil
	}}
	r.client(ctx, c, []int64{1, 2, 3})
	if ok, bad := r.t.lat.total(), r.t.failed.Load(); ok != o.total || bad != 0 {
		t.Fatalf("%d succeeded, %d failed (%q), want %d and 0", ok, bad, r.t.samples.list(), o.total)
	}
	if n := overflow.Load(); n > 0 {
		t.Fatalf("%d keep-alives beyond --in-flight %d claimed", n, inFlight)
	}
}
