package mvcc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// model is the reference: the full live state at every revision, kept in
// memory, with etcd's rules written as plainly as possible.
type model struct {
	states  []map[string]*mvccpb.KeyValue // states[rev]; states[0] unused
	compact int64                         // -1 until compacted
}

type op struct {
	kind     byte // 'p' put, 'd' delete range, 'r' range
	key, end []byte
	val      []byte
	lease    int64
	rev      int64 // range only
}

func newModel() *model {
	return &model{states: []map[string]*mvccpb.KeyValue{nil, {}}, compact: -1}
}

func (m *model) rev() int64 { return int64(len(m.states) - 1) }

// inRange applies etcd's key/end conventions.
func inRange(k, key, end []byte) bool {
	switch {
	case len(end) == 0:
		return bytes.Equal(k, key)
	case len(end) == 1 && end[0] == 0:
		return bytes.Compare(k, key) >= 0
	default:
		return bytes.Compare(k, key) >= 0 && bytes.Compare(k, end) < 0
	}
}

func rangeOf(state map[string]*mvccpb.KeyValue, key, end []byte) []*mvccpb.KeyValue {
	var kvs []*mvccpb.KeyValue
	for _, k := range slices.Sorted(maps.Keys(state)) {
		if inRange([]byte(k), key, end) {
			kvs = append(kvs, state[k])
		}
	}
	return kvs
}

func fmtModelRange(kvs []*mvccpb.KeyValue, rev int64, o RangeOptions) string {
	r := &RangeResult{Rev: rev, Count: len(kvs)}
	if !o.Count {
		r.KVs = kvs
		if o.Limit > 0 && int64(len(kvs)) > o.Limit {
			r.KVs = kvs[:o.Limit]
		}
	}
	return fmtRange(r, nil)
}

// apply runs a transaction on the model and returns the expected outputs
// of its range ops and its changes.
func (m *model) apply(ops []op) (outs []string, changes []*mvccpb.KeyValue) {
	begin := m.rev()
	work := maps.Clone(m.states[begin])
	rev := begin + 1
	for _, o := range ops {
		switch o.kind {
		case 'p':
			kv := &mvccpb.KeyValue{Key: o.key, Value: o.val, CreateRevision: rev, ModRevision: rev, Version: 1, Lease: o.lease}
			if prev, ok := work[string(o.key)]; ok {
				kv.CreateRevision, kv.Version = prev.CreateRevision, prev.Version+1
			}
			work[string(o.key)] = kv
			changes = append(changes, kv)
		case 'd':
			for _, kv := range rangeOf(work, o.key, o.end) {
				delete(work, string(kv.Key))
				changes = append(changes, &mvccpb.KeyValue{Key: kv.Key, ModRevision: rev})
			}
		case 'r':
			cur := begin
			if len(changes) > 0 {
				cur = rev
			}
			ro := RangeOptions{Rev: o.rev, Limit: 2}
			switch {
			case o.rev > cur:
				outs = append(outs, "error: "+ErrFutureRev.Error())
			case o.rev == 0 || o.rev == cur:
				outs = append(outs, fmtModelRange(rangeOf(work, o.key, o.end), cur, ro))
			case o.rev < m.compact:
				outs = append(outs, "error: "+ErrCompacted.Error())
			default:
				outs = append(outs, fmtModelRange(rangeOf(m.states[o.rev], o.key, o.end), cur, ro))
			}
		}
	}
	if len(changes) > 0 {
		m.states = append(m.states, work)
	}
	return outs, changes
}

// runTxn runs ops as one transaction of s.
func runTxn(s *Store, ops []op) (outs []string, changes []*mvccpb.KeyValue) {
	tw := s.Write()
	for _, o := range ops {
		switch o.kind {
		case 'p':
			tw.Put(o.key, o.val, o.lease)
		case 'd':
			tw.DeleteRange(o.key, o.end)
		case 'r':
			outs = append(outs, fmtRange(tw.Range(o.key, o.end, RangeOptions{Rev: o.rev, Limit: 2})))
		}
	}
	changes = tw.Changes()
	tw.End()
	return outs, changes
}

