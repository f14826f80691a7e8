package differential

import (
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestWatchRanges covers what a watcher sees: single key, prefix,
// from-key, empty key, an empty range, and writes of every shape.
func TestWatchRanges(t *testing.T) {
	p := newPair(t, options{})
	p.put("seed a", put("a", "0"))
	w := p.openWatch("ranges")
	w.create(wKey("a"))
	w.expect("create on key a", 1)
	w.create(wPrefix("b/"))
	w.expect("create on prefix b/", 1)
	w.create(wFrom("\x00"))
	w.expect("create from \\x00 (every key)", 1)
	w.create(&pb.WatchCreateRequest{Key: b("z"), RangeEnd: b("a")})
	w.expect("create with key > range_end", 1)
	w.create(&pb.WatchCreateRequest{Key: b("m"), RangeEnd: b("m")})
	w.expect("create with key == range_end", 1)
	w.create(&pb.WatchCreateRequest{})
	w.expect("create with an empty key (watches \\x00)", 1)
	w.create(&pb.WatchCreateRequest{RangeEnd: fromKey})
	w.expect("create with an empty key and range_end \\x00", 1)
	w.create(wFrom("c"))
	w.expect("create from c", 1)
	w.progress("nothing written yet")

	p.put("put a", put("a", "1"))
	p.put("put b/1", put("b/1", "x"))
	p.put("put b", put("b", "not in b/"))
	p.put("put \\x00", put("\x00", "zero"))
	p.put("put c", put("c", "c"))
	w.progress("single puts")
	p.txn("txn over several keys", &pb.TxnRequest{Success: ops(opPut("a", "2"), opPut("b/2", "y"), opPut("d", "d"), opDel("c", ""))})
	w.progress("one txn, one revision")
	p.txn("txn that writes nothing watched by a", &pb.TxnRequest{Success: ops(opPut("q", "q"))})
	w.progress("txn on one key")
	var o []*pb.RequestOp
	for i := 0; i < 20; i++ {
		o = append(o, opPut(fmt.Sprintf("b/%02d", i), "v"))
	}
	p.txn("seed 20 keys under b/", &pb.TxnRequest{Success: o})
	w.progress("20 puts in one txn")
	p.del("delete range b/", &pb.DeleteRangeRequest{Key: b("b/"), RangeEnd: prefixEnd("b/")})
	w.progress("delete range over 22 keys")
	p.del("delete from key a", &pb.DeleteRangeRequest{Key: b("a"), RangeEnd: fromKey})
	w.progress("delete everything from a")
	p.del("delete a missing key", del("nothing", ""))
	p.put("put a again", put("a", "3"))
	w.progress("no-op delete, then a put")
}

// TestWatchRevisions covers start_revision: now, the past, exactly the
// next revision, the future, negative, and compacted.
func TestWatchRevisions(t *testing.T) {
	p := newPair(t, options{})
	p.put("k 1", put("k", "1"))
	p.put("k 2", put("k", "2"))
	p.put("other", put("o", "1"))
	p.del("del k", del("k", ""))
	cur := p.put("k 3", put("k", "3")).GetHeader().GetRevision()

	p.run("past", func(p *pair) {
		w := p.openWatch("history")
		w.create(withRev(wKey("k"), 2))
		w.expect("replay k from revision 2", 2)
		w.create(withPrevKV(withRev(wFrom("\x00"), 1)))
		w.expect("replay everything from revision 1 with prev_kv", 2)
		w.create(withRev(wKey("k"), cur))
		w.expect("replay k from the current revision", 2)
		w.progress("replays done")
		p.put("k 4", put("k", "4"))
		w.progress("live after replay")
	})
	p.run("now", func(p *pair) {
		w := p.openWatch("now")
		w.create(withRev(wKey("k"), 0))
		w.expect("start 0", 1)
		p.put("k 5", put("k", "5"))
		w.progress("start 0 sees the next put")
	})
	p.run("next", func(p *pair) {
		rev := p.rng("revision", get("k")).GetHeader().GetRevision()
		w := p.openWatch("next")
		w.create(withRev(wKey("k"), rev+1))
		w.expect("start at current+1", 1)
		p.put("k at current+1", put("k", "6"))
		w.expect("event at current+1", 1)
		w.progress("synced after the first event")
	})
	p.run("future", func(p *pair) {
		rev := p.rng("revision", get("k")).GetHeader().GetRevision()
		w := p.openWatch("future")
		w.create(withRev(wKey("k"), rev+3))
		w.expect("start at current+3", 1)
		p.put("k +1", put("k", "f1"))
		p.put("k +2", put("k", "f2"))
		p.put("k +3", put("k", "f3"))
		w.expect("only the event at the start revision", 1)
		w.progress("synced after reaching the start revision")
		w.create(withRev(wKey("k"), 1<<40))
		w.expect("start far in the future", 1)
	})
	p.run("negative", func(p *pair) {
		w := p.openWatch("negative")
		w.create(withRev(wKey("k"), -1))
		w.expect("start -1", 1)
		w.create(withRev(wKey("k"), -100))
		w.expect("start -100", 1)
	})
	p.run("compacted", func(p *pair) {
		at := p.rng("revision", get("k")).GetHeader().GetRevision() - 1
		p.compact("compact", &pb.CompactionRequest{Revision: at, Physical: true})
		w := p.openWatch("compacted")
		w.create(withRev(wKey("k"), 2))
		w.expect("start below the compact revision", 2)
		w.create(withRev(wFrom("\x00"), at-1))
		w.expect("start one below the compact revision", 2)
		w.create(withRev(wKey("k"), at))
		w.expect("start at the compact revision", 2)
		// etcd keeps a watcher cancelled by compaction on its stream, and
		// answers no progress request on that stream until the client
		// cancels it; the cancel is answered like any other.
		w.cancelWatch(0)
		w.expect("cancel the first compacted watcher", 1)
		w.cancelWatch(1)
		w.expect("cancel the second compacted watcher", 1)
		w.progress("after the compacted watchers")
		p.put("k after compaction", put("k", "c"))
		w.progress("live after compaction")
	})
}

// TestWatchFilters covers NOPUT, NODELETE and prev_kv.
func TestWatchFilters(t *testing.T) {
	p := newPair(t, options{})
	w := p.openWatch("filters")
	for _, c := range []struct {
		name string
		r    *pb.WatchCreateRequest
	}{
		{"noput", &pb.WatchCreateRequest{Key: b("f/"), RangeEnd: prefixEnd("f/"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT}}},
		{"nodelete", &pb.WatchCreateRequest{Key: b("f/"), RangeEnd: prefixEnd("f/"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}}},
		{"both", &pb.WatchCreateRequest{Key: b("f/"), RangeEnd: prefixEnd("f/"), Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NOPUT, pb.WatchCreateRequest_NODELETE}}},
		{"unknown filter 7", &pb.WatchCreateRequest{Key: b("f/"), RangeEnd: prefixEnd("f/"), Filters: []pb.WatchCreateRequest_FilterType{7}}},
		{"prev_kv", withPrevKV(wPrefix("f/"))},
		{"prev_kv and nodelete", &pb.WatchCreateRequest{Key: b("f/"), RangeEnd: prefixEnd("f/"), PrevKv: true, Filters: []pb.WatchCreateRequest_FilterType{pb.WatchCreateRequest_NODELETE}}},
	} {
		w.create(c.r)
		w.expect("create "+c.name, 1)
	}
	p.put("create f/a", put("f/a", "1"))
	p.put("update f/a", put("f/a", "2"))
	p.put("update f/a with the same value", put("f/a", "2"))
	w.progress("puts")
	p.del("delete f/a", del("f/a", ""))
	p.del("delete f/a again (no-op)", del("f/a", ""))
	w.progress("delete")
	p.txn("txn: put f/b, put f/c", &pb.TxnRequest{Success: ops(opPut("f/b", "1"), opPut("f/c", "1"))})
	p.txn("txn: update f/b, delete f/c, create f/d", &pb.TxnRequest{Success: ops(opPut("f/b", "2"), opDel("f/c", ""), opPut("f/d", "1"))})
	w.progress("mixed txn")
	p.del("delete the prefix", &pb.DeleteRangeRequest{Key: b("f/"), RangeEnd: prefixEnd("f/")})
	w.progress("delete range")
	p.put("recreate f/a", put("f/a", "3"))
	w.progress("recreate after delete")
}

