package tlsinfo

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-kv/cairn/internal/tlsinfo/certtest"
)

// testTimeout bounds every wait in these tests; nothing sleeps.
const testTimeout = 20 * time.Second

// side is what one end of a handshake saw.
type side struct {
	state tls.ConnectionState
	err   error
}

// handshake connects a client with cli to a server with srv over loopback
// TCP and returns what each side saw. The server writes a byte once its
// handshake is done and the client reads it, so that a client refused
// after its own handshake finished (TLS 1.3 verifies the client's
// certificate last) sees the refusal too. cli's ServerName defaults to
// 127.0.0.1, the address the certificates below are issued for.
func handshake(t *testing.T, srv, cli *tls.Config) (server, client side) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan side, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- side{err: err}
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		tc.SetDeadline(time.Now().Add(testTimeout))
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Write([]byte{1})
		}
		done <- side{tc.ConnectionState(), err}
	}()
	c, err := net.DialTimeout("tcp", ln.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	cli = cli.Clone()
	if cli.ServerName == "" {
		cli.ServerName = "127.0.0.1"
	}
	tc := tls.Client(c, cli)
	tc.SetDeadline(time.Now().Add(testTimeout))
	err = tc.Handshake()
	if err == nil {
		_, err = io.ReadFull(tc, make([]byte, 1))
	}
	client = side{tc.ConnectionState(), err}
	c.Close() // unblocks a server still waiting for a client that gave up
	return <-done, client
}

// fixture is a test CA and a server certificate for 127.0.0.1 it signed.
type fixture struct {
	ca     *certtest.CA
	server certtest.Pair
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ca := certtest.NewCA(t)
	return fixture{ca: ca, server: ca.Issue(t, "server", "127.0.0.1")}
}

// info returns the server's options: its certificate and nothing else.
func (f fixture) info() Info { return Info{CertFile: f.server.Cert, KeyFile: f.server.Key} }

func serverConfig(t *testing.T, i Info) *tls.Config {
	t.Helper()
	cfg, err := i.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// clientOf returns a plain client configuration (not ClientConfig's, so
// the server side is tested alone) that trusts ca and presents certs.
func clientOf(t *testing.T, ca *certtest.CA, certs ...certtest.Pair) *tls.Config {
	t.Helper()
	cfg := &tls.Config{RootCAs: x509.NewCertPool()}
	if !cfg.RootCAs.AppendCertsFromPEM(readFile(t, ca.File)) {
		t.Fatalf("%s holds no certificate", ca.File)
	}
	for _, p := range certs {
		c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = append(cfg.Certificates, c)
	}
	return cfg
}

// peerCN is the common name of the certificate the other end presented.
func peerCN(s side) string {
	if len(s.state.PeerCertificates) == 0 {
		return ""
	}
	return s.state.PeerCertificates[0].Subject.CommonName
}

// checkAccepted fails t unless both ends' acceptance is want.
func checkAccepted(t *testing.T, server, client side, want bool) {
	t.Helper()
	if (server.err == nil) != want || (client.err == nil) != want {
		t.Fatalf("server: %v, client: %v; want accepted %v", server.err, client.err, want)
	}
}

func TestClientCertAuth(t *testing.T) {
	f := newFixture(t)
	member := f.ca.Issue(t, "member")
	stranger := certtest.NewCA(t).Issue(t, "stranger")
	auth := f.info()
	auth.ClientCertAuth, auth.TrustedCAFile = true, f.ca.File
	caOnly := f.info()
	caOnly.TrustedCAFile = f.ca.File
	for _, tc := range []struct {
		name   string
		server Info
		certs  []certtest.Pair
		ok     bool
	}{
		{"client-cert-auth, no certificate", auth, nil, false},
		{"client-cert-auth, certificate from the CA", auth, []certtest.Pair{member}, true},
		{"client-cert-auth, certificate from another CA", auth, []certtest.Pair{stranger}, false},
		{"trusted CA alone, no certificate", caOnly, nil, false},
		{"trusted CA alone, certificate from the CA", caOnly, []certtest.Pair{member}, true},
		{"no client auth, no certificate", f.info(), nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := handshake(t, serverConfig(t, tc.server), clientOf(t, f.ca, tc.certs...))
			checkAccepted(t, server, client, tc.ok)
			if tc.ok && len(tc.certs) > 0 && peerCN(server) != "member" {
				t.Fatalf("server saw client %q, want member", peerCN(server))
			}
		})
	}
}

