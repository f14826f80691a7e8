package httpapi

import (
	"net"
	"testing"
)

func TestSelfTarget(t *testing.T) {
	for _, c := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2379}, "127.0.0.1:2379"},
		{&net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 2379}, "10.1.2.3:2379"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 2379}, "127.0.0.1:2379"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 2379}, "[::1]:2379"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 2379}, "[fe80::1]:2379"},
	} {
		if got := selfTarget(c.addr); got != c.want {
			t.Errorf("selfTarget(%v) = %q, want %q", c.addr, got, c.want)
		}
	}
}
