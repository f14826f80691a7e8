package main

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/tests/framework"
)

func TestParseHTTPFlags(t *testing.T) {
	env := map[string]string{"ETCD_LISTEN_METRICS_URLS": "http://127.0.0.1:9000", "ETCD_ENABLE_PPROF": "true"}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	o, err := parse(nil, io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if o.listenMetricsURLs != "http://127.0.0.1:9000" || !o.enablePprof {
		t.Fatalf("from the environment: %q %v", o.listenMetricsURLs, o.enablePprof)
	}
	o, err = parse([]string{"--listen-metrics-urls", "http://127.0.0.1:9001", "--enable-pprof=false"}, io.Discard, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if o.listenMetricsURLs != "http://127.0.0.1:9001" || o.enablePprof {
		t.Fatalf("flags over the environment: %q %v", o.listenMetricsURLs, o.enablePprof)
	}
	o, err = parse(nil, io.Discard, func(string) (string, bool) { return "", false })
	if err != nil || o.listenMetricsURLs != "" || o.enablePprof {
		t.Fatalf("defaults: %+v %v", o, err)
	}
}

func TestListenMetricsRefusesBadURLs(t *testing.T) {
	for u, want := range map[string]string{
		"https://127.0.0.1:0":        "client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url",
		"127.0.0.1:0":                "--listen-metrics-urls",
		"http://127.0.0.1:0,ftp://x": `scheme "ftp" is not supported (use http, https, unix or unixs)`,
	} {
		o, err := parse([]string{"--listen-metrics-urls", u}, io.Discard, func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := o.config(zap.NewNop()); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", u, err, want)
		}
	}
}

// running is the command running in a goroutine, as the process would,
// with its logs captured.
type running struct {
	logs   *framework.Output
	cancel context.CancelFunc // the signal
	exited chan struct{}
	code   int // once exited
}

// start runs the command with args and no ETCD_* environment until stop
// (at the latest when the test ends).
func start(t *testing.T, args ...string) *running {
	t.Helper()
	r := &running{logs: framework.NewOutput(), exited: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		r.code = run(ctx, args, io.Discard, r.logs, noEnv)
		close(r.exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
		}
	})
	return r
}

// startMember runs the command as a fresh single member with fast
// elections and its peer port anywhere free, with args added (the client
// URLs at least).
func startMember(t *testing.T, args ...string) *running {
	t.Helper()
	return start(t, append([]string{
		"--data-dir", t.TempDir(),
		"--listen-peer-urls", "http://127.0.0.1:0",
		"--heartbeat-interval", "10", "--election-timeout", "100",
	}, args...)...)
}

// stop sends the signal and fails t unless the command exits with 0
// within 30 s.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.exited:
		if r.code != 0 {
			t.Fatalf("exit code %d:\n%s", r.code, r.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("cairn did not stop within 30s of the signal")
	}
}

// addresses waits until msg was logged n times and returns the "address"
// fields of those lines.
func (r *running) addresses(t *testing.T, msg string, n int) []string {
	t.Helper()
	var addrs []string
	err := r.logs.Wait(r.exited, 30*time.Second, func(out string) bool {
		addrs = addrs[:0]
		for _, line := range strings.Split(out, "\n") {
			var e struct{ Msg, Address string }
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == msg {
				addrs = append(addrs, e.Address)
			}
		}
		return len(addrs) >= n
	})
	if err != nil {
		t.Fatalf("waiting for %d %q log lines: %v:\n%s", n, msg, err, r.logs)
	}
	return addrs
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url)
	return framework.ResponseBody(t, resp, err)
}

func httpPost(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Post(url, "application/json", strings.NewReader(body))
	return framework.ResponseBody(t, resp, err)
}

