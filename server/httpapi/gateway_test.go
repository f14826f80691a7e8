package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/cairn-kv/cairn/tests/framework"
)

// serveGateway serves the client handler of member m, with the gateway
// dialed to m's gRPC port (cmd/cairn dials an in-process listener of the
// same server); it returns the server.
func serveGateway(t *testing.T, m *framework.Member) *httptest.Server {
	t.Helper()
	conn, err := DialSelf(func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", m.Endpoint)
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(m.Server, Options{Gateway: conn}).ClientHandler())
	t.Cleanup(func() {
		srv.Close()
		conn.Close()
	})
	return srv
}

// wsDial opens a WebSocket to path on srv; every read and write on it
// fails after 20 s rather than hang the test.
func wsDial(t *testing.T, srv *httptest.Server, path string) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + path
	c, resp, err := websocket.DefaultDialer.DialContext(framework.Context(t, 20*time.Second), url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("dial %s: %s", url, resp.Status)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	return c
}

// wsCall sends req as one text message and decodes the next message into
// answer.
func wsCall(t *testing.T, c *websocket.Conn, req string, answer any) {
	t.Helper()
	if err := c.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
		t.Fatalf("send %s: %v", req, err)
	}
	wsRead(t, c, answer)
}

func wsRead(t *testing.T, c *websocket.Conn, answer any) {
	t.Helper()
	kind, msg, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if kind != websocket.TextMessage {
		t.Fatalf("message of type %d: %q", kind, msg)
	}
	if err := json.Unmarshal(msg, answer); err != nil {
		t.Fatalf("answer %q: %v", msg, err)
	}
}

// kv is a key-value pair in the gateway's JSON; keys and values are base64.
type kv struct {
	Key         []byte `json:"key"`
	Value       []byte `json:"value"`
	ModRevision string `json:"mod_revision"`
}

// watchAnswer is one message of a watch stream.
type watchAnswer struct {
	Result struct {
		Created bool `json:"created"`
		Events  []struct {
			Kv kv `json:"kv"`
		} `json:"events"`
	} `json:"result"`
	Error json.RawMessage `json:"error"`
}

// TestGatewayWebSocketWatch: a watch opened over WebSocket, on /v3/ and on
// /v3beta/, reports its creation and then a put made through the gRPC
// client, one JSON message each. The handshake is a GET, which the gateway
// refuses: the answers show the proxied call is a POST.
func TestGatewayWebSocketWatch(t *testing.T) {
	m := framework.StartMember(t)
	srv := serveGateway(t, m)
	for _, path := range []string{"/v3/watch", "/v3beta/watch"} {
		t.Run(path, func(t *testing.T) {
			key := "ws" + path
			c := wsDial(t, srv, path)
			var created watchAnswer
			wsCall(t, c, `{"create_request":{"key":"`+b64(key)+`"}}`, &created)
			if !created.Result.Created || created.Error != nil {
				t.Fatalf("first answer %+v, want created", created)
			}
			put, err := m.Client().Put(framework.Context(t, 20*time.Second), key, "v")
			if err != nil {
				t.Fatal(err)
			}
			var ev watchAnswer
			wsRead(t, c, &ev)
			if ev.Error != nil || len(ev.Result.Events) != 1 {
				t.Fatalf("answer %+v, want one event", ev)
			}
			got := ev.Result.Events[0].Kv
			if string(got.Key) != key || string(got.Value) != "v" || got.ModRevision != strconv.FormatInt(put.Header.Revision, 10) {
				t.Fatalf("event %q=%q at %s, want %q=\"v\" at %d", got.Key, got.Value, got.ModRevision, key, put.Header.Revision)
			}
		})
	}
}

// TestGatewayWebSocketKeepAlive: lease keep-alive, the other
// bidirectional stream, answers each request sent over WebSocket; without
// the upgrade a GET is still refused, as the gateway serves only POST.
func TestGatewayWebSocketKeepAlive(t *testing.T) {
	m := framework.StartMember(t)
	srv := serveGateway(t, m)
	lease, err := m.Client().Grant(framework.Context(t, 20*time.Second), 60)
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(int64(lease.ID), 10)
	c := wsDial(t, srv, "/v3/lease/keepalive")
	for i := range 2 {
		var got struct {
			Result struct {
				ID  string `json:"ID"`
				TTL string `json:"TTL"`
			} `json:"result"`
		}
		wsCall(t, c, `{"ID":"`+id+`"}`, &got)
		if got.Result.ID != id || got.Result.TTL != "60" {
			t.Fatalf("keep-alive %d: %+v, want ID %s TTL 60", i, got, id)
		}
	}

	plain := do(t, srv.Config.Handler, http.MethodGet, "/v3/lease/keepalive")
	var refused struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(plain.body), &refused); err != nil || plain.code != http.StatusNotImplemented || refused.Code != 12 || refused.Message != "Method Not Allowed" {
		t.Fatalf("GET without upgrade: %d %q, want 501 Method Not Allowed", plain.code, plain.body)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
