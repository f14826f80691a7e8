package v3rpc

import (
	"errors"
	"io"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-kv/cairn/mvcc/watch"
	"github.com/cairn-kv/cairn/server"
)

// watchServer serves etcd's Watch: one gRPC stream carries many watchers.
// Per stream, the receive loop turns requests into hub calls and control
// responses (created, canceled); the send loop writes control responses and
// the hub's event responses to the client. It announces a watcher to the
// hub only after its created response went out, so no event precedes it,
// and drops responses of watchers it no longer knows (canceled, or an
// earlier watcher with a reused ID).
type watchServer struct {
	pb.UnimplementedWatchServer
	s   *server.Server
	hdr header
}

// control is a response from the receive loop; opts is set for a watcher
// just created.
type control struct {
	resp *pb.WatchResponse
	opts *watchOpts
}

// watchOpts are a watcher's send-side options; send loop only.
type watchOpts struct {
	gen                      uint64
	prevKV, fragment, notify bool
	// sentEvents elides the next periodic progress notification.
	sentEvents bool
}

func (ws *watchServer) Watch(stream pb.Watch_WatchServer) error {
	hs := ws.s.Watchable().NewStream()
	defer hs.Close()
	ctrl := make(chan control, 16)
	recvErr := make(chan error, 1)
	go func() { recvErr <- ws.recvLoop(stream, hs, ctrl) }()
	return ws.sendLoop(stream, hs, ctrl, recvErr)
}

func (ws *watchServer) recvLoop(stream pb.Watch_WatchServer, hs *watch.Stream, ctrl chan<- control) error {
	send := func(c control) error {
		select {
		case ctrl <- c:
			return nil
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
	for {
		req, err := stream.Recv()
		if err != nil {
			return err
		}
		switch {
		case req.GetCreateRequest() != nil:
			if err := send(ws.create(hs, req.GetCreateRequest())); err != nil {
				return err
			}
		case req.GetCancelRequest() != nil:
			id := req.GetCancelRequest().WatchId
			if hs.Cancel(id) == nil {
				if err := send(control{resp: &pb.WatchResponse{Header: ws.hdr.new(), WatchId: id, Canceled: true}}); err != nil {
					return err
				}
			}
		case req.GetProgressRequest() != nil:
			hs.RequestProgress()
		}
	}
}

// create registers a watcher and returns the created response, canceled
// at once (watch ID -1) when the request cannot be served, as in etcd.
func (ws *watchServer) create(hs *watch.Stream, cr *pb.WatchCreateRequest) control {
	refuse := func(reason string) control {
		return control{resp: &pb.WatchResponse{Header: ws.hdr.new(), WatchId: -1, Created: true, Canceled: true, CancelReason: reason}}
	}
	if cr.StartRevision < 0 {
		return refuse(rpctypes.ErrCompacted.Error())
	}
	key := cr.Key
	if len(key) == 0 {
		key = []byte{0} // the smallest key
	}
	end := cr.RangeEnd
	switch {
	case len(end) == 0:
		end = nil // one key
	case len(end) == 1 && end[0] == 0:
		end = []byte{} // every key from key on
	}
	var noPut, noDelete bool
	for _, f := range cr.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			noPut = true
		case pb.WatchCreateRequest_NODELETE:
			noDelete = true
		}
	}
	id, gen, err := hs.Watch(cr.WatchId, key, end, cr.StartRevision, noPut, noDelete)
	if err != nil {
		return refuse(err.Error())
	}
	return control{
		resp: &pb.WatchResponse{Header: ws.hdr.new(), WatchId: id, Created: true},
		opts: &watchOpts{gen: gen, prevKV: cr.PrevKv, fragment: cr.Fragment, notify: cr.ProgressNotify},
	}
}

