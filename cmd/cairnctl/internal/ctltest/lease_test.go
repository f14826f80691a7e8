package ctltest

import "testing"

func TestLeaseIDsNormalize(t *testing.T) {
	const (
		id  = 0x6a6ca1ffff220711 // 7668682386374264593
		id2 = 0x6a6ca1ffff220799 // 7668682386374264729
	)
	for _, tc := range []struct {
		name string
		in   string
		hex  bool
		want string
	}{
		{"simple", "lease 6a6ca1ffff220711 granted with TTL(10s)\n", false, "lease <lease#0> granted with TTL(10s)\n"},
		{"simple order of appearance", "found 2 leases\n6a6ca1ffff220799\n6a6ca1ffff220711\n", false, "found 2 leases\n<lease#1>\n<lease#0>\n"},
		{"fields decimal", "\"RaftTerm\" : 2\n\"ID\" : 7668682386374264593\n\"TTL\" : 10\n", false, "\"RaftTerm\" : 2\n\"ID\" : <lease#0>\n\"TTL\" : 10\n"},
		{"fields hex", "\"ClusterID\" : 1c45a069f3a1d796\n\"ID\" : 6a6ca1ffff220711\n", true, "\"ClusterID\" : 1c45a069f3a1d796\n\"ID\" : <lease#0>\n"},
		{"fields kv", "\"Lease\" : 7668682386374264593\n\"PrevLease\" : 0\n", false, "\"Lease\" : <lease#0>\n\"PrevLease\" : 0\n"},
		{"fields no lease hex", "\"Lease\" : 0000000000000000\n", true, "\"Lease\" : 0000000000000000\n"},
		{"json", `{"cluster_id":1,"member_id":2,"ID":7668682386374264593,"leases":[{"id":7668682386374264729}],"lease":7668682386374264593}`, false,
			`{"cluster_id":1,"member_id":2,"ID":<lease#0>,"leases":[{"id":<lease#1>}],"lease":<lease#0>}`},
		{"kept literal", "lease 0000000001234abc already expired\n", false, "lease 0000000001234abc already expired\n"},
		{"other numbers", "\"Revision\" : 7668682386374264593\n", false, "\"Revision\" : 7668682386374264593\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewLeaseIDs()
			m.Add(id)
			m.Add(id2)
			m.Keep(0x1234abc)
			if got := m.Normalize(tc.in, tc.hex); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
	t.Run("first seen", func(t *testing.T) {
		m := NewLeaseIDs()
		got := m.Normalize("lease 6a6ca1ffff220799 revoked\n", false)
		got += m.Normalize("\"ID\" : 6a6ca1ffff220711\n\"ID\" : 7668682386374264729\n", true)
		want := "lease <lease#0> revoked\n\"ID\" : <lease#1>\n\"ID\" : 7668682386374264729\n"
		if got != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
}

func TestAlignRemaining(t *testing.T) {
	for _, tc := range []struct{ name, want, got, out string }{
		{"one second", "remaining(99s)", "remaining(98s)", "remaining(99s)"},
		{"equal", `"ttl":5,"granted-ttl":6`, `"ttl":5,"granted-ttl":6`, `"ttl":5,"granted-ttl":6`},
		{"too far", "\"TTL\" : 99\n", "\"TTL\" : 97\n", "\"TTL\" : 97\n"},
		{"granted untouched", "TTL(100s), remaining(99s)", "TTL(101s), remaining(100s)", "TTL(101s), remaining(99s)"},
		{"count differs", "remaining(9s) remaining(9s)", "remaining(8s)", "remaining(8s)"},
	} {
		if out := AlignRemaining(tc.want, tc.got); out != tc.out {
			t.Errorf("%s: got %q, want %q", tc.name, out, tc.out)
		}
	}
}

func TestSortLeaseKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x, attached keys([c a b])\n", "x, attached keys([a b c])\n"},
		{`{"keys":["Yw==","YQ=="]}`, `{"keys":["YQ==","Yw=="]}`},
		{"\"TTL\" : 1\n\"Key\" : \"c\"\n\"Key\" : \"a\"\n", "\"TTL\" : 1\n\"Key\" : \"a\"\n\"Key\" : \"c\"\n"},
		{"attached keys([])\n", "attached keys([])\n"},
	} {
		if got := SortLeaseKeys(tc.in); got != tc.want {
			t.Errorf("SortLeaseKeys(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
