package differential

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
)

// Watch streams are compared as the sequence of WatchResponses each side
// sends for the same requests and writes, every field after the header
// normalization of compare_test.go.
//
// One normalization, forced by etcd itself: responses are compared per
// watch_id, in the order each side sent them, not as one interleaved
// sequence. etcd's send loop picks at random between its control channel
// (created, canceled) and its event channel, and notifies the watchers of
// one write in map order, so the interleaving of different watchers'
// responses differs between two runs of etcd. Within one watch_id etcd's
// order is fixed: created first (events wait for it), then events in
// revision order. Progress notifications for the whole stream carry
// watch_id -1 and form their own group.
//
// Waiting is by condition, never by time: a step collects an exact number
// of responses (the case knows how many etcd sends), or sends a progress
// request and collects up to its answer, which etcd queues behind every
// event it has already queued. A progress request is answered only when
// every watcher on the stream is synced and none starts in the future, so
// cases use it only then. Each collection has a deadline; etcd missing it
// is a harness error, the other side missing it is a difference.

// watchWait bounds one collection on one side.
const watchWait = 10 * time.Second

// wstream is one side's Watch stream and everything it has received.
type wstream struct {
	s      *side
	st     pb.Watch_WatchClient
	err    error // error opening the stream
	recv   chan wrecv
	cancel context.CancelFunc
	done   bool // the stream ended (recv delivered an error)
}

type wrecv struct {
	r   *pb.WatchResponse
	err error
}

// watchPair is a Watch stream open on both sides.
type watchPair struct {
	p    *pair
	name string
	e, o *wstream
}

// openWatch opens a raw Watch stream on each side, closed at test end.
func (p *pair) openWatch(name string) *watchPair {
	p.t.Helper()
	return &watchPair{p: p, name: name, e: openWstream(p, p.etcd), o: openWstream(p, p.other)}
}

func openWstream(p *pair, s *side) *wstream {
	ctx, cancel := context.WithCancel(context.Background())
	p.t.Cleanup(cancel)
	w := &wstream{s: s, cancel: cancel, recv: make(chan wrecv, 1024)}
	w.st, w.err = pb.NewWatchClient(s.c.ActiveConnection()).Watch(ctx)
	if w.err != nil {
		return w
	}
	go func() {
		for {
			r, err := w.st.Recv()
			select {
			case w.recv <- wrecv{r, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return w
}

// send sends r on both streams.
func (w *watchPair) send(r *pb.WatchRequest) {
	w.p.t.Helper()
	for _, s := range []*wstream{w.e, w.o} {
		if s.err == nil && !s.done {
			if err := s.st.Send(r); err != nil {
				s.err = err
			}
		}
	}
}

func (w *watchPair) create(r *pb.WatchCreateRequest) {
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: r}})
}

func (w *watchPair) cancelWatch(id int64) {
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}})
}

func (w *watchPair) requestProgress() {
	w.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
}

// isStreamProgress is the answer to a progress request: no events, no
// state change, watch_id -1.
func isStreamProgress(r *pb.WatchResponse) bool {
	return r.WatchId == -1 && len(r.Events) == 0 && !r.Created && !r.Canceled && r.CompactRevision == 0
}

// collected is what one side sent during one step.
type collected struct {
	resps   []*pb.WatchResponse
	err     error // the stream ended with err
	timeout bool  // done never held within watchWait
}

// collect receives until done holds for what this step has received, the
// stream ends, or watchWait passes.
func (s *wstream) collect(done func([]*pb.WatchResponse) bool) collected {
	var c collected
	if s.err != nil {
		c.err = s.err
		return c
	}
	if s.done {
		return c
	}
	deadline := time.NewTimer(watchWait)
	defer deadline.Stop()
	for !done(c.resps) {
		select {
		case m := <-s.recv:
			if m.err != nil {
				s.done = true
				c.err = m.err
				return c
			}
			c.resps = append(c.resps, m.r)
		case <-deadline.C:
			c.timeout = true
			return c
		}
	}
	return c
}

