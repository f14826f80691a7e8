package differential

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-kv/cairn/server/httpapi"
	"github.com/cairn-kv/cairn/tests/framework"
)

// The JSON gateway (/v3/…) is compared over plain HTTP, as curl sends it:
// the status code, every response header but Date and Content-Length, and
// the body as JSON. Bodies are compared re-encoded without whitespace, in
// the key order each side wrote, because protobuf's JSON encoder adds a
// space after some commas at random, differently in every binary, to stop
// byte comparisons. For the same reason the "proto:" prefix of protobuf's
// decoding errors uses a no-break space in some binaries and a space in
// others; it is read as a space. Beyond the cluster_id, member_id and
// raft_term normalized everywhere, a step names the fields it masks and
// why.

// gwSide is one server's client URL serving the gateway.
type gwSide struct {
	name, base string
}

// gwPair is etcd and Cairn (or a second etcd, see doc.go), fresh.
type gwPair struct {
	t           *testing.T
	etcd, other gwSide
}

func newGatewayPair(t *testing.T) *gwPair {
	t.Helper()
	e := gwSide{"etcd", startEtcd(t, options{}).Endpoints()[0]}
	var o gwSide
	if os.Getenv("CAIRN_DIFF_AGAINST") == "etcd" || startCairn == nil {
		o = gwSide{"etcd2", startEtcd(t, options{}).Endpoints()[0]}
	} else {
		o = gwSide{"cairn", startCairnGateway(t)}
	}
	return &gwPair{t: t, etcd: e, other: o}
}

// startCairnGateway starts a member and serves its client handler, with
// the gateway dialed to the member's gRPC port (cmd/cairn dials an
// in-process listener of the same server), on a loopback port; it returns
// that port's URL.
func startCairnGateway(t *testing.T) string {
	t.Helper()
	m := framework.StartMember(t)
	conn, err := httpapi.DialSelf(func(ctx context.Context) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "tcp", m.Endpoint)
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: httpapi.New(m.Server, httpapi.Options{Gateway: conn}).ClientHandler()}
	served := make(chan struct{})
	go func() {
		defer close(served)
		hs.Serve(ln)
	}()
	t.Cleanup(func() {
		hs.Close()
		<-served
		conn.Close()
	})
	return "http://" + ln.Addr().String()
}

