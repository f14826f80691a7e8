package connmux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/cairn-kv/cairn/internal/tlsinfo"
	"github.com/cairn-kv/cairn/internal/tlsinfo/certtest"
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
			a := next(t, conns)
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

// next returns the next connection accepted, failing t after testTimeout.
func next(t *testing.T, conns <-chan accepted) accepted {
	t.Helper()
	select {
	case a := <-conns:
		return a
	case <-time.After(testTimeout):
		t.Fatal("no connection accepted")
		return accepted{}
	}
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

// startTLSMux runs a Mux serving TLS with a certificate for 127.0.0.1
// from a fresh test CA, and returns it with a client configuration that
// trusts the CA.
func startTLSMux(t *testing.T, o Options) (*Mux, *tls.Config) {
	t.Helper()
	ca := certtest.NewCA(t)
	p := ca.Issue(t, "server", "127.0.0.1")
	var err error
	if o.TLS, err = (tlsinfo.Info{CertFile: p.Cert, KeyFile: p.Key}).ServerConfig(); err != nil {
		t.Fatal(err)
	}
	cli, err := tlsinfo.Info{TrustedCAFile: ca.File}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return startMux(t, o), cli
}

// dialTLS completes a TLS handshake with the Mux at addr, offering the
// application protocols given.
func dialTLS(t *testing.T, addr string, cli *tls.Config, protos ...string) *tls.Conn {
	t.Helper()
	cli = cli.Clone()
	cli.NextProtos = protos
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: testTimeout}, "tcp", addr, cli)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitClosed reads c until the other end closes it.
func waitClosed(t *testing.T, what string, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := io.Copy(io.Discard, c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: still open after %v", what, testTimeout)
	}
}

// rejections collects what Options.Rejected is told.
type rejections chan rejection

type rejection struct {
	remote string
	err    error
}

func (r rejections) report(c *tls.Conn, err error) { r <- rejection{c.RemoteAddr().String(), err} }

// next waits for a rejection, which must be of the client at local.
func (r rejections) next(t *testing.T, local net.Addr) error {
	t.Helper()
	select {
	case got := <-r:
		if got.remote != local.String() {
			t.Fatalf("rejected %s, want %s", got.remote, local)
		}
		return got.err
	case <-time.After(testTimeout):
		t.Fatalf("%s not rejected", local)
		return nil
	}
}

// TestTLSServesHTTPAndGRPC: over TLS, an HTTP client (offering h2 and
// HTTP/1.1) reaches the HTTP server and a gRPC client the gRPC server.
func TestTLSServesHTTPAndGRPC(t *testing.T) {
	m, cli := startTLSMux(t, Options{})
	servers(t, m)
	addr := m.Addr().String()
	ctx := ctx(t)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cli, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		if err := checkHTTP(ctx, client, fmt.Sprintf("https://%s/p%d", addr, i), fmt.Sprintf("GET /p%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cli)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := checkGRPC(ctx, healthpb.NewHealthClient(cc)); err != nil {
		t.Fatal(err)
	}
	// Plain HTTP on a TLS port is refused.
	if err := checkHTTP(ctx, &http.Client{Transport: &http.Transport{}}, "http://"+addr+"/x", "GET /x"); err == nil {
		t.Fatal("plain HTTP served on a TLS port")
	}
}

// TestTLSClassification: the decrypted stream is classified, and reaches
// the server unchanged.
func TestTLSClassification(t *testing.T) {
	m, cli := startTLSMux(t, Options{})
	conns := acceptAll(m)
	for _, tc := range []struct {
		name   string
		protos []string
		send   string
		grpc   bool
	}{
		{"preface", []string{"h2"}, Preface + "\x00\x00\x00\x04", true},
		{"get", []string{"h2", "http/1.1"}, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialTLS(t, m.Addr().String(), cli, tc.protos...)
			if _, err := io.WriteString(c, tc.send); err != nil {
				t.Fatal(err)
			}
			a := next(t, conns)
			defer a.c.Close()
			if a.grpc != tc.grpc {
				t.Fatalf("went to the gRPC listener: %v, want %v", a.grpc, tc.grpc)
			}
			a.c.SetReadDeadline(time.Now().Add(testTimeout))
			b := make([]byte, len(tc.send))
			if _, err := io.ReadFull(a.c, b); err != nil {
				t.Fatalf("reading what the client sent: %v", err)
			}
			if string(b) != tc.send {
				t.Fatalf("server read %q, client sent %q", b, tc.send)
			}
			// And the server's answer reaches the client, encrypted.
			if _, err := io.WriteString(a.c, "answer"); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(testTimeout))
			got := make([]byte, 6)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "answer" {
				t.Fatalf("client read %q, %v", got, err)
			}
		})
	}
}

