package ctl

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The differential tests see a member ID below 2^60, which etcdctl pads with
// a space, only when a random ID happens to be one; these pin it down.
func TestSimpleMemberChanges(t *testing.T) {
	hdr := &pb.ResponseHeader{ClusterId: 0xfb5cd0b1599eebf2}
	members := []*pb.Member{
		{ID: 0x2e0d43c38fa7e69, PeerURLs: []string{"http://n:1", "http://n:2"}, IsLearner: true},
		{ID: 0x117b9266988c4966, Name: "m0", PeerURLs: []string{"http://m0:2380"}, ClientURLs: []string{"http://m0:2379"}},
		{ID: 0x3691ddd87fed4f5e, PeerURLs: []string{"http://u:3"}}, // added, never started
	}
	for _, tc := range []struct {
		name string
		f    func(p printer) error
		want string
	}{
		{"add", func(p printer) error {
			return p.MemberAdd(&clientv3.MemberAddResponse{Header: hdr, Member: members[0], Members: members}, "new", "http://n:1,http://n:2")
		}, "Member  2e0d43c38fa7e69 added as learner to cluster fb5cd0b1599eebf2\n" +
			"\n" +
			"ETCD_NAME=\"new\"\n" +
			"ETCD_INITIAL_CLUSTER=\"new=http://n:1,new=http://n:2,m0=http://m0:2380,=http://u:3\"\n" +
			"ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://n:1,http://n:2\"\n" +
			"ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"},
		{"add voter", func(p printer) error {
			return p.MemberAdd(&clientv3.MemberAddResponse{Header: hdr, Member: members[2], Members: members[2:]}, `a"b`, "http://u:3")
		}, "Member 3691ddd87fed4f5e added to cluster fb5cd0b1599eebf2\n\nETCD_NAME=\"a\\\"b\"\nETCD_INITIAL_CLUSTER=\"a\\\"b=http://u:3\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://u:3\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"},
		{"remove", func(p printer) error {
			return p.MemberRemove(0x2e0d43c38fa7e69, &clientv3.MemberRemoveResponse{Header: hdr})
		}, "Member  2e0d43c38fa7e69 removed from cluster fb5cd0b1599eebf2\n"},
		{"update", func(p printer) error {
			return p.MemberUpdate(0x117b9266988c4966, &clientv3.MemberUpdateResponse{Header: hdr})
		}, "Member 117b9266988c4966 updated in cluster fb5cd0b1599eebf2\n"},
		{"promote", func(p printer) error {
			return p.MemberPromote(0xab, &clientv3.MemberPromoteResponse{Header: hdr})
		}, "Member               ab promoted in cluster fb5cd0b1599eebf2\n"},
		{"move-leader", func(p printer) error {
			return p.MoveLeader(0x2e0d43c38fa7e69, 0x117b9266988c4966, &clientv3.MoveLeaderResponse{})
		}, "Leadership transferred from 2e0d43c38fa7e69 to 117b9266988c4966\n"},
	} {
		var out bytes.Buffer
		if err := tc.f(newPrinter("simple", false, &out, &out)); err != nil || out.String() != tc.want {
			t.Errorf("%s: got %v\n%q\nwant\n%q", tc.name, err, out.String(), tc.want)
		}
	}
}

func TestJSONMemberChanges(t *testing.T) {
	r := &clientv3.MemberAddResponse{
		Header:  &pb.ResponseHeader{ClusterId: 0xfb, MemberId: 0x11, RaftTerm: 2},
		Member:  &pb.Member{ID: 0x2e, PeerURLs: []string{"http://n:1"}, IsLearner: true},
		Members: []*pb.Member{{ID: 0x2e, PeerURLs: []string{"http://n:1"}, IsLearner: true}},
	}
	for _, tc := range []struct {
		hex  bool
		f    func(p printer) error
		want string
	}{
		{false, func(p printer) error { return p.MemberAdd(r, "n", "") },
			`{"header":{"cluster_id":251,"member_id":17,"raft_term":2},"member":{"ID":46,"peerURLs":["http://n:1"],"isLearner":true},"members":[{"ID":46,"peerURLs":["http://n:1"],"isLearner":true}]}`},
		{true, func(p printer) error { return p.MemberAdd(r, "n", "") },
			`{"header":{"cluster_id":"fb","member_id":"11","raft_term":2},"member":{"ID":"2e","peerURLs":["http://n:1"],"isLearner":true},"members":[{"ID":"2e","peerURLs":["http://n:1"],"isLearner":true}]}`},
		// Nothing the server would send, but etcdctl prints it so.
		{true, func(p printer) error { return p.MemberAdd(&clientv3.MemberAddResponse{}, "n", "") },
			`{"header":null,"member":null,"members":[]}`},
		{true, func(p printer) error { return p.MemberRemove(1, &clientv3.MemberRemoveResponse{}) },
			`{"header":null,"members":[]}`},
		{false, func(p printer) error { return p.MemberPromote(1, &clientv3.MemberPromoteResponse{}) }, `{}`},
		{true, func(p printer) error { return p.MoveLeader(1, 2, &clientv3.MoveLeaderResponse{}) }, `{}`},
	} {
		var out bytes.Buffer
		if err := tc.f(newPrinter("json", tc.hex, &out, &out)); err != nil || out.String() != tc.want+"\n" {
			t.Errorf("got %v %s\nwant %s", err, out.String(), tc.want)
		}
	}
}

