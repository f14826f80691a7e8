package main

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-kv/cairn/cmd/cairnctl/internal/ctltest"
)

// The cluster commands (member, endpoint --cluster, move-leader) need a
// cluster of several members, and twin clusters cannot be made alike: a
// member's ID derives from its peer URLs, which hold ports of their own. So
// both CLIs run against one three-member cluster, etcdctl first, and each
// case leaves the cluster as it found it:
//
//   - read-only cases run the same command line twice (sharedCase);
//   - move-leader cases that succeed move the leadership back to the
//     original leader before each run;
//   - member changes run as scripts (member_diff_test.go): each CLI adds
//     its own member, changes it and removes it, and the outputs are
//     compared step by step once the IDs and addresses each run created
//     have become placeholders (ctltest.Created).
//
// The server is the reference etcd unless CAIRNCTL_DIFF_CLUSTER_SERVER, or
// else CAIRNCTL_DIFF_SERVER, names another (scripts/test.sh runs it again
// with Cairn).

// clusterEnv is the cluster every case of TestClusterDifferential shares.
type clusterEnv struct {
	ctlBin string
	c      *ctltest.Cluster
	// eps are the founding members' endpoints, m0's first.
	eps []string
	// ids are the founding members' IDs by name (m0, m1, m2).
	ids map[string]uint64
	// leader is the member that leads when each case starts, and
	// follower one that does not.
	leader, follower string
}

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// waitContext bounds one wait of the harness on the cluster; a case that
// cannot get the cluster into shape fails alone.
func waitContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestClusterDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	ctlBin, server := diffBinaries(t)
	if s := os.Getenv(ctltest.ClusterServerEnv); s != "" {
		server = s
	}
	e := &clusterEnv{ctlBin: ctlBin, c: ctltest.StartCluster(t, server, 3), ids: map[string]uint64{}}
	ctx := waitContext(t)
	e.eps = e.c.Endpoints()
	members, err := ctltest.Client(t, e.eps[0]).MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members.Members {
		e.ids[m.Name] = m.ID
	}
	if err := ctltest.WaitSettled(ctx, e.eps); err != nil {
		t.Fatalf("cluster did not settle: %v", err)
	}
	_, lead, err := ctltest.Leader(ctx, e.eps)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.c.Members {
		switch {
		case e.ids[m.Name] == lead:
			e.leader = m.Name
		case e.follower == "":
			e.follower = m.Name
		}
	}

	// The member changes come early: see promoteScript.
	t.Run("read", e.testRead)
	t.Run("member", e.testMembers)
	t.Run("health", e.testHealth)
	t.Run("move-leader", e.testMoveLeader)
	t.Run("defrag", e.testDefrag)
}

// sharedCase is one command line run by both CLIs against the cluster.
type sharedCase struct {
	name string
	// args may hold "{ep}" (m0's endpoint), "{eps}" (all founding
	// members'), "{leader}" and "{follower}" (their IDs), "{follower-ep}",
	// "{m0}"... (a founding member's ID) and "{m0-peer}"... (its peer
	// URL). --endpoints={ep} comes first unless args name endpoints.
	args []string
	cmp  compare
	// health: the records come in the order the probes finished.
	health bool
	// settle: the output shows raft indexes and database sizes.
	settle bool
	// moves: the command moves the leadership, which is moved back to
	// e.leader before each run.
	moves bool
}

func (e *clusterEnv) expand(a []string) []string {
	r := []string{
		"{eps}", strings.Join(e.eps, ","),
		"{ep}", e.eps[0],
		"{leader}", hexID(e.ids[e.leader]),
		"{follower}", hexID(e.ids[e.follower]),
		"{follower-ep}", e.member(e.follower).Endpoint,
	}
	for _, m := range e.c.Members {
		r = append(r, "{"+m.Name+"}", hexID(e.ids[m.Name]), "{"+m.Name+"-peer}", m.PeerURL)
	}
	rep := strings.NewReplacer(r...)
	var out []string
	if !slices.ContainsFunc(a, func(s string) bool { return strings.HasPrefix(s, "--endpoints") }) {
		out = append(out, "--endpoints="+e.eps[0])
	}
	for _, s := range a {
		out = append(out, rep.Replace(s))
	}
	return out
}

