package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/tests/framework"
	"github.com/cairn-kv/cairn/tests/reference"
)

// allAlphaOn is etcd 3.7.3's gates after --feature-gates=AllAlpha=true
// (from the "feature-gates" field of its start-up log).
const allAlphaOn = "AllAlpha=true,CompactHashCheck=true,InitialCorruptCheck=true,LeaseCheckpoint=true,LeaseCheckpointPersist=true,PriorityRequest=true,SetMemberLocalAddr=true,StopGRPCServiceOnDefrag=true"

// TestFeatureGatesSet: each list of --feature-gates values (the flag
// repeated) gives the gates, or the error, that etcd 3.7.3 gives; the
// wanted gates are those its start-up log shows for the same flags.
func TestFeatureGatesSet(t *testing.T) {
	for _, c := range []struct {
		values []string
		want   string // the gates, etcd's String
		err    string
	}{
		{nil, "", ""},
		{[]string{""}, "", ""},
		{[]string{","}, "", ""},
		{[]string{"CompactHashCheck=true,"}, "CompactHashCheck=true", ""},
		{[]string{" CompactHashCheck = T ,,InitialCorruptCheck=0"}, "CompactHashCheck=true,InitialCorruptCheck=false", ""},
		{[]string{"CompactHashCheck=true,CompactHashCheck=false"}, "CompactHashCheck=false", ""},
		{[]string{"CompactHashCheck=true", "InitialCorruptCheck=true"}, "CompactHashCheck=true,InitialCorruptCheck=true", ""},
		{[]string{"CompactHashCheck=true", "CompactHashCheck=false"}, "CompactHashCheck=false", ""},
		{[]string{"AllAlpha=true"}, allAlphaOn, ""},
		{[]string{"AllAlpha=true,CompactHashCheck=false"}, strings.Replace(allAlphaOn, "CompactHashCheck=true", "CompactHashCheck=false", 1), ""},
		{[]string{"CompactHashCheck=false,AllAlpha=true"}, strings.Replace(allAlphaOn, "CompactHashCheck=true", "CompactHashCheck=false", 1), ""},
		{[]string{"CompactHashCheck=false", "AllAlpha=true"}, strings.Replace(allAlphaOn, "CompactHashCheck=true", "CompactHashCheck=false", 1), ""},
		// A later AllAlpha changes only gates still without a value.
		{[]string{"AllAlpha=true", "AllAlpha=false"}, strings.Replace(allAlphaOn, "AllAlpha=true", "AllAlpha=false", 1), ""},
		{[]string{"AllBeta=false"}, "AllBeta=false,FastLeaseKeepAlive=false,TxnModeWriteWithSharedBuffer=false", ""},
		{[]string{"AllBeta=true,AllAlpha=false,TxnModeWriteWithSharedBuffer=false"},
			"AllAlpha=false,AllBeta=true,CompactHashCheck=false,FastLeaseKeepAlive=true,InitialCorruptCheck=false,LeaseCheckpoint=false," +
				"LeaseCheckpointPersist=false,PriorityRequest=false,SetMemberLocalAddr=false,StopGRPCServiceOnDefrag=false,TxnModeWriteWithSharedBuffer=false", ""},

		{[]string{"Foo=true"}, "", "unrecognized feature gate: Foo"},
		{[]string{"compacthashcheck=true"}, "", "unrecognized feature gate: compacthashcheck"},
		{[]string{"=true"}, "", "unrecognized feature gate: "},
		{[]string{"Foo=true,Bar=true"}, "", "unrecognized feature gate: Foo"},
		{[]string{"CompactHashCheck=maybe"}, "", `invalid value of CompactHashCheck=maybe, err: strconv.ParseBool: parsing "maybe": invalid syntax`},
		{[]string{"CompactHashCheck="}, "", `invalid value of CompactHashCheck=, err: strconv.ParseBool: parsing "": invalid syntax`},
		{[]string{"Foo=true,CompactHashCheck=maybe"}, "", `invalid value of CompactHashCheck=maybe, err: strconv.ParseBool: parsing "maybe": invalid syntax`},
		{[]string{"CompactHashCheck"}, "", "missing bool value for CompactHashCheck"},
		{[]string{" "}, "", "missing bool value for "},
		// A failed Set changes nothing.
		{[]string{"CompactHashCheck=true", "InitialCorruptCheck=true,Foo=true"}, "CompactHashCheck=true", "unrecognized feature gate: Foo"},
	} {
		var g gateValues
		var err error
		for _, v := range c.values {
			if err = g.Set(v); err != nil {
				break
			}
		}
		if got := g.String(); got != c.want || (err == nil) != (c.err == "") || (err != nil && err.Error() != c.err) {
			t.Errorf("%q: gates %q, error %v; want %q, error %q", c.values, got, err, c.want, c.err)
		}
	}
}

