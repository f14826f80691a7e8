package lease

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/storage"
)

// MaxTTL is the largest TTL, in seconds, a lease may be granted with.
const MaxTTL = 9_000_000_000

// maxCheckpointBatch bounds the checkpoints of one proposal.
const maxCheckpointBatch = 1000

// Sentinel errors.
var (
	ErrNotFound = errors.New("lease: lease not found")
	ErrExists   = errors.New("lease: lease already exists")
	// ErrNotPrimary is returned by the operations that only the leader's
	// lessor can answer, on any other lessor.
	ErrNotPrimary = errors.New("lease: not the primary lessor")
)

// Checkpoint records a lease's remaining TTL in seconds; 0 clears it.
type Checkpoint struct{ ID, RemainingTTL int64 }

// Proposer is how the primary lessor acts: through raft, so that every
// member applies the outcome.
type Proposer interface {
	ProposeRevoke(ctx context.Context, id int64) error
	ProposeCheckpoints(ctx context.Context, cps []Checkpoint) error
}

// Store is where lease records live: writes go into the apply group,
// reads see committed state.
type Store interface {
	PutRaw(key, value []byte)
	DeleteRaw(key []byte)
}

// Config configures a Lessor.
type Config struct {
	// CheckpointInterval is how often a lease's remaining TTL is recorded
	// through raft. Default 5 minutes (etcd's
	// --experimental-lease-checkpoint-interval); negative disables
	// checkpoints, so a new leader restarts every lease at its full TTL.
	CheckpointInterval time.Duration
	// TickInterval is how often the primary looks for expired leases and
	// due checkpoints. Default 500 ms.
	TickInterval time.Duration
	// RevokeRate is the most revocations proposed per second. Default 1000.
	RevokeRate int
	// RetryInterval is how long an expired lease waits for its revoke to
	// apply before it is proposed again. Default 3 s.
	RetryInterval time.Duration
	// Clock is the primary's time source. Default the system clock.
	Clock Clock
	// Logger defaults to a no-op logger.
	Logger *zap.Logger
}

func (c *Config) ensureDefaults() {
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = 5 * time.Minute
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 500 * time.Millisecond
	}
	if c.RevokeRate <= 0 {
		c.RevokeRate = 1000
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 3 * time.Second
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// lease is one lease. id, ttl and remaining are replicated state; the rest
// exists only while the lessor is primary.
type lease struct {
	id, ttl   int64
	remaining int64 // seconds, as last checkpointed; 0: the whole TTL
	// expiry is the deadline; zero when not primary.
	expiry time.Time
	// clear is set when a renewal must clear the checkpointed remaining TTL.
	clear bool
	// checkpointAt is when the next checkpoint is due; zero when none is.
	// The checkpoint queue may hold an earlier time for the lease (it is
	// updated lazily, see queue.setIfEarlier).
	checkpointAt time.Time
}

// ttlLeft is the TTL a newly promoted primary gives the lease.
func (l *lease) ttlLeft() int64 {
	if l.remaining > 0 {
		return l.remaining
	}
	return l.ttl
}

// Info describes a lease.
type Info struct {
	// TTL is the granted TTL in seconds.
	TTL int64
	// Remaining is the time left before expiry, known only on the primary.
	Remaining time.Duration
}

// Lessor holds every lease. See the package documentation.
type Lessor struct {
	cfg Config
	st  Store

	mu struct {
		sync.Mutex
		leases  map[int64]*lease
		primary bool
		// primaryc closes when the lessor becomes primary; replaced at
		// Demote.
		primaryc chan struct{}
		p        Proposer
		// expiries holds each lease's next expiry check, checkpoints each
		// lease's next checkpoint; both only while primary.
		expiries, checkpoints queue
	}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	donec  chan struct{}
}

// Open loads the leases committed in eng.
func Open(cfg Config, eng *storage.Engine, st Store) (*Lessor, error) {
	cfg.ensureDefaults()
	l := &Lessor{cfg: cfg, st: st, donec: make(chan struct{})}
	l.mu.leases = make(map[int64]*lease)
	l.mu.primaryc = make(chan struct{})
	l.mu.expiries.init()
	l.mu.checkpoints.init()
	l.ctx, l.cancel = context.WithCancel(context.Background())
	leases, err := loadLeases(eng)
	if err != nil {
		return nil, err
	}
	l.mu.leases = leases
	return l, nil
}

func loadLeases(eng *storage.Engine) (map[int64]*lease, error) {
	leases := map[int64]*lease{}
	lower := []byte{storage.PrefixLease}
	it, err := eng.DB().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: storage.PrefixEnd(lower)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		le, err := decodeRecord(it.Key(), it.Value())
		if err != nil {
			return nil, err
		}
		leases[le.id] = le
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("lease: loading leases: %w", err)
	}
	return leases, nil
}

