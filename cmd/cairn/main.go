package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-kv/cairn/compactor"
	"github.com/cairn-kv/cairn/internal/fsutil"
	"github.com/cairn-kv/cairn/internal/memberurl"
	"github.com/cairn-kv/cairn/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	routeGRPCLog = true
	setProcs(os.LookupEnv)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

// options are the parsed flags.
type options struct {
	name, dataDir, walDir                           string
	listenClientURLs, advertiseClientURLs           string
	listenClientHTTPURLs                            string
	listenMetricsURLs                               string
	listenPeerURLs, initialAdvertisePeerURLs        string
	strictReconfigCheck, forceNewCluster            bool
	maxLearners                                     int
	initialCluster, initialClusterState, clusterTok string
	snapshotCount, snapshotCatchUpEntries           uint64
	maxSnapshots                                    uint
	heartbeatMs, electionMs                         uint
	maxRequestBytes, maxTxnOps                      uint
	quotaBackendBytes                               int64
	watchProgressNotifyInterval                     time.Duration
	warningApplyDuration                            time.Duration
	preVote                                         bool
	initialElectionTickAdvance                      bool
	unsafeNoFsync                                   bool
	enableGRPCGateway                               bool
	maxConcurrentStreams                            uint64
	warningUnaryRequestDuration                     time.Duration
	leaseCheckpointInterval                         time.Duration
	leaseCheckpointPersist                          bool
	initialCorruptCheck, compactHashCheck           bool
	corruptCheckTime, compactHashCheckTime          time.Duration
	grpcKeepaliveMinTime, grpcKeepaliveInterval     time.Duration
	grpcKeepaliveTimeout                            time.Duration
	logger, logLevel, logFormat                     string
	logOutputs                                      []string
	cors, hostWhitelist                             []string
	enableLogRotation                               bool
	logRotationConfigJSON                           string
	autoCompactionMode, autoCompactionRetention     string
	enablePprof                                     bool
	metrics                                         string
	version                                         bool
	// featureGates is --feature-gates (gates.go).
	featureGates gateValues
	// gatedFlags maps a gate that switches an option to the flag that set
	// that option explicitly, if one did (noteGatedFlags).
	gatedFlags map[string]string
	// configFile is the --config-file the options came from, if any.
	configFile string
	// tls are the security flags (tls.go).
	tls tlsOptions
	// socket are the listeners' socket options (sockopt.go).
	socket socketOptions
	// noEffect are the no-effect flags given, as name=value (noeffect.go).
	noEffect []string
	// ignoredKeys are the config file's keys of older etcd versions that
	// were given a value (configfile.go).
	ignoredKeys []string
	// envUsed are the ETCD_* variables that set flags, as name and value;
	// envVersion is ETCD_VERSION's value, which is ignored; envUnknown are
	// the ETCD_* variables no flag reads, as name=value (readEnv).
	envUsed    [][2]string
	envVersion string
	envUnknown []string
	// deprecated are etcd's warnings for the deprecated flags given.
	deprecated []string
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("cairn", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(fs) }
	fs.StringVar(&o.name, "name", server.DefaultName, "Human-readable name for this member.")
	fs.StringVar(&o.dataDir, "data-dir", "", "Path to the data directory (default \"${name}.cairn\").")
	fs.StringVar(&o.walDir, "wal-dir", "", "Path to the dedicated wal directory (default: the data directory's member/wal).")
	fs.StringVar(&o.listenClientURLs, "listen-client-urls", "http://localhost:2379", "List of URLs to listen on for client traffic.")
	fs.StringVar(&o.listenClientHTTPURLs, "listen-client-http-urls", "", "List of URLs to listen on for http only client traffic. Enabling this flag removes http services from --listen-client-urls.")
	fs.StringVar(&o.advertiseClientURLs, "advertise-client-urls", "http://localhost:2379", "List of this member's client URLs to advertise to the public.")
	fs.StringVar(&o.listenMetricsURLs, "listen-metrics-urls", "", "List of URLs to listen on for the /metrics and /health endpoints.")
	fs.StringVar(&o.listenPeerURLs, "listen-peer-urls", "http://localhost:2380", "List of URLs to listen on for peer traffic.")
	fs.StringVar(&o.initialAdvertisePeerURLs, "initial-advertise-peer-urls", "http://localhost:2380", "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.StringVar(&o.initialCluster, "initial-cluster", "", "Initial cluster configuration for bootstrapping (default \"${name}=${initial-advertise-peer-urls}\").")
	fs.StringVar(&o.initialClusterState, "initial-cluster-state", "new", "Initial cluster state ('new' or 'existing').")
	fs.StringVar(&o.clusterTok, "initial-cluster-token", server.DefaultInitialClusterToken, "Initial cluster token for the cluster during bootstrap.")
	fs.BoolVar(&o.strictReconfigCheck, "strict-reconfig-check", true, "Reject reconfiguration requests that would cause quorum loss.")
	fs.BoolVar(&o.forceNewCluster, "force-new-cluster", false, "Force to create a new one member cluster.")
	fs.Uint64Var(&o.maxConcurrentStreams, "max-concurrent-streams", math.MaxUint32, "Maximum concurrent streams that each client can open at a time.")
	fs.BoolVar(&o.enableGRPCGateway, "enable-grpc-gateway", true, "Enable GRPC gateway.")
	fs.BoolVar(&o.preVote, "pre-vote", true, "Enable the raft Pre-Vote algorithm to prevent disruption when a node that has been partitioned away rejoins the cluster.")
	fs.BoolVar(&o.unsafeNoFsync, "unsafe-no-fsync", false, "Disables fsync, unsafe, will cause data loss.")
	fs.BoolVar(&o.initialElectionTickAdvance, "initial-election-tick-advance", true, "Fast-forward the election clock once the peers are connected at start-up, for a faster first election.")
	fs.IntVar(&o.maxLearners, "max-learners", 1, "Sets the maximum number of learners that can be available in the cluster membership.")
	fs.IntVar(&o.maxLearners, "experimental-max-learners", 1, "Deprecated alias of --max-learners.")
	fs.Uint64Var(&o.snapshotCount, "snapshot-count", server.DefaultSnapshotCount, "Number of committed transactions to trigger a snapshot to disk.")
	fs.Uint64Var(&o.snapshotCatchUpEntries, "snapshot-catchup-entries", 5000, "Number of entries for a slow follower to catch-up after compacting the raft storage entries.")
	fs.Uint64Var(&o.snapshotCatchUpEntries, "experimental-snapshot-catchup-entries", 5000, "Deprecated alias of --snapshot-catchup-entries.")
	fs.UintVar(&o.maxSnapshots, "max-snapshots", 5, "Maximum number of snapshot files to retain (0 is unlimited).")
	fs.Uint("max-wals", 5, "Accepted for etcd compatibility: Cairn deletes WAL segments as soon as a snapshot covers them.") // checked, then ignored
	fs.UintVar(&o.heartbeatMs, "heartbeat-interval", 100, "Time (in milliseconds) of a heartbeat interval.")
	fs.UintVar(&o.electionMs, "election-timeout", 1000, "Time (in milliseconds) for an election to timeout.")
	fs.UintVar(&o.maxRequestBytes, "max-request-bytes", server.DefaultMaxRequestBytes, "Maximum client request size in bytes the server will accept.")
	fs.UintVar(&o.maxTxnOps, "max-txn-ops", server.DefaultMaxTxnOps, "Maximum number of operations permitted in a transaction.")
	fs.Int64Var(&o.quotaBackendBytes, "quota-backend-bytes", 0, "Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB).")
	fs.DurationVar(&o.grpcKeepaliveMinTime, "grpc-keepalive-min-time", server.DefaultGRPCKeepaliveMinTime, "Shortest interval a client may keep between its keepalive pings; a client that pings more often is disconnected (GOAWAY too_many_pings).")
	fs.DurationVar(&o.grpcKeepaliveInterval, "grpc-keepalive-interval", server.DefaultGRPCKeepaliveInterval, "How long a client connection may stay silent before the server pings it to check it is alive.")
	fs.DurationVar(&o.grpcKeepaliveTimeout, "grpc-keepalive-timeout", server.DefaultGRPCKeepaliveTimeout, "How long the server waits for the answer to its ping before it closes the connection.")
	fs.DurationVar(&o.watchProgressNotifyInterval, "watch-progress-notify-interval", server.DefaultWatchProgressNotifyInterval, "Duration of periodic watch progress notifications.")
	fs.DurationVar(&o.watchProgressNotifyInterval, "experimental-watch-progress-notify-interval", server.DefaultWatchProgressNotifyInterval, "Deprecated alias of --watch-progress-notify-interval.")
	fs.DurationVar(&o.warningApplyDuration, "warning-apply-duration", server.DefaultWarningApplyDuration, "Time duration after which a warning is generated if applying a request, a range or a read-only txn takes more time.")
	fs.DurationVar(&o.warningApplyDuration, "experimental-warning-apply-duration", server.DefaultWarningApplyDuration, "Deprecated alias of --warning-apply-duration.")
	fs.DurationVar(&o.warningUnaryRequestDuration, "warning-unary-request-duration", server.DefaultWarningUnaryRequestDuration, "Time duration after which a warning is generated if a unary request takes more time.")
	fs.DurationVar(&o.warningUnaryRequestDuration, "experimental-warning-unary-request-duration", server.DefaultWarningUnaryRequestDuration, "Deprecated alias of --warning-unary-request-duration.")
	fs.DurationVar(&o.leaseCheckpointInterval, "lease-checkpoint-interval", 5*time.Minute, "How often the leader records leases' remaining TTLs through raft, so they survive leader changes and restarts (always on in Cairn; negative disables).")
	fs.DurationVar(&o.leaseCheckpointInterval, "experimental-lease-checkpoint-interval", 5*time.Minute, "Deprecated alias of --lease-checkpoint-interval.")
	fs.BoolVar(&o.leaseCheckpointPersist, "lease-checkpoint-persist", true, "Accepted for etcd compatibility: Cairn always persists lease checkpoints.")
	fs.BoolVar(&o.leaseCheckpointPersist, "experimental-enable-lease-checkpoint-persist", true, "Accepted for etcd compatibility: Cairn always persists lease checkpoints.")
	// Corruption checks: on by default in Cairn, off in etcd. etcd 3.7
	// switches the initial and compact hash checks with --feature-gates
	// (InitialCorruptCheck, CompactHashCheck) and etcd 3.5 with the
	// --experimental- flags; Cairn accepts all three (options.gated).
	fs.BoolVar(&o.initialCorruptCheck, "initial-corrupt-check", true, "Compare the member's data with its peers' at start-up and refuse to start on a mismatch (on by default in Cairn, unlike etcd).")
	fs.BoolVar(&o.initialCorruptCheck, "experimental-initial-corrupt-check", true, "Deprecated alias of --initial-corrupt-check.")
	fs.DurationVar(&o.corruptCheckTime, "corrupt-check-time", server.DefaultCorruptCheckTime, "Duration of time between cluster corruption check passes (0 disables; Cairn's default is 1h, etcd's 0).")
	fs.DurationVar(&o.corruptCheckTime, "experimental-corrupt-check-time", server.DefaultCorruptCheckTime, "Deprecated alias of --corrupt-check-time.")
	fs.BoolVar(&o.compactHashCheck, "compact-hash-check-enabled", true, "Leader periodically compares the hashes members recorded at compactions (on by default in Cairn, unlike etcd).")
	fs.BoolVar(&o.compactHashCheck, "experimental-compact-hash-check-enabled", true, "Deprecated alias of --compact-hash-check-enabled.")
	fs.DurationVar(&o.compactHashCheckTime, "compact-hash-check-time", server.DefaultCompactHashCheckTime, "Duration of time between leader checks followers compaction hashes.")
	fs.DurationVar(&o.compactHashCheckTime, "experimental-compact-hash-check-time", server.DefaultCompactHashCheckTime, "Deprecated alias of --compact-hash-check-time.")
	fs.Var(&o.featureGates, "feature-gates", featureGatesUsage())
	fs.StringVar(&o.logger, "logger", "zap", "Currently only supports 'zap' for structured logging.")
	fs.StringVar(&o.logLevel, "log-level", "info", "Configures log level. Only supports debug, info, warn, error, panic, or fatal.")
	fs.StringVar(&o.logFormat, "log-format", "json", "Configures log format. Only supports json, console.")
	fs.Var(newStringList(&o.logOutputs, logOutputDefault), "log-outputs", "Specify 'stdout' or 'stderr', or a comma-separated list of output targets (file paths; 'default' is stderr).")
	fs.Var(&originList{newStringList(&o.cors, "*").(*stringList)}, "cors", "Comma-separated white list of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).")
	fs.Var(newStringList(&o.hostWhitelist, "*"), "host-whitelist", "Comma-separated acceptable hostnames from HTTP client requests, if server is not secure (empty means allow all).")
	fs.BoolVar(&o.enableLogRotation, "enable-log-rotation", false, "Enable log rotation of a single log-outputs file target.")
	fs.StringVar(&o.logRotationConfigJSON, "log-rotation-config-json", defaultLogRotation, "Configures log rotation if enabled with a JSON logger config: maxsize (MB), maxage (days, 0: no limit), maxbackups (0: no limit), localtime, compress (gzip).")
	fs.StringVar(&o.autoCompactionMode, "auto-compaction-mode", compactor.ModePeriodic, "Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for duration based retention, defaulting to hours if no time unit is provided (e.g. '5m'). 'revision' for revision number based retention.")
	fs.StringVar(&o.autoCompactionRetention, "auto-compaction-retention", "0", "Auto compaction retention for mvcc key value store. 0 means disable auto compaction.")
	fs.StringVar(&o.configFile, "config-file", "", "Path to the server configuration file. Note that if a configuration file is provided, other command line flags and environment variables will be ignored.")
	fs.StringVar(&o.metrics, "metrics", server.MetricsBasic, "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.")
	fs.BoolVar(&o.enablePprof, "enable-pprof", false, "Enable runtime profiling data via HTTP server. Address is at client URL + \"/debug/pprof/\"")
	fs.BoolVar(&o.version, "version", false, "Print the version and exit.")
	addTLSFlags(fs, &o.tls)
	addNoEffectFlags(fs)
	fs.BoolVar(&o.socket.reusePort, "socket-reuse-port", false, "Enable to set socket option SO_REUSEPORT on listeners allowing rebinding of a port already in use.")
	fs.BoolVar(&o.socket.reuseAddress, "socket-reuse-address", false, "Enable to set socket option SO_REUSEADDR on listeners allowing binding to an address in `TIME_WAIT` state.")
	return fs
}

// parse reads flags from args, then fills every flag not given there from
// ETCD_<NAME> in the environment. With --config-file (or, when that flag is
// not given, ETCD_CONFIG_FILE) the options come from that file alone, as in
// etcd: other flags and the environment are ignored.
func parse(args []string, stderr io.Writer, getenv func(string) (string, bool)) (*options, error) {
	o := &options{}
	fs := newFlagSet(o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("'%s' is not a valid flag", fs.Arg(0))
		fmt.Fprintln(stderr, err)
		return nil, err
	}
	if o.version {
		return o, nil
	}
	if o.configFile == "" {
		o.configFile, _ = getenv(envName("config-file"))
	}
	if o.configFile != "" {
		return loadConfigFile(o.configFile)
	}
	if err := o.readEnv(fs, getenv); err != nil {
		return o, err
	}
	o.noteGatedFlags(fs)
	o.noteNoEffect(fs)
	o.noteDeprecated(fs)
	return o, checkDefaultOnly(fs)
}

// readEnv sets every flag of fs that the command line did not set from its
// ETCD_* variable, as etcd does: an empty value is no value, a flag given
// on the command line while its variable is set too is an error (etcd
// exits; it would be ambiguous which one the operator meant), and an
// ETCD_* variable that no flag reads is reported (logged by run). The
// options of features Cairn lacks are flags (defaultOnlyFlags), so their
// variables are read, and refused unless at etcd's default, as the flags
// are. Only variables that getenv sees count.
func (o *options) readEnv(fs *flag.FlagSet, getenv func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[envName(f.Name)] = true })
	used := map[string]bool{}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		key := envName(f.Name)
		// ETCD_VERSION is often set to the image's version in containers;
		// etcd ignores it too, with a warning.
		if set[key] || err != nil || f.Name == "version" || f.Name == "config-file" {
			return
		}
		v, _ := getenv(key)
		if v == "" {
			return
		}
		used[key] = true
		if serr := fs.Set(f.Name, v); serr != nil {
			err = &envError{fmt.Errorf("invalid value %q for %s: %v", v, key, serr)}
			return
		}
		o.envUsed = append(o.envUsed, [2]string{key, v})
	})
	if err != nil {
		return err
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		v, ok := getenv(name)
		if !ok || !strings.HasPrefix(name, "ETCD_") || used[name] || name == envName("config-file") {
			continue
		}
		flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "ETCD_"), "_", "-"))
		switch {
		case name == envName("version") && v != "":
			o.envVersion = v
		case set[name]:
			return &envError{fmt.Errorf("conflicting environment variable %s is shadowed by the command-line flag --%s (unset the variable or drop the flag)", name, flagName)}
		default:
			o.envUnknown = append(o.envUnknown, name+"="+v)
		}
	}
	return nil
}