// TestWatchIDs covers several watchers on one stream: chosen and
// automatic IDs, duplicates, cancel, and progress requests.
func TestWatchIDs(t *testing.T) {
	p := newPair(t, options{})
	w := p.openWatch("ids")
	w.requestProgress() // no watcher: etcd answers nothing
	w.create(withID(wKey("x"), 7))
	w.expect("chosen id 7 (after a progress request with no watchers)", 1)
	w.create(wKey("x"))
	w.expect("automatic id", 1)
	w.create(wKey("x"))
	w.expect("second automatic id", 1)
	w.create(withID(wKey("y"), 1))
	w.expect("duplicate of an automatic id", 1)
	w.create(withID(wKey("y"), 7))
	w.expect("duplicate of a chosen id", 1)
	w.create(withID(wKey("y"), 2))
	w.expect("chosen id 2", 1)
	w.create(wKey("y"))
	w.expect("automatic id skips the chosen 2", 1)
	w.create(withID(wKey("y"), -5))
	w.expect("negative chosen id", 1)
	w.create(withID(wKey("y"), 1<<62))
	w.expect("large chosen id", 1)
	w.progress("all created")

	p.put("put x", put("x", "1"))
	p.put("put y", put("y", "1"))
	w.progress("one event per watcher")
	w.cancelWatch(1)
	w.expect("cancel id 1", 1)
	w.cancelWatch(999)
	w.cancelWatch(1)
	w.progress("cancel of an unknown id, and of id 1 again (etcd answers neither)")
	p.put("put x again", put("x", "2"))
	w.progress("cancelled watcher sees nothing")
	w.create(wKey("x"))
	w.expect("automatic id after a cancel", 1)
	w.create(withID(wKey("x"), 1))
	w.expect("reuse the cancelled id 1", 1)
	w.progress("progress with every watcher synced")
	w.requestProgress()
	w.requestProgress()
	w.expect("two progress requests in a row", 2)
	for _, id := range []int64{7, 0, 2, 3, -5, 1 << 62, 4, 1} {
		w.cancelWatch(id)
		w.expect(fmt.Sprintf("cancel %d", id), 1)
	}
	w.requestProgress() // no watcher left: etcd answers nothing
	w.create(wKey("z"))
	w.expect("create after a progress request on an empty stream", 1)
	w.progress("last")
}

