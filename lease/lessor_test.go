package lease

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-kv/cairn/mvcc"
	"github.com/cairn-kv/cairn/storage"
)

// env is a lessor on a real engine and MVCC store; commit plays the apply
// loop's commit.
type env struct {
	t     *testing.T
	dir   string
	eng   *storage.Engine
	kv    *mvcc.Store
	l     *Lessor
	clock *ManualClock
	cfg   Config
	index uint64
}

func newEnv(t *testing.T, cfg Config) *env {
	e := &env{t: t, dir: t.TempDir(), clock: NewManualClock(time.Unix(1_000_000, 0))}
	cfg.Clock = e.clock
	e.cfg = cfg
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	var err error
	if e.eng, err = storage.Open(e.dir, storage.Options{}); err != nil {
		e.t.Fatal(err)
	}
	if e.kv, err = mvcc.Open(e.eng, nil); err != nil {
		e.t.Fatal(err)
	}
	if e.l, err = Open(e.cfg, e.eng, e.kv); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) close() {
	if e.kv != nil {
		e.kv.Close()
		e.eng.Close()
		e.kv = nil
	}
}

func (e *env) reopen() {
	e.commit()
	e.close()
	e.open()
}

func (e *env) commit() {
	e.index++
	if err := e.kv.Commit(mvcc.Meta{AppliedIndex: e.index}, false); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) grant(id, ttl int64) {
	e.t.Helper()
	if err := e.l.Grant(id, ttl); err != nil {
		e.t.Fatalf("Grant(%x, %d): %v", id, ttl, err)
	}
	e.commit()
}

func (e *env) wantTTL(id int64, want time.Duration) {
	e.t.Helper()
	info, err := e.l.TimeToLive(id)
	if err != nil {
		e.t.Fatalf("TimeToLive(%x): %v", id, err)
	}
	if info.Remaining != want {
		e.t.Fatalf("TimeToLive(%x) remaining %v, want %v", id, info.Remaining, want)
	}
}

func TestGrantRevokePersist(t *testing.T) {
	e := newEnv(t, Config{})
	e.grant(1, 10)
	e.grant(-5, 20)
	if err := e.l.Grant(1, 30); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate Grant: %v, want ErrExists", err)
	}
	if err := e.l.Grant(0, 30); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Grant of ID 0: %v, want ErrNotFound", err)
	}
	e.grant(7, 40)
	e.l.Checkpoint(7, 25)
	e.l.Checkpoint(99, 25) // unknown: ignored
	if err := e.l.Revoke(1); err != nil {
		t.Fatal(err)
	}
	if err := e.l.Revoke(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Revoke: %v, want ErrNotFound", err)
	}
	e.reopen()
	if e.l.Exists(1) || !e.l.Exists(-5) || !e.l.Exists(7) || e.l.Exists(99) {
		t.Fatalf("after reopen: leases %v", e.l.Leases())
	}
	// A promoted lessor resumes from the checkpointed remaining TTL.
	e.l.Promote(time.Second)
	e.wantTTL(-5, 21*time.Second)
	e.wantTTL(7, 26*time.Second)
}

func TestOnlyPrimaryExpires(t *testing.T) {
	e := newEnv(t, Config{})
	e.grant(1, 5)
	if _, err := e.l.Renew(1); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("Renew on a follower: %v", err)
	}
	if _, err := e.l.TimeToLive(1); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("TimeToLive on a follower: %v", err)
	}
	e.clock.Advance(time.Hour)
	if rv, cps, _ := e.l.due(); len(rv) != 0 || len(cps) != 0 {
		t.Fatalf("follower proposes revokes %v, checkpoints %v", rv, cps)
	}
	e.l.Promote(time.Second)
	e.wantTTL(1, 6*time.Second)
	e.clock.Advance(6 * time.Second)
	rv, _, _ := e.l.due()
	if len(rv) != 1 || rv[0] != 1 {
		t.Fatalf("expired lease: revokes %v, want [1]", rv)
	}
	if _, err := e.l.Renew(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Renew of an expired lease: %v, want ErrNotFound", err)
	}
	// Not revoked yet: proposed again after the retry interval, not before.
	e.clock.Advance(e.l.cfg.RetryInterval - time.Millisecond)
	if rv, _, _ := e.l.due(); len(rv) != 0 {
		t.Fatalf("revoke retried early: %v", rv)
	}
	e.clock.Advance(time.Millisecond)
	if rv, _, _ := e.l.due(); len(rv) != 1 {
		t.Fatalf("revoke not retried: %v", rv)
	}
	// Leadership lost: the deadline is forgotten, nothing expires.
	e.l.Demote()
	e.clock.Advance(time.Hour)
	if rv, _, _ := e.l.due(); len(rv) != 0 {
		t.Fatalf("demoted lessor revokes %v", rv)
	}
}

