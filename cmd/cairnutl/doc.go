// Command cairnutl works on Cairn's files offline, as etcdutl does on
// etcd's: it needs no running member.
//
//	cairnutl snapshot status backup.db -w table
//	cairnutl defrag --data-dir /var/lib/cairn
//	cairnutl snapshot restore backup.db --data-dir /var/lib/cairn \
//	    --name m1 --initial-cluster m1=http://10.0.0.1:2380,m2=http://10.0.0.2:2380 \
//	    --initial-cluster-token prod --initial-advertise-peer-urls http://10.0.0.1:2380
//
// # Contract
//
// Commands, flags, output formats and exit codes are etcdutl v3.7's for
// the commands it has:
//
//   - "snapshot status FILE" prints hash, revision, total keys, total size
//     and version, comma-separated (-w simple, the default), as a table
//     (-w table), as JSON with etcdutl's field names (hash, revision,
//     totalKey, totalSize, version; -w json) or as "Key" : value lines
//     (-w fields). The hash is a CRC-32C over every key and value of the
//     engine in the file (the same value Maintenance.Hash gives for that
//     state), total keys counts every entry of every key space (as
//     etcdutl counts every bucket's), total size is the engine's size in
//     bytes, version is the storage version the member reported. The
//     whole file is checked first; the engine is unpacked into a
//     temporary directory under $TMPDIR, which needs room for it.
//   - "snapshot restore FILE --data-dir D" builds D from the file for a
//     member of a NEW cluster (server.Restore): keys, values, revisions,
//     leases and auth kept, the member list replaced by
//     --initial-cluster's members, raft state fresh. Run it for every
//     member, from the same file with the same --initial-cluster and
//     --initial-cluster-token; each member then starts with cairn on its
//     data dir (its cluster flags are then ignored, as on any restart).
//     --bump-revision N --mark-compacted (both or neither, as etcdutl
//     demands) raise the revision by N and compact there. --skip-hash-check
//     accepts a file whose SHA-256 trailer is missing or wrong.
//   - "defrag --data-dir D" compacts the whole storage engine of the
//     stopped member whose data dir is D (D/member/db), as the
//     Defragment RPC does online: contents unchanged, deleted and
//     compacted data gone from disk. Like etcdutl it prints nothing on
//     stdout and logs "defragmenting" and "finished defragmenting
//     directory" with etcd's size fields; failures read "Failed to
//     defragment etcd data[D] (...)". Unlike etcdutl, which waits for a
//     running member to let go of its database, it refuses at once while
//     the member runs (Pebble's lock is held), and it refuses a directory
//     that is not a member's data dir instead of creating a database in it.
//
// Files are Cairn snapshot files (package snap: an engine checkpoint
// framed like etcd's files, with a SHA-256 trailer), as "cairnctl
// snapshot save" and "etcdctl snapshot save" against a Cairn member
// write them. etcd's snapshot files (bbolt databases) are refused with an
// error that says so; etcdutl cannot read Cairn's either. A damaged or
// truncated file is refused before anything is written, with an error
// saying what to do. Long runs log their progress on stderr every 5
// seconds; all logs go to stderr, results to stdout.
//
// Exit codes: 0 success, 1 failure, 4 unsupported output format, 128 bad
// arguments (etcdutl's numbers).
package main
