package connmux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// testTimeout bounds every wait in these tests; nothing sleeps.
const testTimeout = 20 * time.Second

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startMux runs a Mux on a fresh loopback listener, closed at test end.
func startMux(t *testing.T, o Options) *Mux {
	t.Helper()
	m := New(listen(t), o)
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve returned %v after Close, want nil", err)
		}
	})
	return m
}

// servers serves a gRPC health service and an HTTP handler on m's children.
func servers(t *testing.T, m *Mux) (*grpc.Server, *http.Server) {
	t.Helper()
	g := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	h := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); g.Serve(m.GRPC()) }()
	go func() { defer wg.Done(); h.Serve(m.HTTP()) }()
	t.Cleanup(func() {
		g.Stop()
		h.Close()
		wg.Wait()
	})
	return g, h
}

func grpcClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return c
}

func checkGRPC(ctx context.Context, c healthpb.HealthClient) error {
	r, err := c.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if r.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health status %v", r.Status)
	}
	return nil
}

func checkHTTP(ctx context.Context, client *http.Client, url, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if string(b) != want {
		return fmt.Errorf("GET %s: %q, want %q", url, b, want)
	}
	return nil
}

// TestGRPCAndHTTPConcurrently: gRPC calls and HTTP/1.1 requests share one
// port, many at a time, over new and reused connections.
func TestGRPCAndHTTPConcurrently(t *testing.T) {
	m := startMux(t, Options{})
	servers(t, m)
	addr := m.Addr().String()
	gc := grpcClient(t, addr)
	ctx := ctx(t)
	errc := make(chan error, 100)
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 5; j++ {
				errc <- checkGRPC(ctx, gc)
			}
		}()
		go func() {
			defer wg.Done()
			// Its own transport: a new connection per goroutine, reused
			// for its requests.
			client := &http.Client{Transport: &http.Transport{}}
			defer client.CloseIdleConnections()
			for j := 0; j < 5; j++ {
				errc <- checkHTTP(ctx, client, fmt.Sprintf("http://%s/p%d", addr, j), fmt.Sprintf("GET /p%d", j))
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestClassification: which child gets a connection by its first bytes,
// and that those bytes reach the server unchanged, followed by the rest.
func TestClassification(t *testing.T) {
	m := startMux(t, Options{})
	conns := acceptAll(m)
	for _, tc := range []struct {
		name string
		send string
		grpc bool
	}{
		{"preface", Preface + "\x00\x00\x00\x04", true},
		{"get", "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"post shares P", "POST /v3/kv/range HTTP/1.1\r\n\r\n", false},
		{"put", "PUT / HTTP/1.1\r\n\r\n", false},
		{"patch", "PATCH / HTTP/1.1\r\n\r\n", false},
		{"PRI with HTTP/1.1", "PRI * HTTP/1.1\r\n\r\n", false},
		{"preface with a wrong last byte", Preface[:len(Preface)-1] + "X", false},
		{"tls client hello", "\x16\x03\x01\x02\x00\x01", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", m.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Written in pieces, so classification sees partial reads.
			for i := 0; i < len(tc.send); i += 3 {
				if _, err := c.Write([]byte(tc.send[i:min(i+3, len(tc.send))])); err != nil {
					t.Fatal(err)
				}
			}
			var a accepted
			select {
			case a = <-conns:
			case <-time.After(testTimeout):
				t.Fatal("no connection accepted")
			}
			got := a.c
			if a.grpc != tc.grpc {
				got.Close()
				t.Fatalf("went to the gRPC listener: %v, want %v", a.grpc, tc.grpc)
			}
			defer got.Close()
			got.SetReadDeadline(time.Now().Add(testTimeout))
			b := make([]byte, len(tc.send))
			if _, err := io.ReadFull(got, b); err != nil {
				t.Fatalf("reading what the client sent: %v", err)
			}
			if string(b) != tc.send {
				t.Fatalf("server read %q, client sent %q", b, tc.send)
			}
		})
	}
}

// accepted is a connection one of the children accepted.
type accepted struct {
	c    net.Conn
	grpc bool
}

// acceptAll accepts from both children until the Mux closes.
func acceptAll(m *Mux) <-chan accepted {
	ch := make(chan accepted)
	for _, l := range []net.Listener{m.HTTP(), m.GRPC()} {
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				ch <- accepted{c, l == m.GRPC()}
			}
		}()
	}
	return ch
}