// TestWatchCompactMidStream covers a replay of many revisions (more than
// one batch of 1000 revisions) and a compaction while watchers are open.
func TestWatchCompactMidStream(t *testing.T) {
	p := newPair(t, options{})
	for i := 0; i < 1100; i++ {
		for _, s := range p.sides() {
			ctx, cancel := reqCtx()
			_, err := s.kv.Put(ctx, put(fmt.Sprintf("m/%d", i%7), fmt.Sprint(i)))
			cancel()
			if err != nil {
				t.Fatalf("seed on %s: %v", s.name, err)
			}
		}
	}
	cur := p.rng("revision after 1100 puts", get("m/0")).GetHeader().GetRevision()
	w := p.openWatch("mid-stream")
	w.create(withRev(wPrefix("m/"), 2))
	w.expect("replay of 1100 revisions", 3)
	w.create(withPrevKV(withRev(wKey("m/3"), 900)))
	w.expect("replay of one key from revision 900 with prev_kv", 2)
	w.progress("replays done")
	p.compact("compact mid-stream", &pb.CompactionRequest{Revision: cur - 10})
	p.put("write after the compaction", put("m/3", "after"))
	w.progress("synced watchers survive compaction")
	w.create(withRev(wPrefix("m/"), cur-20))
	w.expect("new watcher below the compaction", 2)
	w.cancelWatch(2) // lets etcd answer progress requests again (TestWatchRevisions)
	w.expect("cancel the compacted watcher", 1)
	w.create(withPrevKV(withRev(wKey("m/3"), cur-10)))
	w.expect("new watcher at the compaction", 2)
	p.del("delete m/3", del("m/3", ""))
	w.progress("prev_kv of a key whose older revisions are compacted")
}

