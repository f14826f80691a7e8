package tlsinfo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Info is one side's transport security options.
type Info struct {
	// CertFile and KeyFile are the certificate this side serves with; both
	// or neither.
	CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile, when given, are presented instead
	// of CertFile and KeyFile when this side dials.
	ClientCertFile, ClientKeyFile string
	// TrustedCAFile verifies the other end's certificate: clients' on a
	// listener, servers' when dialing.
	TrustedCAFile string
	// ClientCertAuth makes a listener require a verified client
	// certificate.
	ClientCertAuth bool
	// CRLFile lists revoked certificates.
	CRLFile string
	// AllowedCNs and AllowedHostnames restrict which verified certificates
	// are accepted (mutually exclusive).
	AllowedCNs, AllowedHostnames []string
	// CheckClientSAN makes a listener check a client certificate's SANs
	// against the connection's remote address.
	CheckClientSAN bool
	// SelfSigned marks CertFile as SelfCert's: dialing does not verify.
	SelfSigned bool
	// CipherSuites, MinVersion and MaxVersion bound the handshake; zero
	// values take etcd's defaults (Go's suites, TLS 1.2, Go's maximum).
	CipherSuites           []uint16
	MinVersion, MaxVersion uint16
	// Logger receives certificate loading failures; nil discards them.
	Logger *zap.Logger
}

// Empty reports whether no certificate is configured, which is etcd's
// test for "no TLS on this side".
func (i Info) Empty() bool { return i.CertFile == "" && i.KeyFile == "" }

// ServerConfig returns the configuration a listener handshakes with.
func (i Info) ServerConfig() (*tls.Config, error) {
	cfg, err := i.base()
	if err != nil {
		return nil, err
	}
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return i.load("server", i.CertFile, i.KeyFile)
	}
	if i.ClientCertAuth || i.TrustedCAFile != "" {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if i.TrustedCAFile != "" {
		if cfg.ClientCAs, err = certPool(i.TrustedCAFile); err != nil {
			return nil, err
		}
	}
	// Go picks the first of these the client offers: see doc.go.
	cfg.NextProtos = []string{"http/1.1", "h2"}
	if i.CheckClientSAN {
		cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c := cfg.Clone()
			c.GetConfigForClient = nil
			remote := hello.Conn.RemoteAddr().String()
			verify := c.VerifyConnection
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				if verify != nil {
					if err := verify(cs); err != nil {
						return err
					}
				}
				if len(cs.PeerCertificates) == 0 {
					return nil
				}
				ctx, cancel := context.WithTimeout(hello.Context(), 5*time.Second)
				defer cancel()
				return checkSAN(ctx, cs.PeerCertificates[0], remote)
			}
			return c, nil
		}
	}
	return cfg, nil
}

// ClientConfig returns the configuration this side dials with. Without a
// certificate it still verifies servers (against TrustedCAFile or the
// system's roots) but presents none.
func (i Info) ClientConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if !i.Empty() {
		var err error
		if cfg, err = i.base(); err != nil {
			return nil, err
		}
		cert, key := i.clientPair()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return i.load("client", cert, key)
		}
	}
	if i.TrustedCAFile != "" {
		var err error
		if cfg.RootCAs, err = certPool(i.TrustedCAFile); err != nil {
			return nil, err
		}
	}
	cfg.InsecureSkipVerify = i.SelfSigned
	return cfg, nil
}

func (i Info) clientPair() (cert, key string) {
	if i.ClientCertFile != "" {
		return i.ClientCertFile, i.ClientKeyFile
	}
	return i.CertFile, i.KeyFile
}

// base checks the files and returns what servers and clients share.
func (i Info) base() (*tls.Config, error) {
	if i.CertFile == "" || i.KeyFile == "" {
		return nil, fmt.Errorf("the certificate and key files must be given together (cert %q, key %q)", i.CertFile, i.KeyFile)
	}
	if (i.ClientCertFile == "") != (i.ClientKeyFile == "") {
		return nil, fmt.Errorf("the client certificate and key files must be given together (cert %q, key %q)", i.ClientCertFile, i.ClientKeyFile)
	}
	if _, err := tls.LoadX509KeyPair(i.CertFile, i.KeyFile); err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", i.CertFile, i.KeyFile, err)
	}
	if i.ClientCertFile != "" {
		if _, err := tls.LoadX509KeyPair(i.ClientCertFile, i.ClientKeyFile); err != nil {
			return nil, fmt.Errorf("loading %s and %s: %w", i.ClientCertFile, i.ClientKeyFile, err)
		}
	}
	if len(i.AllowedCNs) > 0 && len(i.AllowedHostnames) > 0 {
		return nil, fmt.Errorf("allowed CNs and allowed hostnames are mutually exclusive (cns=%q, hostnames=%q)", i.AllowedCNs, i.AllowedHostnames)
	}
	cfg := &tls.Config{
		MinVersion:   i.MinVersion,
		MaxVersion:   i.MaxVersion,
		CipherSuites: i.CipherSuites,
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if allowed := i.allowed(); allowed != nil {
		cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			for _, chain := range chains {
				if len(chain) > 0 && allowed(chain[0]) {
					return nil
				}
			}
			return errors.New("client certificate authentication failed")
		}
	}
	if i.CRLFile != "" {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return checkCRL(i.CRLFile, cs.PeerCertificates)
		}
	}
	return cfg, nil
}

