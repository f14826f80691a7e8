package compactor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/mvcc"
)

// The modes of --auto-compaction-mode.
const (
	ModePeriodic = "periodic"
	ModeRevision = "revision"
)

// RevisionInterval is how often revision mode compacts: etcd's fixed 5
// minutes.
const RevisionInterval = 5 * time.Minute

// retryDivisor: periodic mode samples revisions, and retries failed
// compactions, every compaction interval / retryDivisor.
const retryDivisor = 10

// Target is the member being compacted. *server.Server satisfies it.
type Target interface {
	// Compact proposes a compaction through raft and returns once applied.
	Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error)
	// Rev is the member's current revision.
	Rev() int64
	// Status reports, among others, the leader the member knows.
	Status() *pb.StatusResponse
	// ID is the member's ID.
	ID() uint64
}

// Clock is the compactor's time source.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config configures the compactor. Exactly one of Retention and Revisions
// is used, by Mode; both zero (the default) disables auto-compaction.
type Config struct {
	// Mode is ModePeriodic or ModeRevision.
	Mode string
	// Retention is the history periodic mode keeps; at least 10ns when set.
	Retention time.Duration
	// Revisions is the number of revisions revision mode keeps.
	Revisions int64
	// Clock; default the system clock.
	Clock Clock
	// Logger; default zap.NewNop().
	Logger *zap.Logger
}

// Enabled reports whether the configuration asks for auto-compaction.
func (c Config) Enabled() bool {
	if c.Mode == ModeRevision {
		return c.Revisions != 0
	}
	return c.Retention != 0
}

// Validate checks the mode and the retention.
func (c Config) Validate() error {
	switch c.Mode {
	case ModePeriodic:
		if c.Retention < 0 {
			return fmt.Errorf("negative auto-compaction-retention %v", c.Retention)
		}
		if c.Retention > 0 && c.Retention < retryDivisor {
			// etcd divides by its retry interval, zero here.
			return fmt.Errorf("auto-compaction-retention %v is too short", c.Retention)
		}
	case ModeRevision:
		if c.Revisions < 0 {
			return fmt.Errorf("negative auto-compaction-retention %d", c.Revisions)
		}
	case "":
		return errors.New("undefined auto-compaction-mode")
	default:
		return fmt.Errorf("unknown auto-compaction-mode %q", c.Mode)
	}
	return nil
}

// ParseRetention reads --auto-compaction-mode and
// --auto-compaction-retention as etcd does: a bare non-negative integer is
// hours in periodic mode and revisions in revision mode; anything else
// must be a Go duration ("30m", "1h30m"), which revision mode, as etcd's,
// takes as that many nanoseconds' worth of revisions. "" and "0" disable
// auto-compaction. The mode is checked even then, as etcd does.
func ParseRetention(mode, retention string) (Config, error) {
	c := Config{Mode: mode}
	if retention == "" {
		retention = "0"
	}
	if n, err := strconv.ParseInt(retention, 10, 64); err == nil && n >= 0 {
		switch mode {
		case ModePeriodic:
			if n > math.MaxInt64/int64(time.Hour) {
				return Config{}, fmt.Errorf("auto-compaction-retention %q: too many hours", retention)
			}
			c.Retention = time.Duration(n) * time.Hour
		case ModeRevision:
			c.Revisions = n
		}
	} else {
		d, err := time.ParseDuration(retention)
		if err != nil {
			return Config{}, fmt.Errorf("error parsing CompactionRetention: %w", err)
		}
		switch mode {
		case ModePeriodic:
			c.Retention = d
		case ModeRevision:
			c.Revisions = int64(d)
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Run compacts t as configured until ctx ends, then returns nil. It returns
// an error at once for an invalid configuration, and nil at once when
// auto-compaction is disabled.
func Run(ctx context.Context, t Target, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !cfg.Enabled() {
		return nil
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Mode == ModePeriodic {
		runPeriodic(ctx, t, cfg)
	} else {
		runRevision(ctx, t, cfg)
	}
	return nil
}

// leads reports whether t is the leader, the only member that compacts.
func leads(t Target) bool {
	st := t.Status()
	return st.Leader != 0 && st.Leader == t.ID()
}

// compact compacts t to rev; a revision compacted already is a success.
func compact(ctx context.Context, t Target, rev int64) error {
	_, err := t.Compact(ctx, &pb.CompactionRequest{Revision: rev})
	if errors.Is(err, mvcc.ErrCompacted) {
		return nil
	}
	return err
}

func runPeriodic(ctx context.Context, t Target, cfg Config) {
	lg, clock, period := cfg.Logger, cfg.Clock, cfg.Retention
	compactInterval := min(period, time.Hour)
	retryInterval := compactInterval / retryDivisor
	// revs[0] is the revision sampled period ago (or the first sample, in
	// the first period).
	retentions := int(period/retryInterval) + 1
	revs := make([]int64, 0, min(retentions, 64))
	var lastRev int64
	lastSuccess := clock.Now()
	// The first compaction waits a whole period; later ones compactInterval.
	wait := period
	for {
		revs = append(revs, t.Rev())
		if len(revs) > retentions {
			revs = append(revs[:0], revs[1:]...)
		}
		select {
		case <-ctx.Done():
			return
		case <-clock.After(retryInterval):
		}
		if !leads(t) {
			continue
		}
		rev := revs[0]
		if clock.Now().Sub(lastSuccess) < wait || rev == lastRev {
			continue
		}
		wait = compactInterval

		lg.Info("starting auto periodic compaction",
			zap.Int64("revision", rev),
			zap.Duration("compact-period", period),
		)
		start := clock.Now()
		err := compact(ctx, t, rev)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			lg.Warn("failed auto periodic compaction",
				zap.Int64("revision", rev),
				zap.Duration("compact-period", period),
				zap.Duration("retry-interval", retryInterval),
				zap.Error(err),
			)
			continue
		}
		lg.Info("completed auto periodic compaction",
			zap.Int64("revision", rev),
			zap.Duration("compact-period", period),
			zap.Duration("took", clock.Now().Sub(start)),
		)
		lastRev = rev
		lastSuccess = clock.Now()
	}
}

func runRevision(ctx context.Context, t Target, cfg Config) {
	lg, clock, retention := cfg.Logger, cfg.Clock, cfg.Revisions
	var prev int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-clock.After(RevisionInterval):
		}
		if !leads(t) {
			continue
		}
		rev := t.Rev() - retention
		if rev <= 0 || rev == prev {
			continue
		}

		lg.Info("starting auto revision compaction",
			zap.Int64("revision", rev),
			zap.Int64("revision-compaction-retention", retention),
		)
		start := clock.Now()
		err := compact(ctx, t, rev)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			lg.Warn("failed auto revision compaction",
				zap.Int64("revision", rev),
				zap.Int64("revision-compaction-retention", retention),
				zap.Duration("retry-interval", RevisionInterval),
				zap.Error(err),
			)
			continue
		}
		prev = rev
		lg.Info("completed auto revision compaction",
			zap.Int64("revision", rev),
			zap.Int64("revision-compaction-retention", retention),
			zap.Duration("took", clock.Now().Sub(start)),
		)
	}
}
