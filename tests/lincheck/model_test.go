package lincheck

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// spec is one operation before it is placed in time.
type spec struct {
	in  Input
	out Output
}

func get(key string, saw Value) spec {
	return spec{Input{Kind: OpGet, Key: key}, Output{Outcome: Applied, Value: saw}}
}

func put(key, v string, prev Value) spec {
	return spec{Input{Kind: OpPut, Key: key, Value: v}, Output{Outcome: Applied, Value: prev}}
}

func del(key string, prev Value) spec {
	return spec{Input{Kind: OpDelete, Key: key}, Output{Outcome: Applied, Value: prev}}
}

// cas is a CAS that swapped, or whose compare failed on was.
func cas(key string, expected Value, v string, swapped bool, was Value) spec {
	out := Output{Outcome: Applied, Value: expected}
	if !swapped {
		out = Output{Outcome: NotApplied, Value: was}
	}
	return spec{Input{Kind: OpCAS, Key: key, Value: v, Expected: expected}, out}
}

// refused turns s into a definite failure.
func refused(s spec) spec {
	s.out = Output{Outcome: NotApplied, Err: "etcdserver: mvcc: database space exceeded"}
	return s
}

// at places s in [call, ret].
func at(call, ret int64, s spec) porcupine.Operation {
	return porcupine.Operation{Input: s.in, Output: s.out, Call: call, Return: ret}
}

// pending places s at call with an indeterminate outcome.
func pending(call int64, s spec) porcupine.Operation {
	s.out = Output{Outcome: Indeterminate, Err: "context deadline exceeded"}
	return porcupine.Operation{Input: s.in, Output: s.out, Call: call, Return: Infinity}
}