// testKeys are few, so keys collide often, and rich in 0x00 and 0xFF so
// the escaping order is exercised.
var testKeys = []string{"\x00", "\x00\x00", "a", "a\x00", "a\x00\x00", "a\x01", "a\xff", "ab", "b", "b\x00", "\xff", "\xff\x00", "\xff\xff"}

func randKey(rng *rand.Rand) []byte { return []byte(testKeys[rng.IntN(len(testKeys))]) }

func randEnd(rng *rand.Rand, key []byte) []byte {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{0}
	default:
		return randKey(rng)
	}
}

func (m *model) randomTxn(rng *rand.Rand) []op {
	n := 1 + rng.IntN(3)
	ops := make([]op, 0, n)
	for range n {
		switch p := rng.IntN(100); {
		case p < 65:
			val := []byte(fmt.Sprintf("v%d", rng.IntN(1000)))
			if rng.IntN(10) == 0 {
				val = nil
			}
			ops = append(ops, op{kind: 'p', key: randKey(rng), val: val, lease: int64(rng.IntN(3))})
		case p < 85:
			k := randKey(rng)
			ops = append(ops, op{kind: 'd', key: k, end: randEnd(rng, k)})
		default:
			k := randKey(rng)
			var rev int64
			if rng.IntN(2) == 0 {
				rev = max(m.compact-1, 1) + rng.Int64N(m.rev()-max(m.compact-1, 1)+2)
			}
			ops = append(ops, op{kind: 'r', key: k, end: randEnd(rng, k), rev: rev})
		}
	}
	return ops
}

func fmtKVs(kvs []*mvccpb.KeyValue) string {
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(fmtKV(kv) + "\n")
	}
	return b.String()
}

// verify compares every readable revision of e against m, and the errors
// of the unreadable ones.
func verify(t *testing.T, e *env, m *model, rng *rand.Rand) {
	t.Helper()
	ctx := context.Background()
	if got, want := e.s.Rev(), m.rev(); got != want {
		t.Fatalf("Rev() = %d, want %d", got, want)
	}
	if got, want := e.s.CompactRev(), max(m.compact, 0); got != want {
		t.Fatalf("CompactRev() = %d, want %d", got, want)
	}
	// The count kept by the writes, and the count Open would make.
	if got, want := e.s.Keys(), int64(len(m.states[m.rev()])); got != want {
		t.Fatalf("Keys() = %d, want %d", got, want)
	}
	if got, _, err := countLiveKeys(e.s.db); err != nil || got != int64(len(m.states[m.rev()])) {
		t.Fatalf("countLiveKeys = %d, %v; want %d", got, err, len(m.states[m.rev()]))
	}
	for rev := max(m.compact, 1); rev <= m.rev(); rev++ {
		got, err := e.rangeAll(rev)
		if err != nil {
			t.Fatalf("range all at %d: %v", rev, err)
		}
		if g, w := fmtKVs(got), fmtKVs(rangeOf(m.states[rev], []byte{0}, []byte{0})); g != w {
			t.Fatalf("range all at %d:\n got %s\nwant %s", rev, g, w)
		}
		for range 3 {
			key := randKey(rng)
			end := randEnd(rng, key)
			o := RangeOptions{Rev: rev, Limit: rng.Int64N(3), Count: rng.IntN(4) == 0}
			if rev == m.rev() && rng.IntN(2) == 0 {
				o.Rev = 0
			}
			g := fmtRange(e.s.Range(ctx, key, end, o))
			w := fmtModelRange(rangeOf(m.states[rev], key, end), m.rev(), o)
			if g != w {
				t.Fatalf("range %q %q %+v:\n got %s\nwant %s", key, end, o, g, w)
			}
		}
	}
	if m.compact > 1 {
		if _, err := e.rangeAll(m.compact - 1); !errors.Is(err, ErrCompacted) {
			t.Fatalf("range at %d below compact %d: %v", m.compact-1, m.compact, err)
		}
	}
	if _, err := e.rangeAll(m.rev() + 1); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("range at future %d: %v", m.rev()+1, err)
	}
	// The lease index holds exactly the live keys attached to each lease.
	for lease := int64(1); lease <= 2; lease++ {
		var want []string
		for _, kv := range rangeOf(m.states[m.rev()], []byte{0}, []byte{0}) {
			if kv.Lease == lease {
				want = append(want, string(kv.Key))
			}
		}
		keys, err := e.s.LeaseKeys(lease)
		if err != nil {
			t.Fatalf("LeaseKeys(%d): %v", lease, err)
		}
		got := make([]string, len(keys))
		for i, k := range keys {
			got[i] = string(k)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("LeaseKeys(%d) = %q, want %q", lease, got, want)
		}
	}
}

