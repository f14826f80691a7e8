// Command cairnctl is the command line client of Cairn and a drop-in
// replacement for etcdctl v3.7: the same commands, flags, ETCDCTL_*
// environment variables, output bytes in every --write-out format, and exit
// codes, against Cairn or etcd alike.
//
//	cairnctl --endpoints 127.0.0.1:2379 put foo bar
//	cairnctl get --prefix foo -w json
//	cairnctl endpoint status --cluster -w table
//
// The implementation lives in internal/ctl; this package only wires it to the
// process. Commands in this version: get, put, del, txn, watch, compaction,
// lease grant|revoke|timetolive|list|keep-alive, endpoint
// health|status|hashkv (also --cluster), member
// add|remove|update|promote|list, move-leader, alarm list|disarm, snapshot
// save, version, options.
package main