// TestFeatureGatesConfig: the gates reach the server config through the
// options they switch; a gate given by name wins over AllAlpha, Cairn's
// own flag wins over AllAlpha, and the two disagreeing is an error, from
// whichever source; etcd's rule on LeaseCheckpointPersist applies.
func TestFeatureGatesConfig(t *testing.T) {
	type checks struct{ noInitial, noCompact bool }
	for _, c := range []struct {
		args []string
		env  map[string]string
		want checks
		err  string
	}{
		{nil, nil, checks{false, false}, ""},
		{[]string{"--feature-gates=InitialCorruptCheck=false"}, nil, checks{true, false}, ""},
		{[]string{"--feature-gates=CompactHashCheck=false"}, nil, checks{false, true}, ""},
		{[]string{"--feature-gates=InitialCorruptCheck=true,CompactHashCheck=true"}, nil, checks{false, false}, ""},
		{[]string{"--feature-gates=InitialCorruptCheck=false", "--feature-gates=CompactHashCheck=false"}, nil, checks{true, true}, ""},
		{[]string{"--feature-gates=AllAlpha=false"}, nil, checks{true, true}, ""},
		{[]string{"--feature-gates=AllAlpha=true"}, nil, checks{false, false}, ""},
		{[]string{"--feature-gates=AllAlpha=false,InitialCorruptCheck=true"}, nil, checks{false, true}, ""},
		{[]string{"--feature-gates=AllAlpha=false", "--initial-corrupt-check=true"}, nil, checks{false, true}, ""},
		{[]string{"--feature-gates=AllAlpha=false"}, map[string]string{"ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED": "true"}, checks{true, false}, ""},
		{[]string{"--feature-gates=AllBeta=false,FastLeaseKeepAlive=true,PriorityRequest=true,SetMemberLocalAddr=false,StopGRPCServiceOnDefrag=true,LeaseCheckpoint=true"}, nil, checks{false, false}, ""},
		{nil, map[string]string{"ETCD_FEATURE_GATES": "InitialCorruptCheck=false"}, checks{true, false}, ""},
		// The command line wins over the environment, as for every flag.
		{[]string{"--feature-gates=CompactHashCheck=false"}, map[string]string{"ETCD_FEATURE_GATES": "InitialCorruptCheck=false"}, checks{false, true}, ""},
		// Agreeing is fine.
		{[]string{"--initial-corrupt-check=false", "--feature-gates=InitialCorruptCheck=false"}, nil, checks{true, false}, ""},
		{[]string{"--feature-gates=CompactHashCheck=true", "--experimental-compact-hash-check-enabled"}, nil, checks{false, false}, ""},

		{[]string{"--initial-corrupt-check=true", "--feature-gates=InitialCorruptCheck=false"}, nil, checks{},
			"cannot specify both flags: --initial-corrupt-check=true and --feature-gates=InitialCorruptCheck=false at the same time, please just use one of them"},
		{[]string{"--feature-gates=InitialCorruptCheck=true", "--experimental-initial-corrupt-check=false"}, nil, checks{},
			"cannot specify both flags: --experimental-initial-corrupt-check=false and --feature-gates=InitialCorruptCheck=true at the same time, please just use one of them"},
		{[]string{"--feature-gates=AllAlpha=false,CompactHashCheck=true"}, map[string]string{"ETCD_COMPACT_HASH_CHECK_ENABLED": "false"}, checks{},
			"cannot specify both flags: --compact-hash-check-enabled=false and --feature-gates=CompactHashCheck=true at the same time, please just use one of them"},
		{nil, map[string]string{"ETCD_FEATURE_GATES": "CompactHashCheck=false", "ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED": "true"}, checks{},
			"cannot specify both flags: --experimental-compact-hash-check-enabled=true and --feature-gates=CompactHashCheck=false at the same time, please just use one of them"},
		{[]string{"--feature-gates=LeaseCheckpointPersist=true"}, nil, checks{}, "enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint"},
		{[]string{"--feature-gates=AllAlpha=true,LeaseCheckpoint=false"}, nil, checks{}, "enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint"},
		{[]string{"--feature-gates=LeaseCheckpointPersist=true,LeaseCheckpoint=true"}, nil, checks{false, false}, ""},
	} {
		o, err := parse(c.args, io.Discard, envOf(c.env))
		if err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		cfg, _, err := o.config(zap.NewNop())
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%v %v: error %v, want %q", c.args, c.env, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %v: %v", c.args, c.env, err)
			continue
		}
		if got := (checks{cfg.NoInitialCorruptCheck, cfg.NoCompactHashCheck}); got != c.want {
			t.Errorf("%v %v: %+v, want %+v", c.args, c.env, got, c.want)
		}
	}
}