func (e *clusterEnv) member(name string) *ctltest.Member {
	for _, m := range e.c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// moveBack gives the leadership back to e.leader for a case that moves it.
func (e *clusterEnv) moveBack(t *testing.T, c sharedCase) {
	t.Helper()
	if !c.moves {
		return
	}
	if err := ctltest.MoveLeader(waitContext(t), e.eps, e.ids[e.leader]); err != nil {
		t.Fatalf("moving the leadership back: %v", err)
	}
}

func (e *clusterEnv) runShared(t *testing.T, c sharedCase) {
	inv := ctltest.Invocation{Args: e.expand(c.args)}
	if c.settle {
		if err := ctltest.WaitSettled(waitContext(t), e.eps); err != nil {
			t.Fatal(err)
		}
	}
	e.moveBack(t, c)
	want := ctltest.RunBinary(e.ctlBin, inv)
	e.moveBack(t, c)
	got := runCairnctl(inv)
	if c.health {
		f := formatOf(inv.Args)
		want.Stdout, got.Stdout = ctltest.SortEndpoints(f, want.Stdout), ctltest.SortEndpoints(f, got.Stdout)
		want.Stderr, got.Stderr = ctltest.SortEndpoints("simple", want.Stderr), ctltest.SortEndpoints("simple", got.Stderr)
	}
	checkSame(t, diffCase{name: c.name, cmp: c.cmp}, want, got, e.eps, e.eps)
}

// formatOf returns the --write-out of a command line.
func formatOf(args []string) string {
	f := "simple"
	for i, a := range args {
		switch {
		case (a == "-w" || a == "--write-out") && i+1 < len(args):
			f = args[i+1]
		case strings.HasPrefix(a, "--write-out="):
			f = strings.TrimPrefix(a, "--write-out=")
		}
	}
	return f
}

func (e *clusterEnv) testRead(t *testing.T) {
	var cs []sharedCase
	add := func(c ...sharedCase) { cs = append(cs, c...) }
	for _, f := range formats {
		add(
			sharedCase{name: "member-list/" + f, args: args("member", "list", "-w", f)},
			sharedCase{name: "member-list/hex/" + f, args: args("member", "list", "--hex", "-w", f)},
			sharedCase{name: "endpoint-status/cluster/" + f, args: args("endpoint", "status", "--cluster", "-w", f), settle: true},
			sharedCase{name: "endpoint-status/cluster/hex/" + f, args: args("endpoint", "status", "--cluster", "--hex", "-w", f), settle: true},
			sharedCase{name: "endpoint-hashkv/cluster/" + f, args: args("endpoint", "hashkv", "--cluster", "-w", f), settle: true},
		)
	}
	add(
		sharedCase{name: "member-list/serializable", args: args("member", "list", "--consistency", "s", "-w", "json")},
		sharedCase{name: "member-list/linearizable", args: args("member", "list", "--consistency", "l")},
		sharedCase{name: "member-list/serializable-follower", args: args("--endpoints={follower-ep}", "member", "list", "--consistency=s", "-w", "fields")},
		// The error names get's --consistency default, not the value.
		sharedCase{name: "member-list/bad-consistency", args: args("member", "list", "--consistency", "S")},
		sharedCase{name: "member-list/bad-consistency-bad-format", args: args("member", "list", "--consistency", "x", "-w", "yaml")},
		sharedCase{name: "member-list/extra-args-ignored", args: args("member", "list", "extra", "-w", "table")},
		sharedCase{name: "member-list/bad-format", args: args("member", "list", "-w", "yaml")},
		sharedCase{name: "member-list/follower", args: args("--endpoints={follower-ep}", "member", "list")},
		sharedCase{name: "endpoint-status/all-endpoints", args: args("--endpoints={eps}", "endpoint", "status", "-w", "table"), settle: true},
		sharedCase{name: "endpoint-status/cluster-from-follower", args: args("--endpoints={follower-ep}", "endpoint", "status", "--cluster"), settle: true},
		sharedCase{name: "endpoint-hashkv/cluster-rev", args: args("endpoint", "hashkv", "--cluster", "--rev", "1", "-w", "json"), settle: true},
		sharedCase{name: "endpoint/cluster-dead-endpoint", args: args("--endpoints=127.0.0.1:1", "--dial-timeout=300ms", "--command-timeout=300ms", "endpoint", "status", "--cluster")},
	)
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) { e.runShared(t, c) })
	}
}

