// Package tlsinfo turns etcd's transport security options into
// crypto/tls configurations: --cert-file, --key-file, --trusted-ca-file,
// --client-cert-auth, --client-crl-file, --auto-tls and the rest for the
// client URLs, and their --peer- twins for the peer URLs.
//
// # Mental model
//
// An Info is one side's options (client or peer), as an operator gives
// them to etcd. ServerConfig is what a listener with an https URL
// handshakes with; ClientConfig is what this member dials another member's
// https URL with (the peer transport, the join and corruption-check HTTP
// calls, the lease forwarding and the JSON gateway's call to its own gRPC
// server).
//
// # Contract
//
//   - Certificates and keys are read again at every handshake, as etcd
//     reads them: an operator rotates them by replacing the files, without
//     a restart. ServerConfig and ClientConfig read them once up front so
//     that a bad file fails the start, not the first connection.
//   - A server asks for and verifies client certificates when
//     ClientCertAuth is set or TrustedCAFile is given (etcd's rule: a
//     trusted CA alone requires client certificates too).
//   - AllowedCNs / AllowedHostnames accept a verified certificate only if
//     its common name is one of the CNs, or it is valid for one of the
//     hostnames. CRLFile, read at every handshake, refuses certificates it
//     revokes. CheckClientSAN (etcd's peer and metrics listeners, unless
//     --peer-skip-client-san-verification) refuses a client certificate
//     with SANs none of which is the connection's remote address or a name
//     resolving to it.
//   - A server negotiates HTTP/1.1 with clients that offer it and h2 with
//     the others. gRPC clients offer h2 alone, HTTP clients (curl, Go's
//     net/http) offer HTTP/1.1 too, so a connection's protocol still tells
//     gRPC from the HTTP endpoints, and both are served on one port as
//     over plain TCP (see internal/connmux).
//   - SelfCert (--auto-tls) writes a self-signed certificate once per data
//     directory and reuses it on restart; connections dialed with an Info
//     so marked (SelfSigned) do not verify the other end, as in etcd.
//   - TLS 1.2 is the default minimum version, as in etcd.
package tlsinfo
