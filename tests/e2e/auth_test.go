package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAuthDifferentialEtcd: the Auth service answers as a fresh etcd does,
// with authentication disabled and no user or role (the one state Cairn
// can be in). etcd and Cairn answer the same etcdctl commands alike: auth
// status, the empty user and role lists, etcd's errors for a user or role
// not found, a permission not given or of an invalid range, auth enable
// without a root user, auth disable; and a client that logs in with a user
// and password reads and writes, as against an etcd without
// authentication. Adding a user or a role is what Cairn cannot do: it
// answers Unimplemented.
func TestAuthDifferentialEtcd(t *testing.T) {
	cmds := [][]string{
		{"auth", "status"},
		{"user", "list"},
		{"role", "list"},
		{"user", "get", "alice"},
		{"user", "delete", "alice"},
		{"user", "passwd", "alice", "--interactive=false"},
		{"user", "grant-role", "alice", "reader"},
		{"user", "revoke-role", "alice", "reader"},
		{"role", "get", "reader"},
		{"role", "delete", "reader"},
		{"role", "grant-permission", "reader", "read", "a"},
		{"role", "grant-permission", "reader", "read", "b", "a"},
		{"role", "grant-permission", "reader", "--prefix", "read", "a"},
		{"role", "revoke-permission", "reader", "a"},
		{"auth", "enable"},
		{"auth", "disable"},
		{"--user", "alice:secret", "put", "k", "v"},
		{"--user", "alice:secret", "get", "k", "--print-value-only"},
	}
	// etcdctl's own log lines carry times and addresses; its answer and
	// its error line do not.
	logLine := regexp.MustCompile(`(?m)^\{"level".*\n`)
	answers := map[string][]string{}
	for _, bin := range []string{etcdBin, cairnBin} {
		name := filepath.Base(bin)
		client, peer := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		dir := filepath.Join(t.TempDir(), "data")
		p := &proc{t: t, bin: bin, Endpoint: client, DataDir: dir, args: []string{
			"--name", name, "--data-dir", dir,
			"--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", name + "=" + peer,
		}}
		p.start()
		t.Cleanup(p.Kill)
		for _, c := range cmds {
			out, errOut, code := p.ctl(etcdctlBin, "new-password\n", c...)
			answers[name] = append(answers[name], fmt.Sprintf("%d %s%s", code, out, logLine.ReplaceAllString(errOut, "")))
		}
		out, errOut, code := p.ctl(etcdctlBin, "", "user", "add", "alice", "--new-user-password", "secret")
		if name == filepath.Base(cairnBin) && (code == 0 || !strings.Contains(errOut, "code = Unimplemented desc = method UserAdd not implemented")) {
			t.Errorf("cairn user add: %d %s %s", code, out, errOut)
		}
	}
	etcd, cairn := answers[filepath.Base(etcdBin)], answers[filepath.Base(cairnBin)]
	for i, c := range cmds {
		if etcd[i] != cairn[i] {
			t.Errorf("etcdctl %s:\netcd:  %q\ncairn: %q", strings.Join(c, " "), etcd[i], cairn[i])
		}
	}
	if !strings.Contains(etcd[0], "Authentication Status: false") || !strings.Contains(etcd[len(cmds)-1], "v\n") {
		t.Errorf("etcd answered unexpectedly: %q", etcd)
	}
}
