package mvcc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func fmtEvents(evs []*mvccpb.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%s %s@%d v%d c%d %q;", ev.Type, ev.Kv.Key, ev.Kv.ModRevision, ev.Kv.Version, ev.Kv.CreateRevision, ev.Kv.Value)
	}
	return b.String()
}

func TestEvents(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	w := e.s.Write()
	w.Put([]byte("a"), []byte("1"), 0) // rev 2
	w.End()
	w = e.s.Write()
	w.Put([]byte("b\x00"), []byte("2"), 7) // rev 3
	w.Put([]byte("a"), []byte("3"), 0)
	w.End()
	e.commit(false)
	w = e.s.Write()
	w.DeleteRange([]byte("a"), []byte("c")) // rev 4: a, b\x00
	w.End()
	e.commit(false)

	evs, next, err := e.s.Events(ctx, 2, 4, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := `PUT a@2 v1 c2 "1";PUT b` + "\x00" + `@3 v1 c3 "2";PUT a@3 v2 c2 "3";DELETE a@4 v0 c0 "";DELETE b` + "\x00" + `@4 v0 c0 "";`
	if got := fmtEvents(evs); got != want || next != 5 {
		t.Fatalf("events:\n got %s next %d\nwant %s next 5", got, next, want)
	}
	if evs[1].Kv.Lease != 7 {
		t.Fatalf("lease lost: %+v", evs[1].Kv)
	}
	// A limit never splits a revision.
	evs, next, err = e.s.Events(ctx, 2, 4, 2, 0)
	if err != nil || len(evs) != 3 || next != 4 {
		t.Fatalf("limit 2: %d events next %d err %v, want the 3 events of revisions 2-3 and next 4", len(evs), next, err)
	}
	// A byte budget: revision 2 alone ("a"+"1") already reaches 2 bytes.
	evs, next, err = e.s.Events(ctx, 2, 4, 0, 2)
	if err != nil || len(evs) != 1 || next != 3 {
		t.Fatalf("2 bytes: %d events next %d err %v, want revision 2 only", len(evs), next, err)
	}
	if _, _, err := e.s.Events(ctx, 2, 5, 0, 0); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("future: %v", err)
	}
	if err := e.compact(3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.Events(ctx, 2, 4, 0, 0); !errors.Is(err, ErrCompacted) {
		t.Fatalf("from below the compaction: %v", err)
	}
	evs, _, err = e.s.Events(ctx, 3, 4, 0, 0)
	if err != nil || len(evs) != 4 {
		t.Fatalf("from the compaction revision: %s %v", fmtEvents(evs), err)
	}
}