// TestFeatureGatesSources: the flag, ETCD_FEATURE_GATES and the config
// file's feature-gates give the same options, and the gates without effect
// are listed for the start-up log.
func TestFeatureGatesSources(t *testing.T) {
	const gates = "CompactHashCheck=false, StopGRPCServiceOnDefrag=true,,AllBeta=false"
	fromFlag, err := parse([]string{"--feature-gates", gates}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	fromEnv, err := parse(nil, io.Discard, envOf(map[string]string{"ETCD_FEATURE_GATES": gates}))
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "feature-gates: \""+gates+"\"\n")
	fromFile, err := parse([]string{"--config-file", path}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	fromFile.configFile = ""
	if want := [][2]string{{"ETCD_FEATURE_GATES", gates}}; !reflect.DeepEqual(fromEnv.envUsed, want) {
		t.Errorf("variables used %q, want %q", fromEnv.envUsed, want)
	}
	fromEnv.envUsed = nil
	if !reflect.DeepEqual(fromFlag, fromEnv) || !reflect.DeepEqual(fromFlag, fromFile) {
		t.Fatalf("flag:\n%+v\nenvironment:\n%+v\nfile:\n%+v", fromFlag, fromEnv, fromFile)
	}
	cfg, _, err := fromFile.config(zap.NewNop())
	if err != nil || !cfg.NoCompactHashCheck || cfg.NoInitialCorruptCheck {
		t.Fatalf("%+v %v", cfg, err)
	}
	want := []string{"FastLeaseKeepAlive=false", "StopGRPCServiceOnDefrag=true", "TxnModeWriteWithSharedBuffer=false"}
	if got := fromFile.featureGates.noEffect(); !reflect.DeepEqual(got, want) {
		t.Fatalf("gates without effect %q, want %q", got, want)
	}

	// Empty, as in etcd, sets nothing.
	for _, text := range []string{"feature-gates:\n", "feature-gates: \"\"\n"} {
		o, err := parse([]string{"--config-file", writeFile(t, text)}, io.Discard, noEnv)
		if err != nil || o.featureGates.String() != "" {
			t.Errorf("%q: %+v %v", text, o, err)
		}
	}
	// A conflict with a key of the file is found as with flags.
	o, err := parse([]string{"--config-file", writeFile(t, "initial-corrupt-check: true\nfeature-gates: InitialCorruptCheck=false\n")}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := o.config(zap.NewNop()); err == nil || !strings.Contains(err.Error(), "--initial-corrupt-check=true and --feature-gates=InitialCorruptCheck=false") {
		t.Fatalf("conflict in the file: %v", err)
	}
}

func TestFeatureGatesConfigFileErrors(t *testing.T) {
	for _, c := range []struct{ text, err string }{
		{"feature-gates: Foo=true\n", `key "feature-gates": invalid value "Foo=true": unrecognized feature gate: Foo`},
		{"feature-gates: CompactHashCheck=maybe\n", `key "feature-gates": invalid value "CompactHashCheck=maybe": invalid value of CompactHashCheck=maybe, err: strconv.ParseBool`},
		// etcd's key is a string, not a mapping or a list.
		{"feature-gates: {CompactHashCheck: true}\n", `key "feature-gates": want a string`},
		{"feature-gates: [CompactHashCheck=true]\n", `key "feature-gates": want a string`},
		{"feature-gates: true\n", `key "feature-gates": want a string`},
	} {
		path := writeFile(t, c.text)
		_, err := parse([]string{"--config-file", path}, io.Discard, noEnv)
		var fe *configFileError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q: error %v, want a config file error containing %q", c.text, err, c.err)
		}
	}
}

// gateErrorCases are refused values, with the first line etcd 3.7.3
// writes to stderr and its exit status: 2 for a value the flag refuses.
var gateErrorCases = []struct {
	value string
	line  string
}{
	{"Foo=true", `invalid value "Foo=true" for flag -feature-gates: unrecognized feature gate: Foo`},
	{"CompactHashCheck=maybe", `invalid value "CompactHashCheck=maybe" for flag -feature-gates: invalid value of CompactHashCheck=maybe, err: strconv.ParseBool: parsing "maybe": invalid syntax`},
	{"CompactHashCheck", `invalid value "CompactHashCheck" for flag -feature-gates: missing bool value for CompactHashCheck`},
	{"CompactHashCheck=", `invalid value "CompactHashCheck=" for flag -feature-gates: invalid value of CompactHashCheck=, err: strconv.ParseBool: parsing "": invalid syntax`},
	{"compacthashcheck=true", `invalid value "compacthashcheck=true" for flag -feature-gates: unrecognized feature gate: compacthashcheck`},
}

// TestFeatureGatesErrors: the command exits as etcd does on a refused
// value: status 2 and etcd's line on stderr (then the usage); in the
// environment, status 1 and etcd's "failed to verify flags" warning with
// etcd's message; LeaseCheckpointPersist without LeaseCheckpoint, status 1
// and etcd's error, logged.
func TestFeatureGatesErrors(t *testing.T) {
	for _, c := range gateErrorCases {
		var stderr strings.Builder
		code := run(context.Background(), []string{"--feature-gates=" + c.value}, io.Discard, &stderr, noEnv)
		if first, _, _ := strings.Cut(stderr.String(), "\n"); code != 2 || first != c.line {
			t.Errorf("%q: exit %d, stderr %q; want 2, %q", c.value, code, first, c.line)
		}
	}
	envLogs := framework.NewOutput()
	code := run(context.Background(), nil, io.Discard, envLogs, envOf(map[string]string{"ETCD_FEATURE_GATES": "Foo=true"}))
	if e := failedToVerify(t, envLogs.String()); code != 1 || e != `invalid value "Foo=true" for ETCD_FEATURE_GATES: unrecognized feature gate: Foo` {
		t.Errorf("environment: exit %d, error %q; want 1 and etcd's error", code, e)
	}
	logs := framework.NewOutput()
	if code := run(context.Background(), []string{"--feature-gates=LeaseCheckpointPersist=true"}, io.Discard, logs, noEnv); code != 1 {
		t.Fatalf("LeaseCheckpointPersist alone: exit %d, want 1\n%s", code, logs)
	}
	var e struct{ Level, Msg, Error string }
	if err := json.Unmarshal([]byte(logs.String()), &e); err != nil || e.Level != "error" ||
		e.Error != "enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint" {
		t.Fatalf("log %q (%v)", logs.String(), err)
	}
}

// TestFeatureGatesErrorsMatchEtcd runs the reference etcd with the refused
// values of TestFeatureGatesErrors: its first line on stderr and its exit
// status must be the ones Cairn copies.
func TestFeatureGatesErrorsMatchEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the reference etcd")
	}
	etcdBin, _, err := reference.Binaries()
	if err != nil {
		t.Skipf("reference binaries unavailable: %v", err)
	}
	etcd := func(args []string, env ...string) (string, int) {
		t.Helper()
		// Refused before it opens anything; the timeout only guards
		// against a value etcd would accept.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, etcdBin, args...)
		cmd.Dir = t.TempDir()
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || ctx.Err() != nil {
			t.Fatalf("etcd %v: %v, want it to refuse the value\n%s", args, err, out)
		}
		return string(out), exit.ExitCode()
	}
	for _, c := range gateErrorCases {
		out, code := etcd([]string{"--feature-gates=" + c.value})
		if first, _, _ := strings.Cut(out, "\n"); code != 2 || first != c.line {
			t.Errorf("etcd --feature-gates=%s: exit %d, %q; Cairn copies 2, %q", c.value, code, first, c.line)
		}
	}
	// etcd logs these and exits with 1; the error texts are Cairn's.
	for _, c := range []struct {
		args []string
		env  []string
		want string
	}{
		{nil, []string{"ETCD_FEATURE_GATES=Foo=true"}, `invalid value "Foo=true" for ETCD_FEATURE_GATES: unrecognized feature gate: Foo`},
		{[]string{"--feature-gates=LeaseCheckpointPersist=true"}, nil, "enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint"},
	} {
		out, code := etcd(c.args, c.env...)
		found := false
		for _, line := range strings.Split(out, "\n") {
			var e struct{ Msg, Error string }
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "failed to verify flags" && e.Error == c.want {
				found = true
			}
		}
		if code != 1 || !found {
			t.Errorf("etcd %v %v: exit %d, want 1 and %q logged:\n%s", c.args, c.env, code, c.want, out)
		}
	}
}

