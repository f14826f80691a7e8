package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/compactor"
	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cairn.conf.yml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileConfig is a config file setting every option to a value other than
// its default, and fileArgs the same as flags.
const fileConfig = `
name: 'infra9'
data-dir: /var/lib/cairn/infra9
wal-dir: /var/lib/cairn-wal/infra9
listen-client-urls: http://127.0.0.1:12379,http://10.0.0.9:2379
listen-client-http-urls: http://127.0.0.1:12378
advertise-client-urls: http://10.0.0.9:2379
listen-peer-urls: http://127.0.0.1:12380
initial-advertise-peer-urls: http://10.0.0.9:2380
listen-metrics-urls: http://127.0.0.1:12381
initial-cluster: infra9=http://10.0.0.9:2380,infra8=http://10.0.0.8:2380
initial-cluster-token: tok-9
initial-cluster-state: existing
strict-reconfig-check: false
force-new-cluster: true
max-learners: 3
snapshot-count: 5000
snapshot-catchup-entries: 77
max-snapshots: 0
max-wals: 9
heartbeat-interval: 50
election-timeout: 750
max-request-bytes: 2097152
max-txn-ops: 256
quota-backend-bytes: 8589934592
watch-progress-notify-interval: 300000000000
warning-apply-duration: 250ms
pre-vote: false
initial-election-tick-advance: false
unsafe-no-fsync: true
v2-deprecation: gone
cors: 'http://a.example:80,https://b.example:443'
host-whitelist: 'localhost,example.net'
enable-grpc-gateway: false
max-concurrent-streams: 1000
warning-unary-request-duration: 1s
lease-checkpoint-interval: 2s
lease-checkpoint-persist: false
auto-compaction-mode: revision
auto-compaction-retention: "1000"
logger: zap
log-level: warn
log-format: console
enable-log-rotation: true
log-rotation-config-json: '{"maxsize": 5}'
log-outputs: [stdout, /var/log/cairn.log]
enable-pprof: true
metrics: extensive
initial-corrupt-check: false
corrupt-check-time: 0
compact-hash-check-enabled: false
compact-hash-check-time: 30s
grpc-keepalive-min-time: 1000000000
grpc-keepalive-interval: 30m
grpc-keepalive-timeout: 5s
feature-gates: "InitialCorruptCheck=false,StopGRPCServiceOnDefrag=true, AllBeta=false"
self-signed-cert-validity: 3
cipher-suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
tls-min-version: TLS1.2
tls-max-version: TLS1.3
socket-options:
  reuse-port: true
  reuse-address: true
backend-batch-interval: 10ms
backend-batch-limit: 100
backend-bbolt-freelist-type: array
compaction-batch-limit: 500
compaction-sleep-interval: 1ms
bootstrap-defrag-threshold-megabytes: 100
downgrade-check-time: 10s
`

