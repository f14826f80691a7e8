package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/test/bufconn"

	"github.com/cairn-kv/cairn/compactor"
	"github.com/cairn-kv/cairn/internal/connmux"
	"github.com/cairn-kv/cairn/internal/memberurl"
	"github.com/cairn-kv/cairn/internal/tlsinfo"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/server/httpapi"
	"github.com/cairn-kv/cairn/server/recipes"
	"github.com/cairn-kv/cairn/server/v3rpc"
)

// shutdownTimeout bounds the graceful stop of the gRPC and HTTP servers.
const shutdownTimeout = 5 * time.Second

// listen binds a listener for each of urls (flag names them in errors),
// with the socket options, handshaking TLS with tlsCfg on the https ones.
func listen(flag string, urls []*url.URL, so socketOptions, tlsCfg *tls.Config) ([]server.Listener, error) {
	var lns []server.Listener
	for _, u := range urls {
		var ln net.Listener
		var err error
		if memberurl.IsUnix(u) {
			ln, err = listenUnix(memberurl.Addr(u))
		} else {
			ln, err = so.listenTCP(u.Host)
		}
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		lns = append(lns, server.Listener{Listener: ln, TLS: listenerTLS(u, tlsCfg)})
	}
	return lns, nil
}

// listenUnix listens on the unix socket file path, replacing a socket left
// there by a member that did not close it, as etcd does; closing the
// listener removes the file. Unlike etcd, which removes whatever file is
// at the path, it leaves any other kind of file alone (the listen then
// fails: address already in use).
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == fs.ModeSocket {
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	return net.Listen("unix", path)
}

func closeAll(lns []server.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// serve serves the ready member until ctx ends, the member stops, or
// serving fails: gRPC and HTTP together on each client listener (as etcd
// does), the metrics and health endpoints on each metrics listener, and
// auto-compaction when enabled. It returns the process exit code once
// every server has stopped.
func serve(ctx context.Context, lg *zap.Logger, srv *server.Server, o *options, compaction compactor.Config, clients, httpClients, metrics []server.Listener) int {
	pprofOn := o.enablePprof || o.logLevel == "debug" // etcd also mounts pprof at debug level
	if pprofOn {
		// etcd's sampling rate, unless the process already chose one.
		if runtime.SetMutexProfileFraction(-1) == 0 {
			runtime.SetMutexProfileFraction(5)
		}
		lg.Info("pprof is enabled", zap.String("path", httpapi.PathPprof))
	}
	// The JSON gateway and the Lock and Election services call this
	// member's gRPC API through a listener in the process, which the
	// client gRPC server serves too.
	selfLn := bufconn.Listen(1 << 20)
	self, err := httpapi.DialSelf(selfLn.DialContext)
	if err != nil {
		lg.Error("cannot set up the connection to the member's own gRPC API", zap.Error(err))
		return 1
	}
	defer self.Close()
	apiOpts := httpapi.Options{EnablePprof: pprofOn, Logger: lg, CORS: o.cors, HostWhitelist: o.hostWhitelist}
	if o.enableGRPCGateway {
		apiOpts.Gateway = self
	}
	api := httpapi.New(srv, apiOpts)
	g := v3rpc.NewServer(srv)
	closeRecipes := recipes.Register(g, self, lg)
	clientHTTP := newHTTPServer(api.ClientHandler())
	metricsHTTP := newHTTPServer(api.MetricsHandler())

	var (
		wg    sync.WaitGroup
		muxes []*connmux.Mux
		// failed receives the first unexpected end of a server; later ones
		// are dropped, one is enough to shut down.
		failed = make(chan error, 1)
	)
	start := func(what string, addr net.Addr, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				select {
				case failed <- fmt.Errorf("%s on %s: %w", what, addr, err):
				default:
				}
			}
		}()
	}
	// mux splits a client-side listener (handshaking TLS off the accept
	// loop, rejections logged); a child nobody serves is closed, so that
	// its connections are.
	mux := func(ln server.Listener) *connmux.Mux {
		m := connmux.New(ln, connmux.Options{TLS: ln.TLS, Rejected: tlsinfo.LogRejected(lg, "rejected connection on client endpoint")})
		muxes = append(muxes, m)
		start("accepting", ln.Addr(), m.Serve)
		return m
	}
	start("gRPC", selfLn.Addr(), func() error { return g.Serve(selfLn) })
	for _, ln := range clients {
		m := mux(ln)
		start("gRPC", ln.Addr(), func() error { return g.Serve(m.GRPC()) })
		if len(httpClients) > 0 {
			m.HTTP().Close() // HTTP has listeners of its own (--listen-client-http-urls)
		} else {
			start("HTTP", ln.Addr(), func() error { return clientHTTP.Serve(m.HTTP()) })
		}
		lg.Info("ready to serve client requests", zap.String("address", ln.Addr().String()))
	}
	for _, ln := range httpClients {
		m := mux(ln)
		m.GRPC().Close()
		start("HTTP", ln.Addr(), func() error { return clientHTTP.Serve(m.HTTP()) })
		lg.Info("serving HTTP client requests", zap.String("address", ln.Addr().String()))
	}
	for _, ln := range metrics {
		var l net.Listener = ln
		if ln.TLS != nil {
			m := mux(ln)
			m.GRPC().Close()
			l = m.HTTP()
		}
		start("metrics", ln.Addr(), func() error { return metricsHTTP.Serve(l) })
		lg.Info("serving metrics", zap.String("address", ln.Addr().String()))
	}
	compactCtx, stopCompactor := context.WithCancel(context.Background())
	defer stopCompactor()
	if compaction.Enabled() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := compactor.Run(compactCtx, srv, compaction); err != nil {
				lg.Error("auto compaction stopped", zap.Error(err)) // not reached: validated before start
			}
		}()
	}

	code := 0
	select {
	case <-ctx.Done():
		lg.Info("received signal, shutting down")
	case <-srv.StopNotify():
		lg.Error("member stopped", zap.Error(srv.Err()))
		code = 1
	case err := <-failed:
		lg.Error("serving clients failed", zap.Error(err))
		code = 1
	}
	stopCompactor()
	srv.Drain()    // ends watch and keep-alive streams, so the graceful stop does not wait for them
	closeRecipes() // ends the Lock and Election services' own streams
	stopServers(lg, g, []*http.Server{clientHTTP, metricsHTTP}, shutdownTimeout)
	for _, m := range muxes {
		m.Close()
	}
	wg.Wait()
	return code
}

// newHTTPServer returns an HTTP server configured as etcd's client one.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ConnContext:       httpapi.ConnContext, // TLS or not, for --host-whitelist
		ReadHeaderTimeout: 5 * time.Minute,
		ErrorLog:          log.New(io.Discard, "", 0), // clients' protocol errors are not ours to log
	}
}

// stopServers stops the gRPC and HTTP servers gracefully, in parallel,
// closing the connections of requests that are still running at timeout.
// Each closes its listeners first.
func stopServers(lg *zap.Logger, g *grpc.Server, hs []*http.Server, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.Shutdown(ctx); err != nil {
				h.Close()
			}
		}()
	}
	gracefulStop(lg, g, timeout)
	wg.Wait()
}
