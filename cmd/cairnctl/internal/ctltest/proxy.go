package ctltest

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Proxy forwards every gRPC call of a CLI to a server unchanged and watches
// the watch responses go by. It tells a test when the server has created a
// CLI's watch, which the CLI itself never prints: only then can the test
// write the events the watch must see.
//
// It also counts lease keep-alive responses and can hold keep-alive
// requests back (HoldKeepAlives), so that a test knows exactly how many
// renewals a "lease keep-alive" printed before the lease goes away, however
// fast the client renews.
type Proxy struct {
	// Endpoint is the address the CLI dials, host:port.
	Endpoint string
	conn     *grpc.ClientConn

	mu struct {
		sync.Mutex
		created int           // watch responses with Created set
		lastRev int64         // highest mod revision of a forwarded event
		changed chan struct{} // closed and replaced when a count grows

		renewed int // keep-alive responses forwarded to the CLI
		// Keep-alive requests past the first holdAfter wait until
		// release is closed; holdAfter < 0 lets all through.
		sent      int // keep-alive requests forwarded to the server
		holdAfter int
		release   chan struct{}
	}
}

const (
	watchMethod     = "/etcdserverpb.Watch/Watch"
	keepAliveMethod = "/etcdserverpb.Lease/LeaseKeepAlive"
)

// StartProxy listens on a free port and forwards to backend (host:port)
// until the test ends.
func StartProxy(t testing.TB, backend string) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(backend,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Endpoint: lis.Addr().String(), conn: conn}
	p.mu.changed = make(chan struct{})
	p.mu.holdAfter = -1
	p.mu.release = make(chan struct{})
	srv := grpc.NewServer(
		grpc.UnknownServiceHandler(p.forward),
		grpc.ForceServerCodec(rawCodec{}),
		// CLIs ping every few seconds; the default policy would hang up.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		<-served
		_ = conn.Close()
	})
	return p
}

// WaitCreated blocks until the server has created n watches through p.
func (p *Proxy) WaitCreated(ctx context.Context, n int) error {
	return p.wait(ctx, func() bool { return p.mu.created >= n })
}

// WaitEvent blocks until an event of revision rev or later has been
// forwarded to the CLI. Waiting for each write's event before the next write
// makes the server send one response per write, whatever the timing, so
// that formats printing whole responses (json, fields, protobuf) print the
// same bytes on every run.
func (p *Proxy) WaitEvent(ctx context.Context, rev int64) error {
	return p.wait(ctx, func() bool { return p.mu.lastRev >= rev })
}

// HoldKeepAlives forwards the next n lease keep-alive requests and holds
// back the ones after them until ReleaseKeepAlives. Call it before the CLI
// starts.
func (p *Proxy) HoldKeepAlives(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.holdAfter < 0 {
		p.mu.release = make(chan struct{})
	}
	p.mu.holdAfter = p.mu.sent + n
}

// ReleaseKeepAlives forwards the held keep-alive requests and all later ones.
func (p *Proxy) ReleaseKeepAlives() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.holdAfter >= 0 {
		p.mu.holdAfter = -1
		close(p.mu.release)
	}
}

// WaitKeepAlives blocks until n lease keep-alive responses have been
// forwarded to the CLI.
func (p *Proxy) WaitKeepAlives(ctx context.Context, n int) error {
	return p.wait(ctx, func() bool { return p.mu.renewed >= n })
}

// admitKeepAlive returns once a keep-alive request may be forwarded, or
// with ctx's error.
func (p *Proxy) admitKeepAlive(ctx context.Context) error {
	p.mu.Lock()
	if p.mu.holdAfter < 0 || p.mu.sent < p.mu.holdAfter {
		p.mu.sent++
		p.mu.Unlock()
		return nil
	}
	release := p.mu.release
	p.mu.Unlock()
	select {
	case <-release:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	p.mu.sent++
	p.mu.Unlock()
	return nil
}

func (p *Proxy) observeKeepAlive() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.renewed++
	close(p.mu.changed)
	p.mu.changed = make(chan struct{})
}

func (p *Proxy) wait(ctx context.Context, done func() bool) error {
	for {
		p.mu.Lock()
		ok, changed := done(), p.mu.changed
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *Proxy) observe(b []byte) {
	var r pb.WatchResponse
	if proto.Unmarshal(b, &r) != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	grew := false
	if r.Created {
		p.mu.created++
		grew = true
	}
	for _, ev := range r.Events {
		if rev := ev.GetKv().GetModRevision(); rev > p.mu.lastRev {
			p.mu.lastRev = rev
			grew = true
		}
	}
	if grew {
		close(p.mu.changed)
		p.mu.changed = make(chan struct{})
	}
}

// forward relays one call, of any kind, as a bidirectional stream of raw
// messages.
func (p *Proxy) forward(_ any, in grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(in)
	md, _ := metadata.FromIncomingContext(in.Context())
	md = md.Copy()
	for _, k := range []string{":authority", "content-type", "user-agent"} {
		delete(md, k)
	}
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(in.Context(), md))
	defer cancel()
	out, err := p.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
	if err != nil {
		return err
	}
	go func() {
		for {
			var m rawMessage
			if err := in.RecvMsg(&m); err != nil {
				if errors.Is(err, io.EOF) {
					_ = out.CloseSend()
				} else {
					cancel()
				}
				return
			}
			if method == keepAliveMethod && p.admitKeepAlive(ctx) != nil {
				return
			}
			if out.SendMsg(&m) != nil {
				return
			}
		}
	}()
	headerSent := false
	for {
		var m rawMessage
		if err := out.RecvMsg(&m); err != nil {
			in.SetTrailer(out.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if !headerSent {
			headerSent = true
			if h, err := out.Header(); err == nil {
				_ = in.SendHeader(h)
			}
		}
		switch method {
		case watchMethod:
			p.observe(m)
		case keepAliveMethod:
			p.observeKeepAlive()
		}
		if err := in.SendMsg(&m); err != nil {
			return err
		}
	}
}

// rawMessage is a message left encoded.
type rawMessage []byte

// rawCodec passes messages through without decoding them.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*rawMessage)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*rawMessage)) = append(rawMessage(nil), b...)
	return nil
}

// Name is "proto" so that both ends see the content type they expect.
func (rawCodec) Name() string { return "proto" }