var fileArgs = []string{
	"--name", "infra9",
	"--data-dir", "/var/lib/cairn/infra9",
	"--wal-dir", "/var/lib/cairn-wal/infra9",
	"--listen-client-urls", "http://127.0.0.1:12379,http://10.0.0.9:2379",
	"--listen-client-http-urls", "http://127.0.0.1:12378",
	"--advertise-client-urls", "http://10.0.0.9:2379",
	"--listen-peer-urls", "http://127.0.0.1:12380",
	"--initial-advertise-peer-urls", "http://10.0.0.9:2380",
	"--listen-metrics-urls", "http://127.0.0.1:12381",
	"--initial-cluster", "infra9=http://10.0.0.9:2380,infra8=http://10.0.0.8:2380",
	"--initial-cluster-token", "tok-9",
	"--initial-cluster-state", "existing",
	"--strict-reconfig-check=false",
	"--force-new-cluster",
	"--max-learners", "3",
	"--snapshot-count", "5000",
	"--snapshot-catchup-entries", "77",
	"--max-snapshots", "0",
	"--max-wals", "9",
	"--heartbeat-interval", "50",
	"--election-timeout", "750",
	"--max-request-bytes", "2097152",
	"--max-txn-ops", "256",
	"--quota-backend-bytes", "8589934592",
	"--watch-progress-notify-interval", "5m",
	"--warning-apply-duration", "250ms",
	"--pre-vote=false",
	"--initial-election-tick-advance=false",
	"--unsafe-no-fsync",
	"--v2-deprecation=gone",
	"--cors", "http://a.example:80,https://b.example:443",
	"--host-whitelist", "localhost,example.net",
	"--enable-grpc-gateway=false",
	"--max-concurrent-streams=1000",
	"--warning-unary-request-duration", "1s",
	"--lease-checkpoint-interval", "2s",
	"--lease-checkpoint-persist=false",
	"--auto-compaction-mode", "revision",
	"--auto-compaction-retention", "1000",
	"--logger", "zap",
	"--log-level", "warn",
	"--log-format", "console",
	"--enable-log-rotation", "--log-rotation-config-json", `{"maxsize": 5}`,
	"--log-outputs", "stdout,/var/log/cairn.log",
	"--enable-pprof",
	"--metrics", "extensive",
	"--initial-corrupt-check=false",
	"--corrupt-check-time", "0",
	"--compact-hash-check-enabled=false",
	"--compact-hash-check-time", "30s",
	"--grpc-keepalive-min-time", "1s",
	"--grpc-keepalive-interval", "30m",
	"--grpc-keepalive-timeout", "5s",
	"--feature-gates", "InitialCorruptCheck=false,StopGRPCServiceOnDefrag=true, AllBeta=false",
	"--self-signed-cert-validity", "3",
	"--cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	"--tls-min-version", "TLS1.2",
	"--tls-max-version", "TLS1.3",
	"--socket-reuse-port", "--socket-reuse-address",
	"--backend-batch-interval", "10ms", "--backend-batch-limit", "100", "--backend-bbolt-freelist-type", "array",
	"--compaction-batch-limit", "500", "--compaction-sleep-interval", "1ms",
	"--bootstrap-defrag-threshold-megabytes", "100", "--downgrade-check-time", "10s",
}

