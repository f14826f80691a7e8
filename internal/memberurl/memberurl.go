// Package memberurl holds etcd's rules for the URLs a member listens on,
// advertises and dials: four schemes, http and https over TCP, unix and
// unixs (TLS) over a unix domain socket whose file the URL's host and path
// name together, as etcd reads them ("unix://localhost:2379" is the file
// localhost:2379 in the working directory, "unix:///run/etcd.sock" an
// absolute path).
package memberurl

import (
	"net/url"
	"slices"
)

// Schemes are the schemes a member URL may have.
var Schemes = []string{"http", "https", "unix", "unixs"}

// ValidScheme says whether scheme is one of Schemes.
func ValidScheme(scheme string) bool { return slices.Contains(Schemes, scheme) }

// IsUnix says whether u names a unix domain socket.
func IsUnix(u *url.URL) bool { return u.Scheme == "unix" || u.Scheme == "unixs" }

// IsTLS says whether u's connections are TLS (https, unixs).
func IsTLS(u *url.URL) bool { return u.Scheme == "https" || u.Scheme == "unixs" }

// Network is u's network for net.Dial and net.Listen: "unix" or "tcp".
func Network(u *url.URL) string {
	if IsUnix(u) {
		return "unix"
	}
	return "tcp"
}

// Addr is the address u names on Network(u): host:port, or a unix URL's
// socket path.
func Addr(u *url.URL) string {
	if IsUnix(u) {
		return u.Host + u.Path
	}
	return u.Host
}