// TestTLSRejected: a client that does not speak TLS, and one that does
// not trust the server, are reported and closed; others still get in.
func TestTLSRejected(t *testing.T) {
	rejected := make(rejections, 10)
	m, cli := startTLSMux(t, Options{Rejected: rejected.report})
	servers(t, m)
	addr := m.Addr().String()

	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, err := io.WriteString(plain, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := rejected.next(t, plain.LocalAddr()); !strings.Contains(fmt.Sprint(err), "does not look like a TLS handshake") {
		t.Fatalf("plain client rejected with %v", err)
	}
	waitClosed(t, "plain client", plain)

	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	distrustful := tls.Client(raw, &tls.Config{ServerName: "127.0.0.1"}) // the system's roots
	distrustful.SetDeadline(time.Now().Add(testTimeout))
	if err := distrustful.Handshake(); err == nil {
		t.Fatal("a client trusting only the system's roots accepted the test CA")
	}
	if err := rejected.next(t, raw.LocalAddr()); err == nil {
		t.Fatal("rejected with a nil error")
	}
	waitClosed(t, "distrustful client", raw)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cli}}
	defer client.CloseIdleConnections()
	if err := checkHTTP(ctx(t), client, "https://"+addr+"/x", "GET /x"); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-rejected:
		t.Fatalf("%s rejected too: %v", r.remote, r.err)
	default:
	}
}

// TestTLSSilentClients: a client that sends no ClientHello, or nothing
// after the handshake, blocks no one and is closed after PeekTimeout;
// only the first failed a handshake.
func TestTLSSilentClients(t *testing.T) {
	const timeout = 200 * time.Millisecond
	rejected := make(rejections, 10)
	m, cli := startTLSMux(t, Options{PeekTimeout: timeout, Rejected: rejected.report})
	servers(t, m)
	addr := m.Addr().String()
	start := time.Now()
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	handshaken := dialTLS(t, addr, cli, "h2")

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cli}}
	defer client.CloseIdleConnections()
	if err := checkHTTP(ctx(t), client, "https://"+addr+"/x", "GET /x"); err != nil {
		t.Fatal(err)
	}

	if err := rejected.next(t, silent.LocalAddr()); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("silent client rejected with %v, want a timeout", err)
	}
	waitClosed(t, "silent client", silent)
	waitClosed(t, "client silent after its handshake", handshaken)
	if d := time.Since(start); d < timeout {
		t.Fatalf("silent clients closed after %v, before the %v peek timeout", d, timeout)
	}
	select {
	case r := <-rejected:
		t.Fatalf("%s rejected too: %v", r.remote, r.err)
	default:
	}
}

// TestTLSHandedOffConnections: TLS connections handed to either server
// are free of the handshake and peek deadlines, and outlive Mux.Close.
func TestTLSHandedOffConnections(t *testing.T) {
	m, cli := startTLSMux(t, Options{PeekTimeout: 100 * time.Millisecond})
	conns := acceptAll(m)
	addr := m.Addr().String()
	type pair struct {
		client *tls.Conn
		server accepted
		head   string
	}
	var pairs []pair
	for _, tc := range []struct {
		proto, head string
		grpc        bool
	}{{"h2", Preface, true}, {"http/1.1", "GET", false}} {
		c := dialTLS(t, addr, cli, tc.proto)
		if _, err := io.WriteString(c, tc.head); err != nil {
			t.Fatal(err)
		}
		select {
		case a := <-conns:
			defer a.c.Close()
			if a.grpc != tc.grpc {
				t.Fatalf("%s went to the gRPC listener: %v", tc.proto, a.grpc)
			}
			pairs = append(pairs, pair{c, a, tc.head})
		case <-time.After(testTimeout):
			t.Fatal("no connection accepted")
		}
	}
	// A connection accepted later is closed by its peek timeout: by then
	// the deadlines once set on the others have passed too.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitClosed(t, "silent client", silent)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	for _, p := range pairs {
		if _, err := io.WriteString(p.server.c, "answer"); err != nil {
			t.Fatalf("server writing after the peek timeout and Close: %v", err)
		}
		p.client.SetReadDeadline(time.Now().Add(testTimeout))
		got := make([]byte, 6)
		if _, err := io.ReadFull(p.client, got); err != nil || string(got) != "answer" {
			t.Fatalf("client read %q, %v", got, err)
		}
		if _, err := io.WriteString(p.client, " more"); err != nil {
			t.Fatal(err)
		}
		// No read deadline of our own here: it would hide a stale one. A
		// watchdog ends the read instead if the bytes never come.
		watchdog := time.AfterFunc(testTimeout, func() { p.server.c.Close() })
		want := p.head + " more"
		b := make([]byte, len(want))
		_, err := io.ReadFull(p.server.c, b)
		watchdog.Stop()
		if err != nil || string(b) != want {
			t.Fatalf("server read %q, %v; want %q", b, err, want)
		}
	}
}