// usage prints --help: every flag as etcd's help spells it, "--name",
// with its type, its text and its default. Tools find out which options a
// server has by matching "--flag" at the start of a help line (Kubernetes'
// envtest does so for --unsafe-no-fsync).
func usage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "Usage: cairn [flags]")
	fs.VisitAll(func(f *flag.Flag) {
		typ, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		line += "\n    \t" + strings.ReplaceAll(text, "\n", "\n    \t")
		switch d := f.DefValue; {
		case typ == "string" && d != "":
			line += fmt.Sprintf(" (default %q)", d)
		case d != "" && d != "false" && d != "0" && typ != "string":
			line += fmt.Sprintf(" (default %s)", d)
		}
		fmt.Fprintln(w, line)
	})
}

// failedFlags reports options that parse but cannot be used (a bad config
// file, environment variable or logging option) as etcd does: with its
// default logger (stderr, info), the command line, then the warning
// "failed to verify flags"; it returns exit status 1.
func failedFlags(args []string, err error, stdout, stderr io.Writer) int {
	o := &options{}
	newFlagSet(o, io.Discard)
	if lg, closeLog, lerr := newLogger(o, stdout, stderr); lerr == nil {
		lg.Info("Running: ", zap.Strings("args", append([]string{os.Args[0]}, args...)))
		lg.Warn("failed to verify flags", zap.Error(err))
		lg.Sync()
		closeLog()
	}
	return 1
}

