package main

import (
	"context"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctltest"
)

// Member changes run as scripts, one pass per CLI against the same cluster:
// the etcdctl pass, then the cairnctl pass doing the same with members of
// its own. Each pass leaves the cluster with its founding members only.

func (e *clusterEnv) testMembers(t *testing.T) {
	// etcd refuses membership changes for a few seconds after its peers
	// connected (the read cases take most of that), and again after any
	// reconnection, which a loaded CI machine causes: wait up to a minute.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ctltest.WaitReconfigurable(ctx, e.eps[0]); err != nil {
		t.Fatalf("cluster does not accept member changes: %v", err)
	}
	for _, f := range formats {
		t.Run("promote/"+f, func(t *testing.T) { e.compareScript(t, func(s *sideRun) { promoteScript(s, f) }) })
	}
	t.Run("errors", e.testMemberErrors)
	for _, f := range formats {
		t.Run("voter/"+f, func(t *testing.T) { e.compareScript(t, func(s *sideRun) { voterScript(s, f) }) })
	}
	for _, f := range formats {
		t.Run("learner/"+f, func(t *testing.T) { e.compareScript(t, func(s *sideRun) { learnerScript(s, f) }) })
	}
}

// testMemberErrors runs the member commands that change nothing: bad
// arguments and requests the server refuses.
func (e *clusterEnv) testMemberErrors(t *testing.T) {
	for _, c := range []sharedCase{
		{name: "add/no-args", args: args("member", "add")},
		{name: "add/no-peer-urls", args: args("member", "add", "x")},
		{name: "add/empty-peer-urls", args: args("member", "add", "x", "--peer-urls=")},
		{name: "add/two-names", args: args("member", "add", "x", "y")},
		{name: "add/url-argument", args: args("member", "add", "x", "http://127.0.0.1:1", "HTTPS://h:2", "--peer-urls=http://127.0.0.1:3")},
		{name: "add/bad-url", args: args("member", "add", "x", "--peer-urls=foo")},
		{name: "add/empty-url-item", args: args("member", "add", "x", "--peer-urls=http://127.0.0.1:1,")},
		{name: "add/existing-url", args: args("member", "add", "x", "--peer-urls={m1-peer}", "-w", "json")},
		{name: "add/existing-url-learner", args: args("member", "add", "x", "--learner", "--peer-urls={m1-peer}")},
		{name: "add/bad-format", args: args("member", "add", "x", "--peer-urls=http://127.0.0.1:1", "-w", "yaml")},
		{name: "add/bad-format-no-name", args: args("member", "add", "-w", "yaml")},
		{name: "remove/no-args", args: args("member", "remove")},
		{name: "remove/two-args", args: args("member", "remove", "{m1}", "{m2}")},
		{name: "remove/bad-id", args: args("member", "remove", "zz")},
		{name: "remove/hex-prefix", args: args("member", "remove", "0x10")},
		{name: "remove/empty-id", args: args("member", "remove", "")},
		{name: "remove/too-large", args: args("member", "remove", "1ffffffffffffffff")},
		{name: "remove/unknown", args: args("member", "remove", "1234")},
		{name: "remove/unknown/json", args: args("member", "remove", "1234", "-w", "json")},
		{name: "update/no-args", args: args("member", "update", "--peer-urls=http://127.0.0.1:1")},
		{name: "update/bad-id", args: args("member", "update", "zz", "--peer-urls=http://127.0.0.1:1")},
		{name: "update/no-peer-urls", args: args("member", "update", "{m1}")},
		{name: "update/unknown", args: args("member", "update", "1234", "--peer-urls=http://127.0.0.1:1")},
		{name: "update/bad-url", args: args("member", "update", "{m1}", "--peer-urls=foo")},
		{name: "update/taken-url", args: args("member", "update", "{m0}", "--peer-urls={m1-peer}")},
		// The member's own URLs again: a change that changes nothing.
		{name: "update/same-url", args: args("member", "update", "{m2}", "--peer-urls={m2-peer}")},
		{name: "update/same-url/json", args: args("member", "update", "{m2}", "--peer-urls={m2-peer}", "-w", "json")},
		{name: "update/same-url/hex-json", args: args("member", "update", "{m2}", "--peer-urls={m2-peer}", "--hex", "-w", "json")},
		{name: "update/same-url/protobuf", args: args("member", "update", "{m2}", "--peer-urls={m2-peer}", "-w", "protobuf")},
		{name: "update/same-url/fields", args: args("member", "update", "{m2}", "--peer-urls={m2-peer}", "-w", "fields")},
		{name: "update/same-url/table", args: args("member", "update", "{m2}", "--peer-urls={m2-peer}", "-w", "table")},
		{name: "promote/no-args", args: args("member", "promote")},
		{name: "promote/bad-id", args: args("member", "promote", "-x")},
		{name: "promote/unknown", args: args("member", "promote", "1234")},
		{name: "promote/voter", args: args("member", "promote", "{m1}")},
		{name: "prefix-match", args: args("mem", "li", "-w", "json")},
		{name: "unknown-subcommand", args: args("member", "frobnicate"), cmp: usage},
	} {
		t.Run(c.name, func(t *testing.T) { e.runShared(t, c) })
	}
}

