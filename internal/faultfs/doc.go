// Package faultfs holds a storage operation in progress, so that a test can
// act while it is under way: a flush that stays in the middle of writing its
// table, a snapshot install that has begun, a read interrupted by Close, a
// WAL fsync on a slow disk. FailSyncs, another errorfs injector, fails and
// counts every sync, to show that nothing above it syncs.
//
// # Mental model
//
// A Hold names one kind of operation (an errorfs.OpKind) and a test on its
// path. Wrap puts it in front of a vfs.FS, through Pebble's errorfs, which
// reports every operation on the FS and on the files it opens (path: the
// name given to Create, Open, OpenReadWrite, OpenDir, MkdirAll, …) before
// doing it. Arm makes the Hold catch the next matching operation: it waits
// there, Held is closed, and it goes on unchanged when the test calls
// Release (or, after Delay(d), when d has passed).
//
// # Contract
//
//   - One operation per arming: the first matching one after Arm or Delay
//     is held; those that match while it is held or after it pass, until
//     the next Arm. Operations that do not match always pass. Concurrent
//     operations are safe: only one of them is caught.
//   - A held operation is only delayed, never failed or skipped.
//   - Held belongs to the latest arming: call it after Arm.
//   - Release lets the held operation (if any) go on and disarms; it is
//     idempotent. A test that ends without it still releases: each arming
//     registers Release with t.Cleanup, so it runs before every cleanup
//     registered earlier (stopping the cluster that is waiting on the
//     operation, say).
//   - Files that errorfs does not wrap are not seen: those returned by
//     ReuseForWrite (Pebble's recycled WAL files). errorfs also makes
//     Remove of a missing file succeed.
package faultfs