// TestConfigFileEqualsFlags: a config file gives exactly the options, and
// so the server and compactor configuration, of the same flags.
func TestConfigFileEqualsFlags(t *testing.T) {
	path := writeFile(t, fileConfig)
	fromFile, err := parse([]string{"--config-file", path}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	fromFlags, err := parse(fileArgs, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if fromFile.configFile != path {
		t.Fatalf("configFile %q, want %q", fromFile.configFile, path)
	}
	fromFile.configFile = ""
	if !reflect.DeepEqual(fromFile, fromFlags) {
		t.Fatalf("from the file:\n%+v\nfrom flags:\n%+v", fromFile, fromFlags)
	}
	lg := zap.NewNop()
	fileCfg, fileListen, err := fromFile.config(lg)
	if err != nil {
		t.Fatal(err)
	}
	flagCfg, flagListen, err := fromFlags.config(lg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fileCfg, flagCfg) || !reflect.DeepEqual(fileListen, flagListen) {
		t.Fatalf("server config from the file:\n%+v\nfrom flags:\n%+v", fileCfg, flagCfg)
	}
	if fileCfg.Name != "infra9" || fileCfg.SnapshotCount != 5000 || fileCfg.ElectionTimeout != 750*time.Millisecond ||
		fileCfg.WatchProgressNotifyInterval != 5*time.Minute || fileCfg.MaxSnapshots >= 0 || !fileCfg.NoStrictReconfigCheck ||
		fileCfg.WarningApplyDuration != 250*time.Millisecond || fileCfg.WarningUnaryRequestDuration != time.Second || !fileCfg.NoPreVote || fileCfg.MaxConcurrentStreams != 1000 {
		t.Fatalf("the file's values did not reach the server config: %+v", fileCfg)
	}
	c, err := fromFile.compaction(lg)
	if err != nil || c.Mode != compactor.ModeRevision || c.Revisions != 1000 {
		t.Fatalf("compaction %+v %v", c, err)
	}
	if want := []string{"/var/log/cairn.log", "stdout"}; !slices.Equal(fromFile.logOutputs, want) {
		t.Fatalf("log outputs %q, want %q", fromFile.logOutputs, want)
	}

	// The file above sets every option, so a new flag must be added to it.
	// (The certificate options are set in the transport-security mappings:
	// TestConfigFileTransportSecurity.)
	transportFlags := transportFlags()
	aliases := map[string]bool{
		"config-file": true, "version": true,
		"experimental-snapshot-catchup-entries": true, "experimental-lease-checkpoint-interval": true,
		"experimental-enable-lease-checkpoint-persist":   true,
		"experimental-initial-corrupt-check":             true,
		"experimental-corrupt-check-time":                true,
		"experimental-compact-hash-check-enabled":        true,
		"experimental-compact-hash-check-time":           true,
		"experimental-warning-unary-request-duration":    true,
		"experimental-watch-progress-notify-interval":    true,
		"experimental-warning-apply-duration":            true,
		"experimental-max-learners":                      true,
		"experimental-peer-skip-client-san-verification": true,
		// etcd's rafthttp timeouts are flags only (no config-file key).
		"raft-read-timeout": true, "raft-write-timeout": true,
		// So are v3 discovery's options (the file nests them under
		// discovery-config); the file's discovery-fallback is ignored.
		"discovery-fallback": true,
	}
	for _, f := range noEffectFlags {
		if strings.HasPrefix(f.name, "discovery-") {
			aliases[f.name] = true
		}
	}
	// The options accepted at etcd's default only have their own test
	// (TestDefaultOnlyFlags).
	for _, f := range defaultOnlyFlags {
		aliases[f.name] = true
	}
	newFlagSet(&options{}, io.Discard).VisitAll(func(f *flag.Flag) {
		if !aliases[f.Name] && !transportFlags[f.Name] && !strings.Contains(fileConfig, "\n"+f.Name+":") {
			t.Errorf("fileConfig does not set %s", f.Name)
		}
	})
}

// TestConfigFileIgnoresFlagsAndEnvironment: as in etcd, with a config file
// (from --config-file or ETCD_CONFIG_FILE) other flags and ETCD_*
// variables do not count; keys the file leaves out take the defaults.
func TestConfigFileIgnoresFlagsAndEnvironment(t *testing.T) {
	path := writeFile(t, "name: from-file\n")
	other := writeFile(t, "name: from-env-file\n")
	env := map[string]string{"ETCD_NAME": "from-env", "ETCD_SNAPSHOT_COUNT": "7", "ETCD_CONFIG_FILE": other}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--config-file", path, "--name", "from-flag", "--snapshot-count=9"}, "from-file"},
		{[]string{"--name", "from-flag", "--snapshot-count=9"}, "from-env-file"},
	} {
		o, err := parse(c.args, io.Discard, envOf(env))
		if err != nil {
			t.Fatal(err)
		}
		def, _ := parse(nil, io.Discard, noEnv)
		def.name, def.configFile = c.want, o.configFile
		if !reflect.DeepEqual(o, def) {
			t.Fatalf("%v: %+v, want the defaults with name %q: %+v", c.args, o, c.want, def)
		}
	}
	// --version is still answered without reading the file.
	o, err := parse([]string{"--config-file", "/does/not/exist", "--version"}, io.Discard, noEnv)
	if err != nil || !o.version {
		t.Fatalf("--version with a config file: %+v %v", o, err)
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, c := range []struct{ text, err string }{
		{"nmae: x\n", `unknown key "nmae"`},
		{"config-file: /etc/other.yml\n", `unknown key "config-file"`},
		{"memory-mlock: true\n", `--memory-mlock=true: etcd's option is not supported by cairn`},
		{"cors: 'https://example.com'\n", `key "cors": invalid value "https://example.com": URL address does not have the form "host:port": https://example.com`},
		{"discovery-config:\n  discovery-token: t\n", `key "discovery-config": etcd's option is not supported by cairn`},
		{"cert-file: /etc/cert.pem\n", `unknown key "cert-file"`},
		{"client-transport-security:\n  cert-fil: /etc/cert.pem\n", `unknown key "cert-fil" in "client-transport-security"`},
		{"peer-transport-security: /etc/cert.pem\n", `key "peer-transport-security": want a mapping`},
		{"peer-transport-security:\n  client-cert-auth: 'yes'\n", `key "peer-transport-security.client-cert-auth": want a boolean`},
		{"snapshot-count: many\n", `key "snapshot-count": want an integer, got string many`},
		{"snapshot-count: 1.5\n", `key "snapshot-count": want an integer`},
		{"max-snapshots: -1\n", `key "max-snapshots": invalid value "-1"`},
		{"strict-reconfig-check: 'false'\n", `key "strict-reconfig-check": want a boolean`},
		{"listen-client-urls: [http://a:1, http://b:2]\n", `key "listen-client-urls": want a string`},
		{"log-outputs: {a: b}\n", `key "log-outputs": want a list of strings`},
		{"watch-progress-notify-interval: forever\n", `key "watch-progress-notify-interval": invalid value "forever"`},
		{"watch-progress-notify-interval: true\n", `want integer nanoseconds or a duration string`},
		{"name: a\nname: b\n", `key "name" given twice`},
		{"name: [a\n", "yaml: line 1"},
		{"- name\n", "yaml: unmarshal errors"},
	} {
		path := writeFile(t, c.text)
		_, err := parse([]string{"--config-file", path}, io.Discard, noEnv)
		var fe *configFileError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: error %v, want a config file error naming the file and containing %q", c.text, err, c.err)
		}
	}
	if _, err := parse([]string{"--config-file", "/does/not/exist.yml"}, io.Discard, noEnv); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}

	// Keys of etcd's sample file that are empty mean "not set" there too.
	ok := "name: x\nauth-token:\ndiscovery-srv:\nclient-transport-security:\n  cert-file:\n  client-cert-auth: false\n  auto-tls: false\n  allowed-cn: []\n"
	if _, err := parse([]string{"--config-file", writeFile(t, ok)}, io.Discard, noEnv); err != nil {
		t.Errorf("empty etcd-only keys: %v", err)
	}
	// Empty file, null values: the defaults.
	for _, text := range []string{"", "name:\nsnapshot-count: ~\n"} {
		o, err := parse([]string{"--config-file", writeFile(t, text)}, io.Discard, noEnv)
		if err != nil || o.name != "default" || o.snapshotCount != 10000 {
			t.Errorf("%q: %+v %v", text, o, err)
		}
	}

	// run reports a bad file as etcd does, and exits with 1.
	logs := framework.NewOutput()
	path := writeFile(t, "nmae: x\n")
	if code := run(context.Background(), []string{"--config-file", path}, io.Discard, logs, noEnv); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if e := failedToVerify(t, logs.String()); !strings.Contains(e, `unknown key "nmae"`) {
		t.Fatalf("error %q, log %q", e, logs.String())
	}
}

