package httpapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-kv/cairn/membership"
)

// Paths served.
const (
	PathHealth  = "/health"
	PathLivez   = "/livez"
	PathReadyz  = "/readyz"
	PathVersion = "/version"
	PathMetrics = "/metrics"
	PathVars    = "/debug/vars"
	PathPprof   = "/debug/pprof"
)

// Member is what the endpoints read from a member; *server.Server
// implements it.
type Member interface {
	ID() uint64
	// Status is Maintenance.Status: leader, sizes, quota, versions.
	Status() *pb.StatusResponse
	Members() []membership.Member
	// Range reads as the KV service does, linearizably unless
	// r.Serializable.
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	// MetricsCollector exports the member's own metrics.
	MetricsCollector() prometheus.Collector
	// Alarms returns the cluster's active alarms.
	Alarms() []*pb.AlarmMember
}

// Options tune an API; zero values take the defaults noted.
type Options struct {
	// EnablePprof mounts net/http/pprof under /debug/pprof/ on the client
	// handler (etcd's --enable-pprof); default off.
	EnablePprof bool
	// Logger; default zap.NewNop().
	Logger *zap.Logger
	// Gateway, when set, is a client connection to the member's own gRPC
	// server (see DialSelf): the client handler then serves etcd's
	// JSON gateway under /v3/ (and /v3beta/) through it, over plain HTTP
	// and WebSocket, as etcd does with its default --enable-grpc-gateway. The caller closes it. Default
	// nil: no gateway.
	Gateway grpc.ClientConnInterface
	// CORS are the origins whose requests get CORS headers naming them
	// (etcd's --cors). Empty, or "*" among them: every request gets them,
	// with "*", etcd's default.
	CORS []string
	// HostWhitelist are the host names a request over plain HTTP may give
	// in its Host header (etcd's --host-whitelist); others are refused
	// with 421 Misdirected Request, as etcd refuses them against DNS
	// rebinding. Empty, or "*" among them: any host, etcd's default.
	// Requests over TLS are not checked (see ConnContext).
	HostWhitelist []string
}

// API is one member's HTTP endpoints and metrics registry.
type API struct {
	m   Member
	lg  *zap.Logger
	reg *prometheus.Registry

	healthSuccess, healthFailures prometheus.Counter
	checkResult                   *prometheus.GaugeVec
	checkTotal                    *prometheus.CounterVec

	livez, readyz checkSet
	// scrape serves /metrics; client and metricsPort are the two muxes.
	scrape, client, metricsPort http.Handler
}

// New builds the endpoints of member m, with a new registry holding m's
// collector, the health check metrics and the go_* and process_*
// collectors.
func New(m Member, o Options) *API {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	a := &API{m: m, lg: o.Logger, reg: prometheus.NewRegistry()}
	a.healthSuccess = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_success",
		Help: "The total number of successful health checks",
	})
	a.healthFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "health_failures",
		Help: "The total number of failed health checks",
	})
	a.checkResult = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "healthcheck",
		Help: "The result of each kind of healthcheck.",
	}, []string{"type", "name"})
	a.checkTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "healthchecks_total",
		Help: "The total number of each kind of healthcheck.",
	}, []string{"type", "name", "status"})
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.MetricsCollector(),
		a.healthSuccess, a.healthFailures, a.checkResult, a.checkTotal,
	)
	// promhttp.Handler's instrumentation, as etcd serves it, on our registry.
	a.scrape = promhttp.InstrumentMetricHandler(a.reg, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{}))
	a.livez, a.readyz = a.checkSets()

	mux := http.NewServeMux()
	a.handleHealth(mux)
	mux.Handle(PathMetrics, a.scrape)
	a.metricsPort = mux

	mux = http.NewServeMux()
	a.handleHealth(mux)
	mux.Handle(PathMetrics, a.scrape)
	mux.HandleFunc(PathVersion, a.serveVersion)
	mux.HandleFunc(PathVars, serveVars)
	if o.EnablePprof {
		handlePprof(mux)
	}
	if o.Gateway != nil {
		handleGateway(mux, o.Gateway, a.lg)
	}
	a.client = withAccess(mux, o, a.lg)
	return a
}