func (ws *watchServer) sendLoop(stream pb.Watch_WatchServer, hs *watch.Stream, ctrl <-chan control, recvErr <-chan error) error {
	active := map[int64]*watchOpts{}
	batch := make([]watch.Response, 0, coalesceResponses)
	var enc eventEncoder
	progress := time.NewTicker(ws.s.WatchProgressNotifyInterval())
	defer progress.Stop()
	for {
		select {
		case c := <-ctrl:
			if err := stream.Send(c.resp); err != nil {
				return err
			}
			switch id := c.resp.WatchId; {
			case c.opts != nil:
				active[id] = c.opts
				hs.Announce(id, c.opts.gen)
			case c.resp.Canceled && id != -1:
				delete(active, id)
			}
		case <-hs.Ready():
			// Take what is queued: a backlog goes out with each watcher's
			// revisions merged into as few responses as fit.
			batch = hs.Take(batch[:0], coalesceResponses)
			err := ws.sendEvents(stream, active, batch, &enc)
			enc.reset()
			if err != nil {
				return err
			}
		case <-progress.C:
			for id, o := range active {
				if o.notify && !o.sentEvents {
					hs.NotifyProgress(id)
				}
				o.sentEvents = false
			}
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				// The client closed its side; keep sending until it
				// goes away, as etcd does.
				recvErr = nil
				continue
			}
			return err
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-ws.s.DrainNotify():
			// Shutting down: the client reconnects (to another member,
			// once there are others) on this Unavailable error.
			return rpctypes.ErrGRPCStopped
		}
	}
}

// coalesceResponses bounds the hub responses the send loop takes at once,
// and coalesceBytes the keys and values (prev_kv included) merged into one
// response: under the 4 MiB a gRPC client accepts by default (jetcd's),
// and as big as a catch-up response (watch.Config.CatchUpBytes).
const (
	coalesceResponses = 1 << 14
	coalesceBytes     = 1 << 20
)

// sendEvents sends the hub's responses rs, in order per watcher, after
// merging each watcher's consecutive live responses (one revision each,
// see watch.Response.Live) into one while it stays under coalesceBytes. A
// merged response holds whole revisions in order and carries the header
// revision of the last one it took, which is what each of them promised;
// so the watcher sees exactly what separate responses would have told it,
// in fewer messages (etcd's own catch-up responses span revisions too).
// Catch-up responses go out as the hub made them. A stream-wide progress response
// is a barrier: everything before it goes out first.
func (ws *watchServer) sendEvents(stream pb.Watch_WatchServer, active map[int64]*watchOpts, rs []watch.Response, enc *eventEncoder) error {
	type out struct {
		r     watch.Response
		o     *watchOpts
		bytes int
		owned bool // r.Events is this send's own copy
	}
	var outs []out
	open := map[int64]int{} // watch ID → index in outs of its mergeable response
	flush := func() error {
		for _, x := range outs {
			if err := ws.sendEvent(stream, x.r, x.o, enc); err != nil {
				return err
			}
		}
		outs = outs[:0]
		clear(open)
		return nil
	}
	for at, r := range rs {
		if r.WatchID == -1 {
			if err := flush(); err != nil {
				return err
			}
			if err := stream.Send(&pb.WatchResponse{Header: ws.hdr.at(r.Revision), WatchId: -1}); err != nil {
				return err
			}
			continue
		}
		o := active[r.WatchID]
		if o == nil || o.gen != r.Gen {
			continue // canceled, or an earlier watcher with this ID
		}
		if r.CompactRevision != 0 {
			delete(active, r.WatchID)
		}
		if !r.Live {
			delete(open, r.WatchID)
			outs = append(outs, out{r: r, o: o})
			continue
		}
		n := eventBytes(r.Events, o.prevKV)
		if i, ok := open[r.WatchID]; ok && outs[i].bytes+n <= coalesceBytes {
			x := &outs[i]
			if !x.owned {
				// Room for as many more revisions as the rest of the
				// batch holds per watcher, so merging rarely regrows.
				more := (len(rs) - at) / len(open) * len(r.Events)
				x.r.Events = append(make([]*mvccpb.Event, 0, len(x.r.Events)+more), x.r.Events...)
				x.owned = true
			}
			x.r.Events = append(x.r.Events, r.Events...)
			x.r.Revision = r.Revision
			x.bytes += n
			continue
		}
		open[r.WatchID] = len(outs)
		outs = append(outs, out{r: r, o: o, bytes: n})
	}
	return flush()
}