func TestRenewKeepsLeaseAlive(t *testing.T) {
	e := newEnv(t, Config{})
	e.l.Promote(0)
	e.grant(1, 3)
	for i := range 20 {
		e.clock.Advance(2900 * time.Millisecond)
		if rv, _, _ := e.l.due(); len(rv) != 0 {
			t.Fatalf("round %d: renewed lease revoked", i)
		}
		ttl, err := e.l.Renew(1)
		if err != nil || ttl != 3 {
			t.Fatalf("round %d: Renew = %d, %v", i, ttl, err)
		}
		e.wantTTL(1, 3*time.Second)
	}
	e.clock.Advance(3 * time.Second)
	if rv, _, _ := e.l.due(); len(rv) != 1 {
		t.Fatalf("lease not expired after its TTL without renewal: %v", rv)
	}
}

func TestCheckpoints(t *testing.T) {
	e := newEnv(t, Config{CheckpointInterval: 10 * time.Second})
	e.l.Promote(0)
	e.grant(1, 100)
	e.grant(2, 5) // shorter than the interval: never checkpointed
	e.clock.Advance(9 * time.Second)
	if _, cps, _ := e.l.due(); len(cps) != 0 {
		t.Fatalf("checkpoint before the interval: %v", cps)
	}
	e.clock.Advance(1500 * time.Millisecond)
	_, cps, _ := e.l.due()
	if len(cps) != 1 || cps[0] != (Checkpoint{ID: 1, RemainingTTL: 90}) {
		t.Fatalf("checkpoints %v, want [{1 90}] (89.5 s rounded up)", cps)
	}
	e.l.Checkpoint(1, 90)
	e.commit()
	// The next one comes an interval after the last.
	e.clock.Advance(10 * time.Second)
	if _, cps, _ := e.l.due(); len(cps) != 1 || cps[0].RemainingTTL != 80 {
		t.Fatalf("second checkpoint %v, want remaining 80", cps)
	}
	// A renewal clears the recorded value, in one checkpoint.
	if _, err := e.l.Renew(1); err != nil {
		t.Fatal(err)
	}
	_, cps, _ = e.l.due()
	if len(cps) != 1 || cps[0] != (Checkpoint{ID: 1}) {
		t.Fatalf("after renew: checkpoints %v, want a clear of lease 1", cps)
	}
	e.l.Checkpoint(1, 0)
	// A stale checkpoint (computed before a renewal, applied after it) is
	// corrected at once.
	e.clock.Advance(10 * time.Second)
	if _, cps, _ = e.l.due(); len(cps) != 1 || cps[0].RemainingTTL != 90 {
		t.Fatalf("checkpoint %v, want remaining 90", cps)
	}
	if _, err := e.l.Renew(1); err != nil {
		t.Fatal(err)
	}
	e.l.Checkpoint(1, 90) // the value computed before the renewal
	if _, cps, _ = e.l.due(); len(cps) != 1 || cps[0] != (Checkpoint{ID: 1, RemainingTTL: 100}) {
		t.Fatalf("after a stale checkpoint: %v, want the fresh remaining TTL 100", cps)
	}
	e.l.Checkpoint(1, 100)
	e.reopen()
	e.l.Promote(0)
	e.wantTTL(1, 100*time.Second)
}