// fields and table have no form for member changes or move-leader: the
// error comes after the request, with exit code 4.
func TestMemberChangesUnsupported(t *testing.T) {
	for _, format := range []string{"fields", "table"} {
		p := newPrinter(format, false, &bytes.Buffer{}, &bytes.Buffer{})
		for name, err := range map[string]error{
			"add":         p.MemberAdd(&clientv3.MemberAddResponse{}, "n", "u"),
			"remove":      p.MemberRemove(1, &clientv3.MemberRemoveResponse{}),
			"update":      p.MemberUpdate(1, &clientv3.MemberUpdateResponse{}),
			"promote":     p.MemberPromote(1, &clientv3.MemberPromoteResponse{}),
			"move-leader": p.MoveLeader(1, 2, &clientv3.MoveLeaderResponse{}),
		} {
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitBadFeature || err.Error() != format+" not supported as output format" {
				t.Errorf("%s %s: got %v", format, name, err)
			}
		}
	}
}

// The argument checks come before any dial; no server is needed.
func TestMemberArgs(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"member", "add"}, exitBadArgs, "member name not provided"},
		{[]string{"member", "add", "a", "b"}, exitBadArgs, "too many arguments"},
		{[]string{"member", "add", "a", "http://x", "HTTPS://y"}, exitBadArgs, "too many arguments, did you mean --peer-urls=http://x, did you mean --peer-urls=HTTPS://y"},
		{[]string{"member", "add", "a"}, exitBadArgs, "member peer urls not provided"},
		{[]string{"member", "add", "a", "--peer-urls=http://x", "-w", "yaml"}, exitBadFeature, "unsupported output format"},
		{[]string{"member", "remove"}, exitBadArgs, "member ID is not provided"},
		{[]string{"member", "remove", "0x1"}, exitBadArgs, `bad member ID arg (strconv.ParseUint: parsing "0x1": invalid syntax), expecting ID in Hex`},
		{[]string{"member", "remove", "1ffffffffffffffff"}, exitBadArgs, `bad member ID arg (strconv.ParseUint: parsing "1ffffffffffffffff": value out of range), expecting ID in Hex`},
		{[]string{"member", "update", "1"}, exitBadArgs, "member peer urls not provided"},
		{[]string{"member", "update", "zz"}, exitBadArgs, `bad member ID arg (strconv.ParseUint: parsing "zz": invalid syntax), expecting ID in Hex`},
		{[]string{"member", "promote", "1", "2"}, exitBadArgs, "member ID is not provided"},
		{[]string{"member", "list", "--consistency", "s", "-w", "yaml"}, exitBadFeature, "unsupported output format"},
		{[]string{"member", "list", "--consistency", "x", "-w", "yaml"}, exitBadFeature, `unknown consistency flag "l"`},
		{[]string{"move-leader"}, exitBadArgs, "move-leader command needs 1 argument"},
		{[]string{"move-leader", "g"}, exitBadArgs, `strconv.ParseUint: parsing "g": invalid syntax`},
		{[]string{"move-leader", "1", "-w", "yaml"}, exitBadFeature, "unsupported output format"},
	} {
		var out, errb bytes.Buffer
		code := Run(Invocation{Args: append([]string{"etcdctl"}, tc.args...), Stdout: &out, Stderr: &errb})
		if want := "Error: " + tc.stderr + "\n"; code != tc.code || out.Len() != 0 || errb.String() != want {
			t.Errorf("%s: got %d %q %q, want %d %q", strings.Join(tc.args, " "), code, out.String(), errb.String(), tc.code, want)
		}
	}
}