// Reload replaces every lease with those committed in eng, whose contents
// were replaced by a snapshot from the leader. Apply goroutine only, on a
// lessor that is not primary (a member installing a snapshot follows).
func (l *Lessor) Reload(eng *storage.Engine) error {
	leases, err := loadLeases(eng)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.leases = leases
	l.mu.expiries.init()
	l.mu.checkpoints.init()
	if l.mu.primary {
		// Not expected, but a primary must keep deadlines for every lease.
		now := l.cfg.Clock.Now()
		for _, le := range leases {
			l.setExpiryLocked(le, now.Add(time.Duration(le.ttlLeft())*time.Second))
			l.scheduleCheckpointLocked(le, now)
		}
	}
	return nil
}

func recordKey(id int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{storage.PrefixLease}, uint64(id))
}

func encodeRecord(le *lease) []byte {
	v := binary.AppendUvarint(nil, uint64(le.ttl))
	return binary.AppendUvarint(v, uint64(le.remaining))
}

func decodeRecord(k, v []byte) (*lease, error) {
	if len(k) != 9 {
		return nil, fmt.Errorf("lease: corrupt lease key %x", k)
	}
	ttl, n := binary.Uvarint(v)
	if n <= 0 {
		return nil, fmt.Errorf("lease: corrupt record of lease %x", k[1:])
	}
	rem, m := binary.Uvarint(v[n:])
	if m <= 0 || n+m != len(v) {
		return nil, fmt.Errorf("lease: corrupt record of lease %x", k[1:])
	}
	return &lease{id: int64(binary.BigEndian.Uint64(k[1:])), ttl: int64(ttl), remaining: int64(rem)}, nil
}

// Start runs the primary's loop, acting through p, until Stop.
func (l *Lessor) Start(p Proposer) {
	l.mu.Lock()
	l.mu.p = p
	l.mu.Unlock()
	go l.run()
}

// Stop ends the loop and cancels its proposals in flight.
func (l *Lessor) Stop() {
	l.cancel()
	l.wg.Wait()
	<-l.donec
}

// ---- Replicated state: the apply goroutine only. ----

