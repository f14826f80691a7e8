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
// add|remove|update|promote|list, move-leader, alarm list|disarm, defrag
// (also --cluster), snapshot save, check perf|datascale, version, options.
//
// check perf runs for 60 seconds and check datascale writes up to millions
// of keys, as etcdctl's do. For tests only, CAIRNCTL_CHECK_PERF_SECONDS=N
// shortens check perf to N seconds and CAIRNCTL_CHECK_DATASCALE_KEYS=N
// makes check datascale write N keys; etcdctl has no such knob.
package main
