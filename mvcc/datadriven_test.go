package mvcc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestDataDriven runs the scripts in testdata/. Directives:
//
//	txn [nocommit]     one transaction; input lines: put K V [lease=N] |
//	                   del K [END] | range K [END] [rev=N] [limit=N] [count];
//	                   committed as its own group unless nocommit
//	commit             commit the open group
//	read               input lines: K [END] [rev=N] [limit=N] [count],
//	                   through Store.Range (committed state)
//	compact rev=N      compact in its own group and wait for the physical work
//	status             revision and compact revision
//	reopen             close and reopen store and engine
//
// K and END are bare words or Go string literals ("a\x00").
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		e := newEnv(t, nil)
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "txn":
				return ddTxn(t, e, d)
			case "commit":
				e.commit(false)
				return fmt.Sprintf("rev=%d", e.s.Rev())
			case "read":
				var out []string
				for _, line := range strings.Split(d.Input, "\n") {
					key, end, o := rangeArgs(t, tokenize(t, line))
					out = append(out, fmtRange(e.s.Range(context.Background(), key, end, o)))
				}
				return strings.Join(out, "\n")
			case "compact":
				var rev int64
				d.ScanArgs(t, "rev", &rev)
				if err := e.compact(rev); err != nil {
					return "error: " + err.Error()
				}
				idx, rl := e.physicalCounts()
				return fmt.Sprintf("ok compact-rev=%d index-entries=%d revlog-entries=%d", e.s.CompactRev(), idx, rl)
			case "status":
				return fmt.Sprintf("rev=%d compact-rev=%d", e.s.Rev(), e.s.CompactRev())
			case "reopen":
				e.reopen()
				return fmt.Sprintf("rev=%d compact-rev=%d", e.s.Rev(), e.s.CompactRev())
			}
			t.Fatalf("unknown directive %q", d.Cmd)
			return ""
		})
	})
}

func ddTxn(t *testing.T, e *env, d *datadriven.TestData) string {
	tw := e.s.Write()
	var out []string
	for _, line := range strings.Split(d.Input, "\n") {
		toks := tokenize(t, line)
		if len(toks) == 0 {
			continue
		}
		switch toks[0] {
		case "put":
			var lease int64
			if len(toks) == 4 && strings.HasPrefix(toks[3], "lease=") {
				lease, _ = strconv.ParseInt(toks[3][6:], 10, 64)
			} else if len(toks) != 3 {
				t.Fatalf("put K V [lease=N]: %q", line)
			}
			tw.Put([]byte(toks[1]), []byte(toks[2]), lease)
		case "del":
			var end []byte
			if len(toks) == 3 {
				end = []byte(toks[2])
			}
			out = append(out, fmt.Sprintf("deleted %d", tw.DeleteRange([]byte(toks[1]), end)))
		case "range":
			key, end, o := rangeArgs(t, toks[1:])
			out = append(out, fmtRange(tw.Range(key, end, o)))
		default:
			t.Fatalf("unknown op %q", line)
		}
	}
	rev := tw.Rev()
	changes := tw.Changes()
	tw.End()
	if !d.HasArg("nocommit") {
		e.commit(false)
	}
	out = append(out, fmt.Sprintf("txn-rev=%d", rev))
	for _, kv := range changes {
		out = append(out, "  "+fmtKV(kv))
	}
	return strings.Join(out, "\n")
}