// TestServeHTTPAndGRPC runs the command: gRPC and HTTP answer on each
// client port, the metrics port serves the metrics endpoints only, pprof
// is mounted when asked, and a signal stops everything.
func TestServeHTTPAndGRPC(t *testing.T) {
	r := startMember(t,
		"--listen-client-urls", "http://127.0.0.1:0,http://127.0.0.1:0",
		"--listen-metrics-urls", "http://127.0.0.1:0",
		"--enable-pprof",
	)
	clients := r.addresses(t, "ready to serve client requests", 2)
	metrics := r.addresses(t, "serving metrics", 1)

	for _, addr := range clients {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = c.Put(rctx, "k", addr)
		rcancel()
		c.Close()
		if err != nil {
			t.Fatalf("put through %s: %v", addr, err)
		}
		for path, want := range map[string]string{
			"/health":       `{"health":"true","reason":""}`,
			"/readyz":       "ok\n",
			"/livez":        "ok\n",
			"/version":      `"etcdserver"`,
			"/metrics":      "etcd_server_has_leader 1",
			"/debug/pprof/": "goroutine",
			"/debug/vars":   `"memstats"`,
		} {
			if code, body := httpGet(t, "http://"+addr+path); code != 200 || !strings.Contains(body, want) {
				t.Errorf("GET %s%s: %d %.200q, want 200 with %q", addr, path, code, body, want)
			}
		}
	}
	m := "http://" + metrics[0]
	if code, body := httpGet(t, m+"/metrics"); code != 200 || !strings.Contains(body, "etcd_disk_wal_fsync_duration_seconds_count") {
		t.Errorf("metrics port /metrics: %d %.200q", code, body)
	}
	if code, body := httpGet(t, m+"/health"); code != 200 || body != `{"health":"true","reason":""}` {
		t.Errorf("metrics port /health: %d %q", code, body)
	}
	if code, _ := httpGet(t, m+"/version"); code != 404 {
		t.Errorf("metrics port /version: %d, want etcd's 404", code)
	}

	// A client that connected and said nothing does not hold up shutdown.
	silent, err := net.Dial("tcp", clients[0])
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	r.stop(t)
	for _, addr := range append(clients, metrics...) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after exit", addr)
		}
	}
	silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("silent connection after exit: %v, want EOF", err)
	}
}