// stepKind says how a step's output is put in a fixed order.
type stepKind int

const (
	plain   stepKind = iota
	members          // lists members: sorted, new IDs land anywhere
	health           // endpoint health: records in completion order
)

// step is one command of a script as one CLI ran it.
type step struct {
	name   string
	format string
	kind   stepKind
	cmp    compare
	// msg makes the message of the protobuf output.
	msg func() proto.Message
	res ctltest.Result
}

// sideRun is one CLI's pass through a script.
type sideRun struct {
	t       *testing.T
	e       *clusterEnv
	run     func(ctltest.Invocation) ctltest.Result
	created ctltest.Created
	steps   []step
}

func (e *clusterEnv) compareScript(t *testing.T, script func(*sideRun)) {
	a := &sideRun{t: t, e: e, run: func(inv ctltest.Invocation) ctltest.Result { return ctltest.RunBinary(e.ctlBin, inv) }}
	b := &sideRun{t: t, e: e, run: runCairnctl}
	script(a)
	script(b)
	if len(a.steps) != len(b.steps) {
		t.Errorf("etcdctl ran %d steps, cairnctl %d", len(a.steps), len(b.steps))
	}
	for i := range min(len(a.steps), len(b.steps)) {
		sa, sb := a.steps[i], b.steps[i]
		t.Run(sa.name, func(t *testing.T) {
			want, got := a.normalize(sa), b.normalize(sb)
			checkSame(t, diffCase{name: sa.name, cmp: sa.cmp}, want, got, e.eps, e.eps)
		})
	}
}

// normalize replaces what this pass created by placeholders and puts the
// records of the output in a fixed order.
func (s *sideRun) normalize(st step) ctltest.Result {
	r := st.res
	if st.format == "protobuf" && st.msg != nil && r.Stdout != "" {
		r.Stdout = s.created.Proto(r.Stdout, st.msg())
	} else {
		r.Stdout = s.created.Text(r.Stdout)
	}
	r.Stderr = s.created.Text(r.Stderr)
	switch st.kind {
	case members:
		r.Stdout = ctltest.SortMembers(st.format, r.Stdout)
	case health:
		r.Stdout = ctltest.SortEndpoints(st.format, r.Stdout)
		r.Stderr = ctltest.SortEndpoints("simple", r.Stderr)
	}
	return r
}

// do runs one step: --endpoints=<m0> is added unless args name endpoints.
func (s *sideRun) do(name string, kind stepKind, msg func() proto.Message, a ...string) ctltest.Result {
	s.t.Helper()
	inv := ctltest.Invocation{Args: s.e.expand(a)}
	st := step{name: name, format: formatOf(inv.Args), kind: kind, msg: msg, res: s.run(inv)}
	if kind == health {
		st.cmp = durations
	}
	s.steps = append(s.steps, st)
	return st.res
}

// newAddr returns a free loopback address, registered as created.
func (s *sideRun) newAddr(name string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s.created.AddAddr(addr, name)
	return addr
}

// learnID finds the member whose peer URL is peer, registers its ID as
// created, and returns it in hex.
func (s *sideRun) learnID(peer, name string) (string, bool) {
	s.t.Helper()
	resp, err := ctltest.Client(s.t, s.e.eps[0]).MemberList(waitContext(s.t))
	if err != nil {
		s.t.Errorf("member list: %v", err)
		return "", false
	}
	for _, m := range resp.Members {
		if slices.Contains(m.PeerURLs, peer) {
			s.created.AddID(m.ID, name)
			return hexID(m.ID), true
		}
	}
	s.t.Errorf("no member at %s after the add: %+v", peer, resp.Members)
	return "", false
}

