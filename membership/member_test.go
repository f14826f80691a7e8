package membership

import (
	"errors"
	"testing"
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
