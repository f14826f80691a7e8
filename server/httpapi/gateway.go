package httpapi

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/tmc/grpc-websocket-proxy/wsproxy"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cairn-kv/cairn/api/v3electionpb"
	"github.com/cairn-kv/cairn/api/v3lockpb"
)

// Gateway paths: etcd's JSON gateway under /v3/, and the /v3beta/ prefix
// of etcd v3.3 that etcd v3.7 still accepts by rewriting it to /v3/.
const (
	PathGateway     = "/v3/"
	pathGatewayBeta = "/v3beta/"
)

// newGateway returns etcd's grpc-gateway for the KV, Watch, Lease,
// Cluster, Maintenance, Auth, Lock and Election services, forwarding every request over
// conn, with etcd's marshaling: proto field names (not lowerCamelCase),
// unset fields left out, unknown request fields ignored. Everything else
// is grpc-gateway's default, as in etcd: errors are a google.rpc.Status
// in JSON with the HTTP status grpc-gateway maps the gRPC code to, and
// streams answer one {"result":…} or {"error":…} object per line.
func newGateway(conn grpc.ClientConnInterface) http.Handler {
	mux := gwruntime.NewServeMux(
		gwruntime.WithMarshalerOption(gwruntime.MIMEWildcard, &gwruntime.HTTPBodyMarshaler{
			Marshaler: &gwruntime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
			},
		}),
	)
	// The Register*HandlerClient functions only add routes; ctx would
	// matter only for connections they dialed themselves.
	ctx := context.Background()
	for _, err := range []error{
		gw.RegisterKVHandlerClient(ctx, mux, pb.NewKVClient(conn)),
		gw.RegisterWatchHandlerClient(ctx, mux, pb.NewWatchClient(conn)),
		gw.RegisterLeaseHandlerClient(ctx, mux, pb.NewLeaseClient(conn)),
		gw.RegisterClusterHandlerClient(ctx, mux, pb.NewClusterClient(conn)),
		gw.RegisterMaintenanceHandlerClient(ctx, mux, pb.NewMaintenanceClient(conn)),
		gw.RegisterAuthHandlerClient(ctx, mux, pb.NewAuthClient(conn)),
		v3lockpb.RegisterLockHandlerClient(ctx, mux, v3lockpb.NewLockClient(conn)),
		v3electionpb.RegisterElectionHandlerClient(ctx, mux, v3electionpb.NewElectionClient(conn)),
	} {
		if err != nil {
			// The routes are fixed at compile time; they cannot fail.
			panic(fmt.Sprintf("httpapi: registering the gateway: %v", err))
		}
	}
	return mux
}

// handleGateway mounts the gateway over conn on mux, behind the WebSocket
// upgrade (withWebSocket): /v3/ as is, and /v3beta/ rewritten to /v3/
// first, so both paths accept WebSocket too, as in etcd, which rewrites
// before its mux. etcd rewrites the path and leaves the raw path stale,
// which makes net/url ignore it; clearing it has the same effect.
func handleGateway(mux *http.ServeMux, conn grpc.ClientConnInterface, lg *zap.Logger) {
	g := withWebSocket(newGateway(conn), lg)
	mux.Handle(PathGateway, g)
	mux.Handle(pathGatewayBeta, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := *r
		u := *r.URL
		u.Path = strings.Replace(u.Path, pathGatewayBeta, PathGateway, 1)
		u.RawPath = ""
		r2.URL = &u
		g.ServeHTTP(w, &r2)
	}))
}

// withWebSocket serves h's paths over WebSocket as well, for browsers,
// which cannot stream a request body: a request with "Upgrade: websocket"
// switches protocols, and each text message the client sends becomes one
// line of the body of a POST to h, each line h answers one text message.
// Other requests reach h untouched. The options are etcd's, so that the
// same client works against both:
//
//   - every proxied request is a POST, whatever the handshake's method or
//     ?method= parameter, since the gateway serves nothing else;
//   - an answer line may be up to math.MaxInt32 bytes (the library's
//     default would cut a large range answer at 64 KiB);
//   - no pings: etcd sets no ping interval, so idle connections live
//     until either side closes them;
//   - the library's defaults for the rest: any Origin is accepted, the
//     Origin and Referer headers are forwarded, and a "token" cookie or a
//     "Sec-WebSocket-Protocol: Bearer, <token>" becomes the request's
//     "Authorization: Bearer <token>".
//
// The library's messages go to lg, warnings as warnings and its per-message
// traces at debug level.
func withWebSocket(h http.Handler, lg *zap.Logger) http.Handler {
	return wsproxy.WebsocketProxy(h,
		wsproxy.WithRequestMutator(func(_, out *http.Request) *http.Request {
			out.Method = http.MethodPost
			return out
		}),
		wsproxy.WithMaxRespBodyBufferSize(math.MaxInt32),
		wsproxy.WithLogger(wsLogger{lg}),
	)
}

// wsLogger adapts zap to the logger the WebSocket proxy expects.
type wsLogger struct{ lg *zap.Logger }

func (l wsLogger) Warnln(v ...any) { l.log(zap.WarnLevel, v) }

// Debugln is called for every message in both directions, with its
// payload: formatting it is skipped unless debug logging is on.
func (l wsLogger) Debugln(v ...any) { l.log(zap.DebugLevel, v) }

func (l wsLogger) log(lvl zapcore.Level, v []any) {
	if l.lg.Core().Enabled(lvl) {
		l.lg.Log(lvl, "websocket proxy: "+strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
	}
}

// DialSelf returns a client connection to the member's own gRPC server,
// each of whose transports dial opens: the gateway forwards through it,
// and the Lock and Election services (server/recipes) call the member's
// KV, Lease and Watch API through it. cmd/cairn dials an in-process
// listener that the client gRPC server also serves, so these calls neither
// cross the network nor need a TLS client certificate (etcd's gateway
// dials its first client URL). The connection receives answers of any
// size, since the HTTP client asked for them; it connects lazily, on the
// first request. The caller closes it after the servers using it have
// stopped.
func DialSelf(dial func(context.Context) (net.Conn, error)) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///cairn-self",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return dial(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	)
}