// failedToVerify returns the error of the log's "failed to verify flags"
// warning, and fails t unless the log is etcd's two lines for it: the
// command line ("Running: "), then the warning.
func failedToVerify(t *testing.T, log string) string {
	t.Helper()
	var lines []struct{ Level, Msg, Error string }
	for line := range strings.Lines(log) {
		var e struct{ Level, Msg, Error string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, e)
	}
	if len(lines) != 2 || lines[0].Msg != "Running: " || lines[1].Level != "warn" || lines[1].Msg != "failed to verify flags" {
		t.Fatalf("log %q, want the command line and the warning \"failed to verify flags\"", log)
	}
	return lines[1].Error
}

// TestCompactionFlags: etcd's rules for the mode and the retention, from
// flags or the environment.
func TestCompactionFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want compactor.Config
		err  string
	}{
		{nil, nil, compactor.Config{Mode: "periodic"}, ""},
		{[]string{"--auto-compaction-retention=1"}, nil, compactor.Config{Mode: "periodic", Retention: time.Hour}, ""},
		{[]string{"--auto-compaction-retention=30m"}, nil, compactor.Config{Mode: "periodic", Retention: 30 * time.Minute}, ""},
		{[]string{"--auto-compaction-mode=revision"}, map[string]string{"ETCD_AUTO_COMPACTION_RETENTION": "500"}, compactor.Config{Mode: "revision", Revisions: 500}, ""},
		{[]string{"--auto-compaction-mode=hourly"}, nil, compactor.Config{}, `unknown auto-compaction-mode "hourly"`},
		{[]string{"--auto-compaction-mode="}, nil, compactor.Config{}, "undefined auto-compaction-mode"},
		{[]string{"--auto-compaction-retention=soon"}, nil, compactor.Config{}, "error parsing CompactionRetention"},
	} {
		o, err := parse(c.args, io.Discard, envOf(c.env))
		if err != nil {
			t.Fatal(err)
		}
		got, err := o.compaction(nil)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%v %v: %+v %v, want %+v", c.args, c.env, got, err, c.want)
		}
	}
}

