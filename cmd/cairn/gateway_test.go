package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeGateway runs the command with a wildcard first client URL and
// a second one: the JSON gateway answers on both ports, forwarding through
// the first (reached over loopback), and streams stay open until the
// signal stops everything, ending them. tests/differential compares the gateway's
// answers with etcd's.
func TestServeGateway(t *testing.T) {
	r := startMember(t,
		"--listen-client-urls", "http://0.0.0.0:0,http://127.0.0.1:0",
		"--advertise-client-urls", "http://127.0.0.1:2379",
	)
	var urls []string
	for _, a := range r.addresses(t, "ready to serve client requests", 2) {
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		urls = append(urls, "http://127.0.0.1:"+port)
	}

	// A watch stream open across the shutdown.
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	wreq, err := http.NewRequestWithContext(wctx, http.MethodPost, urls[1]+"/v3/watch", strings.NewReader(`{"create_request":{"key":"Zm9v"}}`))
	if err != nil {
		t.Fatal(err)
	}
	wresp, err := http.DefaultClient.Do(wreq)
	if err != nil {
		t.Fatal(err)
	}
	defer wresp.Body.Close()

	for i, u := range urls {
		val := []string{"YmFy", "YmF6"}[i]
		if code, body := httpPost(t, u+"/v3/kv/put", `{"key":"Zm9v","value":"`+val+`"}`); code != 200 || !strings.Contains(body, `"revision":"`) {
			t.Fatalf("put through %s: %d %s", u, code, body)
		}
		if code, body := httpPost(t, u+"/v3beta/kv/range", `{"key":"Zm9v"}`); code != 200 || !strings.Contains(body, `"value":"`+val+`"`) {
			t.Fatalf("range through %s: %d %s", u, code, body)
		}
		if code, body := httpPost(t, u+"/v3/kv/range", `{}`); code != 400 || !strings.Contains(body, `"message":"etcdserver: key is not provided"`) {
			t.Fatalf("range without a key through %s: %d %s", u, code, body)
		}
	}
	wbody := make([]byte, 4096)
	var got string
	for !strings.Contains(got, `"events"`) {
		n, err := wresp.Body.Read(wbody)
		got += string(wbody[:n])
		if err != nil {
			t.Fatalf("watch stream: %v after %q", err, got)
		}
	}

	r.stop(t)
	// The stream ended with the server, well before its deadline.
	io.Copy(io.Discard, wresp.Body)
	if wctx.Err() != nil {
		t.Fatal("the watch stream outlived the server")
	}
}

// TestServeGatewayOff: with --enable-grpc-gateway=false, as in etcd, the
// client URL answers no /v3/ path, and still serves gRPC and /health.
func TestServeGatewayOff(t *testing.T) {
	r := startMember(t, "--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--enable-grpc-gateway=false")
	u := "http://" + r.addresses(t, "ready to serve client requests", 1)[0]
	if code, body := httpPost(t, u+"/v3/kv/range", `{"key":"Zm9v"}`); code != 404 {
		t.Errorf("/v3/kv/range without the gateway: %d %s, want 404", code, body)
	}
	if code, body := httpGet(t, u+"/health"); code != 200 {
		t.Errorf("/health: %d %s", code, body)
	}
	r.stop(t)
}
