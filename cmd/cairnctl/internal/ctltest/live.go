package ctltest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Live is a CLI run that a test talks to while it runs: it feeds stdin, waits
// on what stdout has shown so far, and ends the run by closing stdin or by
// stopping it as Ctrl-C would. It is how commands that never end by
// themselves (watch) are compared.
type Live struct {
	stdin *os.File // write end; nil once closed
	stop  func()
	done  chan struct{} // closed when the run has ended and code is set
	code  int
	// stopped is set by Stop before stop is called.
	stopped bool

	out struct {
		sync.Mutex
		stdout, stderr bytes.Buffer
		changed        chan struct{} // closed and replaced on every write
	}
}

// RunFunc is an in-process CLI: Run with its streams. A done ctx must end it
// as a signal would end the process.
type RunFunc func(ctx context.Context, args, env []string, stdin io.Reader, stdout, stderr io.Writer) int

func newLive() (*Live, *os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	l := &Live{stdin: w, done: make(chan struct{})}
	l.out.changed = make(chan struct{})
	return l, r, nil
}

// StartBinary starts a CLI binary (the reference etcdctl); inv.Stdin is
// written to its stdin, which stays open.
func StartBinary(bin string, inv Invocation) (*Live, error) {
	l, r, err := newLive()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(bin, inv.Args...)
	cmd.Env = append(BaseEnv(), inv.Env...)
	cmd.Stdin = r
	cmd.Stdout, cmd.Stderr = l.writer(false), l.writer(true)
	if err := cmd.Start(); err != nil {
		l.stdin.Close()
		return nil, err
	}
	l.stop = func() { _ = cmd.Process.Signal(os.Interrupt) }
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			l.code = ee.ExitCode()
		default:
			l.code = -1
		}
		close(l.done)
	}()
	return l, l.WriteStdin(inv.Stdin)
}

// StartFunc starts an in-process CLI (cairnctl) in a goroutine.
func StartFunc(run RunFunc, inv Invocation) (*Live, error) {
	l, r, err := newLive()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop = cancel
	go func() {
		defer r.Close()
		defer cancel()
		l.code = run(ctx, inv.Args, append(BaseEnv(), inv.Env...), r, l.writer(false), l.writer(true))
		close(l.done)
	}()
	return l, l.WriteStdin(inv.Stdin)
}

type liveWriter struct {
	l      *Live
	stderr bool
}

func (l *Live) writer(stderr bool) io.Writer { return liveWriter{l, stderr} }

func (w liveWriter) Write(p []byte) (int, error) {
	o := &w.l.out
	o.Lock()
	defer o.Unlock()
	if w.stderr {
		o.stderr.Write(p)
	} else {
		o.stdout.Write(p)
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

// WriteStdin sends s to the CLI's stdin.
func (l *Live) WriteStdin(s string) error {
	if s == "" {
		return nil
	}
	_, err := io.WriteString(l.stdin, s)
	return err
}

// CloseStdin ends the CLI's input.
func (l *Live) CloseStdin() {
	_ = l.stdin.Close()
}

// ErrExited is returned by WaitStdout when the run ended first.
var ErrExited = errors.New("the CLI exited")

// WaitStdout blocks until stdout contains want.
func (l *Live) WaitStdout(ctx context.Context, want string) error {
	for {
		l.out.Lock()
		ok, changed := strings.Contains(l.out.stdout.String(), want), l.out.changed
		l.out.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-l.done:
			// Output written just before the exit counts.
			l.out.Lock()
			ok = strings.Contains(l.out.stdout.String(), want)
			l.out.Unlock()
			if ok {
				return nil
			}
			return ErrExited
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Exited reports whether the run has ended.
func (l *Live) Exited() <-chan struct{} { return l.done }

// Wait waits for the run to end by itself, or stops it when ctx ends first.
func (l *Live) Wait(ctx context.Context) Result {
	select {
	case <-l.done:
	case <-ctx.Done():
		return l.Stop()
	}
	return l.result()
}

// Stop ends the run as Ctrl-C would and returns what it produced; the exit
// code of a stopped run means nothing and Result.Stopped says so.
func (l *Live) Stop() Result {
	select {
	case <-l.done:
		return l.result()
	default:
	}
	l.stopped = true
	l.stop()
	<-l.done
	l.CloseStdin()
	return l.result()
}

func (l *Live) result() Result {
	l.CloseStdin()
	l.out.Lock()
	defer l.out.Unlock()
	return Result{Stdout: l.out.stdout.String(), Stderr: l.out.stderr.String(), Code: l.code, Stopped: l.stopped}
}