// eventBytes estimates what evs add to a response: keys and values, twice
// with prev_kv.
func eventBytes(evs []*mvccpb.Event, prevKV bool) int {
	n := 0
	for _, ev := range evs {
		n += len(ev.Kv.Key) + len(ev.Kv.Value)
	}
	if prevKV {
		n *= 2
	}
	return n
}

// sendEvent sends one hub response (events, a compaction cancel or a
// watcher's progress notification) of the watcher with options o; events
// for a watcher without prev_kv or fragmenting are encoded through enc.
func (ws *watchServer) sendEvent(stream pb.Watch_WatchServer, r watch.Response, o *watchOpts, enc *eventEncoder) error {
	err := ws.sendResponse(stream, r, o, enc)
	if err == nil {
		ws.s.WatchEventsSent(len(r.Events))
	}
	return err
}

// sendResponse is sendEvent before counting the events sent.
func (ws *watchServer) sendResponse(stream pb.Watch_WatchServer, r watch.Response, o *watchOpts, enc *eventEncoder) error {
	if len(r.Events) > 0 && r.CompactRevision == 0 && !o.prevKV && !o.fragment {
		o.sentEvents = true
		f, err := enc.frame(ws.hdr.at(r.Revision), r.WatchID, r.Events)
		if err != nil {
			return err
		}
		return stream.SendMsg(f)
	}
	resp := &pb.WatchResponse{
		Header:          ws.hdr.at(r.Revision),
		WatchId:         r.WatchID,
		Events:          r.Events,
		CompactRevision: r.CompactRevision,
		Canceled:        r.CompactRevision != 0,
	}
	if o.prevKV {
		resp.Events = ws.withPrevKV(r.Events)
	}
	if len(r.Events) > 0 {
		o.sentEvents = true
	}
	if o.fragment {
		// etcd fragments at the request limit plus gRPC's overhead.
		return sendFragments(resp, ws.s.MaxRequestBytes()+grpcOverheadBytes, stream.Send)
	}
	return stream.Send(resp)
}

// withPrevKV returns evs with each event's previous version attached
// (none for creations), copying the events, which other watchers share.
func (ws *watchServer) withPrevKV(evs []*mvccpb.Event) []*mvccpb.Event {
	out := make([]*mvccpb.Event, len(evs))
	for i, ev := range evs {
		cp := &mvccpb.Event{Type: ev.Type, Kv: ev.Kv}
		if !(ev.Type == mvccpb.PUT && ev.Kv.CreateRevision == ev.Kv.ModRevision) {
			cp.PrevKv = ws.s.PrevKV(ev.Kv.Key, ev.Kv.ModRevision)
		}
		out[i] = cp
	}
	return out
}

// sendFragments splits a response bigger than limit into several, each
// with as many events as fit (at least one), all but the last marked
// Fragment, as etcd does for watchers that asked for fragmenting.
func sendFragments(wr *pb.WatchResponse, limit int, send func(*pb.WatchResponse) error) error {
	if proto.Size(wr) < limit || len(wr.Events) < 2 {
		return send(wr)
	}
	evs := wr.Events
	for len(evs) > 0 {
		cur := &pb.WatchResponse{
			Header: wr.Header, WatchId: wr.WatchId, Created: wr.Created, Canceled: wr.Canceled,
			CompactRevision: wr.CompactRevision, CancelReason: wr.CancelReason, Fragment: true,
		}
		n := 0
		for n < len(evs) {
			cur.Events = evs[:n+1]
			if n > 0 && proto.Size(cur) >= limit {
				break
			}
			n++
		}
		cur.Events = evs[:n]
		evs = evs[n:]
		cur.Fragment = len(evs) > 0
		if err := send(cur); err != nil {
			return err
		}
	}
	return nil
}
