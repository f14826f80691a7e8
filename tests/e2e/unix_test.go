package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-kv/cairn/internal/tlsinfo/certtest"
	"github.com/cairn-kv/cairn/tests/framework"
)

// TestUnixSocketDifferentialEtcd: client URLs on unix domain sockets, as
// etcd has them. etcd and Cairn, each listening on unix:///path (and
// unixs:///path with TLS) beside a TCP URL and advertising the socket,
// answer etcdctl through the socket alike (a put, a get, the member
// list's client address) and /health over HTTP on it; each removes its
// socket file when it stops.
func TestUnixSocketDifferentialEtcd(t *testing.T) {
	ca := certtest.NewCA(t)
	for _, scheme := range []string{"unix", "unixs"} {
		answers := map[string]string{}
		for _, bin := range []string{etcdBin, cairnBin} {
			name := filepath.Base(bin)
			dir := t.TempDir()
			sock := filepath.Join(dir, name+".sock")
			peer := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
			args := []string{
				"--name", name, "--data-dir", filepath.Join(dir, "data"),
				"--listen-client-urls", scheme + "://" + sock + fmt.Sprintf(",http://127.0.0.1:%d", freePort(t)),
				"--advertise-client-urls", scheme + "://" + sock,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", name + "=" + peer,
			}
			var ctl []string
			hc, base := &http.Client{Transport: &http.Transport{}}, "http://localhost"
			if scheme == "unixs" {
				// etcdctl checks the certificate against the socket file's
				// name; Go's HTTP client, against "localhost".
				server := ca.Issue(t, "server", "localhost", name+".sock")
				args = append(args, "--cert-file", server.Cert, "--key-file", server.Key)
				ctl = []string{"--cacert", ca.File}
				hc, base = httpsClient(t, ca.File, nil), "https://localhost"
			}
			hc.Transport.(*http.Transport).DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			}
			p := &proc{t: t, bin: bin, Endpoint: scheme + "://" + sock, DataDir: filepath.Join(dir, "data"), args: args}
			p.start()
			t.Cleanup(p.Kill)
			var got []string
			run := func(args ...string) {
				out, errOut, code := p.ctl(etcdctlBin, "", append(ctl, args...)...)
				if code != 0 {
					t.Fatalf("%s %s: etcdctl %v: %d %s", name, scheme, args, code, errOut)
				}
				got = append(got, out)
			}
			run("put", "k", "v")
			run("get", "k")
			run("member", "list", "--write-out", "json")
			// Member IDs differ between the two servers; the client URLs
			// must not.
			if i := strings.Index(got[2], `"clientURLs"`); i >= 0 {
				got[2] = got[2][i : strings.Index(got[2][i:], "]")+i+1]
			}
			resp, err := hc.Get(base + "/health")
			if err != nil {
				t.Fatalf("%s %s: /health over the socket: %v", name, scheme, err)
			}
			code, body := framework.ResponseBody(t, resp, nil)
			got = append(got, fmt.Sprintf("%d %s", code, body))
			answers[name] = strings.ReplaceAll(strings.Join(got, "\n"), sock, "SOCKET")
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s %s: the socket file after stopping: %v", name, scheme, err)
			}
		}
		want, got := answers[filepath.Base(etcdBin)], answers[filepath.Base(cairnBin)]
		if got != want || !strings.Contains(want, `"clientURLs":["`+scheme+`://SOCKET"]`) {
			t.Errorf("%s:\netcd:\n%s\ncairn:\n%s", scheme, want, got)
		}
	}
}

// TestUnixSocketPeersDifferentialEtcd: three members whose peer URLs are
// unix://name:port, socket files in their working directory, and whose
// client URLs are unix sockets too, form a cluster and replicate, in etcd
// and in Cairn alike; a lease kept alive through each member (a follower
// forwards it to the leader, Cairn through the leader's advertised unix
// client URL) stays granted; the member list gives the same peer URLs.
func TestUnixSocketPeersDifferentialEtcd(t *testing.T) {
	answers := map[string]string{}
	for _, bin := range []string{etcdBin, cairnBin} {
		name := filepath.Base(bin)
		dir := t.TempDir()
		var initial []string
		for i := range 3 {
			initial = append(initial, fmt.Sprintf("m%d=unix://m%d:2380", i, i))
		}
		var ps []*proc
		for i := range 3 {
			client := fmt.Sprintf("unix://%s/c%d.sock", dir, i)
			peer := fmt.Sprintf("unix://m%d:2380", i)
			data := filepath.Join(dir, fmt.Sprintf("data%d", i))
			ps = append(ps, &proc{t: t, bin: bin, Endpoint: client, DataDir: data, dir: dir, args: []string{
				"--name", fmt.Sprintf("m%d", i), "--data-dir", data,
				"--listen-client-urls", client, "--advertise-client-urls", client,
				"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
				"--initial-cluster", strings.Join(initial, ","),
			}})
		}
		launchCluster(ps)
		if out, errOut, code := ps[0].ctl(etcdctlBin, "", "put", "k", "v"); code != 0 {
			t.Fatalf("%s put: %d %s %s", name, code, out, errOut)
		}
		out, errOut, code := ps[2].ctl(etcdctlBin, "", "get", "k", "--print-value-only")
		if code != 0 || out != "v\n" {
			t.Fatalf("%s get on another member: %d %q %s", name, code, out, errOut)
		}
		out, errOut, code = ps[0].ctl(etcdctlBin, "", "lease", "grant", "60")
		lease := strings.Fields(out)
		if code != 0 || len(lease) < 2 {
			t.Fatalf("%s lease grant: %d %q %s", name, code, out, errOut)
		}
		for _, p := range ps {
			if out, errOut, code := p.ctl(etcdctlBin, "", "lease", "keep-alive", "--once", lease[1]); code != 0 || !strings.Contains(out, "keepalived with TTL(60)") {
				t.Fatalf("%s keep-alive through %s: %d %q %s", name, p.Endpoint, code, out, errOut)
			}
		}
		out, _, _ = ps[1].ctl(etcdctlBin, "", "member", "list", "--write-out", "fields")
		var peers []string
		for line := range strings.Lines(out) {
			if strings.HasPrefix(line, `"PeerURL"`) {
				peers = append(peers, strings.TrimSpace(line))
			}
		}
		slices.Sort(peers)
		answers[name] = strings.Join(peers, "\n")
	}
	want, got := answers[filepath.Base(etcdBin)], answers[filepath.Base(cairnBin)]
	if got != want || strings.Count(want, "unix://") != 3 {
		t.Errorf("peer URLs in the member list:\netcd:\n%s\ncairn:\n%s", want, got)
	}
}
