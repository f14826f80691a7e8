package ctltest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ServerEnv names the variable that selects the server binary.
const ServerEnv = "CAIRNCTL_DIFF_SERVER"

// Server is one running server process.
type Server struct {
	// Endpoint is the client address, host:port.
	Endpoint string
	// ClientURL is the advertised client URL (http://Endpoint).
	ClientURL string
	cmd       *exec.Cmd
	logPath   string
	// done is closed once the process has exited; err is then what
	// Wait returned.
	done chan struct{}
	err  error
}

// twinPeerURL is advertised by every server of a test run, never listened
// on: a single-member cluster never dials its own peer URL, and equal peer
// URLs give twins equal member and cluster IDs.
const twinPeerURL = "http://127.0.0.1:2380"

// readyTimeout bounds the start of a server or cluster.
const readyTimeout = 60 * time.Second

// StartServer starts bin as a fresh single-member cluster in a temporary data
// directory, with extra flags added, and waits until it serves linearizable
// reads. It is stopped when the test ends; its log is kept in the data
// directory and printed on failure.
func StartServer(t testing.TB, bin string, extra ...string) *Server {
	t.Helper()
	dir := t.TempDir()
	ports, err := freePorts(2) // distinct: two separate picks can return one port twice
	if err != nil {
		t.Fatalf("free ports: %v", err)
	}
	client := fmt.Sprintf("127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	s, err := startProcess(t, bin, dir, client, append([]string{
		"--name", "twin",
		"--listen-peer-urls", peer,
		"--initial-advertise-peer-urls", twinPeerURL,
		"--initial-cluster", "twin=" + twinPeerURL,
		"--initial-cluster-token", "cairnctl-diff",
		"--initial-cluster-state", "new",
	}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		t.Fatalf("server %s not ready: %v", client, err)
	}
	return s
}

// startProcess starts bin serving clients on client (host:port), with its
// data and log in dir, and args added. The process is killed when the test
// ends, its log tail printed if the test failed.
func startProcess(t testing.TB, bin, dir, client string, args ...string) (*Server, error) {
	s := &Server{
		Endpoint:  client,
		ClientURL: "http://" + client,
		logPath:   filepath.Join(dir, "server.log"),
		done:      make(chan struct{}),
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, append([]string{
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", s.ClientURL,
		"--advertise-client-urls", s.ClientURL,
	}, args...)...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil && len(b) > 0 {
				t.Logf("server %s log (tail):\n%s", client, tail(string(b), 30))
			}
		}
	})
	return s, nil
}

// Stop kills the process, if it still runs, and waits for it to exit.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// Exited is closed once the process has ended, by itself or by Stop.
func (s *Server) Exited() <-chan struct{} { return s.done }

// Log returns what the process has logged so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady blocks on a linearizable read: the client waits for the
// connection by itself, and a read only succeeds once there is a leader.
func (s *Server) waitReady(ctx context.Context) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		attempt, stop := context.WithTimeout(ctx, 5*time.Second)
		done := make(chan error, 1)
		go func() { _, err := cli.Get(attempt, "cairnctl-ready"); done <- err }()
		select {
		case err = <-done:
		case <-s.done:
			stop()
			return fmt.Errorf("server exited: %v", s.err)
		}
		stop()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return errors.Join(err, ctx.Err())
		}
	}
	// etcd records its storage version a moment after it starts serving,
	// in steps (3.6.0, then 3.7.0), and reports it in snapshot logs: wait
	// for the final one so that two tools run one after the other see the
	// same server. Until then Status reports a version detected from the
	// data (3.5.0), which a Snapshot does not, so a non-empty Status field
	// is not enough.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		st, err := cli.Status(ctx, s.Endpoint)
		if err == nil && st.StorageVersion != "" && st.StorageVersion == storageVersionOf(st.Version) {
			return nil
		}
		select {
		case <-tick.C:
		case <-s.done:
			return fmt.Errorf("server exited: %v", s.err)
		case <-ctx.Done():
			return errors.Join(err, fmt.Errorf("storage version never set"), ctx.Err())
		}
	}
}

// storageVersionOf is the storage version a server of version v settles
// on: its major.minor with patch 0 ("3.7.3" gives "3.7.0").
func storageVersionOf(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1] + ".0"
}
