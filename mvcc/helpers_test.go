package mvcc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cairn-kv/cairn/storage"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.uber.org/zap"
)

// env is a store on an in-memory filesystem that tests can reopen.
type env struct {
	t   testing.TB
	fs  vfs.FS
	eng *storage.Engine
	s   *Store
	// pacing is the compactor's at the next open (zero: the default).
	pacing pacing
	// lg is the store's logger at the next open (nil: none).
	lg *zap.Logger
}

func newEnv(t testing.TB, fs vfs.FS) *env {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	e := &env{t: t, fs: fs}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	eng, err := storage.Open("db", storage.Options{FS: e.fs, CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := openPaced(eng, e.lg, e.pacing)
	if err != nil {
		e.t.Fatal(err)
	}
	e.eng, e.s = eng, s
}

func (e *env) close() {
	if e.s == nil {
		return
	}
	if err := e.s.Close(); err != nil {
		e.t.Error(err)
	}
	if err := e.eng.Close(); err != nil {
		e.t.Error(err)
	}
	e.s, e.eng = nil, nil
}

func (e *env) reopen() {
	e.close()
	e.open()
}

// commit commits the open group with an applied index one past the last.
func (e *env) commit(sync bool) {
	e.t.Helper()
	m := e.s.Meta()
	if err := e.s.Commit(Meta{AppliedIndex: m.AppliedIndex + 1, AppliedTerm: 1}, sync); err != nil {
		e.t.Fatal(err)
	}
}

// compact compacts at rev in its own group and waits for the physical work.
func (e *env) compact(rev int64) error {
	e.t.Helper()
	done, err := e.s.Compact(rev)
	if err != nil {
		e.commit(false)
		return err
	}
	e.commit(false)
	<-done
	return nil
}

// waitCompaction waits until the background compactor finished rev.
func (s *Store) waitCompaction(rev int64) {
	ch := make(chan struct{})
	s.comp.schedule(rev, ch, false)
	<-ch
}

// rangeAll reads every key at rev.
func (e *env) rangeAll(rev int64) ([]*mvccpb.KeyValue, error) {
	r, err := e.s.Range(context.Background(), []byte{0}, []byte{0}, RangeOptions{Rev: rev})
	if err != nil {
		return nil, err
	}
	return r.KVs, nil
}

// physicalCounts returns the number of key-index and revision-log entries.
func (e *env) physicalCounts() (index, revlog int) {
	e.t.Helper()
	it, err := e.eng.DB().NewIter(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		switch it.Key()[0] {
		case storage.PrefixKeyIndex:
			index++
		case storage.PrefixRevLog:
			revlog++
		}
	}
	return index, revlog
}

func fmtKV(kv *mvccpb.KeyValue) string {
	if kv.CreateRevision == 0 {
		return fmt.Sprintf("%q tombstone mod=%d", kv.Key, kv.ModRevision)
	}
	return fmt.Sprintf("%q=%q create=%d mod=%d ver=%d lease=%d",
		kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
}

// tokenize splits a line on spaces; tokens in double quotes are Go string
// literals, so keys can hold any byte.
func tokenize(t testing.TB, line string) []string {
	var toks []string
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		if line[0] == '"' {
			end := 1
			for end < len(line) && (line[end] != '"' || line[end-1] == '\\') {
				end++
			}
			s, err := strconv.Unquote(line[:end+1])
			if err != nil {
				t.Fatalf("bad literal in %q: %v", line, err)
			}
			toks = append(toks, s)
			line = line[end+1:]
			continue
		}
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			i = len(line)
		}
		toks = append(toks, line[:i])
		line = line[i:]
	}
	return toks
}

// rangeArgs parses "K [END] [rev=N] [limit=N] [count]".
func rangeArgs(t testing.TB, toks []string) (key, end []byte, o RangeOptions) {
	var pos []string
	for _, tok := range toks {
		switch {
		case strings.HasPrefix(tok, "rev="):
			o.Rev, _ = strconv.ParseInt(tok[4:], 10, 64)
		case strings.HasPrefix(tok, "limit="):
			o.Limit, _ = strconv.ParseInt(tok[6:], 10, 64)
		case tok == "count":
			o.Count = true
		default:
			pos = append(pos, tok)
		}
	}
	if len(pos) == 0 || len(pos) > 2 {
		t.Fatalf("range needs KEY [END], got %q", toks)
	}
	key = []byte(pos[0])
	if len(pos) == 2 {
		end = []byte(pos[1])
	}
	return key, end, o
}

func fmtRange(r *RangeResult, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "rev=%d count=%d", r.Rev, r.Count)
	for _, kv := range r.KVs {
		b.WriteString("\n  " + fmtKV(kv))
	}
	return b.String()
}

// openSource opens a second store, "src", on e's filesystem: another
// member's contents for a test to restore from.
func (e *env) openSource() (*storage.Engine, *Store) {
	e.t.Helper()
	eng, err := storage.Open("src", storage.Options{FS: e.fs, CacheSize: 8 << 20, MemTableSize: 4 << 20})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { eng.Close() })
	s, err := Open(eng, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return eng, s
}
