// Package lincheck checks that what clients saw of an etcd-protocol server
// is linearizable: that some total order of their operations, consistent
// with real time, explains every answer as if one copy of a map of keys had
// served them one at a time. It is meant for fault tests (leader kills,
// partitions): run a Workload against the cluster while injecting faults,
// then Check the history.
//
//	rec := lincheck.NewRecorder()               // or let Workload make one
//	h := lincheck.Workload(ctx, clients, 4, lincheck.WorkloadConfig{Seed: seed, Recorder: rec})
//	lincheck.Check(t, h, time.Minute)
//
// # Recording
//
// A Recorder times operations on one monotonic clock and collects them into
// a History; each Client it hands out wraps one clientv3 KV and stands for
// one sequential process. Operations and what they observe:
//
//	Get(k)         linearizable Range; observes the value
//	Put(k, v)      Put with prev_kv; observes the value it replaced
//	Delete(k)      DeleteRange with prev_kv; observes the value it removed
//	CAS(k, e, v)   Txn If(Value(k) = e, or CreateRevision(k) = 0 for Absent)
//	               Then(Put(k, v)) Else(Get(k)); a failed compare observes
//	               the value that failed it
//
// Each operation gets an Outcome (see Classify):
//
//   - Applied: the server acknowledged it. Its interval is [call, return].
//   - NotApplied: it certainly took no effect: a CAS whose compare failed
//     (an observation like any other), or an error with which the server
//     refuses before anything is written (a definite failure, a no-op).
//   - Indeterminate: it may or may not have taken effect: a timeout, a lost
//     connection, no leader, a leader change. Its Return is Infinity,
//     porcupine's convention for a pending operation: the checker may
//     linearize it anywhere after its call, and "after everything" means
//     "never happened". An indeterminate write is thus possibly-applied,
//     never assumed lost nor assumed done.
//
// # Checking
//
// Model is a porcupine model of one key (the history is partitioned by key,
// which keeps checking fast); values are strings or Absent, and every key
// starts Absent. Verify prunes the operations that cannot change the
// verdict (definite failures, indeterminate reads, indeterminate writes
// whose value nobody observed; the argument is on prune) and runs
// porcupine. The pruning is what keeps fault histories checkable: an
// indeterminate write overlaps everything after it, and a few hundred of
// them make porcupine's search blow up. Check fails the test on a violation
// or a timeout, names for each failing key the first operation whose answer
// no linearization explains (see Result.Report), and writes porcupine's
// HTML visualisation, to t.TempDir() or to $CAIRN_LINCHECK_DIR when set.
//
// # Contract and limits
//
//   - Every key a history touches must be unwritten when its Recorder
//     starts: the model cannot guess earlier values. Recorder.KeyPrefix is
//     unique per Recorder, and Workload uses it by default.
//   - Histories from different Recorders cannot be merged: their clocks
//     differ. Share a Recorder instead (WorkloadConfig.Recorder).
//   - Written values should be unique (Workload's are), so that a read's
//     answer identifies the write it saw.
//   - The model knows values, not revisions: a server that returned the
//     right value with a wrong revision, or reordered watch events, passes.
package lincheck
