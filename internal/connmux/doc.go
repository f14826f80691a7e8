// Package connmux serves gRPC and HTTP/1.x on one listener, as etcd serves
// both on its client port: `curl http://localhost:2379/health` works while
// gRPC clients use the same port.
//
// # Mental model
//
// A Mux owns a listener and hands each accepted connection to one of two
// child listeners according to the connection's first bytes: connections
// that open with the HTTP/2 client preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
// which every gRPC client sends first) go to GRPC(), everything else to
// HTTP(). Serve each child with its server's own Serve method —
// grpc.Server.Serve, the native HTTP/2 transport, not the much slower
// grpc.Server.ServeHTTP; http.Server.Serve for HTTP/1.x — and run
// Mux.Serve to accept.
//
// The bytes read to decide are replayed to the server that gets the
// connection; it sees the connection exactly as the client sent it.
// Reading stops at the first byte that differs from the preface, so an
// HTTP/1.x request is classified by its first byte or two.
//
// # Contract
//
//   - Classification runs on its own goroutine per connection, under a read
//     deadline (Options.PeekTimeout): a client that sends nothing, or only
//     part of the preface, delays no other connection and is closed when
//     the deadline passes. The deadline is cleared before hand-off.
//   - Closing a child listener (as grpc.Server.Stop/GracefulStop and
//     http.Server.Shutdown/Close do) makes its Accept fail with
//     net.ErrClosed; connections classified for it afterwards are closed.
//     The other child keeps working.
//   - Close stops accepting, closes the listener, closes every connection
//     still being classified or waiting for hand-off, waits for their
//     goroutines, and makes both children's Accept fail with
//     net.ErrClosed. Connections already handed off belong to their
//     servers and are not touched: stop the servers to end them.
//   - Serve returns nil after Close, or the listener's error when
//     accepting fails permanently; the children's Accept then returns that
//     error too, so the servers on them stop as well. Temporary accept
//     errors (running out of file descriptors) are retried with backoff.
//   - With Options.TLS, each connection's TLS handshake runs on its
//     classification goroutine, under the same deadline, and the decrypted
//     stream is classified and handed off (the servers see the TLS
//     connection, wrapped, so net/http's Request.TLS stays nil). A failed
//     handshake is reported to Options.Rejected and the connection closed.
//     Which protocol a TLS client gets is the tls.Config's ALPN choice:
//     see internal/tlsinfo. Without Options.TLS a TLS handshake is
//     classified as HTTP/1.x, and fails there.
package connmux
