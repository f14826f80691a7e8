package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEtcdctlSession drives cairn with the real etcdctl v3.7 through every
// KV command and checks what an operator would see.
func TestEtcdctlSession(t *testing.T) {
	p := startCairn(t, "")
	steps := []struct {
		stdin string
		args  []string
		want  string // exact stdout
		code  int
	}{
		{"", []string{"put", "foo", "bar"}, "OK\n", 0},
		{"", []string{"get", "foo"}, "foo\nbar\n", 0},
		{"", []string{"put", "foo", "baz", "--prev-kv"}, "OK\nfoo\nbar\n", 0},
		{"", []string{"put", "fop", "1"}, "OK\n", 0},
		{"", []string{"get", "fo", "--prefix", "--keys-only"}, "foo\n\nfop\n\n", 0},
		{"", []string{"get", "foo", "--print-value-only"}, "baz\n", 0},
		{"", []string{"get", "foo", "--rev", "2"}, "foo\nbar\n", 0},
		{"", []string{"get", "f", "--from-key", "--limit", "1", "--order", "DESCEND", "--sort-by", "VALUE"}, "foo\nbaz\n", 0},
		{"", []string{"get", "f", "--prefix", "--count-only", "-w", "fields"}, "", 0},
		{"value(\"foo\") = \"baz\"\n\nput txnkey yes\n\nput txnkey no\n\n", []string{"txn"}, "SUCCESS\n\nOK\n", 0},
		{"", []string{"get", "txnkey"}, "txnkey\nyes\n", 0},
		{"mod(\"foo\") > \"100\"\n\nput txnkey yes\n\nget foo\n\n", []string{"txn"}, "FAILURE\n\nfoo\nbaz\n", 0},
		{"", []string{"del", "fo", "--prefix"}, "2\n", 0},
		{"", []string{"del", "nothing"}, "0\n", 0},
		{"", []string{"compaction", "3"}, "compacted revision 3\n", 0},
		{"", []string{"get", "foo", "--rev", "2"}, "", 1},
		{"", []string{"put", "", "x"}, "", 1},
	}
	for _, s := range steps {
		out, errOut, code := p.ctl(etcdctlBin, s.stdin, s.args...)
		if code != s.code {
			t.Fatalf("etcdctl %v: exit %d, want %d\nstdout: %s\nstderr: %s", s.args, code, s.code, out, errOut)
		}
		if s.want != "" && out != s.want {
			t.Fatalf("etcdctl %v:\ngot  %q\nwant %q\nstderr: %s", s.args, out, s.want, errOut)
		}
	}
	_, errOut, _ := p.ctl(etcdctlBin, "", "get", "foo", "--rev", "2")
	if !strings.Contains(errOut, "etcdserver: mvcc: required revision has been compacted") {
		t.Fatalf("compacted read: stderr %q", errOut)
	}
	_, errOut, _ = p.ctl(etcdctlBin, "", "put", "", "x")
	if !strings.Contains(errOut, "etcdserver: key is not provided") {
		t.Fatalf("empty key: stderr %q", errOut)
	}

	out, _, code := p.ctl(etcdctlBin, "", "get", "txnkey", "-w", "json")
	if code != 0 {
		t.Fatalf("get -w json: exit %d", code)
	}
	var resp struct {
		Header struct {
			ClusterID uint64 `json:"cluster_id"`
			MemberID  uint64 `json:"member_id"`
			Revision  int64  `json:"revision"`
			RaftTerm  uint64 `json:"raft_term"`
		} `json:"header"`
		Kvs []struct {
			Key            string `json:"key"`
			CreateRevision int64  `json:"create_revision"`
			Version        int64  `json:"version"`
		} `json:"kvs"`
		Count int64 `json:"count"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("json output %q: %v", out, err)
	}
	if resp.Header.ClusterID == 0 || resp.Header.MemberID == 0 || resp.Header.RaftTerm == 0 || resp.Count != 1 || resp.Kvs[0].Key != "dHhua2V5" {
		t.Fatalf("json output: %+v", resp)
	}

	for _, args := range [][]string{{"endpoint", "health"}, {"endpoint", "status"}, {"member", "list"}} {
		out, errOut, code := p.ctl(etcdctlBin, "", args...)
		if code != 0 {
			t.Fatalf("etcdctl %v: exit %d\n%s%s", args, code, out, errOut)
		}
		if !strings.Contains(out, p.Endpoint) && args[0] != "member" {
			t.Fatalf("etcdctl %v: %q does not name the endpoint", args, out)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestServerFlags checks etcd's flag conventions: unknown flags are usage
// errors, ETCD_* fills flags not on the command line, --version prints.
func TestServerFlags(t *testing.T) {
	out, err := exec.Command(cairnBin, "--no-such-flag").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "no-such-flag") {
		t.Fatalf("unknown flag: err %v output %q", err, out)
	}
	out, err = exec.Command(cairnBin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cairn Version:") {
		t.Fatalf("--version: %v %q", err, out)
	}
	// ETCD_NAME and ETCD_DATA_DIR come from the environment, the rest from
	// the command line (both for one flag is an error, as in etcd:
	// TestEnvironmentDifferentialEtcd).
	dir := t.TempDir()
	ep := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, ep, "", []string{"--listen-client-urls", "http://" + ep, "--advertise-client-urls", "http://" + ep, "--listen-peer-urls", "http://127.0.0.1:0"},
		[]string{"ETCD_NAME=from-env", "ETCD_DATA_DIR=" + dir + "/envdata"})
	out2, errOut, code := p.ctl(etcdctlBin, "", "member", "list")
	if code != 0 || !strings.Contains(out2, "from-env") {
		t.Fatalf("member list: exit %d %q %q", code, out2, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "envdata", "member", "wal")); err != nil {
		t.Fatalf("ETCD_DATA_DIR not used: %v", err)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
}

// TestShutdownWithOpenWatch: SIGTERM ends open watch streams (clients get
// "server stopped" and reconnect) instead of waiting out the graceful-stop
// timeout, and the member exits cleanly.
func TestShutdownWithOpenWatch(t *testing.T) {
	p := startCairn(t, "")
	c := newClient(t, p.Endpoint)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wc := c.Watch(ctx, "k", clientv3.WithCreatedNotify())
	if r := <-wc; !r.Created {
		t.Fatalf("watch not created: %+v", r)
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(p.Log(), "did not finish in time") {
		t.Fatalf("shutdown waited for the open watch:\n%s", p.Log())
	}
}

// TestWatchProgressNotifyIntervalFlag: --watch-progress-notify-interval
// reaches the server: a quiet watcher with progress_notify gets a
// notification well before etcd's 10-minute default.
func TestWatchProgressNotifyIntervalFlag(t *testing.T) {
	p := startCairn(t, "", "--watch-progress-notify-interval", "100ms")
	c := newClient(t, p.Endpoint)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wc := c.Watch(ctx, "quiet", clientv3.WithProgressNotify())
	for {
		select {
		case r := <-wc:
			if r.IsProgressNotify() {
				return
			}
		case <-ctx.Done():
			t.Fatal("no progress notification within 30s with a 100ms interval")
		}
	}
}