// TestServeFromConfigFile starts cairn from a config file alone (a flag
// beside it is ignored) and uses it through clientv3; the file's periodic
// auto-compaction runs.
func TestServeFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, `
name: from-file
data-dir: `+filepath.Join(dir, "data")+`
listen-client-urls: http://127.0.0.1:0
listen-peer-urls: http://127.0.0.1:0
heartbeat-interval: 10
election-timeout: 100
auto-compaction-mode: periodic
auto-compaction-retention: 200ms
log-outputs: [stderr]
feature-gates: "StopGRPCServiceOnDefrag=true,LeaseCheckpoint=true,InitialCorruptCheck=false"
`)
	r := start(t, "--config-file", path, "--name", "from-flag")
	logs := r.logs
	addr := r.addresses(t, "ready to serve client requests", 1)[0]
	if loaded := r.addresses(t, "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided", 1); len(loaded) != 1 {
		t.Fatal(loaded)
	}
	if !strings.Contains(logs.String(), `"path":"`+path+`"`) {
		t.Fatalf("the config file's path is not logged:\n%s", logs)
	}
	// After the file is loaded, etcd's "Running: " line gives the command
	// line; the member's start gives the build and the settings in force
	// (the file's name).
	lines := strings.SplitN(logs.String(), "\n", 3)
	var running struct {
		Msg  string
		Args []string
	}
	if len(lines) < 3 || json.Unmarshal([]byte(lines[1]), &running) != nil ||
		running.Msg != "Running: " || !slices.Equal(running.Args[1:], []string{"--config-file", path, "--name", "from-flag"}) {
		t.Fatalf("second log line %+v, want the command line:\n%s", running, logs)
	}
	if !strings.Contains(logs.String(), `"msg":"starting a cairn member","cairn-version":"`+server.Version+`"`) ||
		!strings.Contains(logs.String(), `"name":"from-file","data-dir":"`+filepath.Join(dir, "data")+`"`) {
		t.Fatalf("no start line with the version and the file's settings:\n%s", logs)
	}
	// The gates without effect are logged once, before the member serves.
	if n := strings.Count(logs.String(), `"msg":"feature gates that have no effect in cairn","feature-gates":["LeaseCheckpoint=true","StopGRPCServiceOnDefrag=true"]}`); n != 1 {
		t.Fatalf("%d log lines for the gates without effect, want 1:\n%s", n, logs)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	rctx := framework.Context(t, 30*time.Second)
	put, err := cli.Put(rctx, "k", "v")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(rctx, "k", "v2"); err != nil {
		t.Fatal(err)
	}
	members, err := cli.MemberList(rctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members.Members) != 1 || members.Members[0].Name != "from-file" {
		t.Fatalf("members %v, want one named from-file", members.Members)
	}

	// Within a few retention periods the compactor passes the first put.
	err = logs.Wait(r.exited, 30*time.Second, func(out string) bool {
		for _, line := range strings.Split(out, "\n") {
			var e struct {
				Msg      string
				Revision int64
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "completed auto periodic compaction" && e.Revision > put.Header.Revision {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no auto compaction past revision %d: %v\n%s", put.Header.Revision, err, logs)
	}
	if _, err := cli.Get(rctx, "k", clientv3.WithRev(put.Header.Revision)); !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("get at revision %d: %v, want %v", put.Header.Revision, err, rpctypes.ErrCompacted)
	}

	r.stop(t)
}

// TestEnvironmentVersionIgnored: ETCD_VERSION, which container images often
// set to their version, is not --version (etcd ignores it too).
func TestEnvironmentVersionIgnored(t *testing.T) {
	o, err := parse(nil, io.Discard, envOf(map[string]string{"ETCD_VERSION": "3.5.17"}))
	if err != nil || o.version {
		t.Fatalf("%+v %v", o, err)
	}
}

// TestDocumentedConfigFile: the example of docs/operations.md is valid.
func TestDocumentedConfigFile(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml example in docs/operations.md")
	}
	o, err := parse([]string{"--config-file", writeFile(t, example)}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := o.config(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	c, err := o.compaction(nil)
	if err != nil || cfg.Name != "infra1" || len(cfg.ClientURLs) != 1 || c.Retention != time.Hour {
		t.Fatalf("%+v %+v %v", cfg, c, err)
	}
}

// TestEtcdSampleConfigFile: a file with every key of etcd's sample
// configuration (etcd.conf.yml.sample, v3.4 to v3.7), with the sample's
// values but loopback ports and a temporary data dir, starts a member.
// The sample still carries v2 proxy and discovery keys that etcd v3.7
// ignores; Cairn ignores them too and says so once.
func TestEtcdSampleConfigFile(t *testing.T) {
	path := writeFile(t, `name: 'default'
data-dir: `+t.TempDir()+`
wal-dir:
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0
listen-peer-urls: http://127.0.0.1:0
listen-client-urls: http://127.0.0.1:0
max-snapshots: 5
max-wals: 5
cors:
initial-advertise-peer-urls: http://localhost:2380
advertise-client-urls: http://localhost:2379
discovery:
discovery-fallback: 'proxy'
discovery-proxy:
discovery-srv:
initial-cluster:
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-pprof: true
proxy: 'off'
proxy-failure-wait: 5000
proxy-refresh-interval: 30000
proxy-dial-timeout: 1000
proxy-write-timeout: 5000
proxy-read-timeout: 0
client-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
peer-transport-security:
  cert-file:
  key-file:
  client-cert-auth: false
  trusted-ca-file:
  auto-tls: false
self-signed-cert-validity: 1
log-level: debug
logger: zap
log-outputs: [stderr]
force-new-cluster: false
auto-compaction-mode: periodic
auto-compaction-retention: "1"
cipher-suites: [
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
]
tls-min-version: 'TLS1.2'
tls-max-version: 'TLS1.3'
`)
	r := start(t, "--config-file", path)
	addr := r.addresses(t, "ready to serve client requests", 1)[0]
	want := `"msg":"config file keys etcd v3.7 no longer has; ignored","keys":["discovery-fallback","proxy","proxy-failure-wait","proxy-refresh-interval","proxy-dial-timeout","proxy-write-timeout","proxy-read-timeout"]}`
	if n := strings.Count(r.logs.String(), want); n != 1 {
		t.Errorf("%d log lines with %s, want 1:\n%s", n, want, r.logs)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := framework.Context(t, 30*time.Second)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if resp, err := cli.Get(ctx, "k"); err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v %v", resp, err)
	}
	r.stop(t)

	// A key of a current etcd option Cairn does not implement is still
	// refused, and so is a typo.
	for _, text := range []string{"memory-mlock: true\n", "proxi: 'off'\n"} {
		if _, err := parse([]string{"--config-file", writeFile(t, text)}, io.Discard, noEnv); err == nil {
			t.Errorf("%q accepted", text)
		}
	}
}