// allowed returns the AllowedCNs / AllowedHostnames test, nil if none.
func (i Info) allowed() func(*x509.Certificate) bool {
	switch {
	case len(i.AllowedCNs) > 0:
		return func(c *x509.Certificate) bool { return slices.Contains(i.AllowedCNs, c.Subject.CommonName) }
	case len(i.AllowedHostnames) > 0:
		return func(c *x509.Certificate) bool {
			return slices.ContainsFunc(i.AllowedHostnames, func(h string) bool { return c.VerifyHostname(h) == nil })
		}
	}
	return nil
}

// load reads a certificate and its key for a handshake.
func (i Info) load(what, certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		if i.Logger != nil {
			i.Logger.Warn("failed to load the "+what+" certificate", zap.String("cert-file", certFile), zap.String("key-file", keyFile), zap.Error(err))
		}
		return nil, err
	}
	return &c, nil
}

func certPool(file string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return p, nil
}

// checkCRL refuses certs if the revocation list in file names one of them.
func checkCRL(file string, certs []*x509.Certificate) error {
	if len(certs) == 0 {
		return nil
	}
	der, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if b, _ := pem.Decode(der); b != nil {
		der = b.Bytes // etcd reads DER; PEM is accepted too
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	for _, r := range list.RevokedCertificateEntries {
		for _, c := range certs {
			if c.SerialNumber.Cmp(r.SerialNumber) == 0 {
				return fmt.Errorf("certificate serial %x is revoked", c.SerialNumber)
			}
		}
	}
	return nil
}

// checkSAN accepts cert for a connection from remote if cert names no
// SAN, names remote's IP, or names a host that resolves to it.
func checkSAN(ctx context.Context, cert *x509.Certificate, remote string) error {
	if len(cert.IPAddresses) == 0 && len(cert.DNSNames) == 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return err
	}
	if cert.VerifyHostname(host) == nil {
		return nil
	}
	ip := net.ParseIP(host)
	for _, name := range cert.DNSNames {
		if strings.HasPrefix(name, "*.") {
			continue // a wildcard cannot be resolved; etcd matches it by reverse lookup, which Cairn does not do
		}
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, name)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.IP.Equal(ip) {
				return nil
			}
		}
	}
	return fmt.Errorf("client certificate SANs (IPs %v, DNS names %q) do not match the connection's address %s", cert.IPAddresses, cert.DNSNames, host)
}

// ParseVersion maps etcd's --tls-min-version / --tls-max-version values
// ("TLS1.2", "TLS1.3", or "" for Go's choice).
func ParseVersion(s string) (uint16, error) {
	switch s {
	case "":
		return 0, nil
	case "TLS1.2":
		return tls.VersionTLS12, nil
	case "TLS1.3":
		return tls.VersionTLS13, nil
	}
	return 0, fmt.Errorf("unexpected TLS version %q (must be one of: TLS1.2, TLS1.3)", s)
}

// ParseCipherSuites maps --cipher-suites names (Go's names, as etcd takes
// them) to their IDs.
func ParseCipherSuites(names []string) ([]uint16, error) {
	var ids []uint16
	for _, n := range names {
		id, ok := cipherSuite(n)
		if !ok {
			return nil, fmt.Errorf("unexpected TLS cipher suite %q", n)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func cipherSuite(name string) (uint16, bool) {
	for _, c := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if c.Name == name {
			return c.ID, true
		}
	}
	// The names etcd documented before Go added the _SHA256 suffix.
	switch name {
	case "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true
	case "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305":
		return tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true
	}
	return 0, false
}

// LogRejected returns a handshake failure reporter that logs msg as etcd
// does ("rejected connection on client endpoint"): a client that hung up
// at debug level, anything else as a warning.
func LogRejected(lg *zap.Logger, msg string) func(*tls.Conn, error) {
	return func(c *tls.Conn, err error) {
		log := lg.Warn
		if errors.Is(err, io.EOF) {
			log = lg.Debug
		}
		st := c.ConnectionState()
		fields := []zap.Field{zap.String("remote-addr", c.RemoteAddr().String()), zap.String("server-name", st.ServerName)}
		if len(st.PeerCertificates) > 0 {
			cert := st.PeerCertificates[0]
			ips := make([]string, len(cert.IPAddresses))
			for i, ip := range cert.IPAddresses {
				ips[i] = ip.String()
			}
			fields = append(fields, zap.Strings("ip-addresses", ips), zap.Strings("dns-names", cert.DNSNames))
		}
		log(msg, append(fields, zap.Error(err))...)
	}
}
