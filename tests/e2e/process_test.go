package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/tests/reference"
)

var (
	binDir     string
	cairnBin   string
	cairnctl   string
	etcdBin    string // the reference etcd, for differential tests
	etcdctlBin string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "cairn-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binDir = dir
		cairnBin, cairnctl = filepath.Join(dir, "cairn"), filepath.Join(dir, "cairnctl")
		root, err := reference.RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for bin, pkg := range map[string]string{cairnBin: "./cmd/cairn", cairnctl: "./cmd/cairnctl"} {
			cmd := exec.Command("go", "build", "-o", bin, pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
				return 1
			}
		}
		if etcdBin, etcdctlBin, err = reference.Binaries(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// given are the ports freePort has returned in this process.
var given struct {
	sync.Mutex
	ports map[int]bool
}

// freePort returns a loopback port that was free a moment ago, and never
// one it returned before: the system may hand a just-closed port out again,
// and a member's client and peer URLs must differ.
func freePort(t testing.TB) int {
	t.Helper()
	given.Lock()
	defer given.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given.ports[port] {
			if given.ports == nil {
				given.ports = map[int]bool{}
			}
			given.ports[port] = true
			return port
		}
	}
}

// proc is a running cairn process (or etcd's, with bin set).
type proc struct {
	t        testing.TB
	bin      string // default cairnBin
	cmd      *exec.Cmd
	Endpoint string
	DataDir  string
	args     []string
	env      []string
	dir      string            // working directory; the test's own when empty
	log      *framework.Output // stderr of the current run
	exited   chan struct{}
}

// startCairn starts cairn with a fresh data dir (or dataDir when non-empty)
// and waits for its "ready to serve client requests" line.
func startCairn(t testing.TB, dataDir string, extra ...string) *proc {
	t.Helper()
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
	}
	port := freePort(t)
	ep := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{
		"--name", "e2e", "--data-dir", dataDir,
		"--listen-client-urls", "http://" + ep, "--advertise-client-urls", "http://" + ep,
		"--listen-peer-urls", "http://127.0.0.1:0",
	}, extra...)
	return startProc(t, ep, dataDir, args, nil)
}

// startProc starts cairn with exactly args and extra environment env.
func startProc(t testing.TB, endpoint, dataDir string, args, env []string) *proc {
	t.Helper()
	p := &proc{t: t, Endpoint: endpoint, DataDir: dataDir, args: args, env: env}
	p.start()
	t.Cleanup(p.Kill)
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.launch()
	p.waitReady()
}

// launch starts the process without waiting for it to be ready, for
// members of a new cluster, none of which is ready before a quorum runs.
func (p *proc) launch() {
	p.t.Helper()
	bin := p.bin
	if bin == "" {
		bin = cairnBin
	}
	p.cmd = exec.Command(bin, p.args...)
	p.cmd.Env = append(os.Environ(), p.env...)
	p.cmd.Dir = p.dir
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	// Each run logs afresh: waits for a line see this run's lines only.
	out, cmd, exited := framework.NewOutput(), p.cmd, make(chan struct{})
	p.log, p.exited = out, exited
	go func() {
		io.Copy(out, stderr)
		cmd.Wait()
		close(exited)
	}()
}

// waitReady waits for the launched process's "ready to serve client
// requests" line.
func (p *proc) waitReady() {
	p.t.Helper()
	p.waitLog("ready to serve client requests", 60*time.Second)
}

// waitLog waits until the process's stderr holds substr, and fails the
// test if the process exits or d passes first.
func (p *proc) waitLog(substr string, d time.Duration) {
	p.t.Helper()
	if err := p.log.Wait(p.exited, d, func(out string) bool { return strings.Contains(out, substr) }); err != nil {
		p.t.Fatalf("cairn did not log %q: %v:\n%s", substr, err, p.Log())
	}
}

// logLine waits up to 30 s for a log line containing msg and returns the
// first such line.
func (p *proc) logLine(msg string) string {
	p.t.Helper()
	p.waitLog(msg, 30*time.Second)
	for line := range strings.Lines(p.Log()) {
		if strings.Contains(line, msg) {
			return line
		}
	}
	return ""
}

// Log returns what the process has written to stderr.
func (p *proc) Log() string { return p.log.String() }

// Kill sends SIGKILL and waits for the process to go.
func (p *proc) Kill() {
	if p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.exited
}

// Stop sends SIGTERM and waits for a clean exit.
func (p *proc) Stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.Kill()
		return fmt.Errorf("cairn did not stop on SIGTERM within 30s")
	}
	// etcd, once stopped, raises the signal again: it ends killed by it.
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && p.bin == etcdBin && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
		return nil
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited %d after SIGTERM:\n%s", filepath.Base(p.cmd.Path), code, p.Log())
	}
	return nil
}

// Restart starts the process again on the same data dir and address.
func (p *proc) Restart() {
	p.t.Helper()
	p.start()
}

// ctl runs a CLI binary against the process and returns stdout, stderr and
// the exit code.
func (p *proc) ctl(bin, stdin string, args ...string) (string, string, int) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoints", p.Endpoint}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("running %s: %v", bin, err)
	}
	return out.String(), errb.String(), code
}