// testHealth runs endpoint health --cluster. Each probe writes to the raft
// log (etcd serves AlarmList through raft), so it runs after the member
// changes.
func (e *clusterEnv) testHealth(t *testing.T) {
	for _, f := range formats {
		cmp := durations
		if f == "table" {
			cmp = tableShape
		}
		c := sharedCase{name: f, args: args("endpoint", "health", "--cluster", "-w", f), cmp: cmp, health: true}
		t.Run(c.name, func(t *testing.T) { e.runShared(t, c) })
	}
	t.Run("env-var", func(t *testing.T) {
		inv := ctltest.Invocation{Args: e.expand(args("endpoint", "health", "-w", "json")), Env: []string{"ETCDCTL_CLUSTER=true"}}
		want := ctltest.RunBinary(e.ctlBin, inv)
		got := runCairnctl(inv)
		want.Stdout, got.Stdout = ctltest.SortEndpoints("json", want.Stdout), ctltest.SortEndpoints("json", got.Stdout)
		checkSame(t, diffCase{cmp: durations}, want, got, e.eps, e.eps)
	})
}

func (e *clusterEnv) testMoveLeader(t *testing.T) {
	var cs []sharedCase
	for _, f := range formats {
		// fields and table fail after the leadership moved.
		cs = append(cs, sharedCase{name: f, args: args("--endpoints={eps}", "move-leader", "{follower}", "-w", f), moves: true})
	}
	cs = append(cs,
		sharedCase{name: "hex-json", args: args("--endpoints={eps}", "move-leader", "{follower}", "--hex", "-w", "json"), moves: true},
		// The leader itself: nothing to move, success all the same.
		sharedCase{name: "to-leader", args: args("--endpoints={eps}", "move-leader", "{leader}"), moves: true},
		sharedCase{name: "not-a-member", args: args("--endpoints={eps}", "move-leader", "1234"), moves: true},
		sharedCase{name: "no-leader-endpoint", args: args("--endpoints={follower-ep}", "move-leader", "{follower}"), moves: true},
		sharedCase{name: "dead-endpoint-first", args: args("--endpoints=127.0.0.1:1,{eps}", "--command-timeout=300ms", "move-leader", "{follower}"), moves: true},
		sharedCase{name: "bad-id", args: args("--endpoints={eps}", "move-leader", "zz")},
		sharedCase{name: "hex-prefix", args: args("--endpoints={eps}", "move-leader", "0x10")},
		sharedCase{name: "negative", args: args("--endpoints={eps}", "move-leader", "--", "-1")},
		sharedCase{name: "too-large", args: args("--endpoints={eps}", "move-leader", "1ffffffffffffffff")},
		sharedCase{name: "no-args", args: args("--endpoints={eps}", "move-leader")},
		sharedCase{name: "two-args", args: args("--endpoints={eps}", "move-leader", "{follower}", "{leader}")},
		sharedCase{name: "bad-format", args: args("--endpoints={eps}", "move-leader", "{follower}", "-w", "yaml"), moves: true},
		sharedCase{name: "bad-format-bad-id", args: args("--endpoints={eps}", "move-leader", "zz", "-w", "yaml")},
		sharedCase{name: "prefix-match", args: args("--endpoints={eps}", "move", "{follower}"), moves: true},
	)
	for _, c := range cs {
		t.Run(c.name, func(t *testing.T) { e.runShared(t, c) })
	}
	if err := ctltest.MoveLeader(waitContext(t), e.eps, e.ids[e.leader]); err != nil {
		t.Fatalf("moving the leadership back: %v", err)
	}
}

// testDefrag defragments the members one after the other: every member's
// client URLs with --cluster, in member list order.
func (e *clusterEnv) testDefrag(t *testing.T) {
	for _, c := range []sharedCase{
		{name: "cluster", args: args("defrag", "--cluster"), cmp: durations},
		{name: "cluster-from-follower", args: args("--endpoints={follower-ep}", "defrag", "--cluster"), cmp: durations},
		{name: "endpoints", args: args("--endpoints={eps}", "defrag"), cmp: durations},
		{name: "dead-endpoint-first", args: args("--endpoints=127.0.0.1:1,{eps}", "--command-timeout=300ms", "defrag"), cmp: durations},
		{name: "cluster-dead-endpoint", args: args("--endpoints=127.0.0.1:1", "--dial-timeout=300ms", "--command-timeout=300ms", "defrag", "--cluster")},
		{name: "bad-format", args: args("defrag", "--cluster", "-w", "yaml")},
	} {
		t.Run(c.name, func(t *testing.T) { e.runShared(t, c) })
	}
}
