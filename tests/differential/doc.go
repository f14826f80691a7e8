// Package differential sends the same etcd v3 request sequences to a real
// etcd v3.7.3 process and to an in-process Cairn member, and compares the
// two answers field by field. It exists to find where Cairn differs from
// etcd, so a case that differs is kept and reported, never loosened.
//
// # Model
//
// A pair is one fresh etcd and one fresh Cairn member started with the same
// settings. Every step of a case builds one request, runs it on etcd first
// and then on Cairn through the real client (go.etcd.io/etcd/client/v3
// connections, raw etcdserverpb stubs where clientv3 cannot express the
// request), and compares:
//
//   - errors: the gRPC code and the message, both exactly;
//   - answers: every protobuf field, after normalizing only what cannot be
//     equal between two independent clusters: cluster_id, member_id and
//     raft_term of the top-level response header are replaced by 1 when set
//     and left 0 when unset, so a missing header field still shows.
//
// Any other normalization is named and justified where it is applied
// (RangeStream chunk boundaries, Maintenance.Status sizes and indexes, the
// request-size threshold adjusted for the length of etcd's request IDs). Both sides start from the same empty
// store and receive identical sequences, so revisions must agree exactly.
//
// The /v3/ JSON gateway is compared the same way one level up
// (gateway_test.go): plain HTTP requests, as curl sends them, to etcd's
// client URL and to Cairn's client handler, comparing status codes,
// headers and JSON bodies; the normalizations that JSON needs are stated
// there.
//
// Each test starts its own pair, so a divergence in one test (a revision
// bumped where etcd does not bump it, say) cannot cascade into the others.
// Cases inside one test share the pair and run in order.
//
// A few request sequences crash etcd v3.7.3 itself (crash_test.go); they
// run against a throwaway etcd to confirm the crash, and against Cairn in a
// child process, which must survive them. The randomized tests steer
// around those shapes so that etcd stays up for the rest of the sequence.
// Tests of services Cairn does not serve yet (leases, HashKV) skip with a
// "cairn differs:" message naming the answer that blocks them.
//
// # Running
//
//	go test ./tests/differential/
//
// The etcd binary comes from tests/reference (built on first use).
// Environment knobs:
//
//	CAIRN_DIFF_SEED=<n>     replay a randomized run (the seed is logged)
//	CAIRN_DIFF_STEPS=<n>    length of TestRandomized (default 1000)
//	CAIRN_DIFF_VERBOSE=1    log every request and etcd's answer
//	CAIRN_DIFF_AGAINST=etcd compare etcd with a second etcd instead of
//	                        Cairn: every case must pass, which checks the
//	                        harness itself for false differences
package differential
