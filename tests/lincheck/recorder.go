package lincheck

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Recorder records the operations of any number of Clients into one
// History, timed by one monotonic clock. It is safe for concurrent use.
type Recorder struct {
	start  time.Time     // origin of the clock; times are time.Since(start), which is monotonic
	prefix string        // "lincheck/<random>/"; see KeyPrefix
	values atomic.Uint64 // source of unique values for Workload

	mu struct {
		sync.Mutex
		ops        History
		nextClient int // next porcupine ClientId to hand out
	}
}

// NewRecorder returns an empty Recorder whose clock starts now.
func NewRecorder() *Recorder {
	return &Recorder{start: time.Now(), prefix: fmt.Sprintf("lincheck/%08x/", rand.Uint32())}
}

// KeyPrefix returns a key prefix unique to this Recorder, "lincheck/"
// followed by 8 random hex digits and "/". The model starts every key
// absent, so a history may only touch keys nobody wrote before the
// Recorder started; keys under this prefix qualify even on a cluster that
// earlier histories used. Workload uses it by default.
func (r *Recorder) KeyPrefix() string { return r.prefix }

func (r *Recorder) now() int64 { return int64(time.Since(r.start)) }

// History returns a copy of everything recorded so far.
func (r *Recorder) History() History {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append(History(nil), r.mu.ops...)
}

// uniqueValue returns a value never returned before by this Recorder, so
// that every write in a history is distinguishable.
func (r *Recorder) uniqueValue() string {
	return "v" + strconv.FormatUint(r.values.Add(1), 10)
}

// Client returns a recording client that issues its operations through kv
// (normally a *clientv3.Client). A Client stands for one sequential process:
// use it from one goroutine at a time, or the visualisation shows its
// operations overlapping (the check itself stays correct).
func (r *Recorder) Client(kv clientv3.KV) *Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &Client{r: r, kv: kv, id: r.mu.nextClient}
	r.mu.nextClient++
	return c
}

// Client records the operations it issues into its Recorder. Every method
// records the operation whatever happens, then returns the client's error
// unchanged; see Classify for how an error becomes an Outcome.
type Client struct {
	r  *Recorder
	kv clientv3.KV
	id int // porcupine ClientId; guarded by r.mu
}

// Get reads key linearizably.
func (c *Client) Get(ctx context.Context, key string) (Value, error) {
	return c.get(ctx, key)
}

// GetSerializable reads key with clientv3.WithSerializable: the member
// answers from its local state without asking the leader, so the read may
// be stale. It is recorded as an ordinary Get, which the checker holds to
// linearizability; it exists to show that the checker catches stale reads.
func (c *Client) GetSerializable(ctx context.Context, key string) (Value, error) {
	return c.get(ctx, key, clientv3.WithSerializable())
}

func (c *Client) get(ctx context.Context, key string, opts ...clientv3.OpOption) (Value, error) {
	in := Input{Kind: OpGet, Key: key}
	call := c.r.now()
	resp, err := c.kv.Get(ctx, key, opts...)
	ret := c.r.now()
	out := outputOf(err)
	if err == nil {
		out.Value = valueOf(resp.Kvs)
	}
	c.record(in, out, call, ret)
	return out.Value, err
}

// Put writes value to key. It returns the value it replaced (etcd's
// prev_kv), which the checker holds to linearizability too.
func (c *Client) Put(ctx context.Context, key, value string) (prev Value, err error) {
	in := Input{Kind: OpPut, Key: key, Value: value}
	call := c.r.now()
	resp, err := c.kv.Put(ctx, key, value, clientv3.WithPrevKV())
	ret := c.r.now()
	out := outputOf(err)
	if err == nil && resp.PrevKv != nil {
		out.Value = Some(string(resp.PrevKv.Value))
	}
	c.record(in, out, call, ret)
	return out.Value, err
}

// Delete deletes key and returns the value it held (Absent if none).
func (c *Client) Delete(ctx context.Context, key string) (prev Value, err error) {
	in := Input{Kind: OpDelete, Key: key}
	call := c.r.now()
	resp, err := c.kv.Delete(ctx, key, clientv3.WithPrevKV())
	ret := c.r.now()
	out := outputOf(err)
	if err == nil {
		out.Value = valueOf(resp.PrevKvs)
	}
	c.record(in, out, call, ret)
	return out.Value, err
}

