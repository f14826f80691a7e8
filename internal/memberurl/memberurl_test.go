package memberurl

import (
	"net/url"
	"testing"
)

func TestURLs(t *testing.T) {
	for raw, want := range map[string]struct {
		network, addr string
		tls           bool
	}{
		"http://127.0.0.1:2379":     {"tcp", "127.0.0.1:2379", false},
		"https://10.0.0.1:2380":     {"tcp", "10.0.0.1:2380", true},
		"unix://localhost:2379":     {"unix", "localhost:2379", false},
		"unixs:///run/cairn/c.sock": {"unix", "/run/cairn/c.sock", true},
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !ValidScheme(u.Scheme) || Network(u) != want.network || Addr(u) != want.addr || IsTLS(u) != want.tls {
			t.Errorf("%s: scheme ok %v, network %q, addr %q, TLS %v; want %+v", raw, ValidScheme(u.Scheme), Network(u), Addr(u), IsTLS(u), want)
		}
	}
	if ValidScheme("ftp") || ValidScheme("") {
		t.Error("ftp or no scheme accepted")
	}
}
