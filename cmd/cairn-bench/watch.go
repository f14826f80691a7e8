package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// watchKeyPrefix starts every key of the watch workload, so that --prefix
// watchers see only the workload's own puts.
const watchKeyPrefix = "watch/"

// stampSize is the size of the send timestamp at the start of every value.
const stampSize = 8

// watchOptions are the flags of the watch workload.
type watchOptions struct {
	watchers     int    // reading watchers; default 1000
	streams      int    // connections (one gRPC watch stream each) the watchers share; default 10
	keySpace     uint64 // keys watched and written; default 100
	keySize      int    // digits of the key number; default 8
	prefix       bool   // every watcher watches the whole key space
	puts         uint64 // default 20000
	putClients   int    // writers, one connection each; default 10
	putRate      float64
	valSize      int           // bytes, at least stampSize; default 256
	drainTimeout time.Duration // wait for missing events after the last put; default 30s
	stallWatch   int           // watchers whose stream is never read; default 0
	stallStreams int           // connections the stalled watchers share; default --streams
}

func (w *watchOptions) validate() error {
	switch {
	case w.watchers < 0:
		return fmt.Errorf("--watchers %d: must not be negative", w.watchers)
	case w.streams < 1:
		return fmt.Errorf("--streams %d: must be at least 1", w.streams)
	case w.watchers > 0 && w.streams > w.watchers:
		return fmt.Errorf("--streams %d: more streams than --watchers %d would leave some empty", w.streams, w.watchers)
	case w.keySpace < 1:
		return fmt.Errorf("--watch-key-space %d: must be at least 1", w.keySpace)
	case w.keySize < 1:
		return fmt.Errorf("--key-size %d: must be at least 1", w.keySize)
	case w.keySpace > maxKeys(w.keySize):
		return fmt.Errorf("--watch-key-space %d: --key-size %d holds only %d distinct keys", w.keySpace, w.keySize, maxKeys(w.keySize))
	case w.puts < 1:
		return fmt.Errorf("--puts %d: must be at least 1", w.puts)
	case w.putClients < 1:
		return fmt.Errorf("--put-clients %d: must be at least 1", w.putClients)
	case w.putRate < 0:
		return fmt.Errorf("--put-rate %v: must not be negative", w.putRate)
	case w.valSize < stampSize:
		return fmt.Errorf("--val-size %d: must be at least %d to hold the send timestamp", w.valSize, stampSize)
	case w.drainTimeout <= 0:
		return fmt.Errorf("--drain-timeout %v: must be positive", w.drainTimeout)
	case w.stallWatch < 0:
		return fmt.Errorf("--stall-watchers %d: must not be negative", w.stallWatch)
	case w.stallWatch > 0 && (w.stallStreams < 1 || w.stallStreams > w.stallWatch):
		return fmt.Errorf("--stall-streams %d: must be between 1 and --stall-watchers %d", w.stallStreams, w.stallWatch)
	case w.watchers == 0 && w.stallWatch == 0:
		return errors.New("--watchers and --stall-watchers are both 0: nothing to measure")
	}
	return nil
}

// watchKey is the key number k of the workload.
func (w *watchOptions) watchKey(k uint64) string {
	return prefixedKey(watchKeyPrefix, k, w.keySize)
}

// watcherKey is the key number watcher i watches (without --prefix); stalled
// watchers are numbered apart, from 0 too. Watchers fill the keys round-robin,
// so each key has ⌊W/K⌋ or ⌈W/K⌉ of them.
func (w *watchOptions) watcherKey(i int) uint64 { return uint64(i) % w.keySpace }

// putKey is the key number put n writes: round-robin, so every key gets
// ⌊P/K⌋ or ⌈P/K⌉ puts.
func (w *watchOptions) putKey(n uint64) uint64 { return n % w.keySpace }

// streamOf is the stream (connection) watcher i uses out of n.
func streamOf(i, n int) int { return i % n }