// TestWatchFragment covers fragment=true with a response larger than the
// request limit, and the same response without it.
func TestWatchFragment(t *testing.T) {
	const limit = 16 << 10
	p := newPair(t, options{maxRequestBytes: limit})
	val := strings.Repeat("v", 15000)
	for i := 0; i < 40; i++ {
		p.put(fmt.Sprintf("put big %d", i), put(fmt.Sprintf("big/%02d", i), val))
	}
	w := p.openWatch("fragment")
	w.create(&pb.WatchCreateRequest{Key: b("big/"), RangeEnd: prefixEnd("big/"), StartRevision: 1, Fragment: true})
	// etcd fragments past max-request-bytes + 512 KiB of gRPC overhead:
	// 600 KB of events make two fragments.
	w.expect("replay of 600 KB, fragmented", 3)
	w.create(withRev(wPrefix("big/"), 1))
	w.expect("the same replay, not fragmented", 2)
	w.create(&pb.WatchCreateRequest{Key: b("big/"), RangeEnd: prefixEnd("big/"), PrevKv: true, Fragment: true})
	w.expect("live, fragmented, with prev_kv", 1)
	w.progress("created")
	p.del("delete 40 big keys", &pb.DeleteRangeRequest{Key: b("big/"), RangeEnd: prefixEnd("big/")})
	w.progress("one delete of 600 KB of prev_kv")
	p.put("one small put", put("big/x", "small"))
	w.progress("small event, fragment set")
}

// TestWatchProgressNotify covers periodic progress notifications.
func TestWatchProgressNotify(t *testing.T) {
	p := newPair(t, options{watchProgressNotifyInterval: 200 * time.Millisecond})
	p.put("seed", put("p", "1"))
	w := p.openWatch("progress notify")
	w.create(&pb.WatchCreateRequest{Key: b("p"), ProgressNotify: true})
	id := watchedID(w.expect("create with progress_notify", 1))
	// The next response is the first periodic notification: watch_id of
	// the watcher, no events, the current revision.
	w.expect("first periodic notification", 1)
	p.put("write", put("p", "2"))
	w.expect("event", 1)
	w.expect("notification after an event", 1)
	w.cancelWatch(id)
	w.expect("cancel", 1)
}

// TestWatchClientv3 covers watches as applications make them, through
// clientv3.Watcher.
func TestWatchClientv3(t *testing.T) {
	p := newPair(t, options{})
	p.put("seed a", put("app/a", "1"))
	p.put("seed b", put("app/b", "1"))
	pre := p.clientWatch("prefix with prev_kv and created notify", "app/", clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithCreatedNotify())
	pre.expect("created", 1)
	hist := p.clientWatch("history from revision 2", "app/", clientv3.WithPrefix(), clientv3.WithRev(2))
	hist.expect("replay", 1)
	noDel := p.clientWatch("key with filter delete", "app/a", clientv3.WithFilterDelete(), clientv3.WithCreatedNotify())
	noDel.expect("created", 1)
	p.put("update a", put("app/a", "2"))
	p.del("delete b", del("app/b", ""))
	pre.expect("put and delete", 2)
	hist.expect("put and delete", 2)
	noDel.expect("put only", 1)
	for _, s := range p.sides() {
		// The watches' stream is found by the context's metadata.
		ctx, cancel := reqCtx()
		if err := s.c.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil {
			t.Errorf("RequestProgress on %s: %v", s.name, err)
		}
		cancel()
	}
	pre.expect("progress notification", 1)
	hist.expect("progress notification", 1)
	noDel.expect("progress notification", 1)
	p.compact("compact", &pb.CompactionRequest{Revision: 4})
	comp := p.clientWatch("from a compacted revision", "app/", clientv3.WithPrefix(), clientv3.WithRev(2))
	comp.expect("compacted", 1)
}