// expect collects exactly n responses on each side and compares them. It
// returns etcd's.
func (w *watchPair) expect(step string, n int) []*pb.WatchResponse {
	w.p.t.Helper()
	return w.gather(step, fmt.Sprintf("%d responses", n), func(r []*pb.WatchResponse) bool { return len(r) >= n })
}

// progress sends a progress request and collects, on each side, every
// response up to and including its answer. Only for streams whose
// watchers are all synced (see above).
func (w *watchPair) progress(step string) []*pb.WatchResponse {
	w.p.t.Helper()
	w.requestProgress()
	return w.gather(step+" (up to the progress answer)", "the answer to a progress request", func(r []*pb.WatchResponse) bool {
		return len(r) > 0 && isStreamProgress(r[len(r)-1])
	})
}

func (w *watchPair) gather(step, want string, done func([]*pb.WatchResponse) bool) []*pb.WatchResponse {
	w.p.t.Helper()
	return w.report(step, want, w.e.collect(done), w.o.collect(done))
}

func (w *watchPair) report(step, want string, e, o collected) []*pb.WatchResponse {
	w.p.t.Helper()
	name := w.name + ": " + step
	if verbose {
		w.p.t.Logf("%s\n  etcd: %s", name, showCollected(e))
	}
	if e.timeout || e.err != nil {
		w.p.t.Errorf("harness: %s: etcd did not send %s: %s", name, want, showCollected(e))
	}
	var d []string
	switch {
	case e.err != nil || o.err != nil:
		d = compareOutcomes(outcome{resp: &pb.WatchResponse{}, err: e.err}, outcome{resp: &pb.WatchResponse{}, err: o.err})
	}
	if o.timeout {
		d = append(d, fmt.Sprintf("other sent nothing more within %v, waiting for %s", watchWait, want))
	}
	d = append(d, compareWatchResponses(e.resps, o.resps)...)
	if len(d) > 0 {
		*w.p.diffs++
		var b strings.Builder
		fmt.Fprintf(&b, "DIFFERENCE %s\n", name)
		fmt.Fprintf(&b, "  etcd:  %s\n", showCollected(e))
		fmt.Fprintf(&b, "  %s: %s\n", w.p.other.name, showCollected(o))
		for _, l := range d {
			fmt.Fprintf(&b, "    - %s\n", strings.Replace(l, "other", w.p.other.name, 1))
		}
		w.p.t.Error(b.String())
	}
	return e.resps
}

func showCollected(c collected) string {
	var parts []string
	for i, r := range c.resps {
		parts = append(parts, fmt.Sprintf("\n    [%d] %s", i, show(r)))
	}
	if c.err != nil {
		parts = append(parts, fmt.Sprintf("\n    stream ended: %s", outcome{err: c.err}))
	}
	if c.timeout {
		parts = append(parts, "\n    (timed out)")
	}
	if len(parts) == 0 {
		return "no response"
	}
	return fmt.Sprintf("%d responses:%s", len(c.resps), strings.Join(parts, ""))
}

