package main

import (
	"testing"

	"github.com/cairn-kv/cairn/internal/tlsinfo/certtest"
)

// TestTLSFlags: etcdctl's TLS flags make the client configuration the
// connections dial https endpoints with; without them there is none.
func TestTLSFlags(t *testing.T) {
	if cfg, err := (&options{}).tls(); cfg != nil || err != nil {
		t.Fatalf("no flags: %v %v", cfg, err)
	}
	ca := certtest.NewCA(t)
	user := ca.Issue(t, "user")
	cfg, err := (&options{cacert: ca.File, cert: user.Cert, key: user.Key}).tls()
	if err != nil || cfg.RootCAs == nil || cfg.GetClientCertificate == nil || cfg.InsecureSkipVerify {
		t.Fatalf("--cacert --cert --key: %+v %v", cfg, err)
	}
	if cfg, err := (&options{insecureSkipTLS: true}).tls(); err != nil || !cfg.InsecureSkipVerify {
		t.Fatalf("--insecure-skip-tls-verify: %+v %v", cfg, err)
	}
	if _, err := (&options{cert: user.Cert}).tls(); err == nil {
		t.Fatal("--cert without --key was accepted")
	}
}
