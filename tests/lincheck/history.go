package lincheck

import (
	"fmt"
	"math"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Infinity is the Return time of an operation whose outcome is
// indeterminate: porcupine's convention for an operation still pending at
// the end of the history, which may be linearized at any point after its
// call, including after everything else (it never happened).
const Infinity int64 = math.MaxInt64

// History is a list of operations with Input inputs, Output outputs and
// Call/Return times in nanoseconds since a Recorder started, on the
// monotonic clock.
// Histories from different Recorders cannot be merged: their clocks differ.
type History []porcupine.Operation

// Count returns the number of operations of kind k with outcome o.
func (h History) Count(k OpKind, o Outcome) int {
	n := 0
	for _, op := range h {
		if op.Input.(Input).Kind == k && op.Output.(Output).Outcome == o {
			n++
		}
	}
	return n
}

// Summary renders the counts by kind and outcome, e.g.
// "312 ops: get 120 (applied 118, indeterminate 2), put 80 (applied 80), …".
func (h History) Summary() string {
	var counts [numOpKinds][numOutcomes]int
	for _, op := range h {
		counts[op.Input.(Input).Kind][op.Output.(Output).Outcome]++
	}
	parts := make([]string, 0, numOpKinds)
	for k := range numOpKinds {
		total := 0
		var by []string
		for o := range numOutcomes {
			if n := counts[k][o]; n > 0 {
				total += n
				by = append(by, fmt.Sprintf("%v %d", o, n))
			}
		}
		if total > 0 {
			parts = append(parts, fmt.Sprintf("%v %d (%s)", k, total, strings.Join(by, ", ")))
		}
	}
	return fmt.Sprintf("%d ops: %s", len(h), strings.Join(parts, ", "))
}