// envError is an ETCD_* variable whose value its flag refuses. etcd
// reports it as it reports a bad config file (see run), not as a bad flag.
type envError struct{ error }

func (e *envError) Unwrap() error { return e.error }

// envName is the ETCD_* variable of a flag.
func envName(flag string) string {
	return "ETCD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	o, err := parse(args, stderr, getenv)
	var (
		fileErr *configFileError
		envErr  *envError
	)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &fileErr), errors.As(err, &envErr), errors.As(err, new(*unsupportedError)):
		return failedFlags(args, err, stdout, stderr)
	case err != nil:
		return 2
	}
	if o.version {
		fmt.Fprintf(stdout, "cairn Version: %s\netcd API Version: %s\n", server.Version, server.EtcdAPIVersion)
		return 0
	}
	lg, closeLog, err := newLogger(o, stdout, stderr)
	if err != nil {
		return failedFlags(args, err, stdout, stderr)
	}
	defer closeLog()
	defer lg.Sync()
	if routeGRPCLog {
		setGRPCLogger(lg, o.logLevel)
	}
	// etcd's lines for the environment, before the configuration's.
	if o.envVersion != "" {
		lg.Warn("cannot set special environment variable", zap.String("key", envName("version")), zap.String("value", o.envVersion))
	}
	for _, kv := range o.envUsed {
		lg.Info("recognized and used environment variable", zap.String("variable-name", kv[0]), zap.String("variable-value", kv[1]))
	}
	for _, kv := range o.envUnknown {
		lg.Warn("unrecognized environment variable", zap.String("environment-variable", kv))
	}
	for _, msg := range o.deprecated {
		lg.Warn(msg)
	}
	if o.configFile != "" {
		lg.Info("loaded server configuration, other configuration command line flags and environment variables will be ignored if provided",
			zap.String("path", o.configFile))
	}
	cfg, urls, err := o.config(lg)
	if err != nil {
		lg.Error("invalid configuration", zap.Error(err))
		return 1
	}
	compaction, err := o.compaction(lg)
	if err != nil {
		lg.Error("invalid configuration", zap.Error(err))
		return 1
	}
	// etcd's line once the configuration is valid, which operators look
	// for to see how a member was started.
	lg.Info("Running: ", zap.Strings("args", append([]string{os.Args[0]}, args...)))
	if gates := o.featureGates.noEffect(); len(gates) > 0 {
		lg.Info("feature gates that have no effect in cairn", zap.Strings("feature-gates", gates))
	}
	if len(o.noEffect) > 0 {
		lg.Info("flags that have no effect in cairn", zap.Strings("flags", o.noEffect))
	}
	if o.unsafeNoFsync {
		lg.Warn("fsync is off (--unsafe-no-fsync): a machine crash or power loss can lose or corrupt acknowledged writes; for tests only")
	}
	if len(o.ignoredKeys) > 0 {
		lg.Warn("config file keys etcd v3.7 no longer has; ignored", zap.Strings("keys", o.ignoredKeys))
	}
	var lns [4][]server.Listener // clients, peers, HTTP clients, metrics
	for i, l := range []struct {
		flag   string
		urls   []*url.URL
		tlsCfg *tls.Config
	}{
		{"--listen-client-urls", urls.clients, urls.sec.clientServer},
		{"--listen-peer-urls", urls.peers, urls.sec.peerServer},
		{"--listen-client-http-urls", urls.httpClients, urls.sec.clientServer},
		{"--listen-metrics-urls", urls.metrics, urls.sec.metricsServer},
	} {
		if lns[i], err = listen(l.flag, l.urls, o.socket, l.tlsCfg); err != nil {
			lg.Error("cannot listen", zap.Error(err))
			return 1
		}
		defer closeAll(lns[i])
	}
	clientLns, peerLns, httpLns, metricsLns := lns[0], lns[1], lns[2], lns[3]
	srv, err := server.New(cfg)
	if err != nil {
		lg.Error("cannot start member", zap.Error(err))
		return 1
	}
	defer srv.Stop()
	// Peers first: the member needs them to elect a leader and be ready.
	peerSrv := srv.ServePeers(peerLns)
	defer peerSrv.Stop()
	select {
	case <-srv.ReadyNotify():
	case <-srv.StopNotify():
		lg.Error("member stopped before it became ready", zap.Error(srv.Err()))
		return 1
	case <-ctx.Done():
		return 0
	}
	code := serve(ctx, lg, srv, o, compaction, clientLns, httpLns, metricsLns)
	srv.Stop()
	return code
}

