package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-kv/cairn/api/v3lockpb"
	"github.com/cairn-kv/cairn/internal/tlsinfo"
	"github.com/cairn-kv/cairn/internal/tlsinfo/certtest"
	"github.com/cairn-kv/cairn/tests/framework"
)

// transportFlags returns the flags that have no top-level file key: the
// ones the config file's mappings set (transport security, socket
// options), and the CRL files, which have none at all in etcd.
func transportFlags() map[string]bool {
	all := map[string]bool{"client-crl-file": true, "peer-crl-file": true}
	only := fileOnlyFlags(&options{})
	for _, keys := range mappingKeys {
		for _, f := range keys {
			all[f] = only.Lookup(f) == nil
		}
	}
	return all
}

// TestConfigFileTransportSecurity: etcd's client-transport-security and
// peer-transport-security mappings give the options the flags give, and
// those make a valid configuration.
func TestConfigFileTransportSecurity(t *testing.T) {
	ca := certtest.NewCA(t)
	srv, cli := ca.Issue(t, "member", "127.0.0.1"), ca.Issue(t, "client")
	file := `
client-transport-security:
  cert-file: ` + srv.Cert + `
  key-file: ` + srv.Key + `
  client-cert-file: ` + cli.Cert + `
  client-key-file: ` + cli.Key + `
  client-cert-auth: true
  trusted-ca-file: ` + ca.File + `
  auto-tls: true
  allowed-cn: [client, admin]
  skip-client-san-verification: true
peer-transport-security:
  cert-file: ` + srv.Cert + `
  key-file: ` + srv.Key + `
  client-cert-file: ` + cli.Cert + `
  client-key-file: ` + cli.Key + `
  client-cert-auth: true
  trusted-ca-file: ` + ca.File + `
  auto-tls: true
  allowed-hostname: [member.example]
  skip-client-san-verification: true
listen-client-urls: https://127.0.0.1:12379
listen-peer-urls: https://127.0.0.1:12380
`
	fromFile, err := parse([]string{"--config-file", writeFile(t, file)}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	fromFlags, err := parse([]string{
		"--cert-file", srv.Cert, "--key-file", srv.Key, "--client-cert-file", cli.Cert, "--client-key-file", cli.Key,
		"--client-cert-auth", "--trusted-ca-file", ca.File, "--auto-tls",
		"--peer-cert-file", srv.Cert, "--peer-key-file", srv.Key, "--peer-client-cert-file", cli.Cert, "--peer-client-key-file", cli.Key,
		"--peer-client-cert-auth", "--peer-trusted-ca-file", ca.File, "--peer-auto-tls",
		"--peer-cert-allowed-hostname", "member.example", "--peer-skip-client-san-verification",
		"--listen-client-urls", "https://127.0.0.1:12379", "--listen-peer-urls", "https://127.0.0.1:12380",
	}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	// The client side's allowed CNs and SAN check switch have no flag in
	// etcd either.
	fromFlags.tls.client.allowedCNs = []string{"admin", "client"}
	fromFlags.tls.client.skipClientSANVerify = true
	fromFile.configFile = ""
	if !reflect.DeepEqual(fromFile, fromFlags) {
		t.Fatalf("from the file:\n%+v\nfrom flags:\n%+v", fromFile.tls, fromFlags.tls)
	}
	// Every option the mappings can set was set, but for the exclusive
	// pairs and the CRL files, which have no file key.
	unset := map[string]bool{"client.crlFile": true, "peer.crlFile": true, "client.allowedHostnames": true,
		"peer.allowedCNs": true}
	for side, v := range map[string]sideTLS{"client": fromFile.tls.client, "peer": fromFile.tls.peer} {
		rv := reflect.ValueOf(v)
		for i := range rv.NumField() {
			if name := side + "." + rv.Type().Field(i).Name; rv.Field(i).IsZero() != unset[name] {
				t.Errorf("%s: set %v, want %v", name, !rv.Field(i).IsZero(), !unset[name])
			}
		}
	}
	cfg, urls, err := fromFile.config(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PeerDialTLS == nil || cfg.PeerDialTLS.GetClientCertificate == nil || cfg.PeerDialTLS.RootCAs == nil ||
		cfg.ClientDialTLS == nil || cfg.ClientDialTLS.GetClientCertificate == nil {
		t.Fatalf("dial configurations lack the certificates: peer %+v client %+v", cfg.PeerDialTLS, cfg.ClientDialTLS)
	}
	if urls.sec.clientServer == nil || urls.sec.peerServer == nil || urls.sec.peerServer.ClientCAs == nil {
		t.Fatalf("listener configurations: %+v", urls.sec)
	}
}

// TestAutoTLSCertificateInDataDir: --auto-tls and --peer-auto-tls write
// their certificates under the data dir's fixtures, as etcd does, valid
// for the listen URLs' hosts, and reuse them on the next start.
func TestAutoTLSCertificateInDataDir(t *testing.T) {
	dir := t.TempDir()
	o, err := parse([]string{"--data-dir", dir, "--auto-tls", "--peer-auto-tls",
		"--listen-client-urls", "https://127.0.0.1:12379", "--listen-peer-urls", "https://localhost:12380"}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.config(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	read := func(side string) string {
		b, err := os.ReadFile(filepath.Join(dir, "fixtures", side, "cert.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	client, peer := read("client"), read("peer")
	if client == peer || !strings.Contains(client, "BEGIN CERTIFICATE") {
		t.Fatalf("client and peer certificates:\n%s\n%s", client, peer)
	}
	if _, _, err := o.config(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if read("client") != client || read("peer") != peer {
		t.Fatal("the certificates were generated again on the second start")
	}
}

// TestKubeadmManifestFlags: the flags kubeadm's static pod manifest gives
// etcd (names and values as kubeadm writes them; only paths and ports are
// this test's) start a member. A client with the API server's kind of
// certificate writes and reads through the https client URL, and the
// kubelet's probe of the plain-HTTP metrics URL answers.
func TestKubeadmManifestFlags(t *testing.T) {
	ca := certtest.NewCA(t)
	server, peer := ca.Issue(t, "server", "127.0.0.1", "localhost"), ca.Issue(t, "peer", "127.0.0.1", "localhost")
	apiserver := ca.Issue(t, "kube-apiserver-etcd-client")
	r := start(t,
		"--advertise-client-urls=https://127.0.0.1:2379",
		"--cert-file="+server.Cert,
		"--client-cert-auth=true",
		"--data-dir="+t.TempDir(),
		"--experimental-initial-corrupt-check=true",
		"--experimental-watch-progress-notify-interval=5s",
		"--initial-advertise-peer-urls=https://127.0.0.1:2380",
		"--initial-cluster=node1=https://127.0.0.1:2380",
		"--key-file="+server.Key,
		"--listen-client-urls=https://127.0.0.1:0",
		"--listen-metrics-urls=http://127.0.0.1:0",
		"--listen-peer-urls=https://127.0.0.1:0",
		"--name=node1",
		"--peer-cert-file="+peer.Cert,
		"--peer-client-cert-auth=true",
		"--peer-key-file="+peer.Key,
		"--peer-trusted-ca-file="+ca.File,
		"--snapshot-count=10000",
		"--trusted-ca-file="+ca.File,
		"--heartbeat-interval=10", "--election-timeout=100", // not kubeadm's: a faster start
	)
	client := r.addresses(t, "ready to serve client requests", 1)[0]
	metrics := r.addresses(t, "serving metrics", 1)[0]
	tlsCfg, err := tlsinfo.Info{CertFile: apiserver.Cert, KeyFile: apiserver.Key, TrustedCAFile: ca.File}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"https://" + client}, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, "/registry/namespaces/default", "ns"); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Get(ctx, "/registry/namespaces/", clientv3.WithPrefix()); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get: %v %v", resp, err)
	}
	for _, path := range []string{"/livez?exclude=NOSPACE&serializable=true", "/readyz", "/health?exclude=NOSPACE&serializable=true"} {
		if code, body := httpGet(t, "http://"+metrics+path); code != 200 {
			t.Errorf("kubelet probe %s: %d %q", path, code, body)
		}
	}
	r.stop(t)
}

// TestHTTPURLIgnoresCertificates: certificates next to http:// URLs are
// ignored with etcd's warnings, worded per side as etcd words them.
func TestHTTPURLIgnoresCertificates(t *testing.T) {
	ca := certtest.NewCA(t)
	pair := ca.Issue(t, "member", "127.0.0.1")
	o, err := parse([]string{"--cert-file", pair.Cert, "--key-file", pair.Key, "--client-cert-auth",
		"--peer-cert-file", pair.Cert, "--peer-key-file", pair.Key, "--peer-client-cert-auth"}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	if _, _, err := o.config(zap.New(core)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.Message)
	}
	want := []string{
		"scheme is http or unix while key and cert files are present; ignoring key and cert files",
		"scheme is http or unix while --client-cert-auth is enabled; ignoring client cert auth for this URL",
		"scheme is HTTP while key and cert files are present; ignoring key and cert files",
		"scheme is HTTP while --peer-client-cert-auth is enabled; ignoring client cert auth for this URL",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("warnings:\n%q\nwant:\n%q", got, want)
	}
}

// TestConfigFileAllowedCNsPerSide: each mapping's allowed-cn reaches its
// own side, whichever comes first.
func TestConfigFileAllowedCNsPerSide(t *testing.T) {
	o, err := parse([]string{"--config-file", writeFile(t, "peer-transport-security:\n  allowed-cn: [p]\nclient-transport-security:\n  allowed-cn: [c]\n")}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(o.tls.peer.allowedCNs, []string{"p"}) || !reflect.DeepEqual(o.tls.client.allowedCNs, []string{"c"}) {
		t.Fatalf("peer %q, client %q", o.tls.peer.allowedCNs, o.tls.client.allowedCNs)
	}
}

// TestMetricsTLSChecksClientSAN: an https metrics URL requires a client
// certificate naming the address it connects from, as etcd's does, and
// logs the refusal; client-transport-security's
// skip-client-san-verification turns the check off.
func TestMetricsTLSChecksClientSAN(t *testing.T) {
	ca := certtest.NewCA(t)
	server := ca.Issue(t, "server", "127.0.0.1")
	here, elsewhere := ca.Issue(t, "here", "127.0.0.1"), ca.Issue(t, "elsewhere", "10.9.9.9")
	get := func(addr string, cert certtest.Pair) error {
		cfg, err := tlsinfo.Info{CertFile: cert.Cert, KeyFile: cert.Key, TrustedCAFile: ca.File}.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		resp, err := c.Get("https://" + addr + "/metrics")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
	for _, skip := range []bool{false, true} {
		file := fmt.Sprintf(`
data-dir: %s
listen-client-urls: http://127.0.0.1:0
listen-peer-urls: http://127.0.0.1:0
listen-metrics-urls: https://127.0.0.1:0
heartbeat-interval: 10
election-timeout: 100
client-transport-security:
  cert-file: %s
  key-file: %s
  trusted-ca-file: %s
  skip-client-san-verification: %v
`, t.TempDir(), server.Cert, server.Key, ca.File, skip)
		r := start(t, "--config-file", writeFile(t, file))
		metrics := r.addresses(t, "serving metrics", 1)[0]
		if err := get(metrics, here); err != nil {
			t.Fatalf("skip=%v: a certificate for 127.0.0.1: %v", skip, err)
		}
		err := get(metrics, elsewhere)
		if skip && err != nil {
			t.Fatalf("skip=%v: a certificate for 10.9.9.9: %v", skip, err)
		}
		if !skip {
			if err == nil {
				t.Fatal("a certificate for 10.9.9.9 was accepted from 127.0.0.1")
			}
			if werr := r.logs.Wait(r.exited, 10*time.Second, func(out string) bool {
				return strings.Contains(out, "rejected connection on client endpoint") && strings.Contains(out, "10.9.9.9")
			}); werr != nil {
				t.Fatalf("no rejection logged: %v", werr)
			}
		}
		r.stop(t)
	}
}

// TestPeerSkipSANAlias: etcd 3.5's name of --peer-skip-client-san-verification.
func TestPeerSkipSANAlias(t *testing.T) {
	o, err := parse([]string{"--experimental-peer-skip-client-san-verification"}, io.Discard, noEnv)
	if err != nil || !o.tls.peer.skipClientSANVerify {
		t.Fatalf("%+v %v", o.tls.peer, err)
	}
}

// TestSelfCallsNeedNoClientCertificate: with --client-cert-auth and a
// server certificate that cannot authenticate a client, the JSON gateway
// and the Lock service still work: they reach the member's gRPC server in
// the process, not through its TLS port (where etcd's gateway would need
// the certificate to allow client authentication).
func TestSelfCallsNeedNoClientCertificate(t *testing.T) {
	ca := certtest.NewCA(t)
	server, user := ca.IssueServer(t, "server", "127.0.0.1"), ca.Issue(t, "user")
	r := startMember(t, "--listen-client-urls", "https://127.0.0.1:0",
		"--cert-file", server.Cert, "--key-file", server.Key, "--trusted-ca-file", ca.File, "--client-cert-auth")
	addr := r.addresses(t, "ready to serve client requests", 1)[0]
	cfg, err := tlsinfo.Info{CertFile: user.Cert, KeyFile: user.Key, TrustedCAFile: ca.File}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
	resp, err := hc.Post("https://"+addr+"/v3/kv/put", "application/json", strings.NewReader(`{"key":"aw==","value":"dg=="}`))
	if code, body := framework.ResponseBody(t, resp, err); code != http.StatusOK {
		t.Fatalf("the JSON gateway: %d %s", code, body)
	}
	c, ctx, lease := leased(t, "https://"+addr, cfg)
	lock, err := v3lockpb.NewLockClient(c.ActiveConnection()).Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: int64(lease)})
	if err != nil || !strings.HasPrefix(string(lock.GetKey()), "l/") {
		t.Fatalf("the Lock service: %v %v", lock, err)
	}
	r.stop(t)
}

// TestShutdownWithKeepAlives: open lease keep-alive streams, a client's
// and the Lock service's own, do not hold up a clean stop: draining ends
// them, as it ends watch streams, instead of the graceful stop waiting
// them out and then cutting every connection.
func TestShutdownWithKeepAlives(t *testing.T) {
	r := startMember(t, "--listen-client-urls", "http://127.0.0.1:0")
	addr := r.addresses(t, "ready to serve client requests", 1)[0]
	c, ctx, lease := leased(t, addr, nil)
	alive, err := c.KeepAlive(ctx, lease)
	if err != nil {
		t.Fatal(err)
	}
	<-alive // the stream is open
	if _, err := v3lockpb.NewLockClient(c.ActiveConnection()).Lock(ctx, &v3lockpb.LockRequest{Name: []byte("l"), Lease: int64(lease)}); err != nil {
		t.Fatal(err)
	}
	r.stop(t)
	if strings.Contains(r.logs.String(), "in-flight requests did not finish in time") {
		t.Fatalf("the graceful stop waited for open streams:\n%s", r.logs)
	}
}

// leased returns a client of endpoint (over TLS with cfg, if given), a
// context for its calls, and a lease of 60 s it was granted; the client
// closes when the test ends.
func leased(t *testing.T, endpoint string, cfg *tls.Config) (*clientv3.Client, context.Context, clientv3.LeaseID) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: cfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	lease, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	return c, ctx, lease.ID
}

// TestClientTLSOptions: the client side's revocation list, allowed
// hostnames, TLS versions and cipher suites, given as etcd's flags, admit
// and refuse a real client as they say.
func TestClientTLSOptions(t *testing.T) {
	ca := certtest.NewCA(t)
	server, user := ca.Issue(t, "server", "127.0.0.1"), ca.Issue(t, "user")
	revoked, named := ca.Issue(t, "revoked"), ca.Issue(t, "named", "allowed.example")
	crl := ca.Revoke(t, revoked.Serial)
	client := func(cert certtest.Pair, tweak func(*tls.Config)) *tls.Config {
		cfg, err := tlsinfo.Info{CertFile: cert.Cert, KeyFile: cert.Key, TrustedCAFile: ca.File}.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if tweak != nil {
			tweak(cfg)
		}
		return cfg
	}
	tls12 := func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }
	for _, c := range []struct {
		name     string
		flags    []string
		admitted *tls.Config
		refused  *tls.Config
	}{
		{"revocation list", []string{"--client-crl-file", crl}, client(user, nil), client(revoked, nil)},
		{"allowed hostname", []string{"--client-cert-allowed-hostname", "allowed.example"}, client(named, nil), client(user, nil)},
		{"minimum version", []string{"--tls-min-version", "TLS1.3"}, client(user, nil), client(user, tls12)},
		{"cipher suites", []string{"--tls-max-version", "TLS1.2", "--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
			client(user, nil), client(user, func(c *tls.Config) {
				tls12(c)
				c.CipherSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
			})},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := startMember(t, append([]string{"--listen-client-urls", "https://127.0.0.1:0",
				"--cert-file", server.Cert, "--key-file", server.Key, "--trusted-ca-file", ca.File}, c.flags...)...)
			addr := "https://" + r.addresses(t, "ready to serve client requests", 1)[0]
			get := func(cfg *tls.Config, d time.Duration) error {
				cl, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, TLS: cfg, DialTimeout: d, Logger: zap.NewNop()})
				if err != nil {
					return err
				}
				defer cl.Close()
				ctx, cancel := context.WithTimeout(context.Background(), d)
				defer cancel()
				_, err = cl.Get(ctx, "k")
				return err
			}
			if err := get(c.admitted, 30*time.Second); err != nil {
				t.Fatalf("the admitted client: %v", err)
			}
			if err := get(c.refused, time.Second); err == nil {
				t.Fatal("the refused client was served")
			}
			r.stop(t)
		})
	}
}