func TestRevokeRateAndPromoteSpreading(t *testing.T) {
	e := newEnv(t, Config{RevokeRate: 100, TickInterval: 500 * time.Millisecond, CheckpointInterval: -1})
	for id := int64(1); id <= 250; id++ {
		if err := e.l.Grant(id, 10); err != nil {
			t.Fatal(err)
		}
	}
	e.commit()
	e.l.Promote(time.Second)
	// 250 leases due at once: no more than RevokeRate share a second.
	counts := map[time.Duration]int{}
	for id := int64(1); id <= 250; id++ {
		info, err := e.l.TimeToLive(id)
		if err != nil {
			t.Fatal(err)
		}
		counts[info.Remaining.Truncate(time.Second)]++
	}
	if counts[11*time.Second] != 100 || counts[12*time.Second] != 100 || counts[13*time.Second] != 50 {
		t.Fatalf("expiries after promote, by second: %v", counts)
	}
	e.clock.Advance(time.Hour)
	for tick := range 5 {
		rv, _, _ := e.l.due()
		if len(rv) != 50 {
			t.Fatalf("tick %d: %d revokes, want 50 (100/s every 500ms)", tick, len(rv))
		}
	}
}

func TestRemainingTTLs(t *testing.T) {
	// A revoke rate above the lease count: Promote spreads no deadline.
	e := newEnv(t, Config{RevokeRate: 10_000})
	if e.l.RemainingTTLs() != nil {
		t.Fatal("a follower reports remaining TTLs")
	}
	for id := int64(1); id <= 2*maxCheckpointBatch+1; id++ {
		if err := e.l.Grant(id, 50); err != nil {
			t.Fatal(err)
		}
	}
	e.commit()
	e.l.Promote(0)
	e.clock.Advance(20*time.Second + time.Millisecond)
	batches := e.l.RemainingTTLs()
	if len(batches) != 3 || len(batches[0]) != maxCheckpointBatch || len(batches[2]) != 1 {
		t.Fatalf("batches of %d, %d…", len(batches), len(batches[0]))
	}
	for _, b := range batches {
		for _, cp := range b {
			if cp.RemainingTTL != 30 {
				t.Fatalf("lease %d: remaining %d, want 30", cp.ID, cp.RemainingTTL)
			}
		}
	}
}

// proposer applies proposals back to the lessor, as a one-member raft
// would.
type proposer struct {
	e       *env
	revoked chan int64
}

func (p *proposer) ProposeRevoke(ctx context.Context, id int64) error {
	p.revoked <- id
	return nil
}

func (p *proposer) ProposeCheckpoints(ctx context.Context, cps []Checkpoint) error { return nil }

func TestLoopRevokesExpired(t *testing.T) {
	e := newEnv(t, Config{TickInterval: time.Millisecond})
	p := &proposer{e: e, revoked: make(chan int64, 16)}
	e.l.Start(p)
	defer e.l.Stop()
	e.grant(42, 5)
	e.l.Promote(0)
	e.clock.Advance(5 * time.Second)
	select {
	case id := <-p.revoked:
		if id != 42 {
			t.Fatalf("revoked %x, want 42", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("expired lease not revoked")
	}
}

// TestReload: after the engine's contents were replaced by another
// member's, Reload leaves exactly that member's leases; a primary lessor
// keeps a deadline for each of them.
func TestReload(t *testing.T) {
	src := newEnv(t, Config{})
	src.grant(1, 10)
	src.grant(2, 20)
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := src.eng.Checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, Config{})
	e.l.Promote(0)
	e.grant(3, 5)
	if err := e.eng.Restore(context.Background(), ckpt); err != nil {
		t.Fatal(err)
	}
	if err := e.l.Reload(e.eng); err != nil {
		t.Fatal(err)
	}
	if got := e.l.Leases(); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("leases after Reload %v, want [1 2]", got)
	}
	e.wantTTL(1, 10*time.Second)
	e.clock.Advance(10 * time.Second)
	if rv, _, _ := e.l.due(); !slices.Equal(rv, []int64{1}) {
		t.Fatalf("revokes due after 10s: %v, want [1]", rv)
	}
}
