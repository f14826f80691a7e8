package connmux

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// Preface is the HTTP/2 client connection preface (RFC 9113, section 3.4).
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// DefaultPeekTimeout is how long a new connection may take to show its
// protocol unless Options say otherwise.
const DefaultPeekTimeout = 10 * time.Second

// Options tune a Mux; zero values take the defaults noted.
type Options struct {
	// PeekTimeout bounds the time from accept until the connection has
	// sent enough to be classified; default DefaultPeekTimeout. A
	// connection that has not is closed.
	PeekTimeout time.Duration
	// TLS, when set, makes every connection a TLS one: the handshake runs
	// first, within PeekTimeout, and the decrypted stream is classified.
	TLS *tls.Config
	// Rejected, when set, is told of each connection whose TLS handshake
	// failed.
	Rejected func(c *tls.Conn, err error)
}

// Mux splits one listener into a gRPC (HTTP/2) and an HTTP/1.x listener.
// Create it with New.
type Mux struct {
	ln       net.Listener
	timeout  time.Duration
	tls      *tls.Config
	rejected func(*tls.Conn, error)
	grpc     *child
	http     *child

	// closing is closed by Close, or when accepting fails for good.
	closing   chan struct{}
	closeOnce sync.Once
	// wg counts the classifying goroutines; Add only under mu while
	// !mu.closed, so Close's Wait never races with an Add.
	wg sync.WaitGroup
	mu struct {
		sync.Mutex
		closed bool
		// err is the accept error that stopped Serve; nil after Close.
		err error
		// peeking are the connections being classified.
		peeking map[net.Conn]struct{}
	}
}

// New returns a Mux over ln. Nothing is accepted until Serve runs.
func New(ln net.Listener, o Options) *Mux {
	if o.PeekTimeout <= 0 {
		o.PeekTimeout = DefaultPeekTimeout
	}
	m := &Mux{ln: ln, timeout: o.PeekTimeout, tls: o.TLS, rejected: o.Rejected, closing: make(chan struct{})}
	m.grpc, m.http = newChild(m), newChild(m)
	m.mu.peeking = map[net.Conn]struct{}{}
	return m
}

// GRPC returns the listener of connections that opened with the HTTP/2
// preface. Serve it with grpc.Server.Serve.
func (m *Mux) GRPC() net.Listener { return m.grpc }

// HTTP returns the listener of all other connections. Serve it with
// http.Server.Serve.
func (m *Mux) HTTP() net.Listener { return m.http }

// Addr is the address of the underlying listener.
func (m *Mux) Addr() net.Addr { return m.ln.Addr() }

// Serve accepts connections and classifies each on its own goroutine. It
// returns nil after Close, or the error that made accepting impossible.
func (m *Mux) Serve() error {
	var backoff time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if m.isClosed() {
				return nil
			}
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				// Out of file descriptors and the like: wait for some to
				// be released, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-time.After(backoff):
					continue
				case <-m.closing:
					return nil
				}
			}
			m.fail(err)
			return err
		}
		backoff = 0
		if !m.track(c) {
			c.Close()
			return nil
		}
		go m.classify(c)
	}
}

// Close stops accepting, closes the connections not yet handed to a
// server, waits for their goroutines, and closes both child listeners.
// Connections already handed off are left to their servers.
func (m *Mux) Close() error {
	var err error
	m.mu.Lock()
	first := !m.mu.closed
	m.mu.closed = true
	peeking := make([]net.Conn, 0, len(m.mu.peeking))
	for c := range m.mu.peeking {
		peeking = append(peeking, c)
	}
	m.mu.Unlock()
	// Closing unblocks their reads; each goroutine then sees the Mux
	// closed and leaves.
	for _, c := range peeking {
		c.Close()
	}
	if first {
		m.closeOnce.Do(func() { close(m.closing) })
		err = m.ln.Close()
	}
	m.wg.Wait()
	return err
}

// fail records a permanent accept error and stops the children.
func (m *Mux) fail(err error) {
	m.mu.Lock()
	if !m.mu.closed {
		m.mu.err = err
	}
	m.mu.Unlock()
	m.closeOnce.Do(func() { close(m.closing) })
}

func (m *Mux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.closed
}

// acceptErr is what the children's Accept returns once the Mux stopped.
func (m *Mux) acceptErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.err != nil {
		return m.mu.err
	}
	return net.ErrClosed
}

// track registers c as being classified, unless the Mux is closed.
func (m *Mux) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mu.closed {
		return false
	}
	m.mu.peeking[c] = struct{}{}
	m.wg.Add(1)
	return true
}

// untrack ends classification of c; false means Close has closed it.
func (m *Mux) untrack(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.mu.peeking, c)
	return !m.mu.closed
}

// classify reads until c's first bytes either differ from the preface or
// complete it, then hands c, with those bytes replayed, to a child.
func (m *Mux) classify(c net.Conn) {
	defer m.wg.Done()
	raw, deadline := c, time.Now().Add(m.timeout)
	if m.tls != nil {
		tc := tls.Server(c, m.tls)
		err := tc.SetDeadline(deadline)
		if err == nil {
			err = tc.Handshake()
		}
		if err == nil {
			err = tc.SetWriteDeadline(time.Time{}) // peek sets and clears the read one
		}
		if err != nil {
			if m.rejected != nil && !m.isClosed() {
				m.rejected(tc, err)
			}
			m.untrack(raw)
			c.Close()
			return
		}
		c = tc
	}
	target, head, err := m.peek(c, deadline)
	if err != nil || !m.untrack(raw) {
		c.Close()
		return
	}
	target.deliver(&conn{Conn: c, head: head})
}

func (m *Mux) peek(c net.Conn, deadline time.Time) (*child, []byte, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, len(Preface))
	n := 0
	for {
		k, err := c.Read(buf[n:])
		n += k
		if string(buf[:n]) != Preface[:n] {
			break // not HTTP/2: an HTTP/1.x request (or garbage for it to refuse)
		}
		if n == len(Preface) {
			return m.grpc, buf, c.SetReadDeadline(time.Time{})
		}
		if err != nil {
			return nil, nil, err
		}
	}
	return m.http, buf[:n], c.SetReadDeadline(time.Time{})
}

// child is one of the Mux's two listeners.
type child struct {
	m     *Mux
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChild(m *Mux) *child {
	return &child{m: m, conns: make(chan net.Conn), done: make(chan struct{})}
}

// deliver waits until a server accepts c, or closes c if the child or the
// Mux is closed first.
func (l *child) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	case <-l.m.closing:
		c.Close()
	}
}

func (l *child) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.m.closing:
		return nil, l.m.acceptErr()
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.m.closing:
		return nil, l.m.acceptErr()
	}
}

// Close makes Accept fail; it does not close the Mux or the other child.
func (l *child) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *child) Addr() net.Addr { return l.m.ln.Addr() }

// conn replays the bytes read for classification before reading on.
type conn struct {
	net.Conn
	head []byte // not yet returned by Read
}

func (c *conn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// TLS reports whether the connection is TLS (handshaken by the Mux), for
// net/http, which sets Request.TLS only for a *tls.Conn itself
// (httpapi.ConnContext asks this).
func (c *conn) TLS() bool {
	_, ok := c.Conn.(*tls.Conn)
	return ok
}

// CloseWrite half-closes a TCP connection; net/http uses it to finish
// answering a bad request cleanly.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
