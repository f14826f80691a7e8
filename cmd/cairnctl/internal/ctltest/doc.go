// Package ctltest is the harness of cairnctl's differential tests: it starts
// servers, runs a command line through the reference etcdctl binary and
// through cairnctl, and normalizes the few bytes that legitimately differ
// (log timestamps, durations, ports).
//
// The server under test is a parameter. By default it is the reference etcd
// v3.7 from tests/reference; CAIRNCTL_DIFF_SERVER=/path/to/binary selects any
// server that accepts etcd's flags (Cairn does, by design). Mutating commands
// run against twin servers, one per CLI, started with identical names, peer
// URLs and cluster tokens so that their cluster and member IDs, revisions and
// raft terms evolve identically; a server under test must derive its IDs
// deterministically from those flags, as etcd does.
//
// Commands that run until stopped (watch) go through [Live] and [Proxy]: the
// CLI dials a gRPC proxy that reports when the server has created its watch
// and which events it has forwarded, so the test writes only after the watch
// exists and one write at a time; it waits on stdout's content, then ends the
// run as Ctrl-C would (or by closing stdin in interactive mode). The same
// proxy runs "lease keep-alive": it lets a fixed number of renewals through
// and holds the next ones, so the number printed does not depend on the
// client's renewal timer. None of these waits depends on elapsed time.
//
// Cluster commands (member, endpoint --cluster, move-leader) need several
// members, and twins cannot have them: member IDs derive from peer URLs,
// which hold ports. [StartCluster] starts N members on loopback ports and
// both CLIs run against that one cluster, one after the other. Each side's
// member changes add members of their own, whose random IDs and ports
// [Created] turns into placeholders and whose place in a member list
// [SortMembers] fixes; [WaitSettled], [WaitCaughtUp], [MoveLeader] and
// [WaitReconfigurable] poll the cluster's state, with a deadline, before a
// comparison. Two of those states follow etcd's own timers and so take time
// to reach: sizes that stay put across its 100 ms backend commit interval,
// and a membership change it accepts only once its peers have been
// connected for five seconds. CAIRNCTL_DIFF_CLUSTER_SERVER selects the
// server of these tests, the reference etcd by default.
//
// Leases add three normalizations, each applied only where a case asks for
// it: twin servers grant different lease IDs, which [LeaseIDs] turns into
// placeholders in the order they appear; a remaining TTL may be one second
// apart ([AlignRemaining]); and etcd returns a lease's keys in random order
// ([SortLeaseKeys]).
package ctltest