// compareWatchResponses compares e and o per watch_id (see above).
func compareWatchResponses(e, o []*pb.WatchResponse) []string {
	group := func(rs []*pb.WatchResponse) map[int64][]*pb.WatchResponse {
		g := map[int64][]*pb.WatchResponse{}
		for _, r := range rs {
			g[r.WatchId] = append(g[r.WatchId], r)
		}
		return g
	}
	ge, go_ := group(e), group(o)
	var ids []int64
	for id := range ge {
		ids = append(ids, id)
	}
	for id := range go_ {
		if _, ok := ge[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var d []string
	for _, id := range ids {
		a, b := ge[id], go_[id]
		if len(a) != len(b) {
			d = append(d, fmt.Sprintf("responses with watch_id %d: etcd %d, other %d", id, len(a), len(b)))
		}
		for i := 0; i < min(len(a), len(b)); i++ {
			diffMessage(fmt.Sprintf("watch_id %d response %d", id, i), normalize(a[i]).ProtoReflect(), normalize(b[i]).ProtoReflect(), &d)
		}
		for i := len(b); i < len(a); i++ {
			d = append(d, fmt.Sprintf("watch_id %d response %d: only etcd has {%s}", id, i, show(a[i])))
		}
		for i := len(a); i < len(b); i++ {
			d = append(d, fmt.Sprintf("watch_id %d response %d: only other has {%s}", id, i, show(b[i])))
		}
	}
	return d
}

// watchedID is the watch_id etcd gave the created response in rs, or -1.
func watchedID(rs []*pb.WatchResponse) int64 {
	for _, r := range rs {
		if r.Created {
			return r.WatchId
		}
	}
	return -1
}

// Watch create requests, short.

func wKey(key string) *pb.WatchCreateRequest { return &pb.WatchCreateRequest{Key: b(key)} }

func wPrefix(key string) *pb.WatchCreateRequest {
	return &pb.WatchCreateRequest{Key: b(key), RangeEnd: prefixEnd(key)}
}

func wFrom(key string) *pb.WatchCreateRequest {
	return &pb.WatchCreateRequest{Key: b(key), RangeEnd: fromKey}
}

func withRev(r *pb.WatchCreateRequest, rev int64) *pb.WatchCreateRequest {
	r.StartRevision = rev
	return r
}

func withID(r *pb.WatchCreateRequest, id int64) *pb.WatchCreateRequest {
	r.WatchId = id
	return r
}

func withPrevKV(r *pb.WatchCreateRequest) *pb.WatchCreateRequest {
	r.PrevKv = true
	return r
}

// clientv3 watches, converted to WatchResponse so the same comparison
// applies. clientv3 hides watch_id; cancel_reason holds the text of Err().
func clientWatchResponse(r clientv3.WatchResponse) *pb.WatchResponse {
	m := &pb.WatchResponse{
		Header:          proto.Clone(r.Header).(*pb.ResponseHeader),
		CompactRevision: r.CompactRevision,
		Canceled:        r.Canceled,
		Created:         r.Created,
	}
	for _, ev := range r.Events {
		m.Events = append(m.Events, proto.Clone((*mvccpb.Event)(ev)).(*mvccpb.Event))
	}
	if err := r.Err(); err != nil {
		m.CancelReason = err.Error()
	}
	return m
}

// cwatch is a clientv3 watch on both sides.
type cwatch struct {
	p    *pair
	name string
	e, o clientv3.WatchChan
}

// clientWatch starts s.c.Watch(key, opts...) on each side, cancelled at
// test end.
func (p *pair) clientWatch(name, key string, opts ...clientv3.OpOption) *cwatch {
	start := func(s *side) clientv3.WatchChan {
		ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
		p.t.Cleanup(cancel)
		return s.c.Watch(ctx, key, opts...)
	}
	return &cwatch{p: p, name: name, e: start(p.etcd), o: start(p.other)}
}

func (c *cwatch) expect(step string, n int) []*pb.WatchResponse {
	c.p.t.Helper()
	get := func(ch clientv3.WatchChan) collected {
		var r collected
		deadline := time.NewTimer(watchWait)
		defer deadline.Stop()
		for len(r.resps) < n {
			select {
			case m, ok := <-ch:
				if !ok {
					r.err = fmt.Errorf("watch channel closed")
					return r
				}
				r.resps = append(r.resps, clientWatchResponse(m))
			case <-deadline.C:
				r.timeout = true
				return r
			}
		}
		return r
	}
	w := &watchPair{p: c.p, name: c.name}
	e, o := get(c.e), get(c.o)
	return w.report(step, fmt.Sprintf("%d responses", n), e, o)
}
