package ctl

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The outputs of alarm list (a header) and alarm disarm (none: the client
// builds its answer from one request per alarm), as etcdctl 3.7.3 prints
// them; the differential test checks them against etcdctl on live servers.
func TestAlarmPrinters(t *testing.T) {
	list := &clientv3.AlarmResponse{
		Header: &pb.ResponseHeader{ClusterId: 0x48276a8f75b6a87, MemberId: 0x2e1259d415f2a040, Revision: 1, RaftTerm: 2},
		Alarms: []*pb.AlarmMember{
			{MemberID: 0x2e1259d415f2a040, Alarm: pb.AlarmType_NOSPACE},
			{MemberID: 0xab, Alarm: pb.AlarmType_CORRUPT},
			{Alarm: pb.AlarmType(7)}, // a type this client does not know, member 0
		},
	}
	disarm := &clientv3.AlarmResponse{Alarms: list.Alarms[:1]}
	for _, tc := range []struct {
		name, format string
		hex          bool
		r            *clientv3.AlarmResponse
		want         string
	}{
		{"list", "simple", false, list,
			"memberID:3319814642761637952 alarm:NOSPACE\nmemberID:171 alarm:CORRUPT\nalarm:7\n"},
		{"none", "simple", false, &clientv3.AlarmResponse{}, ""},
		{"list", "json", true, list,
			`{"header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"revision":1,"raft_term":2},"alarms":[{"memberID":3319814642761637952,"alarm":1},{"memberID":171,"alarm":2},{"alarm":7}]}` + "\n"},
		{"disarm", "json", false, disarm, `{"alarms":[{"memberID":3319814642761637952,"alarm":1}]}` + "\n"},
		{"disarm none", "json", false, &clientv3.AlarmResponse{}, "{}\n"},
		{"list", "fields", false, list,
			"\"ClusterID\" : 324952591200643719\n\"MemberID\" : 3319814642761637952\n\"Revision\" : 1\n\"RaftTerm\" : 2\n" +
				"\"MemberID\" : 3319814642761637952\n\"AlarmType\" : NOSPACE\n\n" +
				"\"MemberID\" : 171\n\"AlarmType\" : CORRUPT\n\n" +
				"\"MemberID\" : 0\n\"AlarmType\" : 7\n\n"},
		{"list", "fields", true, list,
			"\"ClusterID\" : 48276a8f75b6a87\n\"MemberID\" : 2e1259d415f2a040\n\"Revision\" : 1\n\"RaftTerm\" : 2\n" +
				"\"MemberID\" : 2e1259d415f2a040\n\"AlarmType\" : NOSPACE\n\n" +
				"\"MemberID\" : ab\n\"AlarmType\" : CORRUPT\n\n" +
				"\"MemberID\" : 0\n\"AlarmType\" : 7\n\n"},
		{"disarm", "fields", true, disarm,
			"\"ClusterID\" : 0\n\"MemberID\" : 0\n\"RaftTerm\" : 0\n\"MemberID\" : 2e1259d415f2a040\n\"AlarmType\" : NOSPACE\n\n"},
	} {
		var out bytes.Buffer
		if err := newPrinter(tc.format, tc.hex, &out, &out).Alarm(tc.r); err != nil || out.String() != tc.want {
			t.Errorf("%s -w %s (hex %v): got %v\n%q\nwant\n%q", tc.name, tc.format, tc.hex, err, out.String(), tc.want)
		}
	}

	var out bytes.Buffer
	if err := newPrinter("protobuf", false, &out, &out).Alarm(list); err != nil {
		t.Fatal(err)
	}
	var got pb.AlarmResponse
	if err := proto.Unmarshal(out.Bytes(), &got); err != nil || !proto.Equal(&got, (*pb.AlarmResponse)(list)) {
		t.Errorf("protobuf: %v, decodes to %v", err, &got)
	}

	err := newPrinter("table", false, &out, &out).Alarm(list)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitBadFeature || err.Error() != "table not supported as output format" {
		t.Errorf("table: got %v", err)
	}
}

// The argument checks come before any dial; no server is needed.
func TestAlarmArgs(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"alarm", "list", "x"}, exitBadArgs, "alarm list command accepts no arguments"},
		{[]string{"alarm", "disarm", "x", "y"}, exitBadArgs, "alarm disarm command accepts no arguments"},
		{[]string{"alarm", "list", "-w", "yaml"}, exitBadFeature, "unsupported output format"},
	} {
		var out, errb bytes.Buffer
		code := Run(Invocation{Args: append([]string{"etcdctl"}, tc.args...), Stdout: &out, Stderr: &errb})
		if want := "Error: " + tc.stderr + "\n"; code != tc.code || out.Len() != 0 || errb.String() != want {
			t.Errorf("%s: got %d %q %q, want %d %q", strings.Join(tc.args, " "), code, out.String(), errb.String(), tc.code, want)
		}
	}
}
