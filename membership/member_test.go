package membership

import (
	"errors"
	"testing"
	"time"
)

func TestParseInitialCluster(t *testing.T) {
	ms, err := ParseInitialCluster("a=http://h1:2380,b=http://h2:2380,a=http://h1b:2380", "tok")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "a" || len(ms[0].PeerURLs) != 2 || ms[1].Name != "b" {
		t.Fatalf("unexpected members %+v", ms)
	}
	for _, bad := range []string{"", "a", "=http://x:1", "a=nourl", "a=http://"} {
		if _, err := ParseInitialCluster(bad, "tok"); !errors.Is(err, ErrBadInitialCluster) {
			t.Errorf("%q: got %v, want ErrBadInitialCluster", bad, err)
		}
	}
}

func TestIDsDeterministic(t *testing.T) {
	a := NewMember("x", []string{"http://b:1", "http://a:1"}, "tok")
	b := NewMember("y", []string{"http://a:1", "http://b:1"}, "tok")
	if a.ID != b.ID || a.ID == 0 {
		t.Fatalf("same URLs and token must give the same non-zero ID: %x %x", a.ID, b.ID)
	}
	if c := NewMember("x", []string{"http://a:1", "http://b:1"}, "other"); c.ID == a.ID {
		t.Fatal("different tokens must give different IDs")
	}
	m2 := NewMember("z", []string{"http://c:1"}, "tok")
	if ClusterID([]Member{a, m2}) != ClusterID([]Member{m2, a}) {
		t.Fatal("cluster ID must not depend on member order")
	}
}

func TestValidatePeerURLs(t *testing.T) {
	for _, tc := range []struct {
		urls []string
		ok   bool
	}{
		{[]string{"http://a:2380"}, true},
		{[]string{"https://10.0.0.1:2380", "http://[::1]:2380"}, true},
		{[]string{"unix://a:1", "unixs://a:1"}, true},
		{nil, false},
		{[]string{"http://a:2380", "ftp://a:2380"}, false},
		{[]string{"http://a"}, false},
		{[]string{"http://a:2380/path"}, false},
		{[]string{"://a:2380"}, false},
	} {
		err := ValidatePeerURLs(tc.urls)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrBadPeerURLs)) {
			t.Errorf("ValidatePeerURLs(%q) = %v, want ok %v", tc.urls, err, tc.ok)
		}
	}
}

func TestNewAddedMemberIDs(t *testing.T) {
	urls := []string{"http://a:2380"}
	t0 := time.Unix(1_000_000, 0)
	a, b := NewAddedMember(urls, "tok", t0), NewAddedMember(urls, "tok", t0)
	if a.ID != b.ID || a.ID == 0 || a.Name != "" {
		t.Fatalf("same request: %+v, %+v", a, b)
	}
	// Added again later (after a removal): raft must see a new ID.
	if c := NewAddedMember(urls, "tok", t0.Add(time.Nanosecond)); c.ID == a.ID {
		t.Fatal("a member added again at another time got the same ID")
	}
}
