package httpapi

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strings"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// Gateway paths: etcd's JSON gateway under /v3/, and the /v3beta/ prefix
// of etcd v3.3 that etcd v3.7 still accepts by rewriting it to /v3/.
const (
	PathGateway     = "/v3/"
	pathGatewayBeta = "/v3beta/"
)

// newGateway returns etcd's grpc-gateway for the KV, Watch, Lease,
// Cluster, Maintenance and Auth services, forwarding every request over
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
	} {
		if err != nil {
			// The routes are fixed at compile time; they cannot fail.
			panic(fmt.Sprintf("httpapi: registering the gateway: %v", err))
		}
	}
	return mux
}

// handleGateway mounts the gateway over conn on mux: /v3/ as is, and
// /v3beta/ rewritten to /v3/ first. etcd rewrites the path and leaves
// the raw path stale, which makes net/url ignore it; clearing it has the
// same effect.
func handleGateway(mux *http.ServeMux, conn grpc.ClientConnInterface) {
	g := newGateway(conn)
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

// DialGateway returns the client connection the gateway forwards through:
// to the member's own gRPC server on the client listener at addr, as etcd
// dials its first client URL. A wildcard address is reached through
// loopback. The connection is plaintext (Cairn's client URLs are http://)
// and receives answers of any size, since the HTTP client asked for them;
// it connects lazily, on the first request. The caller closes it after
// the HTTP server has stopped.
func DialGateway(addr net.Addr) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+selfTarget(addr),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32)),
	)
}

// selfTarget is the address to dial to reach a listener bound to addr.
func selfTarget(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || !ta.IP.IsUnspecified() {
		return addr.String()
	}
	ip := net.IPv6loopback
	if ta.IP.To4() != nil {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}