var (
	addMsg     = func() proto.Message { return &pb.MemberAddResponse{} }
	removeMsg  = func() proto.Message { return &pb.MemberRemoveResponse{} }
	updateMsg  = func() proto.Message { return &pb.MemberUpdateResponse{} }
	promoteMsg = func() proto.Message { return &pb.MemberPromoteResponse{} }
	listMsg    = func() proto.Message { return &pb.MemberListResponse{} }
)

// voterScript adds a voting member that never starts, moves it to other
// peer URLs, lists and removes it, all in format f. A cluster of three
// started members accepts one such member at a time.
func voterScript(s *sideRun, f string) {
	w := []string{"-w", f}
	peer := "http://" + s.newAddr("peer")
	s.do("add", members, addMsg, append(args("member", "add", "voter", "--peer-urls="+peer), w...)...)
	id, ok := s.learnID(peer, "new")
	if !ok {
		return
	}
	peer2 := "http://" + s.newAddr("peer2")
	s.do("update", members, updateMsg, append(args("member", "update", id, "--peer-urls="+peer2+","+peer), w...)...)
	s.do("list", members, listMsg, append(args("member", "list"), w...)...)
	s.do("list-hex", members, listMsg, append(args("member", "list", "--hex"), w...)...)
	// A voter that is not a learner, and not in sync either: etcd checks
	// the latter first.
	s.do("promote-voter", members, promoteMsg, append(args("member", "promote", id), w...)...)
	s.do("remove", members, removeMsg, append(args("member", "remove", id), w...)...)
	s.do("remove-again", members, removeMsg, append(args("member", "remove", id), w...)...)
}

// learnerScript adds a learner that never starts: promoting it fails, as
// it is not in sync with the leader.
func learnerScript(s *sideRun, f string) {
	w := []string{"-w", f}
	peer := "http://" + s.newAddr("peer")
	s.do("add", members, addMsg, append(args("member", "add", "learner", "--learner", "--peer-urls="+peer, "--hex"), w...)...)
	id, ok := s.learnID(peer, "new")
	if !ok {
		return
	}
	s.do("promote-not-ready", members, promoteMsg, append(args("member", "promote", id), w...)...)
	s.do("list", members, listMsg, append(args("member", "list"), w...)...)
	s.do("remove", members, removeMsg, append(args("member", "remove", id, "--hex"), w...)...)
}

var initialClusterRE = regexp.MustCompile(`(?m)^ETCD_INITIAL_CLUSTER="([^"]*)"$`)

// promoteScript adds a learner (the simple format, whose settings then
// start it), starts it, waits until it caught up, promotes it in format f,
// lists and removes it. The cases that need a started learner run along
// in the simple format.
//
// These scripts run first, while the raft log is short. Once 100 entries
// are applied, etcd no longer keeps the log from index 1 and sends a new
// member a snapshot; when the entry that publishes the learner's name
// lands in that snapshot, the learner serves no client and shows as
// unstarted until its publish request times out (7 s) and is sent again.
// Each script adds about four entries per CLI.
func promoteScript(s *sideRun, f string) {
	w := []string{"-w", f}
	peer := ctltest.Reserve(s.t)
	s.created.AddAddr(strings.TrimPrefix(peer.URL(), "http://"), "peer")
	r := s.do("add", members, addMsg, "member", "add", "learner", "--learner", "--peer-urls="+peer.URL())
	id, ok := s.learnID(peer.URL(), "new")
	if !ok {
		return
	}
	defer s.do("remove", members, removeMsg, append(args("member", "remove", id), w...)...)
	m := initialClusterRE.FindStringSubmatch(r.Stdout)
	if m == nil {
		s.t.Errorf("no ETCD_INITIAL_CLUSTER in %q", r.Stdout)
		return
	}
	learner, err := s.e.c.Join(s.t, "learner", peer, m[1])
	if err != nil {
		s.t.Error(err)
		return
	}
	s.created.AddAddr(learner.Endpoint, "client")
	if err := ctltest.WaitCaughtUp(waitContext(s.t), learner, s.e.eps); err != nil {
		s.t.Errorf("learner did not catch up: %v", err)
		return
	}
	if f == "simple" {
		s.do("move-leader-to-learner", plain, nil, "--endpoints={eps}", "move-leader", id)
		s.do("health-with-learner", health, nil, "endpoint", "health", "--cluster")
	}
	s.do("list-learner", members, listMsg, append(args("member", "list"), w...)...)
	s.do("promote", members, promoteMsg, append(args("member", "promote", id), w...)...)
	if f == "simple" {
		s.do("promote-again", members, promoteMsg, "member", "promote", id)
	}
	s.do("list-promoted", members, listMsg, append(args("member", "list"), w...)...)
}