// Grant creates a lease of ttl seconds. The caller has already clamped ttl
// to the minimum and checked it against MaxTTL, so that every member
// applies the same value.
func (l *Lessor) Grant(id, ttl int64) error {
	if id == 0 {
		return ErrNotFound
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.mu.leases[id]; ok {
		return ErrExists
	}
	le := &lease{id: id, ttl: ttl}
	l.mu.leases[id] = le
	l.st.PutRaw(recordKey(id), encodeRecord(le))
	if l.mu.primary {
		now := l.cfg.Clock.Now()
		l.setExpiryLocked(le, now.Add(seconds(ttl)))
		l.scheduleCheckpointLocked(le, now)
	}
	return nil
}

// Revoke forgets the lease. The caller deletes its keys in the same group.
func (l *Lessor) Revoke(id int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.mu.leases[id]; !ok {
		return ErrNotFound
	}
	delete(l.mu.leases, id)
	l.mu.expiries.remove(id)
	l.mu.checkpoints.remove(id)
	l.st.DeleteRaw(recordKey(id))
	return nil
}

// Checkpoint records remaining as the lease's remaining TTL. Unknown leases
// are ignored: a revoke may have overtaken the checkpoint.
func (l *Lessor) Checkpoint(id, remaining int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	le, ok := l.mu.leases[id]
	if !ok {
		return
	}
	le.remaining = remaining
	l.st.PutRaw(recordKey(id), encodeRecord(le))
	if !l.mu.primary || le.clear {
		return
	}
	now := l.cfg.Clock.Now()
	if remaining > 0 && le.expiry.Sub(now) > seconds(remaining+1) {
		// A renewal overtook this checkpoint: record the fresh value
		// at once rather than leave a stale, shorter one for a new leader.
		l.checkpointNowLocked(le, now)
		return
	}
	l.scheduleCheckpointLocked(le, now)
}

// Exists reports whether the lease exists.
func (l *Lessor) Exists(id int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.mu.leases[id]
	return ok
}

// ---- Leadership. ----

// Promote makes the lessor primary: every lease expires extend plus its
// remaining TTL from now. No more than RevokeRate leases are given the same
// second to expire in, so a mass expiry after a long outage is spread out
// and their owners get the chance to renew them first. Call it only once
// everything committed before this leader's term has been applied.
func (l *Lessor) Promote(extend time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.primary {
		return
	}
	l.mu.primary = true
	close(l.mu.primaryc)
	now := l.cfg.Clock.Now()
	all := make([]*lease, 0, len(l.mu.leases))
	for _, le := range l.mu.leases {
		le.expiry = now.Add(extend + seconds(le.ttlLeft()))
		all = append(all, le)
	}
	slices.SortFunc(all, byExpiry)
	for i, le := range all {
		// The deadlines stay sorted as they move, so comparing with the
		// lease RevokeRate places earlier keeps every second's share
		// within the rate.
		if i >= l.cfg.RevokeRate {
			if earliest := all[i-l.cfg.RevokeRate].expiry.Add(time.Second); le.expiry.Before(earliest) {
				le.expiry = earliest
			}
		}
		l.setExpiryLocked(le, le.expiry)
		le.clear = false
		l.scheduleCheckpointLocked(le, now)
	}
}

// Demote makes the lessor a follower's: no deadlines, no expiry.
func (l *Lessor) Demote() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.primary {
		return
	}
	l.mu.primary = false
	l.mu.primaryc = make(chan struct{})
	for _, le := range l.mu.leases {
		le.expiry, le.clear, le.checkpointAt = time.Time{}, false, time.Time{}
	}
	l.mu.expiries.init()
	l.mu.checkpoints.init()
}

// PrimaryNotify returns a channel that is closed while the lessor is
// primary.
func (l *Lessor) PrimaryNotify() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.primaryc
}

// ---- Primary operations: any goroutine. ----

// Renew restarts the lease's TTL and returns it. An expired lease is not
// renewed: its revoke is on the way.
func (l *Lessor) Renew(id int64) (ttl int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.primary {
		return 0, ErrNotPrimary
	}
	le, ok := l.mu.leases[id]
	now := l.cfg.Clock.Now()
	if !ok || !le.expiry.After(now) {
		return 0, ErrNotFound
	}
	l.setExpiryLocked(le, now.Add(seconds(le.ttl)))
	if le.remaining > 0 {
		le.clear = true
		l.checkpointNowLocked(le, now)
	} else {
		l.scheduleCheckpointLocked(le, now)
	}
	return le.ttl, nil
}

// TimeToLive describes the lease.
func (l *Lessor) TimeToLive(id int64) (Info, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.primary {
		return Info{}, ErrNotPrimary
	}
	le, ok := l.mu.leases[id]
	if !ok {
		return Info{}, ErrNotFound
	}
	return Info{TTL: le.ttl, Remaining: le.expiry.Sub(l.cfg.Clock.Now())}, nil
}

// Leases returns the IDs of every lease, soonest expiry first (by ID when
// not primary or for equal deadlines).
func (l *Lessor) Leases() []int64 {
	l.mu.Lock()
	all := make([]*lease, 0, len(l.mu.leases))
	for _, le := range l.mu.leases {
		all = append(all, le)
	}
	ids := make([]int64, len(all))
	slices.SortFunc(all, byExpiry)
	for i, le := range all {
		ids[i] = le.id
	}
	l.mu.Unlock()
	return ids
}

func byExpiry(a, b *lease) int {
	if c := a.expiry.Compare(b.expiry); c != 0 {
		return c
	}
	switch {
	case a.id < b.id:
		return -1
	case a.id > b.id:
		return 1
	}
	return 0
}

// setExpiryLocked moves the lease's deadline. The expiry queue is updated
// lazily: when it already holds an earlier time for the lease (a renewal
// only ever moves the deadline later), the entry stays, and due() re-queues
// it at the real deadline when it comes up. A keep-alive then costs no heap
// operation.
func (l *Lessor) setExpiryLocked(le *lease, at time.Time) {
	le.expiry = at
	l.mu.expiries.setIfEarlier(le.id, at)
}

