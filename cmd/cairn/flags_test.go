package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/server"
)

// TestLeaseCheckpointFlags: etcd's current and experimental names both set
// the checkpoint interval, from flags or ETCD_* variables, and reach the
// server config; --lease-checkpoint-persist is accepted.
func TestLeaseCheckpointFlags(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, c := range []struct {
		args []string
		env  map[string]string
		want time.Duration
	}{
		{nil, nil, 5 * time.Minute},
		{[]string{"--lease-checkpoint-interval", "2s"}, nil, 2 * time.Second},
		{[]string{"--experimental-lease-checkpoint-interval=3s", "--lease-checkpoint-persist=true"}, nil, 3 * time.Second},
		{[]string{"--experimental-enable-lease-checkpoint-persist"}, map[string]string{"ETCD_LEASE_CHECKPOINT_INTERVAL": "4s"}, 4 * time.Second},
	} {
		getenv := noEnv
		if c.env != nil {
			getenv = func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
		}
		o, err := parse(c.args, io.Discard, getenv)
		if err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		cfg, _, err := o.config(zap.NewNop())
		if err != nil {
			t.Fatalf("%v %v: config: %v", c.args, c.env, err)
		}
		if cfg.LeaseCheckpointInterval != c.want {
			t.Errorf("%v %v: interval %v, want %v", c.args, c.env, cfg.LeaseCheckpointInterval, c.want)
		}
	}
}

