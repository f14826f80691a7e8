package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestGRPCKeepaliveMinTime: --grpc-keepalive-min-time is the gRPC
// server's ping policy, as in etcd. A client with an open stream that
// pings less often than that is answered; one that pings more often is
// disconnected with GOAWAY ENHANCE_YOUR_CALM (too_many_pings). Before the
// flag was applied, gRPC's own default (one ping per 5 minutes) cut
// clientv3 connections during long calls such as HashKV.
func TestGRPCKeepaliveMinTime(t *testing.T) {
	r := startMember(t, "--listen-client-urls", "http://127.0.0.1:0", "--grpc-keepalive-min-time", "100ms")
	addr := r.addresses(t, "ready to serve client requests", 1)[0]

	// gRPC allows two early pings before it disconnects, so four pings
	// tell the two policies apart.
	if code, acked := pingStream(t, addr, 600*time.Millisecond, 4); code != 0 || acked != 4 {
		t.Errorf("pings 600ms apart, min time 100ms: GOAWAY %v after %d answered pings, want all 4 answered", code, acked)
	}
	if code, acked := pingStream(t, addr, 0, 4); code != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("pings back to back, min time 100ms: GOAWAY %v after %d answered pings, want ENHANCE_YOUR_CALM", code, acked)
	}
	r.stop(t)
}

// TestGRPCKeepaliveInterval: --grpc-keepalive-interval and
// --grpc-keepalive-timeout make the server ping a silent connection and
// close it when the ping goes unanswered, as in etcd (gRPC pings no more
// often than once a second, whatever the interval).
func TestGRPCKeepaliveInterval(t *testing.T) {
	r := startMember(t, "--listen-client-urls", "http://127.0.0.1:0",
		"--grpc-keepalive-interval", "100ms", "--grpc-keepalive-timeout", "200ms")
	addr := r.addresses(t, "ready to serve client requests", 1)[0]
	conn, fr, _ := openStream(t, addr)
	defer conn.Close()
	pinged := false
	var end error
	for end == nil {
		// The settings are never acknowledged either: gRPC does not
		// wait for that.
		f, err := fr.ReadFrame()
		switch f := f.(type) {
		case nil:
			end = err // closed by the server, or the test's deadline
		case *http2.PingFrame:
			pinged = pinged || !f.IsAck()
		case *http2.GoAwayFrame:
			end = fmt.Errorf("GOAWAY %v", f.ErrCode)
		}
	}
	if !pinged {
		t.Errorf("no ping from the server before the connection ended (%v)", end)
	}
	var ne net.Error
	if errors.As(end, &ne) && ne.Timeout() {
		t.Errorf("the server did not close the unanswered connection: %v", end)
	}
	r.stop(t)
}

// openStream opens an HTTP/2 connection to the gRPC server at addr and
// starts a Watch stream on it (which stays open without requests). It
// returns the connection, its framer, and write, which serializes the
// framer's writes and reports their errors. The connection's deadline
// ends the test's reads after 20 s.
func openStream(t *testing.T, addr string) (net.Conn, *http2.Framer, func(func() error)) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	var wmu sync.Mutex
	write := func(f func() error) {
		wmu.Lock()
		defer wmu.Unlock()
		if err := f(); err != nil {
			t.Error(err)
		}
	}
	write(func() error { return fr.WriteSettings() })
	var hdr bytes.Buffer
	enc := hpack.NewEncoder(&hdr)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", "/etcdserverpb.Watch/Watch"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	write(func() error {
		return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hdr.Bytes(), EndHeaders: true})
	})
	return conn, fr, write
}

// pingStream opens a Watch stream on the gRPC server at addr (openStream),
// then sends n PINGs, each gap after the previous one's answer. It returns
// the error code of the server's GOAWAY (0 if none) and how many pings it
// answered.
func pingStream(t *testing.T, addr string, gap time.Duration, n int) (http2.ErrCode, int) {
	t.Helper()
	conn, fr, write := openStream(t, addr)
	defer conn.Close()

	acks := make(chan struct{}, n)
	goaway := make(chan http2.ErrCode, 1)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					write(func() error { return fr.WriteSettingsAck() })
				}
			case *http2.PingFrame:
				if f.IsAck() {
					acks <- struct{}{}
				}
			case *http2.GoAwayFrame:
				goaway <- f.ErrCode
				return
			}
		}
	}()
	acked := 0
	for i := range n {
		if i > 0 && gap > 0 {
			select {
			case <-time.After(gap):
			case code := <-goaway:
				return code, acked
			}
		}
		write(func() error { return fr.WritePing(false, [8]byte{byte(i)}) })
		select {
		case <-acks:
			acked++
		case code := <-goaway:
			return code, acked
		case <-time.After(10 * time.Second):
			t.Fatalf("ping %d: no answer within 10s", i)
		}
	}
	// A GOAWAY sent for the last ping follows its answer.
	select {
	case code := <-goaway:
		return code, acked
	case <-time.After(gap + 200*time.Millisecond):
		return 0, acked
	}
}
