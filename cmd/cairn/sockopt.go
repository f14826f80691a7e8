package main

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketOptions are etcd's --socket-reuse-port and --socket-reuse-address
// (the config file's socket-options mapping), set on every listener.
type socketOptions struct {
	reusePort, reuseAddress bool
}

// listenTCP listens on addr with the socket options.
func (s socketOptions) listenTCP(addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			if s.reuseAddress {
				// Go sets it on listeners already; set it again, as asked.
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			}
			if err == nil && s.reusePort {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if cerr != nil {
			return cerr
		}
		return err
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}
