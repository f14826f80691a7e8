package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cairn-kv/cairn/internal/tlsinfo/certtest"
)

// TestNpmEtcd3Differential runs the npm etcd3 client (Node.js, grpc-js)
// through node/client.js against the reference etcd and against Cairn, in
// plain TCP and over TLS with a client certificate, and compares what it
// saw step by step: KV, txns, leases, watches with replay, the client's
// lock, election and STM recipes, compaction, and the errors of bad
// requests. Over TLS it also shows that grpc-js negotiates HTTP/2 with
// Cairn's https port (docs/operations.md, "TLS"). scripts/test.sh
// installs the package into node/node_modules.
func TestNpmEtcd3Differential(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("node", "client.js"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("Node.js is needed for the npm etcd3 client: apt-get install nodejs npm")
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "etcd3")); err != nil {
		t.Fatal("the npm etcd3 package is not installed: (cd tests/e2e/node && npm install --no-package-lock), as scripts/test.sh does")
	}
	ca := certtest.NewCA(t)
	server, user := ca.Issue(t, "server", "127.0.0.1"), ca.Issue(t, "user")
	for _, tc := range []struct {
		name   string
		scheme string
		flags  []string
		args   []string
	}{
		{"plain", "http", nil, nil},
		{"TLS", "https", []string{"--cert-file", server.Cert, "--key-file", server.Key, "--trusted-ca-file", ca.File, "--client-cert-auth"},
			[]string{ca.File, user.Cert, user.Key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outputs := map[string]map[string]json.RawMessage{}
			for _, kind := range []string{"etcd", "cairn"} {
				client, peer := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
				dir := filepath.Join(t.TempDir(), "data")
				p := &proc{t: t, Endpoint: client, DataDir: dir, args: append([]string{
					"--name", kind, "--data-dir", dir,
					"--listen-client-urls", tc.scheme + "://" + client, "--advertise-client-urls", tc.scheme + "://" + client,
					"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
					"--initial-cluster", kind + "=http://" + peer,
				}, tc.flags...)}
				if kind == "etcd" {
					p.bin = etcdBin
				}
				p.start()
				t.Cleanup(p.Kill)
				outputs[kind] = runNode(t, script, append([]string{client}, tc.args...)...)
			}
			e, c := outputs["etcd"], outputs["cairn"]
			keys := make([]string, 0, len(e))
			for k := range e {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if len(keys) < 30 {
				t.Fatalf("the client reported only %d steps: %v", len(keys), keys)
			}
			for _, k := range keys {
				var ev, cv any
				if json.Unmarshal(e[k], &ev) != nil || json.Unmarshal(c[k], &cv) != nil || !reflect.DeepEqual(ev, cv) {
					t.Errorf("%s:\n etcd:  %s\n cairn: %s", k, e[k], c[k])
				}
			}
		})
	}
}

// runNode runs the client script and returns its report, step by step.
func runNode(t *testing.T, script string, args ...string) map[string]json.RawMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("node client.js %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	var report map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &report); err != nil {
		t.Fatalf("client report %q: %v", out.String(), err)
	}
	return report
}
