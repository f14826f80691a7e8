// Package compactor runs etcd's automatic compaction
// (--auto-compaction-mode and --auto-compaction-retention) against a member
// through its public API: it reads the current revision, asks whether the
// member leads, and proposes a Compaction like any client would.
//
// Two modes, with etcd v3.7's rules exactly:
//
//   - periodic, retention P: every min(P, 1h)/10 the compactor samples the
//     current revision, keeping the samples of the last P. It compacts to
//     the oldest sample, the revision the member had P (plus up to one
//     sampling interval) ago: first once P has passed since it started, then every
//     min(P, 1h) after the last success, and never to the same revision
//     twice in a row. A failure is retried at the next sample.
//   - revision, retention N: every 5 minutes it compacts to the current
//     revision minus N, unless that is not positive or is the revision it
//     compacted to last time.
//
// A compaction whose revision was already compacted (mvcc.ErrCompacted: an
// operator or the previous leader went further) counts as a success, as in
// etcd.
//
// Only the leader compacts. etcd pauses its compactor on followers; here each
// tick checks the leadership instead (Target.Status().Leader == Target.ID()),
// with the same effect: a follower keeps sampling revisions in periodic mode,
// so a member that becomes leader compacts with a full history of samples.
//
// Time comes from Config.Clock, so tests drive it by hand. Run blocks until
// its context ends: the caller owns the goroutine.
//
// Log lines are etcd's: "starting auto periodic compaction", "completed auto
// periodic compaction", "failed auto periodic compaction" and the same with
// "revision", with the fields "revision", "compact-period" or
// "revision-compaction-retention", "took" and "retry-interval".
package compactor
