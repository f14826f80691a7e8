package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestEnvironmentDifferentialEtcd: etcd and Cairn read ETCD_* variables
// alike. Started with the same flags and variables, both use the variables
// of flags not on the command line, skip empty ones, warn about the ones
// no flag reads and about ETCD_VERSION, and log the same lines for them;
// both refuse to start when a flag and its variable are both given. The
// deprecated options' warnings are compared on the way.
func TestEnvironmentDifferentialEtcd(t *testing.T) {
	args := func(name string) ([]string, string) {
		client, peer := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
		dir := filepath.Join(t.TempDir(), "data")
		return []string{
			"--data-dir", dir,
			"--listen-client-urls", "http://" + client, "--advertise-client-urls", "http://" + client,
			"--listen-peer-urls", "http://" + peer, "--initial-advertise-peer-urls", "http://" + peer,
			"--initial-cluster", name + "=http://" + peer,
		}, client
	}
	env := []string{"ETCD_NAME=from-env", "ETCD_SNAPSHOT_COUNT=", "ETCD_NO_SUCH_OPTION=1", "ETCD_VERSION=9.9.9", "ETCD_V2_DEPRECATION=gone"}
	envLines := func(log string) []string {
		var out []string
		for line := range strings.Lines(log) {
			var e map[string]any
			if json.Unmarshal([]byte(line), &e) != nil {
				continue
			}
			switch e["msg"] {
			case "recognized and used environment variable":
				out = append(out, fmt.Sprintf("used %v=%v", e["variable-name"], e["variable-value"]))
			case "unrecognized environment variable":
				out = append(out, fmt.Sprintf("unrecognized %v", e["environment-variable"]))
			case "cannot set special environment variable":
				out = append(out, fmt.Sprintf("special %v=%v", e["key"], e["value"]))
			default:
				if msg, _ := e["msg"].(string); strings.Contains(msg, " is deprecated") {
					out = append(out, "deprecated "+msg)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	var got [][]string
	for _, bin := range []string{etcdBin, cairnBin} {
		a, client := args("from-env")
		p := &proc{t: t, bin: bin, Endpoint: client, args: append(a, "--max-snapshots", "3"), env: env}
		p.start()
		t.Cleanup(p.Kill)
		got = append(got, envLines(p.Log()))
		p.Kill()
	}
	want := []string{
		"deprecated --max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.",
		"deprecated --v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.",
		"special ETCD_VERSION=9.9.9", "unrecognized ETCD_NO_SUCH_OPTION=1", "unrecognized ETCD_SNAPSHOT_COUNT=",
		"used ETCD_NAME=from-env", "used ETCD_V2_DEPRECATION=gone",
	}
	if !slices.Equal(got[0], want) || !slices.Equal(got[1], got[0]) {
		t.Errorf("environment lines:\netcd:  %q\ncairn: %q\nwant:  %q", got[0], got[1], want)
	}

	// A flag and its variable both given: both exit with 1 before serving.
	for _, bin := range []string{etcdBin, cairnBin} {
		a, _ := args("default")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, append(a, "--snapshot-count", "5")...)
		cmd.Env = append(os.Environ(), "ETCD_SNAPSHOT_COUNT=6")
		out, err := cmd.CombinedOutput()
		cancel()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "ETCD_SNAPSHOT_COUNT") {
			t.Errorf("%s with --snapshot-count and ETCD_SNAPSHOT_COUNT: %v, want exit status 1 naming the variable:\n%s", filepath.Base(bin), err, out)
		}
	}
}
