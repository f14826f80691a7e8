package lincheck

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// Result is the outcome of Verify.
type Result struct {
	// Verdict is porcupine.Ok, porcupine.Illegal, or porcupine.Unknown when
	// the check timed out.
	Verdict porcupine.CheckResult
	// Checked is what was given to porcupine: the history without the
	// operations that cannot change the verdict (see prune).
	Checked History
	// Pruned is the number of operations left out of Checked.
	Pruned  int
	Elapsed time.Duration

	info    porcupine.LinearizationInfo
	timeout time.Duration // Verify's, reused by Report's bisection
}

// Verify checks h for linearizability against Model, giving up after
// timeout (0: no limit). It does not need a testing.TB; Check wraps it.
func Verify(h History, timeout time.Duration) Result {
	kept, pruned := prune(h)
	start := time.Now()
	verdict, info := porcupine.CheckOperationsVerbose(Model(), kept, timeout)
	return Result{Verdict: verdict, Checked: kept, Pruned: pruned, Elapsed: time.Since(start), info: info, timeout: timeout}
}

// Check verifies h and fails t (with Errorf, so the caller's cleanup still
// runs) when h is not linearizable or the check times out; the message
// carries Result.Report, whose bisection runs further checks of up to
// timeout each on the failing keys. On failure it also writes porcupine's
// HTML visualisation of the checked history to lincheck-<test name>.html in
// t.TempDir(), or in $CAIRN_LINCHECK_DIR when set (the temporary directory
// is deleted when the test ends), and prints the path. It reports whether
// h passed.
func Check(t testing.TB, h History, timeout time.Duration) bool {
	t.Helper()
	res := Verify(h, timeout)
	if res.Verdict == porcupine.Ok {
		t.Logf("lincheck: linearizable: %s; checked %d ops (%d pruned) in %v",
			h.Summary(), len(res.Checked), res.Pruned, res.Elapsed.Round(time.Microsecond))
		return true
	}
	var msg strings.Builder
	if res.Verdict == porcupine.Unknown {
		fmt.Fprintf(&msg, "lincheck: the check timed out after %v, so linearizability is unknown", timeout)
	} else {
		msg.WriteString("lincheck: history is NOT linearizable")
	}
	fmt.Fprintf(&msg, "\n  history: %s\n  checked %d ops (%d pruned) in %v\n",
		h.Summary(), len(res.Checked), res.Pruned, res.Elapsed.Round(time.Microsecond))
	msg.WriteString(res.Report())
	dir := os.Getenv("CAIRN_LINCHECK_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, fmt.Sprintf("lincheck-%s.html", sanitize(t.Name())))
	if err := res.visualizePath(path); err != nil {
		fmt.Fprintf(&msg, "  visualisation: could not write %s: %v\n", path, err)
	} else {
		fmt.Fprintf(&msg, "  visualisation: %s\n", path)
		if os.Getenv("CAIRN_LINCHECK_DIR") == "" {
			msg.WriteString("    (removed when the test ends; set CAIRN_LINCHECK_DIR to keep it)\n")
		}
	}
	t.Errorf("%s", msg.String())
	return false
}

// Visualize writes porcupine's HTML visualisation of the checked history:
// the linearization if there is one, else the longest partial ones.
func (r Result) Visualize(w io.Writer) error {
	return porcupine.Visualize(Model(), r.info, w)
}

func (r Result) visualizePath(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.Visualize(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// maxListed bounds the operations Report lists per key.
const maxListed = 4

// Report explains a failed verdict key by key. For each key whose
// operations are not linearizable it names the culprit: the operation with
// the earliest return such that the history up to that return is already
// not linearizable (found by bisection, see culprit), followed by the last
// operations to return before it was called, which its answer contradicts.
// If a bisection step times out it falls back to the operations that
// porcupine's longest partial linearization could not place. It is empty
// for porcupine.Ok.
func (r Result) Report() string {
	if r.Verdict == porcupine.Ok {
		return ""
	}
	parts := partition(r.Checked)
	partials := r.info.PartialLinearizations()
	var b strings.Builder
	for p, ops := range parts {
		if p >= len(partials) {
			break
		}
		var longest []int
		for _, l := range partials[p] {
			if len(l) > len(longest) {
				longest = l
			}
		}
		if len(longest) == len(ops) {
			continue // this key is linearizable
		}
		key := ops[0].Input.(Input).Key
		if c, ok := culprit(ops, r.timeout); ok {
			fmt.Fprintf(&b, "  key %q (%d ops): the first answer no linearization explains:\n      %s\n", key, len(ops), describeOp(c))
			var before []porcupine.Operation
			for _, op := range ops {
				if op.Return < c.Call {
					before = append(before, op)
				}
			}
			sort.SliceStable(before, func(i, j int) bool { return before[i].Return > before[j].Return })
			if len(before) > 0 {
				b.WriteString("    the last operations to return before its call, latest first:\n")
			}
			for i, op := range before {
				if i == maxListed {
					break
				}
				fmt.Fprintf(&b, "      %s\n", describeOp(op))
			}
			continue
		}
		placed := make([]bool, len(ops))
		for _, id := range longest {
			placed[id] = true
		}
		var unplaced []porcupine.Operation
		for id, op := range ops {
			if !placed[id] {
				unplaced = append(unplaced, op)
			}
		}
		sort.SliceStable(unplaced, func(i, j int) bool { return unplaced[i].Return < unplaced[j].Return })
		fmt.Fprintf(&b, "  key %q (%d ops): the longest linearization found covers %d; not placed, earliest return first:\n",
			key, len(ops), len(longest))
		for i, op := range unplaced {
			if i == maxListed {
				fmt.Fprintf(&b, "      … and %d more\n", len(unplaced)-maxListed)
				break
			}
			fmt.Fprintf(&b, "      %s\n", describeOp(op))
		}
	}
	return b.String()
}

// culprit returns the operation of a non-linearizable key history with the
// earliest return time t such that the history cut at t is not
// linearizable. Cutting at t keeps the operations that returned by t, makes
// writes still running at t indeterminate (with their observations
// dropped), and drops reads still running and operations called after t.
// Linearizability survives such cuts (a linearization of the whole orders
// the completed operations of any cut, and pending ones may go last), so
// whether a cut is linearizable is monotone in t and bisection finds t. ok
// is false if a check timed out.
func culprit(ops []porcupine.Operation, timeout time.Duration) (op porcupine.Operation, ok bool) {
	var returns []int64
	for _, op := range ops {
		if op.Return != Infinity {
			returns = append(returns, op.Return)
		}
	}
	sort.Slice(returns, func(i, j int) bool { return returns[i] < returns[j] })
	timedOut := false
	i := sort.Search(len(returns), func(i int) bool {
		res := porcupine.CheckOperationsTimeout(Model(), cut(ops, returns[i]), timeout)
		timedOut = timedOut || res == porcupine.Unknown
		return res == porcupine.Illegal
	})
	if timedOut || i == len(returns) {
		return porcupine.Operation{}, false
	}
	for _, op := range ops {
		if op.Return == returns[i] {
			return op, true
		}
	}
	return porcupine.Operation{}, false
}

// cut returns the history as it stood at time t: see culprit.
func cut(ops []porcupine.Operation, t int64) []porcupine.Operation {
	var out []porcupine.Operation
	for _, op := range ops {
		switch {
		case op.Return <= t:
			out = append(out, op)
		case op.Call > t || op.Input.(Input).Kind == OpGet:
		default:
			op.Output = Output{Outcome: Indeterminate, Err: "running at the cut"}
			op.Return = Infinity
			out = append(out, op)
		}
	}
	return out
}

// describeOp renders an operation with its client and its interval on the
// Recorder's clock.
func describeOp(op porcupine.Operation) string {
	ret := "∞"
	if op.Return != Infinity {
		ret = time.Duration(op.Return).String()
	}
	return fmt.Sprintf("client %d [%v, %s] %s", op.ClientId, time.Duration(op.Call), ret,
		describe(op.Input.(Input), op.Output.(Output)))
}

// prune returns h without the operations that cannot change the verdict,
// and how many it left out. Porcupine's search is exponential in the
// number of operations that overlap, and an indeterminate operation
// overlaps everything after its call, so these matter after faults:
//
//   - Operations that observe nothing and change nothing: definite failures
//     (NotApplied with Err) and indeterminate Gets. Each can be linearized
//     anywhere in its interval without effect.
//   - Indeterminate Puts and CASes whose written value no operation on the
//     key observed: no Output.Value of an observing operation and no CAS's
//     Expected equals it. If a linearization places such a write W, every
//     operation after W up to the next indeterminate Put or Delete (which
//     overwrites whatever W left) observes nothing, or it would have seen W's
//     value; the indeterminate CASes among them did nothing there, since
//     none expects W's value. Removing W and moving those CASes to the end,
//     which their infinite return allows, leaves every other operation
//     seeing the same state. So the history is linearizable with W if and
//     only if it is without W (the converse: place W last).
//
// Removing several such writes at once is sound by induction: removing one
// only shrinks the set of observed values.
func prune(h History) (History, int) {
	type keyValue struct {
		key string
		v   Value
	}
	observed := make(map[keyValue]bool)
	for _, op := range h {
		in, out := op.Input.(Input), op.Output.(Output)
		if out.observed() {
			observed[keyValue{in.Key, out.Value}] = true
		}
		if in.Kind == OpCAS {
			observed[keyValue{in.Key, in.Expected}] = true
		}
	}
	kept := make(History, 0, len(h))
	for _, op := range h {
		in, out := op.Input.(Input), op.Output.(Output)
		switch {
		case out.Outcome == NotApplied && out.Err != "":
			continue
		case out.Outcome == Indeterminate && in.Kind == OpGet:
			continue
		case out.Outcome == Indeterminate && (in.Kind == OpPut || in.Kind == OpCAS) &&
			!observed[keyValue{in.Key, Some(in.Value)}]:
			continue
		}
		kept = append(kept, op)
	}
	return kept, len(h) - len(kept)
}

// sanitize turns a test name into a file name.
func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, name)
}