func TestModel(t *testing.T) {
	const k, k2 = "k", "k2"
	a, b, c := Some("a"), Some("b"), Some("c")
	for _, tc := range []struct {
		name string
		h    History
		want porcupine.CheckResult
	}{
		{"empty", History{}, porcupine.Ok},
		{"sequential put get cas delete", History{
			at(0, 1, get(k, Absent)),
			at(2, 3, put(k, "a", Absent)),
			at(4, 5, get(k, a)),
			at(6, 7, cas(k, a, "b", true, a)),
			at(8, 9, cas(k, a, "c", false, b)),
			at(10, 11, del(k, b)),
			at(12, 13, del(k, Absent)),
			at(14, 15, cas(k, Absent, "c", true, Absent)),
			at(16, 17, get(k, c)),
		}, porcupine.Ok},
		{"empty string is a value, not absence", History{
			at(0, 1, put(k, "", Absent)),
			at(2, 3, get(k, Some(""))),
			at(4, 5, cas(k, Absent, "a", false, Some(""))),
		}, porcupine.Ok},
		{"stale read", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, put(k, "b", a)),
			at(4, 5, get(k, a)),
		}, porcupine.Illegal},
		{"stale read on another key is still stale", History{
			at(0, 1, put(k2, "c", Absent)),
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, put(k, "b", a)),
			at(4, 5, get(k2, c)),
			at(4, 5, get(k, a)),
		}, porcupine.Illegal},
		{"lost acknowledged put", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, get(k, Absent)),
		}, porcupine.Illegal},
		{"lost acknowledged delete", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, del(k, a)),
			at(4, 5, get(k, a)),
		}, porcupine.Illegal},
		{"lost acknowledged cas", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, cas(k, a, "b", true, a)),
			at(4, 5, get(k, a)),
		}, porcupine.Illegal},
		{"put reports the wrong previous value", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, put(k, "b", Absent)),
		}, porcupine.Illegal},
		{"cas swapped although the key held something else", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, cas(k, b, "c", true, b)),
		}, porcupine.Illegal},
		{"cas compare failed although the key held the expected value", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, cas(k, a, "c", false, a)),
		}, porcupine.Illegal},
		{"cas compare failed and saw a value the key never held", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 3, cas(k, b, "c", false, c)),
		}, porcupine.Illegal},
		{"indeterminate put that was applied", History{
			pending(0, put(k, "a", Absent)),
			at(5, 6, get(k, a)),
		}, porcupine.Ok},
		{"indeterminate put that was not applied", History{
			pending(0, put(k, "a", Absent)),
			at(5, 6, get(k, Absent)),
			at(7, 8, put(k, "b", Absent)),
			at(9, 10, get(k, b)),
		}, porcupine.Ok},
		{"indeterminate put applied late, after a read missed it", History{
			pending(0, put(k, "a", Absent)),
			at(5, 6, get(k, Absent)),
			at(7, 8, get(k, a)),
		}, porcupine.Ok},
		{"indeterminate put cannot be seen and then unseen", History{
			pending(0, put(k, "a", Absent)),
			at(5, 6, get(k, a)),
			at(7, 8, get(k, Absent)),
		}, porcupine.Illegal},
		{"indeterminate put cannot take effect before its call", History{
			at(0, 1, get(k, a)),
			pending(2, put(k, "a", Absent)),
		}, porcupine.Illegal},
		{"indeterminate delete that was applied", History{
			at(0, 1, put(k, "a", Absent)),
			pending(2, del(k, a)),
			at(5, 6, get(k, Absent)),
		}, porcupine.Ok},
		{"indeterminate delete that was not applied", History{
			at(0, 1, put(k, "a", Absent)),
			pending(2, del(k, a)),
			at(5, 6, get(k, a)),
		}, porcupine.Ok},
		{"indeterminate cas that was applied", History{
			at(0, 1, put(k, "a", Absent)),
			pending(2, cas(k, a, "b", true, a)),
			at(5, 6, get(k, b)),
		}, porcupine.Ok},
		{"indeterminate cas applies only if its compare holds", History{
			at(0, 1, put(k, "a", Absent)),
			pending(2, cas(k, c, "b", true, c)),
			at(5, 6, get(k, b)),
		}, porcupine.Illegal},
		{"definitely refused put is never visible", History{
			at(0, 1, refused(put(k, "a", Absent))),
			at(2, 3, get(k, Absent)),
		}, porcupine.Ok},
		{"definitely refused put seen by a read", History{
			at(0, 1, refused(put(k, "a", Absent))),
			at(2, 3, get(k, a)),
		}, porcupine.Illegal},
		{"read overlapping a put may see the old value", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 10, put(k, "b", a)),
			at(3, 4, get(k, a)),
		}, porcupine.Ok},
		{"read overlapping a put may see the new value", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 10, put(k, "b", a)),
			at(3, 4, get(k, b)),
		}, porcupine.Ok},
		{"reads overlapping each other and a put may disagree", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 10, put(k, "b", a)),
			at(3, 6, get(k, b)),
			at(4, 7, get(k, a)),
		}, porcupine.Ok},
		{"a read after a read that saw the new value cannot see the old", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 10, put(k, "b", a)),
			at(3, 4, get(k, b)),
			at(5, 6, get(k, a)),
		}, porcupine.Illegal},
		{"concurrent puts in either order", History{
			at(0, 10, put(k, "a", b)),
			at(1, 9, put(k, "b", Absent)),
			at(11, 12, get(k, a)),
		}, porcupine.Ok},
		{"concurrent casses: one wins", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 10, cas(k, a, "b", true, a)),
			at(3, 9, cas(k, a, "c", false, b)),
			at(11, 12, get(k, b)),
		}, porcupine.Ok},
		{"concurrent casses cannot both win", History{
			at(0, 1, put(k, "a", Absent)),
			at(2, 10, cas(k, a, "b", true, a)),
			at(3, 9, cas(k, a, "c", true, a)),
		}, porcupine.Illegal},
		{"intervals are closed: touching operations are concurrent", History{
			at(0, 5, put(k, "a", Absent)),
			at(5, 6, get(k, Absent)),
		}, porcupine.Ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Verify(tc.h, 0)
			if got.Verdict != tc.want {
				t.Errorf("Verify: %v, want %v\n%s", got.Verdict, tc.want, got.Report())
			}
			if got.Verdict == porcupine.Illegal && !strings.Contains(got.Report(), "the first answer no linearization explains") {
				t.Errorf("the report names no culprit:\n%s", got.Report())
			}
			// The pruning must not change the verdict.
			if got := porcupine.CheckOperationsTimeout(Model(), tc.h, 0); got != tc.want {
				t.Errorf("porcupine without pruning: %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		s    spec
		want string
	}{
		{get("k", Absent), `get("k") -> <absent>`},
		{put("k", "v2", Some("v1")), `put("k", "v2") -> was "v1"`},
		{cas("k", Absent, "v", true, Absent), `cas("k", <absent> → "v") -> swapped`},
		{cas("k", Some("a"), "v", false, Some("b")), `cas("k", "a" → "v") -> compare failed, was "b"`},
		{del("k", Some("")), `delete("k") -> was ""`},
		{refused(put("k", "v", Absent)), `put("k", "v") -> failed, not applied: etcdserver: mvcc: database space exceeded`},
		{spec{Input{Kind: OpDelete, Key: "k"}, Output{Outcome: Indeterminate, Err: "etcdserver: leader changed"}},
			`delete("k") -> ? (indeterminate: etcdserver: leader changed)`},
	} {
		if got := describe(tc.s.in, tc.s.out); got != tc.want {
			t.Errorf("describe:\n got %s\nwant %s", got, tc.want)
		}
	}
}