// wantPhysical is the number of versions a finished compaction at m.compact
// leaves: every version above it, and per key the newest one at or below
// it unless that is a tombstone below it.
func (m *model) wantPhysical(all []*mvccpb.KeyValue) int {
	n := 0
	newest := map[string]*mvccpb.KeyValue{}
	for _, kv := range all {
		if kv.ModRevision > m.compact {
			n++
		} else {
			newest[string(kv.Key)] = kv // later entries are newer
		}
	}
	for _, kv := range newest {
		if kv.CreateRevision != 0 || kv.ModRevision == m.compact {
			n++
		}
	}
	return n
}

func TestModelRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	e := newEnv(t, nil)
	m := newModel()
	var history []*mvccpb.KeyValue // every change, in revision order
	groups := 200
	if testing.Short() {
		groups = 50
	}
	for gi := range groups {
		var done <-chan struct{}
		if rng.IntN(10) == 0 {
			// A group that is discarded (as a failed Commit, Close and
			// Restore do) changes nothing; the next one starts from the
			// committed state.
			runTxn(e.s, m.randomTxn(rng))
			e.s.discardGroup()
		}
		published := int64(len(m.states[m.rev()]))
		for range 1 + rng.IntN(3) {
			ops := m.randomTxn(rng)
			wantOuts, wantChanges := m.apply(ops)
			gotOuts, gotChanges := runTxn(e.s, ops)
			if g, w := strings.Join(gotOuts, "\n"), strings.Join(wantOuts, "\n"); g != w {
				t.Fatalf("group %d: txn ranges:\n got %s\nwant %s", gi, g, w)
			}
			if g, w := fmtKVs(gotChanges), fmtKVs(wantChanges); g != w {
				t.Fatalf("group %d: changes:\n got %s\nwant %s", gi, g, w)
			}
			history = append(history, wantChanges...)
			if rng.IntN(8) == 0 && m.rev() > m.compact {
				c := m.compact + 1 + rng.Int64N(m.rev()-m.compact)
				var err error
				if done, err = e.s.Compact(c); err != nil {
					t.Fatalf("Compact(%d): %v", c, err)
				}
				m.compact = c
				if _, err := e.s.Compact(c); !errors.Is(err, ErrCompacted) {
					t.Fatalf("second Compact(%d): %v", c, err)
				}
				if _, err := e.s.Compact(m.rev() + 1); !errors.Is(err, ErrFutureRev) {
					t.Fatalf("Compact(%d) beyond %d: %v", m.rev()+1, m.rev(), err)
				}
			}
		}
		if got := e.s.Keys(); got != published {
			t.Fatalf("group %d: Keys() = %d before the group committed, want %d", gi, got, published)
		}
		e.commit(rng.IntN(4) == 0)
		if rng.IntN(6) == 0 {
			// Into sstables, whose bloom filters single-key reads consult.
			if err := e.eng.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if done != nil {
			verify(t, e, m, rng) // physical compaction may be running
			<-done
			verify(t, e, m, rng)
			idx, rl := e.physicalCounts()
			if want := m.wantPhysical(history); idx != want || rl != want {
				t.Fatalf("after compaction at %d: %d index and %d log entries, want %d",
					m.compact, idx, rl, want)
			}
		}
		if rng.IntN(40) == 0 {
			e.reopen()
			verify(t, e, m, rng)
		}
	}
	verify(t, e, m, rng)
}