// TestDocumentedFeatureGates: docs/operations.md has a row for every gate.
func TestDocumentedFeatureGates(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range featureGates {
		if row := fmt.Sprintf("| `%s` | %s, `%t` |", g.name, g.stage, g.etcdDefault); !strings.Contains(string(doc), row) {
			t.Errorf("docs/operations.md has no row %q", row)
		}
	}
}

// TestFeatureGatesReported: etcd_server_feature_enabled (server.Config's
// FeatureGates) reports what the member does: a gate with a Cairn option
// is that option's value, AllAlpha and AllBeta are what they were given,
// and a gate without effect is what Cairn always does, whatever it was
// given.
func TestFeatureGatesReported(t *testing.T) {
	for _, c := range []struct {
		args []string
		want map[string]bool // the gates that are on; every other is off
	}{
		{nil, map[string]bool{"CompactHashCheck": true, "InitialCorruptCheck": true, "FastLeaseKeepAlive": true,
			"LeaseCheckpoint": true, "LeaseCheckpointPersist": true}},
		{[]string{"--feature-gates=AllAlpha=true,StopGRPCServiceOnDefrag=true,FastLeaseKeepAlive=false", "--lease-checkpoint-interval=-1s",
			"--initial-corrupt-check=false"},
			map[string]bool{"AllAlpha": true, "CompactHashCheck": true, "FastLeaseKeepAlive": true}},
		{[]string{"--feature-gates=AllAlpha=false,AllBeta=true"}, map[string]bool{"AllBeta": true, "FastLeaseKeepAlive": true,
			"LeaseCheckpoint": true, "LeaseCheckpointPersist": true}},
	} {
		o, err := parse(c.args, io.Discard, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := o.config(zap.NewNop())
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if len(cfg.FeatureGates) != len(featureGates) {
			t.Fatalf("%v: %d gates reported, want %d", c.args, len(cfg.FeatureGates), len(featureGates))
		}
		for _, g := range cfg.FeatureGates {
			if g.Enabled != c.want[g.Name] || g.Stage != lookupGate(g.Name).stage {
				t.Errorf("%v: %+v, want enabled %t", c.args, g, c.want[g.Name])
			}
		}
	}
}