// scheduleCheckpointLocked plans the lease's next checkpoint, if its
// remaining TTL outlasts the interval.
func (l *Lessor) scheduleCheckpointLocked(le *lease, now time.Time) {
	iv := l.cfg.CheckpointInterval
	if iv < 0 || le.expiry.Sub(now) <= iv {
		return
	}
	le.checkpointAt = now.Add(iv)
	l.mu.checkpoints.setIfEarlier(le.id, le.checkpointAt)
}

func (l *Lessor) checkpointNowLocked(le *lease, now time.Time) {
	le.checkpointAt = now
	l.mu.checkpoints.setIfEarlier(le.id, now)
}

// seconds converts a TTL to a duration, saturating.
func seconds(s int64) time.Duration {
	if s > int64(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(s) * time.Second
}

// RemainingTTLs returns a checkpoint of every lease's remaining TTL, in
// batches for one proposal each, so that a primary about to stop can hand
// exact TTLs to whoever leads next; nil when not primary.
func (l *Lessor) RemainingTTLs() [][]Checkpoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.primary {
		return nil
	}
	now := l.cfg.Clock.Now()
	var batches [][]Checkpoint
	var cur []Checkpoint
	for _, le := range l.mu.leases {
		left := le.expiry.Sub(now)
		if left <= 0 {
			continue // expired: its revoke is due
		}
		cur = append(cur, Checkpoint{ID: le.id, RemainingTTL: int64(math.Ceil(left.Seconds()))})
		if len(cur) == maxCheckpointBatch {
			batches, cur = append(batches, cur), nil
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// ---- The primary's loop. ----

func (l *Lessor) run() {
	defer close(l.donec)
	t := time.NewTicker(l.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		revokes, cps, p := l.due()
		if p == nil {
			continue
		}
		for _, id := range revokes {
			l.spawn(func(ctx context.Context) {
				if err := p.ProposeRevoke(ctx, id); err != nil && !errors.Is(err, ErrNotFound) && ctx.Err() == nil {
					l.cfg.Logger.Warn("failed to revoke an expired lease; will retry",
						zap.String("lease-id", fmt.Sprintf("%016x", id)), zap.Error(err))
				}
			})
		}
		if len(cps) > 0 {
			l.spawn(func(ctx context.Context) {
				if err := p.ProposeCheckpoints(ctx, cps); err != nil && ctx.Err() == nil {
					l.cfg.Logger.Warn("failed to checkpoint lease TTLs", zap.Int("leases", len(cps)), zap.Error(err))
				}
			})
		}
	}
}

func (l *Lessor) spawn(f func(ctx context.Context)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f(l.ctx)
	}()
}

// due collects what the loop must propose now: expired leases within the
// rate limit, and due checkpoints.
func (l *Lessor) due() (revokes []int64, cps []Checkpoint, p Proposer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.primary {
		return nil, nil, nil
	}
	now := l.cfg.Clock.Now()
	budget := max(1, int(int64(l.cfg.RevokeRate)*int64(l.cfg.TickInterval)/int64(time.Second)))
	for len(revokes) < budget {
		id, at, ok := l.mu.expiries.peek()
		if !ok || at.After(now) {
			break
		}
		le := l.mu.leases[id]
		if le.expiry.After(now) { // renewed since it was queued
			l.mu.expiries.set(id, le.expiry)
			continue
		}
		revokes = append(revokes, id)
		l.mu.expiries.set(id, now.Add(l.cfg.RetryInterval))
	}
	for len(cps) < maxCheckpointBatch {
		id, at, ok := l.mu.checkpoints.peek()
		if !ok || at.After(now) {
			break
		}
		le := l.mu.leases[id]
		if le.checkpointAt.After(now) { // rescheduled since it was queued
			l.mu.checkpoints.set(id, le.checkpointAt)
			continue
		}
		l.mu.checkpoints.remove(id)
		le.checkpointAt = time.Time{}
		if le.clear {
			le.clear = false
			cps = append(cps, Checkpoint{ID: id})
			continue
		}
		if left := le.expiry.Sub(now); left > 0 {
			cps = append(cps, Checkpoint{ID: id, RemainingTTL: int64(math.Ceil(left.Seconds()))})
		}
	}
	return revokes, cps, l.mu.p
}