func gracefulStop(lg *zap.Logger, g *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() { g.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		lg.Warn("in-flight requests did not finish in time; closing their connections", zap.Duration("waited", timeout))
		g.Stop()
	}
}

// listenURLs are the URLs the member listens on, and their security.
type listenURLs struct {
	clients, httpClients, peers, metrics []*url.URL
	sec                                  security
}

func (o *options) config(lg *zap.Logger) (server.Config, listenURLs, error) {
	var (
		cfg server.Config
		lu  listenURLs
	)
	if o.initialClusterState != "new" && o.initialClusterState != "existing" {
		return cfg, lu, fmt.Errorf("unexpected initial-cluster-state %q (want \"new\" or \"existing\")", o.initialClusterState)
	}
	if o.heartbeatMs == 0 || o.electionMs < 5*o.heartbeatMs {
		return cfg, lu, fmt.Errorf("--election-timeout[%vms] should be at least as 5 times as --heartbeat-interval[%vms]", o.electionMs, o.heartbeatMs)
	}
	if o.electionMs > 50000 {
		return cfg, lu, fmt.Errorf("--election-timeout[%vms] is too long, and should be set less than 50000ms", o.electionMs)
	}
	if o.metrics != server.MetricsBasic && o.metrics != server.MetricsExtensive {
		return cfg, lu, fmt.Errorf("--metrics: unexpected value %q (want %q or %q)", o.metrics, server.MetricsBasic, server.MetricsExtensive)
	}
	if o.maxConcurrentStreams > math.MaxUint32 {
		return cfg, lu, fmt.Errorf("--max-concurrent-streams: %d is above the maximum, %d", o.maxConcurrentStreams, uint64(math.MaxUint32))
	}
	if o.corruptCheckTime < 0 {
		return cfg, lu, fmt.Errorf("--corrupt-check-time must be >=0 (set to %v)", o.corruptCheckTime)
	}
	if o.compactHashCheckTime <= 0 {
		return cfg, lu, fmt.Errorf("--compact-hash-check-time must be >0 (set to %v)", o.compactHashCheckTime)
	}
	if err := o.featureGates.validate(); err != nil {
		return cfg, lu, err
	}
	initialCorruptCheck, err := o.gated(gateInitialCorruptCheck, o.initialCorruptCheck)
	if err != nil {
		return cfg, lu, err
	}
	compactHashCheck, err := o.gated(gateCompactHashCheck, o.compactHashCheck)
	if err != nil {
		return cfg, lu, err
	}
	if lu.clients, err = parseURLs(o.listenClientURLs); err != nil {
		return cfg, lu, fmt.Errorf("--listen-client-urls: %w", err)
	}
	if o.listenClientHTTPURLs != "" {
		if lu.httpClients, err = parseURLs(o.listenClientHTTPURLs); err != nil {
			return cfg, lu, fmt.Errorf("--listen-client-http-urls: %w", err)
		}
	}
	for _, h := range lu.httpClients {
		if slices.ContainsFunc(lu.clients, func(u *url.URL) bool { return memberurl.Addr(u) == memberurl.Addr(h) }) {
			return cfg, lu, fmt.Errorf("cannot bind both --listen-client-urls and --listen-client-http-urls on the same url %s", h)
		}
	}
	peers, err := parseURLs(o.initialAdvertisePeerURLs)
	if err != nil {
		return cfg, lu, fmt.Errorf("--initial-advertise-peer-urls: %w", err)
	}
	if lu.peers, err = parseURLs(o.listenPeerURLs); err != nil {
		return cfg, lu, fmt.Errorf("--listen-peer-urls: %w", err)
	}
	if o.listenMetricsURLs != "" {
		if lu.metrics, err = parseURLs(o.listenMetricsURLs); err != nil {
			return cfg, lu, fmt.Errorf("--listen-metrics-urls: %w", err)
		}
	}
	advertised, err := parseURLs(o.advertiseClientURLs)
	if err != nil {
		return cfg, lu, fmt.Errorf("--advertise-client-urls: %w", err)
	}
	for _, u := range slices.Concat(peers, advertised, lu.metrics) {
		if !memberurl.ValidScheme(u.Scheme) {
			return cfg, lu, fmt.Errorf("URL %s: scheme %q is not supported (use http, https, unix or unixs)", u, u.Scheme)
		}
	}
	dataDir := o.dataDir
	if dataDir == "" {
		dataDir = o.name + ".cairn" // server.Config's default
	}
	if lu.sec, err = o.security(lg, dataDir, slices.Concat(lu.clients, lu.httpClients), lu.peers, lu.metrics); err != nil {
		return cfg, lu, err
	}
	cfg = server.Config{
		Name:                         o.name,
		DataDir:                      o.dataDir,
		WALDir:                       o.walDir,
		ClientURLs:                   strings.Split(o.advertiseClientURLs, ","),
		PeerURLs:                     urlStrings(peers),
		InitialCluster:               o.initialCluster,
		InitialClusterToken:          o.clusterTok,
		InitialClusterState:          o.initialClusterState,
		NoStrictReconfigCheck:        !o.strictReconfigCheck,
		MaxLearners:                  o.maxLearners,
		ForceNewCluster:              o.forceNewCluster,
		NoPreVote:                    !o.preVote,
		NoInitialElectionTickAdvance: !o.initialElectionTickAdvance,
		MaxConcurrentStreams:         uint32(o.maxConcurrentStreams),
		SnapshotCount:                o.snapshotCount,
		SnapshotCatchUpEntries:       o.snapshotCatchUpEntries,
		MaxSnapshots:                 maxSnapshots(o.maxSnapshots),
		HeartbeatInterval:            time.Duration(o.heartbeatMs) * time.Millisecond,
		ElectionTimeout:              time.Duration(o.electionMs) * time.Millisecond,
		MaxRequestBytes:              o.maxRequestBytes,
		MaxTxnOps:                    o.maxTxnOps,
		QuotaBackendBytes:            o.quotaBackendBytes,
		WatchProgressNotifyInterval:  o.watchProgressNotifyInterval,
		WarningApplyDuration:         warnEveryUnlessPositive(o.warningApplyDuration),
		WarningUnaryRequestDuration:  warnEveryUnlessPositive(o.warningUnaryRequestDuration),
		LeaseCheckpointInterval:      o.leaseCheckpointInterval,
		NoInitialCorruptCheck:        !initialCorruptCheck,
		CorruptCheckTime:             offUnlessPositive(o.corruptCheckTime),
		NoCompactHashCheck:           !compactHashCheck,
		CompactHashCheckTime:         o.compactHashCheckTime,
		GRPCKeepaliveMinTime:         offUnlessPositive(o.grpcKeepaliveMinTime),
		GRPCKeepaliveInterval:        offUnlessPositive(o.grpcKeepaliveInterval),
		GRPCKeepaliveTimeout:         offUnlessPositive(o.grpcKeepaliveTimeout),
		Metrics:                      o.metrics,
		PeerDialTLS:                  lu.sec.peerDial,
		ClientDialTLS:                lu.sec.clientDial,
		FeatureGates: o.states(map[string]bool{
			gateInitialCorruptCheck: initialCorruptCheck,
			gateCompactHashCheck:    compactHashCheck,
		}),
		Logger: lg,
	}
	if o.unsafeNoFsync {
		cfg.FS = fsutil.NoSync(vfs.Default)
	}
	return cfg, lu, nil
}

