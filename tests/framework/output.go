package framework

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Output collects what a process or logger writes, and lets a test wait,
// without polling, until it holds what the test expects.
type Output struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	notify chan struct{} // closed and replaced on every write
}

// NewOutput returns an empty Output.
func NewOutput() *Output { return &Output{notify: make(chan struct{})} }

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.notify)
	o.notify = make(chan struct{})
	return len(p), nil
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// ErrWriterExited is returned by Wait when stop closes first.
var ErrWriterExited = errors.New("the writer exited")

// Wait calls done with the output so far, again after every write, until
// it returns true. It fails when stop closes first (ErrWriterExited) or
// after d.
func (o *Output) Wait(stop <-chan struct{}, d time.Duration, done func(out string) bool) error {
	deadline := time.After(d)
	for {
		o.mu.Lock()
		out, notify := o.buf.String(), o.notify
		o.mu.Unlock()
		if done(out) {
			return nil
		}
		select {
		case <-notify:
		case <-stop:
			return ErrWriterExited
		case <-deadline:
			return fmt.Errorf("not within %v", d)
		}
	}
}