// ClientHandler serves everything etcd serves over HTTP on its client URLs.
func (a *API) ClientHandler() http.Handler { return a.client }

// MetricsHandler serves what etcd serves on --listen-metrics-urls.
func (a *API) MetricsHandler() http.Handler { return a.metricsPort }

// Gatherer returns the member's registry, for tests and embedding.
func (a *API) Gatherer() prometheus.Gatherer { return a.reg }

func (a *API) handleHealth(mux *http.ServeMux) {
	mux.HandleFunc(PathHealth, a.serveHealth)
	for _, set := range []*checkSet{&a.livez, &a.readyz} {
		mux.Handle(set.root(), a.checkHandler(set, nil))
		for _, c := range set.checks {
			mux.Handle(set.root()+"/"+c.name, a.checkHandler(set, &c))
		}
	}
}

// withAccess is etcd's access control of its client-port HTTP side: the
// Host check of plain-HTTP requests (--host-whitelist), then the CORS
// headers (--cors); preflight requests are answered at once.
func withAccess(h http.Handler, o Options, lg *zap.Logger) http.Handler {
	origins, hosts := setOf(o.CORS), setOf(o.HostWhitelist)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hosts != nil && !overTLS(r.Context()) {
			host, _, err := net.SplitHostPort(r.Host)
			if err != nil {
				host = r.Host
			}
			if !hosts[host] {
				lg.Warn("rejecting HTTP request to prevent DNS rebinding attacks", zap.String("host", host))
				http.Error(w, rebindingRefusal(host), http.StatusMisdirectedRequest)
				return
			}
		}
		allow := "*"
		if origins != nil {
			allow = r.Header.Get("Origin")
			if !origins[allow] {
				allow = ""
			}
		}
		if allow != "" {
			hd := w.Header()
			hd.Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
			hd.Add("Access-Control-Allow-Origin", allow)
			hd.Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// setOf returns vs as a set, or nil (everything allowed) when vs is empty
// or holds "*".
func setOf(vs []string) map[string]bool {
	if len(vs) == 0 || slices.Contains(vs, "*") {
		return nil
	}
	set := map[string]bool{}
	for _, v := range vs {
		set[v] = true
	}
	return set
}

// rebindingRefusal is the body of etcd's answer to a Host it does not
// accept, which tells the user what to do.
func rebindingRefusal(host string) string {
	return fmt.Sprintf(`
etcd received your request, but the Host header was unrecognized.

To fix this, choose one of the following options:
- Enable TLS, then any HTTPS request will be allowed.
- Add the hostname you want to use to the whitelist in settings.
  - e.g. etcd --host-whitelist %q

This requirement has been added to help prevent "DNS Rebinding" attacks (CVE-2018-5702).
`, host)
}

// secureKey marks the context of a request that came over TLS.
type secureKey struct{}

// ConnContext is an http.Server's ConnContext that records whether the
// connection is TLS: a *tls.Conn, or a connection that says so (connmux's,
// which hands on TLS connections wrapped). net/http sets Request.TLS for
// the first kind only.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	secure := false
	switch c := c.(type) {
	case *tls.Conn:
		secure = true
	case interface{ TLS() bool }:
		secure = c.TLS()
	}
	return context.WithValue(ctx, secureKey{}, secure)
}

func overTLS(ctx context.Context) bool {
	secure, _ := ctx.Value(secureKey{}).(bool)
	return secure
}

// handlePprof mounts the profiles etcd mounts with --enable-pprof.
func handlePprof(mux *http.ServeMux) {
	mux.HandleFunc(PathPprof+"/", pprof.Index)
	mux.HandleFunc(PathPprof+"/profile", pprof.Profile)
	mux.HandleFunc(PathPprof+"/symbol", pprof.Symbol)
	mux.HandleFunc(PathPprof+"/cmdline", pprof.Cmdline)
	mux.HandleFunc(PathPprof+"/trace", pprof.Trace)
	for _, p := range []string{"heap", "goroutine", "threadcreate", "block", "mutex"} {
		mux.Handle(PathPprof+"/"+p, pprof.Handler(p))
	}
}

// allowGet answers 405 to anything but GET, as etcd does.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", http.MethodGet)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}