// gwClient follows no redirects: a redirect is part of the answer.
var gwClient = &http.Client{
	Timeout:       20 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// gwAnswer is one HTTP answer, or the error of a request that got none.
type gwAnswer struct {
	code int
	hdr  http.Header
	body string
	err  error
}

func (a gwAnswer) String() string {
	if a.err != nil {
		return "no answer: " + a.err.Error()
	}
	return fmt.Sprintf("%d %s", a.code, strings.TrimSpace(a.body))
}

func (s gwSide) send(method, path, body string) gwAnswer {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		return gwAnswer{err: err}
	}
	resp, err := gwClient.Do(req)
	if err != nil {
		return gwAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return gwAnswer{code: resp.StatusCode, hdr: resp.Header, body: string(b), err: err}
}

// masks replace the value of every field of that name (at any depth)
// with what the function returns for it.
type masks map[string]func(v any) any

// headerMasks are applied to every answer: two clusters never share IDs
// or terms, but whether the fields are present must agree.
var headerMasks = masks{"cluster_id": isSet, "member_id": isSet, "raft_term": isSet}

// isSet keeps only whether a value is present and not empty.
func isSet(v any) any {
	if v == nil || v == "" {
		return "<empty>"
	}
	return "<set>"
}

var port = regexp.MustCompile(`:[0-9]+$`)

// urlsMask masks the ports of a list of URLs: each side picked free ones.
func urlsMask(v any) any {
	l, ok := v.([]any)
	if !ok {
		return v
	}
	out := make([]any, len(l))
	for i, u := range l {
		if s, ok := u.(string); ok {
			u = port.ReplaceAllString(s, ":<port>")
		}
		out[i] = u
	}
	return out
}

// within masks a decimal-string number (an int64 in protobuf JSON) that
// lies in [lo, hi], for a time-dependent value such as a remaining TTL.
func within(lo, hi int64) func(any) any {
	return func(v any) any {
		var n int64
		if s, ok := v.(string); ok {
			if _, err := fmt.Sscan(s, &n); err == nil && n >= lo && n <= hi {
				return fmt.Sprintf("<in [%d,%d]>", lo, hi)
			}
		}
		return v
	}
}

// step sends the same request to both sides, compares the answers after
// the header masks and extra, and returns etcd's.
func (g *gwPair) step(name, method, path, body string, extra masks) gwAnswer {
	g.t.Helper()
	e := g.etcd.send(method, path, body)
	o := g.other.send(method, path, body)
	if e.err != nil {
		g.t.Fatalf("harness: %s: etcd gave no answer: %v", name, e.err)
	}
	if verbose {
		g.t.Logf("%s\n  request: %s %s %s\n  etcd: %s", name, method, path, body, e)
	}
	g.compare(name, fmt.Sprintf("%s %s %.300s", method, path, body), e, o, extra)
	return e
}

func (g *gwPair) post(name, path, body string, extra ...masks) gwAnswer {
	g.t.Helper()
	var m masks
	if len(extra) > 0 {
		m = extra[0]
	}
	return g.step(name, http.MethodPost, path, body, m)
}

// wantCode is a harness check: etcd answered the case's status code, so
// the case exercises what it is named after.
func (g *gwPair) wantCode(name string, a gwAnswer, code int) {
	g.t.Helper()
	if a.code != code {
		g.t.Errorf("harness: %s: etcd answered %s, the case expects %d", name, a, code)
	}
}

func (g *gwPair) compare(name, req string, e, o gwAnswer, extra masks) {
	g.t.Helper()
	var diffs []string
	if o.err != nil {
		diffs = append(diffs, fmt.Sprintf("%s gave no answer: %v", g.other.name, o.err))
	} else {
		if e.code != o.code {
			diffs = append(diffs, fmt.Sprintf("status: etcd %d, %s %d", e.code, g.other.name, o.code))
		}
		diffs = append(diffs, diffHeaders(e.hdr, o.hdr, g.other.name)...)
		eb, ob := canonicalBody(e.body, extra), canonicalBody(o.body, extra)
		if eb != ob {
			diffs = append(diffs, fmt.Sprintf("body:\n        etcd:  %s\n        %s: %s", eb, g.other.name, ob))
		}
	}
	if len(diffs) > 0 {
		g.t.Errorf("DIFFERENCE %s\n  request: %s\n  etcd:  %s\n  %s: %s\n    - %s",
			name, req, e, g.other.name, o, strings.Join(diffs, "\n    - "))
	}
}

// diffHeaders compares every header but those of one connection and
// length (Date, and Content-Length, which the random spaces change).
func diffHeaders(e, o http.Header, other string) []string {
	var d []string
	keys := map[string]bool{}
	for k := range e {
		keys[k] = true
	}
	for k := range o {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		if k == "Date" || k == "Content-Length" {
			continue
		}
		if !slices.Equal(e.Values(k), o.Values(k)) {
			d = append(d, fmt.Sprintf("header %s: etcd %q, %s %q", k, e.Values(k), other, o.Values(k)))
		}
	}
	return d
}

// canonicalBody re-encodes each line of body (one for a unary answer,
// one per message for a stream) as compact JSON with masks applied; a
// line that is not JSON is kept as it is.
func canonicalBody(body string, extra masks) string {
	body = strings.ReplaceAll(body, "\u00a0", " ")
	var out []string
	for _, line := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		out = append(out, canonicalJSON(line, extra))
	}
	return strings.Join(out, "\n")
}

func canonicalJSON(s string, extra masks) string {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := parseJSON(dec)
	if err != nil {
		return s
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return s // trailing data
	}
	var b bytes.Buffer
	writeJSON(&b, v, extra)
	return b.String()
}

// object is a JSON object in the order its keys were written.
type object struct {
	keys []string
	vals []any
}

func parseJSON(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &object{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := parseJSON(dec)
			if err != nil {
				return nil, err
			}
			o.keys, o.vals = append(o.keys, k.(string)), append(o.vals, v)
		}
		_, err := dec.Token()
		return o, err
	case json.Delim('['):
		l := []any{}
		for dec.More() {
			v, err := parseJSON(dec)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		_, err := dec.Token()
		return l, err
	}
	return tok, nil
}

