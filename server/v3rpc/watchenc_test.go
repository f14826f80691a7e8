package v3rpc

import (
	"bytes"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"
)

// TestWatchFrameIsWatchResponse: what the codec sends for a watchFrame is
// byte for byte what protobuf makes of the same WatchResponse, for events
// of every shape, with each event encoded once however many frames use it.
func TestWatchFrameIsWatchResponse(t *testing.T) {
	evs := []*mvccpb.Event{
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 2, Version: 1}},
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("b"), Value: []byte(strings.Repeat("v", 300)), CreateRevision: 2, ModRevision: 9, Version: 7, Lease: 0x1234}},
		{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 10}},
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte{0, 0xff}, CreateRevision: 11, ModRevision: 11, Version: 1}},
	}
	hdr := &pb.ResponseHeader{ClusterId: 1 << 60, MemberId: 77, Revision: 11, RaftTerm: 3}
	var enc eventEncoder
	sent, received := prometheus.NewCounter(prometheus.CounterOpts{Name: "sent"}), prometheus.NewCounter(prometheus.CounterOpts{Name: "received"})
	c := newCodec(sent, received)
	wantSent := 0
	for _, tc := range []struct {
		id  int64
		evs []*mvccpb.Event
	}{{0, evs}, {5, evs[1:3]}, {1 << 40, evs[3:]}, {7, evs}} {
		f, err := enc.frame(hdr, tc.id, tc.evs)
		if err != nil {
			t.Fatal(err)
		}
		bs, err := c.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := proto.Marshal(&pb.WatchResponse{Header: hdr, WatchId: tc.id, Events: tc.evs})
		if err != nil {
			t.Fatal(err)
		}
		if got := bs.Materialize(); !bytes.Equal(got, want) {
			t.Fatalf("watch %d: frame encodes as\n%x\nprotobuf as\n%x", tc.id, got, want)
		}
		wantSent += len(want)
	}
	// Every byte sent counts in etcd_network_client_grpc_sent_bytes_total,
	// frames included.
	if got := counterValue(t, sent); got != float64(wantSent) {
		t.Fatalf("sent bytes counted %v, want %d", got, wantSent)
	}
	if len(enc.cache) != len(evs) {
		t.Fatalf("%d encodings cached for %d distinct events", len(enc.cache), len(evs))
	}
	// Anything else goes through protobuf.
	bs, err := c.Marshal(&pb.WatchResponse{WatchId: 3, Created: true})
	if err != nil {
		t.Fatal(err)
	}
	var back pb.WatchResponse
	if err := c.Unmarshal(bs, &back); err != nil || back.WatchId != 3 || !back.Created {
		t.Fatalf("round trip through the codec: %+v, %v", &back, err)
	}
	if got := counterValue(t, received); got != float64(bs.Len()) {
		t.Fatalf("received bytes counted %v, want %d", got, bs.Len())
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