// TestClusterFlags: etcd's clustering flags, and their ETCD_* variables,
// reach the server config with etcd's defaults and meanings.
func TestClusterFlags(t *testing.T) {
	config := func(args []string, env map[string]string) server.Config {
		t.Helper()
		o, err := parse(args, io.Discard, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := o.config(zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	def := config(nil, nil)
	if def.InitialClusterState != "new" || def.NoStrictReconfigCheck || def.MaxLearners != 1 ||
		def.ForceNewCluster || def.SnapshotCatchUpEntries != 5000 || def.MaxSnapshots != 5 {
		t.Fatalf("defaults: %+v", def)
	}
	got := config([]string{
		"--initial-cluster-state=existing", "--strict-reconfig-check=false", "--max-learners=3",
		"--force-new-cluster", "--experimental-snapshot-catchup-entries=7", "--max-snapshots=0", "--max-wals=2",
	}, nil)
	if got.InitialClusterState != "existing" || !got.NoStrictReconfigCheck || got.MaxLearners != 3 ||
		!got.ForceNewCluster || got.SnapshotCatchUpEntries != 7 || got.MaxSnapshots >= 0 {
		t.Fatalf("flags: %+v", got)
	}
	// etcd 3.5's names of options etcd 3.6 renamed (kubeadm's manifests
	// give --experimental-watch-progress-notify-interval).
	old := config([]string{"--experimental-max-learners=2", "--experimental-watch-progress-notify-interval=5s",
		"--experimental-warning-apply-duration=200ms", "--experimental-warning-unary-request-duration=2s"}, nil)
	if old.MaxLearners != 2 || old.WatchProgressNotifyInterval != 5*time.Second || old.WarningApplyDuration != 200*time.Millisecond ||
		old.WarningUnaryRequestDuration != 2*time.Second {
		t.Fatalf("etcd 3.5's flag names: %+v", old)
	}
	env := config(nil, map[string]string{"ETCD_SNAPSHOT_CATCHUP_ENTRIES": "9", "ETCD_MAX_SNAPSHOTS": "2", "ETCD_FORCE_NEW_CLUSTER": "true"})
	if env.SnapshotCatchUpEntries != 9 || env.MaxSnapshots != 2 || !env.ForceNewCluster {
		t.Fatalf("environment: %+v", env)
	}
}

// TestMetricsFlag: --metrics (or ETCD_METRICS) reaches the server config,
// basic by default; other values than etcd's two are refused.
func TestMetricsFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
		err  bool
	}{
		{nil, nil, server.MetricsBasic, false},
		{[]string{"--metrics=extensive"}, nil, server.MetricsExtensive, false},
		{nil, map[string]string{"ETCD_METRICS": "extensive"}, server.MetricsExtensive, false},
		{[]string{"--metrics", "basic"}, map[string]string{"ETCD_METRICS": "extensive"}, server.MetricsBasic, false},
		{[]string{"--metrics", "full"}, nil, "", true},
	} {
		o, err := parse(c.args, io.Discard, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		if err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		cfg, _, err := o.config(zap.NewNop())
		if (err != nil) != c.err || cfg.Metrics != c.want {
			t.Errorf("%v %v: metrics %q, error %v; want %q, error %v", c.args, c.env, cfg.Metrics, err, c.want, c.err)
		}
	}
}

// TestCorruptCheckFlags: the corruption checks are on by default; etcd's
// names (plain, and etcd 3.5's --experimental- ones) and their ETCD_*
// variables turn them off or set their periods, etcd's 0 turning the
// periodic check off; etcd's validation of the periods applies.
func TestCorruptCheckFlags(t *testing.T) {
	type checks struct {
		noInitial       bool
		periodic        time.Duration
		noCompact       bool
		compactInterval time.Duration
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want checks
		err  string
	}{
		{nil, nil, checks{false, time.Hour, false, time.Minute}, ""},
		{[]string{"--initial-corrupt-check=false", "--corrupt-check-time=0", "--compact-hash-check-enabled=false"}, nil, checks{true, -1, true, time.Minute}, ""},
		{[]string{"--experimental-initial-corrupt-check=false", "--experimental-corrupt-check-time=2m",
			"--experimental-compact-hash-check-enabled=false", "--experimental-compact-hash-check-time=30s"}, nil, checks{true, 2 * time.Minute, true, 30 * time.Second}, ""},
		{[]string{"--corrupt-check-time", "1h"}, map[string]string{"ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK": "false", "ETCD_COMPACT_HASH_CHECK_TIME": "10s"},
			checks{true, time.Hour, false, 10 * time.Second}, ""},
		{[]string{"--compact-hash-check-time=0"}, nil, checks{}, "--compact-hash-check-time must be >0 (set to 0s)"},
		{[]string{"--corrupt-check-time=-1s"}, nil, checks{}, "--corrupt-check-time must be >=0 (set to -1s)"},
	} {
		o, err := parse(c.args, io.Discard, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		if err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		cfg, _, err := o.config(zap.NewNop())
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%v: error %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v %v: config: %v", c.args, c.env, err)
		}
		got := checks{cfg.NoInitialCorruptCheck, cfg.CorruptCheckTime, cfg.NoCompactHashCheck, cfg.CompactHashCheckTime}
		if got != c.want {
			t.Errorf("%v %v: %+v, want %+v", c.args, c.env, got, c.want)
		}
	}
}

// TestURLSchemes: a URL that is neither http nor https, or an https URL
// to listen on without a certificate, is refused before anything starts,
// whichever flag or variable gives it, with etcd's messages.
func TestURLSchemes(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--listen-peer-urls", "https://127.0.0.1:2380"}, nil, "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented"},
		{[]string{"--listen-client-urls", "https://127.0.0.1:2379"}, nil, "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"},
		{nil, map[string]string{"ETCD_LISTEN_PEER_URLS": "http://127.0.0.1:2380,ftp://peer"}, `scheme "ftp" is not supported (use http, https, unix or unixs)`},
		{[]string{"--initial-advertise-peer-urls", "ftp://peer"}, nil, `scheme "ftp" is not supported (use http, https, unix or unixs)`},
		{[]string{"--tls-min-version", "TLS1.1"}, nil, `unexpected TLS version "TLS1.1" (must be one of: TLS1.2, TLS1.3)`},
		{[]string{"--tls-min-version", "TLS1.3", "--tls-max-version", "TLS1.2"}, nil, "min version (TLS1.3) is greater than max version (TLS1.2)"},
		{[]string{"--tls-min-version", "TLS1.3", "--cipher-suites", "TLS_AES_128_GCM_SHA256"}, nil, "cipher suites cannot be configured when only TLS1.3 is enabled"},
		{[]string{"--cipher-suites", "TLS_NULL"}, nil, `unexpected TLS cipher suite "TLS_NULL"`},
	} {
		o, err := parse(c.args, io.Discard, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := o.config(zap.NewNop()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v, want %q", c.args, c.env, err, c.want)
		}
	}
}

// TestNoEffectFlags: etcd's tuning options for parts Cairn does not have
// are accepted with etcd's types (a bad value is refused), and the member
// says at start-up that they have no effect.
func TestNoEffectFlags(t *testing.T) {
	o, err := parse([]string{"--backend-batch-limit=100", "--raft-read-timeout=3s"}, io.Discard, noEnv)
	if err != nil || !reflect.DeepEqual(o.noEffect, []string{"backend-batch-limit=100", "raft-read-timeout=3s"}) {
		t.Fatalf("%q %v", o.noEffect, err)
	}
	if _, err := parse([]string{"--compaction-sleep-interval=soon"}, io.Discard, noEnv); err == nil {
		t.Fatal("a bad duration was accepted")
	}
	// v3 discovery's client options do nothing without its endpoints, in
	// etcd too; --discovery-fallback takes etcd's two values and, as etcd,
	// refuses the v2 proxy.
	o, err = parse([]string{"--discovery-dial-timeout=3s", "--discovery-fallback=exit"}, io.Discard, noEnv)
	if err != nil || !reflect.DeepEqual(o.noEffect, []string{"discovery-dial-timeout=3s"}) {
		t.Fatalf("%q %v", o.noEffect, err)
	}
	if _, err := parse([]string{"--discovery-fallback=proxy"}, io.Discard, noEnv); err == nil || err.Error() != `v2 proxy is deprecated, and --discovery-fallback can't be configured as "proxy"` {
		t.Errorf("--discovery-fallback=proxy: %v", err)
	}
	if _, err := parse([]string{"--discovery-fallback=retry"}, io.Discard, noEnv); err == nil || !strings.Contains(err.Error(), "invalid value") {
		t.Errorf("--discovery-fallback=retry: %v", err)
	}
	r := startMember(t, "--listen-client-urls", "http://127.0.0.1:0", "--compaction-batch-limit=5")
	if err := r.logs.Wait(r.exited, 30*time.Second, func(out string) bool {
		return strings.Contains(out, `"msg":"flags that have no effect in cairn","flags":["compaction-batch-limit=5"]`)
	}); err != nil {
		t.Fatalf("%v:\n%s", err, r.logs)
	}
	r.stop(t)
}

// TestEnvironmentUnsupportedOption: the variable of an etcd option Cairn
// does not implement is refused, as the flag and the config-file key are,
// unless it is empty (no value, as in etcd); a variable no etcd option
// reads is only reported. (tests/e2e compares the rest with etcd.)
func TestEnvironmentUnsupportedOption(t *testing.T) {
	t.Setenv("ETCD_AUTH_TOKEN", "jwt,pub-key=a.pub")
	if _, err := parse(nil, io.Discard, os.LookupEnv); err == nil || !strings.Contains(err.Error(), "--auth-token=jwt,pub-key=a.pub: etcd's option is not supported by cairn") {
		t.Errorf("ETCD_AUTH_TOKEN set: %v", err)
	}
	t.Setenv("ETCD_AUTH_TOKEN", "")
	t.Setenv("ETCD_NOT_AN_OPTION", "x")
	o, err := parse(nil, io.Discard, os.LookupEnv)
	if err != nil || !slices.Contains(o.envUnknown, "ETCD_AUTH_TOKEN=") || !slices.Contains(o.envUnknown, "ETCD_NOT_AN_OPTION=x") {
		t.Errorf("empty ETCD_AUTH_TOKEN: %v, unrecognized %q", err, o.envUnknown)
	}
	// Variables the given lookup does not see are not the process's.
	if o, err := parse(nil, io.Discard, noEnv); err != nil || len(o.envUnknown) != 0 {
		t.Errorf("with no environment: %v, unrecognized %q", err, o.envUnknown)
	}
}

// TestHelpListsFlagsAsEtcd: --help lists every flag as etcd's help does,
// "--name" at the start of a line, which is what tools match to learn
// whether the server has an option (envtest: `(?m)^\s*--unsafe-no-fsync\b`).
func TestHelpListsFlagsAsEtcd(t *testing.T) {
	var out strings.Builder
	if code := run(context.Background(), []string{"--help"}, io.Discard, &out, noEnv); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	fs := newFlagSet(&options{}, io.Discard)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if !regexp.MustCompile(`(?m)^\s*--` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(out.String()) {
			t.Errorf("--help has no line for --%s", f.Name)
		}
	})
	if n < 100 || !strings.Contains(out.String(), "--unsafe-no-fsync\n") || !strings.Contains(out.String(), `(default "default")`) {
		t.Errorf("%d flags; help:\n%s", n, out.String())
	}
}

// TestDefaultOnlyFlags: etcd's options for features Cairn lacks are
// accepted at etcd's default, from the command line, the environment or
// the config file, and stop the member at any other value, as etcd stops
// on an invalid configuration: exit status 1, "failed to verify flags".
func TestDefaultOnlyFlags(t *testing.T) {
	for _, f := range defaultOnlyFlags {
		def := fmt.Sprint(f.value)
		other := map[string]string{"string": "x", "bool": "true"}[fmt.Sprintf("%T", f.value)]
		if other == "" {
			other = "1" // the numbers, whose defaults are 0 or more than 1
		}
		// sources gives option f the value v on the command line, in the
		// environment and in a config file.
		type source struct {
			how  string
			args []string
			env  map[string]string
		}
		sources := func(v string) []source {
			file := v
			if _, ok := f.value.(string); ok {
				file = fmt.Sprintf("%q", v)
			}
			return []source{
				{"flag", []string{"--" + f.name + "=" + v}, nil},
				{"environment", nil, map[string]string{envName(f.name): v}},
				{"file", []string{"--config-file", writeFile(t, f.name+": "+file+"\n")}, nil},
			}
		}
		for _, c := range sources(def) {
			if _, err := parse(c.args, io.Discard, envOf(c.env)); err != nil {
				t.Errorf("%s %s at etcd's default %q: %v", c.how, f.name, def, err)
			}
		}
		for _, c := range sources(other) {
			var out strings.Builder
			code := run(context.Background(), c.args, io.Discard, &out, envOf(c.env))
			if want := "--" + f.name + "=" + other + ": etcd's option is not supported by cairn"; code != 1 || !strings.Contains(failedToVerify(t, out.String()), want) {
				t.Errorf("%s %s=%s: exit %d, log %s; want 1 and %q", c.how, f.name, other, code, out.String(), want)
			}
		}
	}
}

// TestDeprecatedFlags: --max-snapshots and --v2-deprecation are accepted
// with etcd's warnings, from any source; --v2-deprecation takes etcd's four
// stages only and, as in etcd v3.7, changes nothing.
func TestDeprecatedFlags(t *testing.T) {
	want := []string{deprecatedFlags["max-snapshots"], deprecatedFlags["v2-deprecation"]}
	for _, c := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"--max-snapshots", "3", "--v2-deprecation", "gone"}, nil},
		{nil, map[string]string{"ETCD_MAX_SNAPSHOTS": "3", "ETCD_V2_DEPRECATION": "not-yet"}},
		{[]string{"--config-file", writeFile(t, "max-snapshots: 3\nv2-deprecation: write-only-drop-data\n")}, nil},
	} {
		o, err := parse(c.args, io.Discard, envOf(c.env))
		if err != nil || !reflect.DeepEqual(o.deprecated, want) {
			t.Errorf("%v %v: %v, warnings %q", c.args, c.env, err, o.deprecated)
		}
	}
	var stderr strings.Builder
	if _, err := parse([]string{"--v2-deprecation=bogus"}, &stderr, noEnv); err == nil ||
		!strings.Contains(stderr.String(), `invalid value "bogus" for flag -v2-deprecation: invalid value "bogus"`) {
		t.Errorf("bogus stage: %v, %q", err, stderr.String())
	}
}

// TestCORSOrigins: --cors takes what etcd's URL list takes ("*", http and
// https URLs with host:port and no path, unix URLs) and refuses the rest
// with etcd's errors (tests/e2e compares the served headers with etcd).
func TestCORSOrigins(t *testing.T) {
	o, err := parse([]string{"--cors", "http://a.example:80, *,unix://sock"}, io.Discard, noEnv)
	if err != nil || !reflect.DeepEqual(o.cors, []string{"*", "http://a.example:80", "unix://sock"}) {
		t.Errorf("origins %q, %v", o.cors, err)
	}
	for v, want := range map[string]string{
		"http://a.example": `URL address does not have the form "host:port": http://a.example`,
		"ftp://a:1":        "URL scheme must be http, https, unix, or unixs: ftp://a:1",
		"http://a:1/p":     "URL must not contain a path: http://a:1/p",
	} {
		var out strings.Builder
		if _, err := parse([]string{"--cors", v}, &out, noEnv); err == nil || !strings.Contains(out.String(), want) {
			t.Errorf("--cors %s: %v, %q; want %q", v, err, out.String(), want)
		}
	}
}
