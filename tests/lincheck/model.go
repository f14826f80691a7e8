package lincheck

import (
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"

	"github.com/anishathalye/porcupine"
)

// Value is what a key holds: a string, or nothing. etcd allows the empty
// string as a value, so absence needs its own flag.
type Value struct {
	Present bool
	Data    string // meaningful only when Present
}

// Absent is the Value of a key that does not exist.
var Absent = Value{}

// Some returns the Value of a key holding s.
func Some(s string) Value { return Value{Present: true, Data: s} }

func (v Value) String() string {
	if !v.Present {
		return "<absent>"
	}
	return strconv.Quote(v.Data)
}

// OpKind is the kind of a recorded operation.
type OpKind uint8

const (
	OpGet OpKind = iota
	OpPut
	OpCAS
	OpDelete
	numOpKinds
)

func (k OpKind) String() string {
	switch k {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpCAS:
		return "cas"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Outcome is what a client learned about whether its operation took effect.
type Outcome uint8

const (
	// Applied: the server acknowledged the operation and it took effect
	// (for a CAS: the compare held and the new value was written).
	Applied Outcome = iota
	// NotApplied: the operation certainly had no effect, either because a
	// CAS's compare failed (Output.Value then holds what the key held) or
	// because the server answered with an error that guarantees nothing was
	// written (Output.Err is then set; see Classify).
	NotApplied
	// Indeterminate: the operation may or may not have taken effect (a
	// timeout, a lost connection, a leader change). Its Return is Infinity.
	Indeterminate
	numOutcomes
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case NotApplied:
		return "not-applied"
	case Indeterminate:
		return "indeterminate"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Input is the porcupine input of an operation on one key.
type Input struct {
	Kind OpKind
	Key  string
	// Value is the value written by a Put or a CAS.
	Value string
	// Expected is what a CAS's compare requires the key to hold; Absent
	// means the key must not exist (CreateRevision == 0).
	Expected Value
}

// Output is the porcupine output of an operation.
type Output struct {
	Outcome Outcome
	// Value is what the key held at the operation's linearization point:
	// the value a Get read, the value a Put or Delete replaced (etcd's
	// prev_kv), the value that made a CAS's compare fail. For an applied CAS
	// it equals Input.Expected. Ignored when Outcome is Indeterminate or
	// Err is set: those operations observed nothing.
	Value Value
	// Err is the error the client got, kept for the report. A NotApplied
	// output with Err set is a definite failure with no observation.
	Err string
}

// observed reports whether the output says something about the state.
func (o Output) observed() bool {
	return o.Outcome == Applied || (o.Outcome == NotApplied && o.Err == "")
}

// step is the sequential specification of one key. It is pure: the state
// is a Value, compared with ==.
//
// An indeterminate write is always legal and takes effect here; the checker
// models "it never happened" by linearizing it after everything else, which
// its infinite return time allows.
func step(state Value, in Input, out Output) (bool, Value) {
	switch {
	case out.Outcome == NotApplied && out.Err != "":
		return true, state // a definite failure is a no-op
	case out.Outcome == Indeterminate:
		switch in.Kind {
		case OpPut:
			return true, Some(in.Value)
		case OpDelete:
			return true, Absent
		case OpCAS:
			if state == in.Expected {
				return true, Some(in.Value)
			}
		}
		return true, state // a failed CAS, or a read that got no answer
	}
	switch in.Kind {
	case OpGet:
		return out.Outcome == Applied && state == out.Value, state
	case OpPut:
		return out.Outcome == Applied && state == out.Value, Some(in.Value)
	case OpDelete:
		return out.Outcome == Applied && state == out.Value, Absent
	case OpCAS:
		if out.Outcome == Applied {
			return state == in.Expected, Some(in.Value)
		}
		return state != in.Expected && state == out.Value, state
	}
	return false, state
}

// Model returns the porcupine model of a map from string keys to string
// values, partitioned by key: a history is linearizable if and only if its
// restriction to each key is, so each partition's state is a single Value.
// Inputs must be Input and outputs Output.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition:      partition,
		PartitionEvent: partitionEvents,
		Init:           func() any { return Absent },
		Step: func(state, input, output any) (bool, any) {
			return step(state.(Value), input.(Input), output.(Output))
		},
		Equal: func(a, b any) bool { return a.(Value) == b.(Value) },
		Hash: func(state any) uint64 {
			v := state.(Value)
			if !v.Present {
				return 0
			}
			h := fnv.New64a()
			h.Write([]byte(v.Data))
			return h.Sum64() | 1
		},
		DescribeOperation: func(input, output any) string {
			return describe(input.(Input), output.(Output))
		},
		DescribeState: func(state any) string { return state.(Value).String() },
	}
}

// describe renders an operation for reports and the visualisation, e.g.
// put("k", "v7") -> was "v3".
func describe(in Input, out Output) string {
	var call string
	switch in.Kind {
	case OpGet:
		call = fmt.Sprintf("get(%q)", in.Key)
	case OpPut:
		call = fmt.Sprintf("put(%q, %q)", in.Key, in.Value)
	case OpCAS:
		call = fmt.Sprintf("cas(%q, %s → %q)", in.Key, in.Expected, in.Value)
	case OpDelete:
		call = fmt.Sprintf("delete(%q)", in.Key)
	default:
		call = fmt.Sprintf("%v(%q)", in.Kind, in.Key)
	}
	var res string
	switch {
	case out.Outcome == Indeterminate:
		res = "? (indeterminate: " + out.Err + ")"
	case out.Outcome == NotApplied && out.Err != "":
		res = "failed, not applied: " + out.Err
	case in.Kind == OpGet:
		res = out.Value.String()
	case in.Kind == OpCAS && out.Outcome == Applied:
		res = "swapped"
	case in.Kind == OpCAS:
		res = "compare failed, was " + out.Value.String()
	default:
		res = "was " + out.Value.String()
	}
	return call + " -> " + res
}

// partition splits a history by key, in key order so that reports are
// stable.
func partition(history []porcupine.Operation) [][]porcupine.Operation {
	return byKey(history, func(op porcupine.Operation) string { return op.Input.(Input).Key })
}

// partitionEvents is partition for event histories; a return event finds
// its key through its call event's id.
func partitionEvents(history []porcupine.Event) [][]porcupine.Event {
	keyOf := make(map[int]string)
	return byKey(history, func(e porcupine.Event) string {
		if e.Kind == porcupine.CallEvent {
			keyOf[e.Id] = e.Value.(Input).Key
		}
		return keyOf[e.Id]
	})
}

// byKey groups items by key, called once per item in order, and returns
// the groups in key order.
func byKey[T any](items []T, key func(T) string) [][]T {
	groups := make(map[string][]T)
	for _, it := range items {
		k := key(it)
		groups[k] = append(groups[k], it)
	}
	keys := slices.Sorted(maps.Keys(groups))
	out := make([][]T, len(keys))
	for i, k := range keys {
		out[i] = groups[k]
	}
	return out
}