// expectedEvents is how many events watcher i must receive, given the number
// of acknowledged puts to each key.
func (w *watchOptions) expectedEvents(i int, putsPerKey []uint64) uint64 {
	if !w.prefix {
		return putsPerKey[w.watcherKey(i)]
	}
	var n uint64
	for _, c := range putsPerKey {
		n += c
	}
	return n
}

// putStamp writes the send time t at the start of value, which must hold
// stampSize bytes.
func putStamp(value []byte, t time.Time) {
	binary.BigEndian.PutUint64(value, uint64(t.UnixNano()))
}

// readStamp returns the send time written by putStamp.
func readStamp(value []byte) (time.Time, bool) {
	if len(value) < stampSize {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(value))), true
}

// watcherTally counts what one watcher received. etcd guarantees a watcher
// each revision at most once and in increasing order, and a put touches one
// key, so a revision at or below the last one seen is a duplicate (or a
// reordering, which is as wrong). Owned by the watcher's goroutine.
type watcherTally struct {
	lastRev    int64
	unique     uint64
	duplicates uint64
	foreign    uint64 // events for a key the watcher does not watch
}

// observe records one event at revision rev, reporting whether it was new.
func (t *watcherTally) observe(rev int64) bool {
	if rev <= t.lastRev {
		t.duplicates++
		return false
	}
	t.lastRev = rev
	t.unique++
	return true
}

// eventCounts sums the tallies against what every watcher should have got.
type eventCounts struct {
	Expected, Received, Missing, Duplicate, Extra, Foreign uint64
}

// add folds in one watcher that should have received expected events.
// Events beyond expected are extra: a put that failed on the client but was
// applied, or a server bug; either way not counted as missing elsewhere.
func (c *eventCounts) add(t *watcherTally, expected uint64) {
	c.Expected += expected
	c.Received += t.unique
	c.Duplicate += t.duplicates
	c.Foreign += t.foreign
	if t.unique < expected {
		c.Missing += expected - t.unique
	} else {
		c.Extra += t.unique - expected
	}
}

func (c *eventCounts) wrong() uint64 { return c.Missing + c.Duplicate + c.Foreign }

func newWatchCommand(o *options) *cobra.Command {
	w := &watchOptions{}
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Benchmark Watch: event throughput, put-to-event latency, delivery and stalled streams",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, f := range []string{"clients", "conns", "total", "rate"} {
				if cmd.Flags().Changed(f) {
					return fmt.Errorf("--%s does not apply to watch: use --put-clients, --streams, --puts, --put-rate", f)
				}
			}
			if !cmd.Flags().Changed("stall-streams") {
				w.stallStreams = min(w.streams, max(w.stallWatch, 1))
			}
			if err := w.validate(); err != nil {
				return err
			}
			return executeWatch(cmd.Context(), o, w)
		},
	}
	f := cmd.Flags()
	f.IntVar(&w.watchers, "watchers", 1000, "watchers that read their events")
	f.IntVar(&w.streams, "streams", 10, "connections the watchers share round-robin, one gRPC watch stream each")
	f.Uint64Var(&w.keySpace, "watch-key-space", 100, "distinct keys: watcher i watches key i mod this, put n writes key n mod this")
	f.IntVar(&w.keySize, "key-size", 8, "digits of the key number (keys are watch/NNNNNNNN)")
	f.BoolVar(&w.prefix, "prefix", false, "every watcher watches the prefix watch/, so gets every put")
	f.Uint64Var(&w.puts, "puts", 20000, "puts to send")
	f.IntVar(&w.putClients, "put-clients", 10, "writers, each with its own connection and one put in flight")
	f.Float64Var(&w.putRate, "put-rate", 0, "puts per second over all writers (0 = unlimited)")
	f.IntVar(&w.valSize, "val-size", 256, "value size in bytes; the first 8 hold the send time")
	f.DurationVar(&w.drainTimeout, "drain-timeout", 30*time.Second, "after the last put, how long to wait for missing events")
	f.IntVar(&w.stallWatch, "stall-watchers", 0, "extra watchers on streams that are never read after creation")
	f.IntVar(&w.stallStreams, "stall-streams", 10, "connections the stalled watchers share round-robin (default min(--streams, --stall-watchers))")
	return cmd
}