// TestALPN: HTTP clients (which offer HTTP/1.1) get HTTP/1.1, gRPC
// clients (h2 alone) get h2, so connmux can still tell them apart.
func TestALPN(t *testing.T) {
	f := newFixture(t)
	srv := serverConfig(t, f.info())
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{[]string{"h2", "http/1.1"}, "http/1.1"},
		{[]string{"h2"}, "h2"},
		{[]string{"http/1.1"}, "http/1.1"},
		{nil, ""},
	} {
		t.Run(fmt.Sprint(tc.offer), func(t *testing.T) {
			cli := clientOf(t, f.ca)
			cli.NextProtos = tc.offer
			server, client := handshake(t, srv, cli)
			checkAccepted(t, server, client, true)
			if got := client.state.NegotiatedProtocol; got != tc.want {
				t.Fatalf("negotiated %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAllowedCNsAndHostnames(t *testing.T) {
	f := newFixture(t)
	allowedCN, otherCN := f.ca.Issue(t, "allowed"), f.ca.Issue(t, "other")
	allowedHost := f.ca.Issue(t, "host-a", "allowed.example")
	otherHost := f.ca.Issue(t, "host-b", "other.example")
	cns := f.info()
	cns.ClientCertAuth, cns.TrustedCAFile, cns.AllowedCNs = true, f.ca.File, []string{"x", "allowed"}
	hosts := f.info()
	hosts.ClientCertAuth, hosts.TrustedCAFile, hosts.AllowedHostnames = true, f.ca.File, []string{"x.example", "allowed.example"}
	for _, tc := range []struct {
		name   string
		server Info
		cert   certtest.Pair
		ok     bool
	}{
		{"allowed CN", cns, allowedCN, true},
		{"other CN", cns, otherCN, false},
		{"allowed hostname", hosts, allowedHost, true},
		{"other hostname", hosts, otherHost, false},
		{"CN is not a hostname", hosts, f.ca.Issue(t, "allowed.example"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := handshake(t, serverConfig(t, tc.server), clientOf(t, f.ca, tc.cert))
			checkAccepted(t, server, client, tc.ok)
			if !tc.ok && !strings.Contains(server.err.Error(), "client certificate authentication failed") {
				t.Fatalf("server error %q, want etcd's client certificate authentication failed", server.err)
			}
		})
	}
	both := cns
	both.AllowedHostnames = hosts.AllowedHostnames
	if _, err := both.ServerConfig(); err == nil || !strings.Contains(err.Error(), "mutually exclusive") {
		t.Fatalf("ServerConfig with allowed CNs and hostnames: %v, want mutually exclusive", err)
	}
}

// TestCRL: revoked client certificates are refused, and the list is read
// again at every handshake.
func TestCRL(t *testing.T) {
	f := newFixture(t)
	good, bad := f.ca.Issue(t, "good"), f.ca.Issue(t, "bad")
	i := f.info()
	i.ClientCertAuth, i.TrustedCAFile, i.CRLFile = true, f.ca.File, f.ca.Revoke(t, bad.Serial)
	srv := serverConfig(t, i)
	server, client := handshake(t, srv, clientOf(t, f.ca, good))
	checkAccepted(t, server, client, true)
	server, client = handshake(t, srv, clientOf(t, f.ca, bad))
	checkAccepted(t, server, client, false)
	if !strings.Contains(server.err.Error(), "revoked") {
		t.Fatalf("server error %q, want revoked", server.err)
	}
	if crl := f.ca.Revoke(t, bad.Serial, good.Serial); crl != i.CRLFile {
		t.Fatalf("Revoke wrote %s, then %s", i.CRLFile, crl)
	}
	server, client = handshake(t, srv, clientOf(t, f.ca, good))
	checkAccepted(t, server, client, false)
}

// TestCRLFormats: checkCRL reads DER, as etcd does, and PEM.
func TestCRLFormats(t *testing.T) {
	ca := certtest.NewCA(t)
	revoked, kept := ca.Issue(t, "revoked"), ca.Issue(t, "kept")
	der, err := os.ReadFile(ca.Revoke(t, revoked.Serial))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	files := map[string][]byte{
		"der":     der,
		"pem":     pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}),
		"garbage": []byte("not a CRL"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, format := range []string{"der", "pem"} {
		file := filepath.Join(dir, format)
		if err := checkCRL(file, []*x509.Certificate{parse(t, kept)}); err != nil {
			t.Errorf("%s: kept certificate refused: %v", format, err)
		}
		if err := checkCRL(file, []*x509.Certificate{parse(t, kept), parse(t, revoked)}); err == nil {
			t.Errorf("%s: chain holding a revoked certificate accepted", format)
		}
	}
	if err := checkCRL(garbage, []*x509.Certificate{parse(t, kept)}); err == nil || !strings.Contains(err.Error(), garbage) {
		t.Errorf("garbage CRL: %v, want an error naming %s", err, garbage)
	}
	if err := checkCRL(filepath.Join(dir, "missing"), []*x509.Certificate{parse(t, kept)}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing CRL: %v, want not exist", err)
	}
	if err := checkCRL(garbage, nil); err != nil {
		t.Errorf("no certificate to check: %v", err)
	}
}

func parse(t *testing.T, p certtest.Pair) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(p.Cert, p.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// TestCertificateReload: replacing the files changes the certificate the
// next handshake presents, with no new config.
func TestCertificateReload(t *testing.T) {
	f := newFixture(t)
	srv := serverConfig(t, f.info())
	cli := clientOf(t, f.ca)
	server, client := handshake(t, srv, cli)
	checkAccepted(t, server, client, true)
	if got := client.state.PeerCertificates[0].SerialNumber; got.Cmp(f.server.Serial) != 0 {
		t.Fatalf("client saw serial %v, want %v", got, f.server.Serial)
	}
	next := f.ca.Issue(t, "server-next", "127.0.0.1")
	copyFile(t, next.Cert, f.server.Cert)
	copyFile(t, next.Key, f.server.Key)
	server, client = handshake(t, srv, cli)
	checkAccepted(t, server, client, true)
	if got := client.state.PeerCertificates[0].SerialNumber; got.Cmp(next.Serial) != 0 {
		t.Fatalf("after replacing the files the client saw serial %v, want %v", got, next.Serial)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckClientSAN(t *testing.T) {
	f := newFixture(t)
	revoked := f.ca.Issue(t, "revoked", "127.0.0.1")
	i := f.info()
	i.ClientCertAuth, i.TrustedCAFile, i.CheckClientSAN = true, f.ca.File, true
	i.CRLFile = f.ca.Revoke(t, revoked.Serial)
	check := serverConfig(t, i)
	i.CheckClientSAN = false
	noCheck := serverConfig(t, i)
	for _, tc := range []struct {
		name   string
		server *tls.Config
		cert   certtest.Pair
		ok     bool
	}{
		{"SAN another IP", check, f.ca.Issue(t, "far", "10.9.9.9"), false},
		{"SAN the remote IP", check, f.ca.Issue(t, "near", "10.9.9.9", "127.0.0.1"), true},
		{"no SANs", check, f.ca.Issue(t, "none"), true},
		{"SAN a name resolving elsewhere", check, f.ca.Issue(t, "elsewhere", "does-not-exist.invalid"), false},
		{"SAN localhost", check, f.ca.Issue(t, "localhost", "localhost"), true},
		{"SAN another IP, check off", noCheck, f.ca.Issue(t, "far-unchecked", "10.9.9.9"), true},
		// The SAN check wraps the CRL check; it must not replace it.
		{"SAN the remote IP, revoked", check, revoked, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "SAN localhost" && !resolvesToLoopback("localhost") {
				t.Skip("localhost does not resolve to 127.0.0.1 here")
			}
			server, client := handshake(t, tc.server, clientOf(t, f.ca, tc.cert))
			checkAccepted(t, server, client, tc.ok)
		})
	}
}

func resolvesToLoopback(name string) bool {
	addrs, err := net.DefaultResolver.LookupIPAddr(context.Background(), name)
	return err == nil && slices.ContainsFunc(addrs, func(a net.IPAddr) bool { return a.IP.Equal(net.IPv4(127, 0, 0, 1)) })
}

func TestClientConfig(t *testing.T) {
	f := newFixture(t)
	stranger := certtest.NewCA(t).Issue(t, "stranger", "127.0.0.1")
	strangerSrv := serverConfig(t, Info{CertFile: stranger.Cert, KeyFile: stranger.Key})

	t.Run("verifies the server against the trusted CA", func(t *testing.T) {
		for _, i := range []Info{
			{TrustedCAFile: f.ca.File},
			{CertFile: f.server.Cert, KeyFile: f.server.Key, TrustedCAFile: f.ca.File},
		} {
			cli, err := i.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			server, client := handshake(t, serverConfig(t, f.info()), cli)
			checkAccepted(t, server, client, true)
			_, client = handshake(t, strangerSrv, cli)
			var unknown x509.UnknownAuthorityError
			if !errors.As(client.err, &unknown) {
				t.Fatalf("server from another CA: %v, want an unknown authority", client.err)
			}
		}
	})

	t.Run("without a trusted CA uses the system roots", func(t *testing.T) {
		cli, err := Info{}.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if _, client := handshake(t, serverConfig(t, f.info()), cli); client.err == nil {
			t.Fatal("a server from a test CA was trusted")
		}
	})

	t.Run("self-signed skips verification", func(t *testing.T) {
		var files [2][2]string
		for n := range files {
			c, k, err := SelfCert(zap.NewNop(), t.TempDir(), []string{"127.0.0.1:0"}, 1)
			if err != nil {
				t.Fatal(err)
			}
			files[n] = [2]string{c, k}
		}
		srv := serverConfig(t, Info{CertFile: files[0][0], KeyFile: files[0][1], SelfSigned: true})
		i := Info{CertFile: files[1][0], KeyFile: files[1][1], SelfSigned: true}
		cli, err := i.ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		if !cli.InsecureSkipVerify {
			t.Fatal("InsecureSkipVerify not set")
		}
		server, client := handshake(t, srv, cli)
		checkAccepted(t, server, client, true)
		i.SelfSigned = false
		if cli, err = i.ClientConfig(); err != nil {
			t.Fatal(err)
		}
		if _, client = handshake(t, srv, cli); client.err == nil {
			t.Fatal("without SelfSigned, another self-signed server was trusted")
		}
	})

	t.Run("presents the client certificate", func(t *testing.T) {
		auth := f.info()
		auth.ClientCertAuth, auth.TrustedCAFile = true, f.ca.File
		srv := serverConfig(t, auth)
		member, client := f.ca.Issue(t, "member"), f.ca.Issue(t, "client")
		for _, tc := range []struct {
			info Info
			want string
		}{
			{Info{CertFile: member.Cert, KeyFile: member.Key, TrustedCAFile: f.ca.File}, "member"},
			{Info{CertFile: member.Cert, KeyFile: member.Key, ClientCertFile: client.Cert, ClientKeyFile: client.Key, TrustedCAFile: f.ca.File}, "client"},
		} {
			cli, err := tc.info.ClientConfig()
			if err != nil {
				t.Fatal(err)
			}
			server, client := handshake(t, srv, cli)
			checkAccepted(t, server, client, true)
			if got := peerCN(server); got != tc.want {
				t.Fatalf("server saw client %q, want %q", got, tc.want)
			}
		}
	})
}

// TestVersionBounds: TLS 1.2 is the default minimum; the versions and
// cipher suites given bound the handshake.
func TestVersionBounds(t *testing.T) {
	f := newFixture(t)
	// Go's own default minimum is TLS 1.2 too, unless a GODEBUG setting
	// lowers it: so check the field as well as a handshake.
	for name, config := range map[string]func() (*tls.Config, error){
		"server":                     f.info().ServerConfig,
		"client":                     f.info().ClientConfig,
		"client with no certificate": Info{TrustedCAFile: f.ca.File}.ClientConfig,
	} {
		if cfg, err := config(); err != nil || cfg.MinVersion != tls.VersionTLS12 {
			t.Fatalf("%s config: %v, %v; want MinVersion TLS 1.2", name, cfg, err)
		}
	}
	suite := tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
	for _, tc := range []struct {
		name        string
		server      Info
		clientMax   uint16
		ok          bool
		wantVersion uint16
		wantSuite   uint16
	}{
		{"default refuses TLS 1.1", f.info(), tls.VersionTLS11, false, 0, 0},
		{"default accepts TLS 1.2", f.info(), tls.VersionTLS12, true, tls.VersionTLS12, 0},
		{"min TLS 1.3 refuses TLS 1.2", Info{CertFile: f.server.Cert, KeyFile: f.server.Key, MinVersion: tls.VersionTLS13}, tls.VersionTLS12, false, 0, 0},
		{"max TLS 1.2 with a cipher suite", Info{CertFile: f.server.Cert, KeyFile: f.server.Key, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}, 0, true, tls.VersionTLS12, suite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := clientOf(t, f.ca)
			cli.MinVersion, cli.MaxVersion = tls.VersionTLS10, tc.clientMax
			server, client := handshake(t, serverConfig(t, tc.server), cli)
			checkAccepted(t, server, client, tc.ok)
			if !tc.ok {
				return
			}
			if got := client.state.Version; got != tc.wantVersion {
				t.Errorf("version %s, want %s", tls.VersionName(got), tls.VersionName(tc.wantVersion))
			}
			if got := client.state.CipherSuite; tc.wantSuite != 0 && got != tc.wantSuite {
				t.Errorf("cipher suite %s, want %s", tls.CipherSuiteName(got), tls.CipherSuiteName(tc.wantSuite))
			}
		})
	}
}

// TestConfigErrors: bad options fail ServerConfig and ClientConfig up
// front, with errors that name the problem.
func TestConfigErrors(t *testing.T) {
	ca := certtest.NewCA(t)
	p, other := ca.Issue(t, "member"), ca.Issue(t, "other")
	dir := t.TempDir()
	garbage, missing := filepath.Join(dir, "garbage.pem"), filepath.Join(dir, "missing.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		info Info
		want []string // substrings of the error
		is   error
	}{
		{"cert without key", Info{CertFile: p.Cert}, []string{"certificate and key files must be given together", p.Cert}, nil},
		{"key without cert", Info{KeyFile: p.Key}, []string{"certificate and key files must be given together", p.Key}, nil},
		{"client cert without client key", Info{CertFile: p.Cert, KeyFile: p.Key, ClientCertFile: other.Cert}, []string{"client certificate and key files must be given together", other.Cert}, nil},
		{"client key without client cert", Info{CertFile: p.Cert, KeyFile: p.Key, ClientKeyFile: other.Key}, []string{"client certificate and key files must be given together", other.Key}, nil},
		{"missing cert file", Info{CertFile: missing, KeyFile: p.Key}, []string{missing}, fs.ErrNotExist},
		{"garbage cert file", Info{CertFile: garbage, KeyFile: p.Key}, []string{garbage, "PEM"}, nil},
		{"key of another certificate", Info{CertFile: p.Cert, KeyFile: other.Key}, []string{p.Cert, other.Key, "private key does not match"}, nil},
		{"garbage client cert file", Info{CertFile: p.Cert, KeyFile: p.Key, ClientCertFile: garbage, ClientKeyFile: other.Key}, []string{garbage, "PEM"}, nil},
		{"garbage trusted CA file", Info{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: garbage}, []string{garbage, "holds no PEM certificate"}, nil},
		{"missing trusted CA file", Info{CertFile: p.Cert, KeyFile: p.Key, TrustedCAFile: missing}, []string{missing}, fs.ErrNotExist},
		{"allowed CNs and hostnames", Info{CertFile: p.Cert, KeyFile: p.Key, AllowedCNs: []string{"a"}, AllowedHostnames: []string{"b"}}, []string{"mutually exclusive"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for side, f := range map[string]func() (*tls.Config, error){"server": tc.info.ServerConfig, "client": tc.info.ClientConfig} {
				_, err := f()
				if err == nil {
					t.Fatalf("%s config: no error", side)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s config: %q does not mention %q", side, err, w)
					}
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("%s config: %v is not %v", side, err, tc.is)
				}
			}
		})
	}
}

func TestSelfCert(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "member", "fixtures", "client")
	addrs := []string{"127.0.0.1:2379", "[::1]:2379", "localhost:2380", "member1.example:2380", "10.0.0.1"}
	certFile, keyFile, err := SelfCert(zap.NewNop(), dir, addrs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if certFile != filepath.Join(dir, "cert.pem") || keyFile != filepath.Join(dir, "key.pem") {
		t.Fatalf("files %s, %s; want cert.pem and key.pem in %s", certFile, keyFile, dir)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Fatalf("%s holds %d files, want cert.pem and key.pem only", dir, len(entries))
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert := pair.Leaf
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"127.0.0.1", "::1", "10.0.0.1"}; !slices.Equal(ips, want) {
		t.Errorf("IP SANs %q, want %q", ips, want)
	}
	if want := []string{"localhost", "member1.example"}; !slices.Equal(cert.DNSNames, want) {
		t.Errorf("DNS SANs %q, want %q", cert.DNSNames, want)
	}
	if want := time.Now().AddDate(2, 0, 0); cert.NotAfter.Before(want.Add(-time.Hour)) || cert.NotAfter.After(want) {
		t.Errorf("valid until %v, want two years from now", cert.NotAfter)
	}

	before := [2][]byte{readFile(t, certFile), readFile(t, keyFile)}
	c2, k2, err := SelfCert(zap.NewNop(), dir, []string{"192.168.0.1:2379"}, 5)
	if err != nil || c2 != certFile || k2 != keyFile {
		t.Fatalf("second call: %s, %s, %v; want the same files", c2, k2, err)
	}
	if !bytes.Equal(readFile(t, certFile), before[0]) || !bytes.Equal(readFile(t, keyFile), before[1]) {
		t.Fatal("second call rewrote the files")
	}

	// A missing half is made again, with a matching other half.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SelfCert(zap.NewNop(), dir, addrs, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatalf("after the key was lost: %v", err)
	}
	if bytes.Equal(readFile(t, certFile), before[0]) {
		t.Fatal("the certificate of the lost key was kept")
	}

	if _, _, err := SelfCert(zap.NewNop(), t.TempDir(), addrs, 0); err == nil {
		t.Fatal("zero years accepted")
	}
}

func readFile(t *testing.T, f string) []byte {
	t.Helper()
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint16
		wantErr string
	}{
		{"", 0, ""},
		{"TLS1.2", tls.VersionTLS12, ""},
		{"TLS1.3", tls.VersionTLS13, ""},
		{"TLS1.1", 0, `unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)`},
		{"tls1.2", 0, `unexpected TLS version "tls1.2" (must be one of: TLS1.2, TLS1.3)`},
	} {
		got, err := ParseVersion(tc.in)
		if got != tc.want || fmt.Sprint(err) != cmp.Or(tc.wantErr, "<nil>") {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, %s", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestParseCipherSuites(t *testing.T) {
	for _, tc := range []struct {
		in      []string
		want    []uint16
		wantErr string
	}{
		{nil, nil, ""},
		{[]string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
			[]uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}, ""},
		{[]string{"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"}, []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, ""},
		{[]string{"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"}, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, ""},
		{[]string{"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"}, []uint16{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256}, ""},
		{[]string{"TLS_RSA_WITH_RC4_128_SHA"}, []uint16{tls.TLS_RSA_WITH_RC4_128_SHA}, ""}, // insecure, but etcd takes it
		{[]string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_BOGUS"}, nil, `unexpected TLS cipher suite "TLS_BOGUS"`},
	} {
		got, err := ParseCipherSuites(tc.in)
		if !slices.Equal(got, tc.want) || fmt.Sprint(err) != cmp.Or(tc.wantErr, "<nil>") {
			t.Errorf("ParseCipherSuites(%q) = %v, %v; want %v, %s", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestLogRejected: failed handshakes are logged as etcd logs them, a
// client hanging up at debug level only.
func TestLogRejected(t *testing.T) {
	f := newFixture(t)
	strict := f.info()
	strict.ClientCertAuth, strict.TrustedCAFile, strict.AllowedCNs = true, f.ca.File, []string{"someone"}
	refusedCli := clientOf(t, f.ca, f.ca.Issue(t, "refused", "10.9.9.9", "refused.example"))
	refusedCli.ServerName = "127.0.0.1"
	for _, tc := range []struct {
		name   string
		server Info
		client func(net.Conn)
		level  zapcore.Level
		fields map[string]string // substrings of the logged fields
	}{
		{"not TLS", f.info(), func(c net.Conn) { io.WriteString(c, "GET / HTTP/1.1\r\n\r\n") }, zapcore.WarnLevel,
			map[string]string{"error": "does not look like a TLS handshake"}},
		{"hung up", f.info(), func(net.Conn) {}, zapcore.DebugLevel,
			map[string]string{"error": "EOF"}},
		{"certificate refused", strict, func(c net.Conn) { tls.Client(c, refusedCli).Handshake() }, zapcore.WarnLevel, map[string]string{
			"error":        "client certificate authentication failed",
			"ip-addresses": "10.9.9.9",
			"dns-names":    "refused.example",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			c, clientAddr, err := failedHandshake(t, serverConfig(t, tc.server), tc.client)
			if err == nil {
				t.Fatal("handshake succeeded")
			}
			LogRejected(zap.New(core), "rejected connection on client endpoint")(c, err)
			entries := logs.AllUntimed()
			if len(entries) != 1 {
				t.Fatalf("logged %d entries, want 1", len(entries))
			}
			e := entries[0]
			if e.Level != tc.level || e.Message != "rejected connection on client endpoint" {
				t.Fatalf("logged %s %q, want %s", e.Level, e.Message, tc.level)
			}
			fields := e.ContextMap()
			if got := fields["remote-addr"]; got != clientAddr {
				t.Errorf("remote-addr %v, want %s", got, clientAddr)
			}
			for k, want := range tc.fields {
				if got := fmt.Sprint(fields[k]); !strings.Contains(got, want) {
					t.Errorf("%s %q, want it to hold %q", k, got, want)
				}
			}
		})
	}
}

// failedHandshake runs a server handshake against a client doing what
// client does on its connection and then closing it; it returns the
// server's connection, the client's address, and the server's handshake
// error.
func failedHandshake(t *testing.T, srv *tls.Config, client func(net.Conn)) (c *tls.Conn, clientAddr string, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := make(chan string, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			addr <- ""
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(testTimeout))
		addr <- c.LocalAddr().String()
		client(c)
	}()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	c = tls.Server(raw, srv)
	c.SetDeadline(time.Now().Add(testTimeout))
	err = c.Handshake()
	return c, <-addr, err
}
