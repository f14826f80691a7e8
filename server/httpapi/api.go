package httpapi

import (
	"context"
	"net/http"
	"net/http/pprof"

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
	a.client = withCORS(mux)
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

// withCORS adds the headers etcd adds to every client-port answer with its
// default --cors "*", and answers preflight requests.
func withCORS(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
		hd.Add("Access-Control-Allow-Origin", "*")
		hd.Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		h.ServeHTTP(w, r)
	})
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