// CAS writes value to key if the key holds expected; Absent expects the key
// not to exist. It is one Txn: If(Value(key) = expected, or
// CreateRevision(key) = 0 for Absent) Then(Put) Else(Get). It returns
// whether the write happened, and was, the value the compare saw (expected
// when swapped, read by the Else branch otherwise). A failed compare is not
// an error.
func (c *Client) CAS(ctx context.Context, key string, expected Value, value string) (swapped bool, was Value, err error) {
	in := Input{Kind: OpCAS, Key: key, Value: value, Expected: expected}
	cmp := clientv3.Compare(clientv3.Value(key), "=", expected.Data)
	if !expected.Present {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	call := c.r.now()
	resp, err := c.kv.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, value)).Else(clientv3.OpGet(key)).Commit()
	ret := c.r.now()
	out := outputOf(err)
	switch {
	case err != nil:
	case resp.Succeeded:
		out.Value = expected
	case len(resp.Responses) == 1 && resp.Responses[0].GetResponseRange() != nil:
		out.Outcome = NotApplied
		out.Value = valueOf(resp.Responses[0].GetResponseRange().Kvs)
	default:
		// The compare failed, so nothing was written, but the Else branch's
		// read is missing: keep the failure, drop the observation.
		out.Outcome = NotApplied
		out.Err = "txn failed without the else branch's range response"
	}
	c.record(in, out, call, ret)
	return out.Outcome == Applied, out.Value, err
}

// record appends one operation. An indeterminate operation returns at
// Infinity: it may take effect at any time after its call.
func (c *Client) record(in Input, out Output, call, ret int64) {
	if out.Outcome == Indeterminate {
		ret = Infinity
	}
	c.r.mu.Lock()
	defer c.r.mu.Unlock()
	c.r.mu.ops = append(c.r.mu.ops, porcupine.Operation{
		ClientId: c.id, Input: in, Call: call, Output: out, Return: ret,
	})
	if out.Outcome == Indeterminate {
		// To the checker the operation is still running, and this client's
		// next operations overlap it; carry on under a fresh id so that each
		// porcupine client stays sequential (etcd's robustness tests do the
		// same).
		c.id = c.r.mu.nextClient
		c.r.mu.nextClient++
	}
}

func outputOf(err error) Output {
	if err == nil {
		return Output{Outcome: Applied}
	}
	return Output{Outcome: Classify(err), Err: err.Error()}
}

func valueOf(kvs []*mvccpb.KeyValue) Value {
	if len(kvs) == 0 {
		return Absent
	}
	return Some(string(kvs[0].Value))
}

// definiteCodes are the gRPC codes with which etcd rejects a request before
// it can take effect: validation (InvalidArgument, which etcd also uses for
// "revision of auth store is old", rejected at apply), authentication and
// permissions (checked before proposing or rejected at apply), and methods
// the server lacks. No transport failure produces them.
var definiteCodes = map[codes.Code]bool{
	codes.InvalidArgument:  true,
	codes.PermissionDenied: true,
	codes.Unauthenticated:  true,
	codes.Unimplemented:    true,
}

// definiteErrors are etcd errors whose code is ambiguous on its own:
// ResourceExhausted is also what gRPC says when a response is too large to
// receive, after the request took effect; these two messages are etcd's
// refusals before proposing ("too many requests") or at apply (no space).
var definiteErrors = []error{
	rpctypes.ErrGRPCNoSpace,
	rpctypes.ErrGRPCRequestTooManyRequests,
}

// Classify says what an error from a clientv3 KV call means for whether a
// write took effect. NotApplied for the codes in definiteCodes and the etcd
// errors in definiteErrors; Indeterminate for everything else, in particular
// context.DeadlineExceeded and context.Canceled (client-side timeouts),
// codes DeadlineExceeded, Canceled and Unavailable (connection lost, "no
// leader", "leader changed", "server stopped", "request timed out" and its
// variants), Unknown, Internal and any error not recognised. When in doubt
// an error is Indeterminate: that only weakens the check, while calling an
// applied write NotApplied would report a violation that is not there.
// Classify(nil) is Applied.
func Classify(err error) Outcome {
	if err == nil {
		return Applied
	}
	code, msg := codes.Unknown, ""
	var ee rpctypes.EtcdError // what clientv3 turns etcd's statuses into
	if errors.As(err, &ee) {
		code, msg = ee.Code(), ee.Error()
	} else if s, ok := status.FromError(err); ok {
		code, msg = s.Code(), s.Message()
	}
	if definiteCodes[code] {
		return NotApplied
	}
	for _, d := range definiteErrors {
		if s := status.Convert(d); s.Code() == code && s.Message() == msg {
			return NotApplied
		}
	}
	return Indeterminate
}
