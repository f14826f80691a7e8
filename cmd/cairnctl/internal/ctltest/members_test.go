package ctltest

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func TestCreatedText(t *testing.T) {
	var c Created
	c.AddID(0x2e0d43c38fa7e69, "new")
	c.AddAddr("127.0.0.1:4000", "peer")
	c.AddAddr("127.0.0.1:40001", "peer2")
	for _, tc := range []struct{ in, want string }{
		{"Member  2e0d43c38fa7e69 removed from cluster fb5cd0b1599eebf2\n", "Member <new> removed from cluster fb5cd0b1599eebf2\n"},
		{`{"ID":207398937978109545,"peerURLs":["http://127.0.0.1:4000"]}`, `{"ID":<new>,"peerURLs":["http://<peer>"]}`},
		{`{"ID":"2e0d43c38fa7e69"}`, `{"ID":"<new>"}`},
		{"http://127.0.0.1:40001,http://127.0.0.1:4000", "http://<peer2>,http://<peer>"},
		{"unrelated 117b9266988c4966", "unrelated 117b9266988c4966"},
		// fields with --hex pads to 16 digits; a 16-digit ID has no padding.
		{"\"ID\" :  2e0d43c38fa7e69\n", "\"ID\" : <new>\n"},
	} {
		if got := c.Text(tc.in); got != tc.want {
			t.Errorf("Text(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCreatedProto(t *testing.T) {
	var a, b Created
	a.AddID(0xf000, "new")
	a.AddAddr("127.0.0.1:1111", "peer")
	b.AddID(0x1000, "new")
	b.AddAddr("127.0.0.1:2222", "peer")
	resp := func(id uint64, port string) string {
		m := &pb.Member{ID: id, PeerURLs: []string{"http://127.0.0.1:" + port}}
		// Listed by ID, as the server does.
		members := []*pb.Member{{ID: 0x5000, Name: "m0"}, m}
		if id < 0x5000 {
			members = []*pb.Member{m, {ID: 0x5000, Name: "m0"}}
		}
		out, err := proto.Marshal(&pb.MemberAddResponse{Header: &pb.ResponseHeader{ClusterId: 7}, Member: m, Members: members})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	ga := a.Proto(resp(0xf000, "1111"), &pb.MemberAddResponse{})
	gb := b.Proto(resp(0x1000, "2222"), &pb.MemberAddResponse{})
	if ga != gb {
		t.Errorf("not the same:\n%s\n%s", ga, gb)
	}
	if !strings.Contains(ga, "<peer>") || strings.Contains(ga, "non-canonical") {
		t.Errorf("unexpected: %s", ga)
	}
	if got := a.Proto("\xff", &pb.MemberListResponse{}); !strings.HasPrefix(got, "undecodable") {
		t.Errorf("garbage decoded: %s", got)
	}
}

func TestSortMembers(t *testing.T) {
	for _, tc := range []struct{ format, in, want string }{
		{"simple",
			"b1, started, m0, p, c, false\n<new>, unstarted, , p, , false\na2, started, m1, p, c, false\n",
			"<new>, unstarted, , p, , false\na2, started, m1, p, c, false\nb1, started, m0, p, c, false\n"},
		{"simple",
			"Member <new> added to cluster 1\n\nETCD_NAME=\"x\"\nETCD_INITIAL_CLUSTER=\"m0=u0,x=u,m1=u1\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
			"Member <new> added to cluster 1\n\nETCD_NAME=\"x\"\nETCD_INITIAL_CLUSTER=\"m0=u0,m1=u1,x=u\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"},
		{"json",
			`{"header":{"raft_term":2},"member":{"ID":1},"members":[{"ID":9,"name":"m0"},{"ID":<new>},{"ID":3}]}` + "\n",
			`{"header":{"raft_term":2},"member":{"ID":1},"members":[{"ID":3},{"ID":9,"name":"m0"},{"ID":<new>}]}` + "\n"},
		{"fields",
			"\"ClusterID\" : 1\n\"ID\" : 9\n\"IsLearner\" : false\n\n\"ID\" : 3\n\"IsLearner\" : true\n\n",
			"\"ClusterID\" : 1\n\"ID\" : 3\n\"IsLearner\" : true\n\n\"ID\" : 9\n\"IsLearner\" : false\n\n"},
		// A placeholder that replaced a space-padded hex ID.
		{"fields",
			"\"ClusterID\" : 1\n\"ID\" : 9\n\n\"ID\" :<new>\n\n\"ID\" : 3\n\n",
			"\"ClusterID\" : 1\n\"ID\" : 3\n\n\"ID\" : 9\n\n\"ID\" :<new>\n\n"},
		{"table",
			"┌─┐\n│ H │\n├─┤\n│ b │\n│ a │\n└─┘\n",
			"┌─┐\n│ H │\n├─┤\n│ a │\n│ b │\n└─┘\n"},
	} {
		if got := SortMembers(tc.format, tc.in); got != tc.want {
			t.Errorf("SortMembers(%s, %q)\n got  %q\n want %q", tc.format, tc.in, got, tc.want)
		}
	}
}

func TestSortEndpoints(t *testing.T) {
	for _, tc := range []struct{ format, in, want string }{
		{"simple", "b is healthy\na is healthy\n", "a is healthy\nb is healthy\n"},
		{"json", `[{"endpoint":"b"},{"endpoint":"a"}]` + "\n", `[{"endpoint":"a"},{"endpoint":"b"}]` + "\n"},
		{"fields", "\"Endpoint\" : \"b\"\n\"Health\" : true\n\n\"Endpoint\" : \"a\"\n\"Health\" : true\n\n",
			"\"Endpoint\" : \"a\"\n\"Health\" : true\n\n\"Endpoint\" : \"b\"\n\"Health\" : true\n\n"},
	} {
		if got := SortEndpoints(tc.format, tc.in); got != tc.want {
			t.Errorf("SortEndpoints(%s, %q)\n got  %q\n want %q", tc.format, tc.in, got, tc.want)
		}
	}
}