// compaction is the auto-compaction of --auto-compaction-mode and
// --auto-compaction-retention, logging to lg.
func (o *options) compaction(lg *zap.Logger) (compactor.Config, error) {
	c, err := compactor.ParseRetention(o.autoCompactionMode, o.autoCompactionRetention)
	if err != nil {
		return c, err
	}
	c.Logger = lg
	return c, nil
}

// maxSnapshots maps --max-snapshots to server.Config, where etcd's 0
// (unlimited) is negative.
func maxSnapshots(n uint) int {
	if n == 0 {
		return -1
	}
	return int(n)
}

// offUnlessPositive maps a duration flag that etcd turns off at 0 or below
// (--corrupt-check-time, --grpc-keepalive-*) to server.Config, where 0
// means the default and off is negative.
func offUnlessPositive(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// warnEveryUnlessPositive maps --warning-apply-duration (and
// --warning-unary-request-duration) to
// server.Config, where 0 means the default: etcd, given 0 or less, warns
// of every request, and so does Cairn.
func warnEveryUnlessPositive(d time.Duration) time.Duration {
	return max(d, time.Nanosecond)
}

func parseURLs(s string) ([]*url.URL, error) {
	var out []*url.URL
	for _, raw := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil {
			return nil, err
		}
		if u.Scheme == "" || memberurl.Addr(u) == "" {
			return nil, fmt.Errorf("URL %q needs a scheme and host (e.g. http://127.0.0.1:2379)", raw)
		}
		out = append(out, u)
	}
	return out, nil
}

func urlStrings(us []*url.URL) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}