// TestListenClientHTTPURLs: etcd's --listen-client-http-urls moves the
// HTTP endpoints (health, metrics, version, the JSON gateway) to listeners
// of their own, and the client URLs then serve gRPC only; one URL cannot
// be both.
func TestListenClientHTTPURLs(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0") // a port of its own: two :0 URLs are one URL, as in etcd
	if err != nil {
		t.Fatal(err)
	}
	free.Close()
	r := startMember(t, "--listen-client-urls", "http://127.0.0.1:0", "--listen-client-http-urls", "http://"+free.Addr().String())
	grpcAddr := r.addresses(t, "ready to serve client requests", 1)[0]
	httpAddr := r.addresses(t, "serving HTTP client requests", 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(addr string) *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	if _, err := dial(grpcAddr).Put(ctx, "k", "v"); err != nil {
		t.Fatalf("gRPC on the client URL: %v", err)
	}
	if code, body := httpGet(t, "http://"+httpAddr+"/health"); code != 200 || !strings.Contains(body, `"health":"true"`) {
		t.Fatalf("/health on the HTTP URL: %d %q", code, body)
	}
	if code, body := httpPost(t, "http://"+httpAddr+"/v3/kv/range", `{"key":"aw=="}`); code != 200 || !strings.Contains(body, `"value":"dg=="`) {
		t.Fatalf("the JSON gateway on the HTTP URL: %d %q", code, body)
	}
	if resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + grpcAddr + "/health"); err == nil {
		resp.Body.Close()
		t.Fatalf("/health answered %s on the gRPC-only client URL", resp.Status)
	}
	sctx, scancel := context.WithTimeout(ctx, time.Second)
	defer scancel()
	if _, err := dial(httpAddr).Get(sctx, "k"); err == nil {
		t.Fatal("gRPC answered on the HTTP-only URL")
	}
	r.stop(t)

	o, err := parse([]string{"--listen-client-urls", "http://127.0.0.1:2379", "--listen-client-http-urls", "http://127.0.0.1:2379"}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err = o.config(zap.NewNop()); err == nil || err.Error() != "cannot bind both --listen-client-urls and --listen-client-http-urls on the same url http://127.0.0.1:2379" {
		t.Fatalf("the same URL for both: %v", err)
	}
}

// TestSocketReusePort: with --socket-reuse-port a second listener binds a
// port that one already holds, as etcd's option allows; without it, not.
func TestSocketReusePort(t *testing.T) {
	first, err := socketOptions{reusePort: true, reuseAddress: true}.listenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	addr := first.Addr().String()
	if ln, err := (socketOptions{}).listenTCP(addr); err == nil {
		ln.Close()
		t.Fatal("a second listener without SO_REUSEPORT bound the port")
	}
	second, err := socketOptions{reusePort: true}.listenTCP(addr)
	if err != nil {
		t.Fatalf("a second listener with SO_REUSEPORT: %v", err)
	}
	second.Close()
}

// TestListenUnix: a unix:// client URL names a socket file by its host and
// path together, as etcd reads it: unix://localhost:12345 is the file
// localhost:12345 in the working directory, unix:///abs/path an absolute
// path. A file left at the path is replaced; closing the listener removes
// the socket file.
func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	stale, err := net.Listen("unix", "localhost:12345")
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false) // a member that died
	stale.Close()
	urls, err := parseURLs("unix://localhost:12345,unix://" + dir + "/abs.sock")
	if err != nil {
		t.Fatal(err)
	}
	lns, err := listen("--listen-client-urls", urls, socketOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "localhost:12345"), filepath.Join(dir, "abs.sock")} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != fs.ModeSocket {
			t.Fatalf("%s: %v, %v", path, fi, err)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("dial %s: %v", path, err)
		}
		c.Close()
	}
	closeAll(lns)
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Fatalf("socket files left after close: %v", left)
	}
	// A file that is not a socket is not removed.
	if err := os.WriteFile("notes.txt", []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listen("--listen-client-urls", []*url.URL{{Scheme: "unix", Host: "notes.txt"}}, socketOptions{}, nil); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("listening over a regular file: %v", err)
	}
	if b, err := os.ReadFile("notes.txt"); err != nil || string(b) != "keep" {
		t.Errorf("the regular file: %q %v", b, err)
	}

	// Every URL flag takes unix URLs; unixs needs the certificate of its
	// side, as https does.
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--listen-client-urls", "unix://c.sock", "--advertise-client-urls", "unix://c.sock", "--listen-metrics-urls", "unix:///m.sock"}, ""},
		{[]string{"--listen-client-http-urls", "unix://c.sock", "--listen-client-urls", "unix://c.sock"}, "cannot bind both --listen-client-urls and --listen-client-http-urls on the same url unix://c.sock"},
		{[]string{"--listen-metrics-urls", "unixs://m.sock"}, "client TLS key/cert (--cert-file, --key-file) must be provided for metrics secure url"},
		{[]string{"--listen-client-urls", "unixs://c.sock"}, "TLS key/cert (--cert-file, --key-file) must be provided for client url unixs://c.sock with HTTPS scheme"},
		{[]string{"--listen-peer-urls", "unix://p.sock", "--initial-advertise-peer-urls", "unix://p.sock", "--initial-cluster", "default=unix://p.sock"}, ""},
		{[]string{"--listen-peer-urls", "unixs://p.sock"}, "cannot listen on TLS for p.sock: KeyFile and CertFile are not presented (give --peer-cert-file and --peer-key-file, or --peer-auto-tls)"},
	} {
		o, err := parse(c.args, io.Discard, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err = o.config(zap.NewNop()); c.err == "" && err != nil || c.err != "" && (err == nil || err.Error() != c.err) {
			t.Errorf("%v: %v, want %q", c.args, err, c.err)
		}
	}
}
