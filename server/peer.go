package server

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-kv/cairn/internal/connmux"
	"github.com/cairn-kv/cairn/internal/tlsinfo"
)

// PeerServer serves the peer port: the raft transport's gRPC service and
// the HTTP endpoints (PathMembers) on each listener.
type PeerServer struct {
	g     *grpc.Server
	h     *http.Server
	muxes []*connmux.Mux
	wg    sync.WaitGroup
}

// Listener is a listener for a client or peer URL, with the TLS its
// connections handshake with (nil for an http:// URL).
type Listener struct {
	net.Listener
	TLS *tls.Config
}

// ServePeers starts serving the peer listeners lns. Call it as soon as New
// returns; the member cannot become ready without its peers. Stop it after
// the member stopped.
func (s *Server) ServePeers(lns []Listener) *PeerServer {
	p := &PeerServer{
		g: grpc.NewServer(),
		h: &http.Server{Handler: s.peerHandler(), ErrorLog: log.New(io.Discard, "", 0)},
	}
	s.tr.Register(p.g)
	for _, ln := range lns {
		m := connmux.New(ln, connmux.Options{TLS: ln.TLS, Rejected: tlsinfo.LogRejected(s.lg, "rejected connection on peer endpoint")})
		p.muxes = append(p.muxes, m)
		serve := func(what string, f func() error) {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
					s.lg.Warn("serving peers stopped", zap.String("what", what), zap.String("address", ln.Addr().String()), zap.Error(err))
				}
			}()
		}
		serve("gRPC", func() error { return p.g.Serve(m.GRPC()) })
		serve("HTTP", func() error { return p.h.Serve(m.HTTP()) })
		serve("accepting", m.Serve)
		s.lg.Info("serving peer traffic", zap.String("address", ln.Addr().String()))
	}
	return p
}

// Stop closes the listeners and every peer connection.
func (p *PeerServer) Stop() {
	p.g.Stop()
	p.h.Close()
	for _, m := range p.muxes {
		m.Close()
	}
	p.wg.Wait()
}