// TestSilentConnectionsDoNotBlock: clients that send nothing, or half the
// preface, hold no one up; the peek timeout then closes them.
func TestSilentConnectionsDoNotBlock(t *testing.T) {
	m := startMux(t, Options{PeekTimeout: 200 * time.Millisecond})
	servers(t, m)
	addr := m.Addr().String()
	var silent []net.Conn
	for _, first := range []string{"", "PRI * HTTP/2.0\r\n", "G"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if first != "" {
			if _, err := c.Write([]byte(first)); err != nil {
				t.Fatal(err)
			}
		}
		silent = append(silent, c)
	}
	ctx := ctx(t)
	if err := checkGRPC(ctx, grpcClient(t, addr)); err != nil {
		t.Fatal(err)
	}
	if err := checkHTTP(ctx, &http.Client{Transport: &http.Transport{}}, "http://"+addr+"/x", "GET /x"); err != nil {
		t.Fatal(err)
	}
	// The first two never completed classification: the mux closes them.
	for i, c := range silent[:2] {
		c.SetReadDeadline(time.Now().Add(testTimeout))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("silent connection %d: read %d bytes, %v; want EOF from the peek timeout", i, n, err)
		}
	}
	// The third was classified by its first byte and handed to the HTTP
	// server, which now owns it (and waits for the rest of the request).
}

// TestSilentConnectionLongTimeout: with the default timeout, a silent
// client still blocks nobody, and Close ends it at once.
func TestSilentConnectionLongTimeout(t *testing.T) {
	m := New(listen(t), Options{})
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	g, h := grpc.NewServer(), &http.Server{Handler: http.NotFoundHandler()}
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	go g.Serve(m.GRPC())
	go h.Serve(m.HTTP())
	defer g.Stop()
	defer h.Close()
	addr := m.Addr().String()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := checkGRPC(ctx(t), grpcClient(t, addr)); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve after close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent connection after Close: %v, want EOF", err)
	}
	for name, l := range map[string]net.Listener{"grpc": m.GRPC(), "http": m.HTTP()} {
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("%s Accept after Close: %v, want net.ErrClosed", name, err)
		}
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("the listener still accepts after Close")
	}
}

// TestChildCloseLeavesTheOther: stopping the HTTP server (which closes
// its listener) keeps gRPC working; new HTTP connections are closed.
func TestChildCloseLeavesTheOther(t *testing.T) {
	m := startMux(t, Options{})
	_, h := servers(t, m)
	addr := m.Addr().String()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.HTTP().Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("HTTP Accept after its server closed: %v", err)
	}
	ctx := ctx(t)
	if err := checkHTTP(ctx, &http.Client{Transport: &http.Transport{}}, "http://"+addr+"/x", "GET /x"); err == nil {
		t.Fatal("HTTP request answered after the HTTP server closed")
	}
	if err := checkGRPC(ctx, grpcClient(t, addr)); err != nil {
		t.Fatal(err)
	}
}

// failingListener fails Accept with a permanent error.
type failingListener struct {
	net.Listener
	err error
}

func (l failingListener) Accept() (net.Conn, error) { return nil, l.err }

// TestAcceptFailureStopsChildren: a permanent accept error ends Serve and
// reaches the servers through their listeners.
func TestAcceptFailureStopsChildren(t *testing.T) {
	boom := errors.New("boom")
	ln := listen(t)
	defer ln.Close()
	m := New(failingListener{ln, boom}, Options{})
	if err := m.Serve(); !errors.Is(err, boom) {
		t.Fatalf("Serve: %v, want %v", err, boom)
	}
	for name, l := range map[string]net.Listener{"grpc": m.GRPC(), "http": m.HTTP()} {
		if _, err := l.Accept(); !errors.Is(err, boom) {
			t.Fatalf("%s Accept: %v, want %v", name, err, boom)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
}

// temporaryErr is an accept error that passes.
type temporaryErr struct{}

func (temporaryErr) Error() string   { return "too many open files" }
func (temporaryErr) Temporary() bool { return true }
func (temporaryErr) Timeout() bool   { return false }

// flakyListener fails its first Accepts with a temporary error.
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.fails > 0 {
		l.fails--
		l.mu.Unlock()
		return nil, temporaryErr{}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestTemporaryAcceptErrorsAreRetried: Serve keeps going through
// temporary accept errors.
func TestTemporaryAcceptErrorsAreRetried(t *testing.T) {
	ln := &flakyListener{Listener: listen(t), fails: 3}
	m := New(ln, Options{})
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	h := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go h.Serve(m.HTTP())
	defer h.Close()
	if err := checkHTTP(ctx(t), &http.Client{Transport: &http.Transport{}}, "http://"+m.Addr().String()+"/", "ok"); err != nil {
		t.Fatal(err)
	}
	m.Close()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestConnReplaysHead(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	c := &conn{Conn: b, head: []byte("hello ")}
	go func() {
		a.Write([]byte("world"))
		a.Close()
	}()
	got, err := io.ReadAll(io.LimitReader(c, 11))
	if err != nil || string(got) != "hello world" {
		t.Fatalf("read %q, %v", got, err)
	}
	if !strings.HasPrefix(Preface, "PRI") || len(Preface) != 24 {
		t.Fatalf("preface %q", Preface)
	}
}