func writeJSON(b *bytes.Buffer, v any, extra masks) {
	switch v := v.(type) {
	case *object:
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeScalar(b, k)
			b.WriteByte(':')
			val := v.vals[i]
			if m := headerMasks[k]; m != nil {
				val = m(plain(val))
			} else if m := extra[k]; m != nil {
				val = m(plain(val))
			}
			writeJSON(b, val, extra)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSON(b, e, extra)
		}
		b.WriteByte(']')
	default:
		writeScalar(b, v)
	}
}

// writeScalar writes a string, number, bool or null, leaving <, > and &
// as they are so that masked values stay readable.
func writeScalar(b *bytes.Buffer, v any) {
	var sb bytes.Buffer
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	b.Write(bytes.TrimRight(sb.Bytes(), "\n"))
}

// plain turns parsed objects into maps, for masks that inspect values.
func plain(v any) any {
	switch v := v.(type) {
	case *object:
		m := map[string]any{}
		for i, k := range v.keys {
			m[k] = plain(v.vals[i])
		}
		return m
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

// b64 is how protobuf JSON spells bytes.
func b64(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.Encode([]byte(s))
	return strings.TrimSpace(b.String())
}

// TestGateway compares the JSON gateway as a curl user sees it: KV writes
// and reads with base64 keys, txns, compaction, leases, the member list,
// Maintenance, etcd's errors with their HTTP status codes, bad JSON,
// routing (unknown paths, methods, /v3beta/, CORS preflight), and a watch
// stream receiving an event.
func TestGateway(t *testing.T) {
	g := newGatewayPair(t)
	kv := func(k, v string) string { return fmt.Sprintf(`{"key":%s,"value":%s}`, b64(k), b64(v)) }

	g.post("put foo", "/v3/kv/put", kv("foo", "bar"))
	g.post("put foo again with prev_kv", "/v3/kv/put", fmt.Sprintf(`{"key":%s,"value":%s,"prev_kv":true}`, b64("foo"), b64("baz")))
	g.post("put fop", "/v3/kv/put", kv("fop", "1"))
	g.post("range one key", "/v3/kv/range", fmt.Sprintf(`{"key":%s}`, b64("foo")))
	g.post("range a prefix, count only", "/v3/kv/range", fmt.Sprintf(`{"key":%s,"range_end":%s,"count_only":true}`, b64("fo"), b64("fp")))
	g.post("range everything, keys only, descending", "/v3/kv/range", `{"key":"AA==","range_end":"AA==","keys_only":true,"sort_order":"DESCEND","sort_target":"KEY"}`)
	g.post("range at an old revision (number, not string)", "/v3/kv/range", fmt.Sprintf(`{"key":%s,"revision":2}`, b64("foo")))
	g.post("range with an enum by number and unknown fields", "/v3/kv/range", fmt.Sprintf(`{"key":%s,"sort_order":1,"no_such_field":[1,2]}`, b64("fo")))
	g.post("range of a missing key", "/v3/kv/range", fmt.Sprintf(`{"key":%s}`, b64("nope")))
	g.post("range with lowerCamelCase names", "/v3/kv/range", fmt.Sprintf(`{"key":%s,"rangeEnd":%s}`, b64("fo"), b64("fp")))
	g.post("delete with prev_kv", "/v3/kv/deleterange", fmt.Sprintf(`{"key":%s,"prev_kv":true}`, b64("fop")))
	g.post("delete a missing key", "/v3/kv/deleterange", fmt.Sprintf(`{"key":%s}`, b64("fop")))
	g.post("txn, compare succeeds", "/v3/kv/txn", fmt.Sprintf(
		`{"compare":[{"key":%s,"target":"VALUE","result":"EQUAL","value":%s}],"success":[{"request_put":{"key":%s,"value":%s}},{"request_range":{"key":%s}}],"failure":[{"request_delete_range":{"key":%s}}]}`,
		b64("foo"), b64("baz"), b64("t"), b64("1"), b64("t"), b64("foo")))
	g.post("txn, compare fails", "/v3/kv/txn", fmt.Sprintf(
		`{"compare":[{"key":%s,"target":"VERSION","result":"GREATER","version":"10"}],"success":[{"request_put":{"key":%s,"value":%s}}],"failure":[{"request_range":{"key":%s}}]}`,
		b64("foo"), b64("t"), b64("2"), b64("foo")))
	g.post("empty txn", "/v3/kv/txn", `{}`)

	// etcd's errors, with the HTTP status grpc-gateway gives their code.
	a := g.post("range without a key", "/v3/kv/range", `{}`)
	g.wantCode("range without a key", a, http.StatusBadRequest)
	a = g.post("range with an empty body", "/v3/kv/range", "")
	g.wantCode("range with an empty body", a, http.StatusBadRequest)
	g.post("range at a future revision", "/v3/kv/range", fmt.Sprintf(`{"key":%s,"revision":"100"}`, b64("foo")))
	var many []string
	for i := 0; i < 129; i++ {
		many = append(many, fmt.Sprintf(`{"request_put":{"key":%s,"value":%s}}`, b64(fmt.Sprint("m", i)), b64("v")))
	}
	a = g.post("txn with 129 ops (limit 128)", "/v3/kv/txn", `{"success":[`+strings.Join(many, ",")+`]}`)
	g.wantCode("txn with too many ops", a, http.StatusBadRequest)
	g.post("txn putting one key twice", "/v3/kv/txn", fmt.Sprintf(`{"success":[{"request_put":{"key":%s}},{"request_put":{"key":%s}}]}`, b64("d"), b64("d")))
	g.post("compact", "/v3/kv/compaction", `{"revision":"4","physical":true}`)
	a = g.post("range at a compacted revision", "/v3/kv/range", fmt.Sprintf(`{"key":%s,"revision":"2"}`, b64("foo")))
	g.wantCode("range at a compacted revision", a, http.StatusBadRequest)
	g.post("compact again at the same revision", "/v3/kv/compaction", `{"revision":"4"}`)
	g.post("compact past the current revision", "/v3/kv/compaction", `{"revision":"1000"}`)
	g.post("put with an unknown lease", "/v3/kv/put", fmt.Sprintf(`{"key":%s,"lease":"12345"}`, b64("l")))

	// Request bodies the gateway cannot decode.
	for _, c := range []struct{ name, body string }{
		{"truncated JSON", `{"key":`},
		{"not JSON", `not json`},
		{"a JSON array", `[1]`},
		{"bad base64 key", `{"key":"!!"}`},
		{"a string for an int64", `{"key":"Zm9v","limit":"ten"}`},
		{"an unknown enum name", `{"key":"Zm9v","sort_order":"SIDEWAYS"}`},
		{"null", `null`},
	} {
		g.post("range with "+c.name, "/v3/kv/range", c.body)
	}
	g.post("put with an object for a key", "/v3/kv/put", `{"key":{"a":1}}`)

	// Routing.
	g.post("unknown /v3 path", "/v3/kv/nope", `{}`)
	g.step("GET on a POST route", http.MethodGet, "/v3/kv/range", "", nil)
	g.step("PUT on a POST route", http.MethodPut, "/v3/kv/range", `{"key":"Zm9v"}`, nil)
	g.step("/v3 without a slash", http.MethodPost, "/v3", `{}`, nil)
	g.step("CORS preflight", http.MethodOptions, "/v3/kv/range", "", nil)
	g.post("the /v3beta/ prefix", "/v3beta/kv/range", fmt.Sprintf(`{"key":%s}`, b64("foo")))
	g.post("the deprecated /v3alpha/ prefix", "/v3alpha/kv/range", fmt.Sprintf(`{"key":%s}`, b64("foo")))

	// Leases, with fixed IDs so both sides hold the same ones. TimeToLive
	// ticks on each side's clock: its TTL is compared as "at most 2 s
	// below the granted TTL".
	g.post("lease grant", "/v3/lease/grant", `{"TTL":"600","ID":"4096"}`)
	g.post("lease grant, duplicate ID", "/v3/lease/grant", `{"TTL":"600","ID":"4096"}`)
	g.post("lease grant, TTL too large", "/v3/lease/grant", `{"TTL":"9000000001","ID":"4097"}`)
	g.post("put with the lease", "/v3/kv/put", fmt.Sprintf(`{"key":%s,"value":%s,"lease":"4096"}`, b64("leased"), b64("v")))
	ttl := masks{"TTL": within(598, 600)}
	g.post("lease timetolive with keys", "/v3/lease/timetolive", `{"ID":"4096","keys":true}`, ttl)
	g.post("lease timetolive, old path", "/v3/kv/lease/timetolive", `{"ID":"4096"}`, ttl)
	g.post("lease timetolive of a missing lease", "/v3/lease/timetolive", `{"ID":"1"}`)
	g.post("lease leases", "/v3/lease/leases", `{}`)
	g.post("lease keepalive (a stream)", "/v3/lease/keepalive", `{"ID":"4096"}`)
	g.post("lease revoke", "/v3/lease/revoke", `{"ID":"4096"}`)
	a = g.post("lease revoke again", "/v3/lease/revoke", `{"ID":"4096"}`)
	g.wantCode("lease revoke again", a, http.StatusNotFound)
	g.post("lease revoke, old path", "/v3/kv/lease/revoke", `{"ID":"4096"}`)
	g.post("range after revoke", "/v3/kv/range", fmt.Sprintf(`{"key":%s}`, b64("leased")))

	// Cluster and Maintenance. Member names, IDs and URLs are each side's
	// own; Status fields that describe one process are masked as
	// normalizeStatus does for gRPC (maintenance_test.go).
	member := masks{"ID": isSet, "name": isSet, "peerURLs": urlsMask, "clientURLs": urlsMask}
	g.post("member list", "/v3/cluster/member/list", `{}`, member)
	g.post("member list, linearizable", "/v3/cluster/member/list", `{"linearizable":true}`, member)
	g.post("member remove of an unknown ID", "/v3/cluster/member/remove", `{"ID":"1"}`)
	g.post("member promote of an unknown ID", "/v3/cluster/member/promote", `{"ID":"1"}`)
	status := masks{}
	for _, f := range []string{"version", "dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex", "leader", "raftTerm", "storageVersion"} {
		status[f] = isSet
	}
	g.post("status", "/v3/maintenance/status", `{}`, status)
	g.post("alarm list", "/v3/maintenance/alarm", `{"action":"GET"}`)
	// Hash is deliberately not comparable (docs/compatibility.md).
	g.post("hash", "/v3/maintenance/hash", `{}`, masks{"hash": isSet})
	g.post("hashkv", "/v3/maintenance/hashkv", `{"revision":"0"}`)
	g.post("hashkv at a compacted revision", "/v3/maintenance/hashkv", `{"revision":"2"}`)
	g.post("defragment", "/v3/maintenance/defragment", `{}`)

	g.watch()
}

// watch opens a /v3/watch stream on both sides, reads the "created"
// answer, writes a key through the gateway, and reads the event.
func (g *gwPair) watch() {
	g.t.Helper()
	type stream struct {
		lines *bufio.Reader
		close func()
		err   error
		hdr   http.Header
		code  int
	}
	open := func(s gwSide) stream {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		body := fmt.Sprintf(`{"create_request":{"key":%s,"prev_kv":true}}`, b64("w"))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/v3/watch", strings.NewReader(body))
		if err != nil {
			cancel()
			return stream{err: err}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			return stream{err: err}
		}
		return stream{lines: bufio.NewReader(resp.Body), code: resp.StatusCode, hdr: resp.Header, close: func() { cancel(); resp.Body.Close() }}
	}
	next := func(s stream) gwAnswer {
		if s.err != nil {
			return gwAnswer{err: s.err}
		}
		line, err := s.lines.ReadString('\n')
		if err != nil {
			return gwAnswer{err: fmt.Errorf("reading the stream: %w (read %q)", err, line)}
		}
		return gwAnswer{code: s.code, hdr: s.hdr, body: line}
	}
	e, o := open(g.etcd), open(g.other)
	for _, s := range []stream{e, o} {
		if s.close != nil {
			defer s.close()
		}
	}
	const req = `POST /v3/watch {"create_request":{"key":"dw==","prev_kv":true}}`
	ea := next(e)
	if ea.err != nil {
		g.t.Fatalf("harness: etcd's watch: %v", ea.err)
	}
	g.compare("watch: created", req, ea, next(o), nil)
	g.post("put the watched key", "/v3/kv/put", fmt.Sprintf(`{"key":%s,"value":%s}`, b64("w"), b64("1")))
	g.post("put it again", "/v3/kv/put", fmt.Sprintf(`{"key":%s,"value":%s}`, b64("w"), b64("2")))
	for i := 1; i <= 2; i++ {
		ea := next(e)
		if ea.err != nil {
			g.t.Fatalf("harness: etcd's watch: %v", ea.err)
		}
		g.compare(fmt.Sprintf("watch: event %d", i), req, ea, next(o), nil)
	}
}

// TestGatewayWebSocket: etcd also serves the gateway's streams over
// WebSocket (a GET with "Upgrade: websocket", one JSON request per text
// message, one answer per message), for browsers, which cannot stream a
// request body. The case opens a watch that way and compares the
// handshake's status and the first answer.
func TestGatewayWebSocket(t *testing.T) {
	g := newGatewayPair(t)
	e, o := wsOpen(g.etcd, "/v3/watch"), wsOpen(g.other, "/v3/watch")
	for _, c := range []*wsConn{e, o} {
		if c.conn != nil {
			defer c.conn.Close()
		}
	}
	if e.err != nil || e.code != http.StatusSwitchingProtocols {
		t.Fatalf("harness: etcd's WebSocket handshake: %d %v", e.code, e.err)
	}
	req := fmt.Sprintf(`{"create_request":{"key":%s}}`, b64("ws"))
	answer := func(c *wsConn) gwAnswer {
		if c.err != nil {
			return gwAnswer{err: c.err}
		}
		if c.code != http.StatusSwitchingProtocols {
			return gwAnswer{code: c.code, hdr: c.hdr, body: c.body}
		}
		c.conn.SetDeadline(time.Now().Add(20 * time.Second))
		if err := wsWrite(c.conn, []byte(req)); err != nil {
			return gwAnswer{err: err}
		}
		msg, err := wsRead(c.r)
		return gwAnswer{code: c.code, hdr: c.hdr, body: string(msg), err: err}
	}
	ea := answer(e)
	if ea.err != nil {
		t.Fatalf("harness: etcd's WebSocket watch: %v", ea.err)
	}
	g.compare("WebSocket watch: created", "GET /v3/watch (WebSocket) "+req, ea, answer(o), nil)
}

// wsConn is a WebSocket client connection after its handshake.
type wsConn struct {
	conn net.Conn
	r    *bufio.Reader
	code int
	hdr  http.Header
	body string // the answer's body when the upgrade was refused
	err  error
}

// wsOpen sends a WebSocket handshake for path.
func wsOpen(s gwSide, path string) *wsConn {
	host := strings.TrimPrefix(s.base, "http://")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		return &wsConn{err: err}
	}
	c := &wsConn{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		c.err = err
		return c
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if c.err = req.Write(conn); c.err != nil {
		return c
	}
	resp, err := http.ReadResponse(c.r, req)
	if err != nil {
		c.err = err
		return c
	}
	c.code, c.hdr = resp.StatusCode, resp.Header
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, err := io.ReadAll(resp.Body)
		c.body, c.err = string(b), err
	}
	return c
}

// wsWrite sends payload as one masked text frame, as a client must.
func wsWrite(w io.Writer, payload []byte) error {
	n := len(payload)
	if n >= 1<<16 {
		return fmt.Errorf("frame of %d bytes: too long for this test client", n)
	}
	hdr := []byte{0x81} // FIN, text
	if n < 126 {
		hdr = append(hdr, 0x80|byte(n))
	} else {
		hdr = append(hdr, 0x80|126, byte(n>>8), byte(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	hdr = append(hdr, key[:]...)
	for i, c := range payload {
		hdr = append(hdr, c^key[i%4])
	}
	_, err := w.Write(hdr)
	return err
}

// wsRead returns the payload of the next text frame, skipping control
// frames (pings).
func wsRead(r *bufio.Reader) ([]byte, error) {
	for {
		var h [2]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, err
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126, 127:
			ext := make([]byte, map[uint64]int{126: 2, 127: 8}[n])
			if _, err := io.ReadFull(r, ext); err != nil {
				return nil, err
			}
			n = 0
			for _, c := range ext {
				n = n<<8 | uint64(c)
			}
		}
		if n > 1<<24 {
			return nil, fmt.Errorf("frame of %d bytes", n)
		}
		var key []byte
		if h[1]&0x80 != 0 {
			key = make([]byte, 4)
			if _, err := io.ReadFull(r, key); err != nil {
				return nil, err
			}
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(r, p); err != nil {
			return nil, err
		}
		for i := range p {
			if key != nil {
				p[i] ^= key[i%4]
			}
		}
		switch h[0] & 0x0f {
		case 0x1:
			if h[0]&0x80 == 0 {
				return nil, errors.New("fragmented text frame: not handled by this test client")
			}
			return p, nil
		case 0x8:
			return nil, fmt.Errorf("close frame %x", p)
		}
	}
}
