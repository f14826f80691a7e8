package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/grpclog"

	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.etcd.io/etcd/client/pkg/v3/srv"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Defaults of the global flags (etcdctl's).
const (
	defaultEndpoint         = "127.0.0.1:2379"
	defaultDialTimeout      = 2 * time.Second
	defaultCommandTimeout   = 5 * time.Second
	defaultKeepAliveTime    = 2 * time.Second
	defaultKeepAliveTimeout = 6 * time.Second
)

// envPrefix prefixes the environment variable of every global flag:
// --dial-timeout is also ETCDCTL_DIAL_TIMEOUT.
const envPrefix = "ETCDCTL"

// globalFlags are the persistent flags of the root command. The values are
// read through the flag set of the running command after environment
// variables have been applied, never directly from these fields.
type globalFlags struct {
	endpoints        []string
	debug            bool
	writeOut         string
	hex              bool
	dialTimeout      time.Duration
	commandTimeout   time.Duration
	keepAliveTime    time.Duration
	keepAliveTimeout time.Duration
	maxRequestBytes  int
	maxRecvBytes     int

	insecureTransport bool
	insecureDiscovery bool
	insecureSkipTLS   bool
	cert, key, cacert string
	jwtToken          string
	user, password    string
	discoverySRV      string
	discoverySRVName  string
}

func (g *globalFlags) register(fs *pflag.FlagSet) {
	fs.StringSliceVar(&g.endpoints, "endpoints", []string{defaultEndpoint}, "comma separated gRPC endpoints")
	fs.BoolVar(&g.debug, "debug", false, "log client-side details (flags, gRPC) to stderr")
	fs.StringVarP(&g.writeOut, "write-out", "w", "simple", "output format: simple, json, fields, table or protobuf")
	fs.BoolVar(&g.hex, "hex", false, "print keys and values as hex-escaped bytes")
	fs.DurationVar(&g.dialTimeout, "dial-timeout", defaultDialTimeout, "time allowed to establish a connection")
	fs.DurationVar(&g.commandTimeout, "command-timeout", defaultCommandTimeout, "time allowed for a short command, dial excluded")
	fs.DurationVar(&g.keepAliveTime, "keepalive-time", defaultKeepAliveTime, "interval of client keepalive pings")
	fs.DurationVar(&g.keepAliveTimeout, "keepalive-timeout", defaultKeepAliveTimeout, "time to wait for a keepalive answer")
	fs.IntVar(&g.maxRequestBytes, "max-request-bytes", 0, "largest request the client sends in bytes (0: the client's 2 MiB default)")
	fs.IntVar(&g.maxRecvBytes, "max-recv-bytes", 0, "largest response the client accepts in bytes (0: math.MaxInt32)")
	fs.BoolVar(&g.insecureTransport, "insecure-transport", true, "use plain TCP when no TLS files are given")
	fs.BoolVar(&g.insecureDiscovery, "insecure-discovery", true, "accept plain http endpoints found by SRV discovery")
	fs.BoolVar(&g.insecureSkipTLS, "insecure-skip-tls-verify", false, "do not verify the server certificate (testing only)")
	fs.StringVar(&g.cert, "cert", "", "client TLS certificate file")
	fs.StringVar(&g.key, "key", "", "client TLS key file")
	fs.StringVar(&g.cacert, "cacert", "", "CA bundle that verifies servers")
	fs.StringVar(&g.jwtToken, "auth-jwt-token", "", "JWT token to authenticate with (excludes --user and --password)")
	fs.StringVar(&g.user, "user", "", "user name, or name:password (asks for the password if missing)")
	fs.StringVar(&g.password, "password", "", "password of --user, which must then not contain one")
	fs.StringVarP(&g.discoverySRV, "discovery-srv", "d", "", "domain whose SRV records list the endpoints")
	fs.StringVar(&g.discoverySRVName, "discovery-srv-name", "", "service name for SRV discovery")
}

// ignoredValue is the value of a flag that exists only to name a variable.
type ignoredValue struct{}

func (ignoredValue) String() string   { return "" }
func (ignoredValue) Set(string) error { return nil }
func (ignoredValue) Type() string     { return "" }

func envKey(flag string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

func (a *app) getenv(key string) string {
	for i := len(a.env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(a.env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// newLogger builds a logger that writes etcd's JSON log lines to the
// invocation's stderr. A fatal entry is written but does not end the process:
// the caller turns it into an exit code.
func (a *app) newLogger(level zapcore.Level) *zap.Logger {
	enc := zapcore.NewJSONEncoder(logutil.DefaultZapLoggerConfig.EncoderConfig)
	core := zapcore.NewCore(enc, zapcore.AddSync(a.stderr), level)
	core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	return zap.New(core,
		zap.AddCaller(),
		zap.AddStacktrace(zapcore.ErrorLevel),
		zap.ErrorOutput(zapcore.AddSync(a.stderr)),
		zap.WithFatalHook(keepRunning{}),
	)
}

type keepRunning struct{}

func (keepRunning) OnWrite(*zapcore.CheckedEntry, []zapcore.Field) {}

// applyEnv sets every flag of fs that was not given on the command line from
// its ETCDCTL_* variable. Invalid values are ignored, as etcdctl does. A
// variable shadowed by its flag is fatal; a variable matching no flag is a
// warning.
func (a *app) applyEnv(lg *zap.Logger, fs *pflag.FlagSet) error {
	given := map[string]bool{}
	used := map[string]bool{}
	fs.VisitAll(func(f *pflag.Flag) {
		key := envKey(f.Name)
		if f.Changed {
			given[key] = true
			return
		}
		if given[key] {
			return
		}
		if v := a.getenv(key); v != "" {
			used[key] = true
			_ = fs.Set(f.Name, v)
		}
	})
	for _, kv := range a.env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			lg.Warn("found invalid environment variable", zap.String("environment-variable", kv))
		}
		if used[k] {
			continue
		}
		if given[k] {
			lg.Fatal("conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag))",
				zap.String("environment-variable", k))
			return &exitError{code: exitErr}
		}
		if strings.HasPrefix(kv, envPrefix+"_") {
			lg.Warn("unrecognized environment variable", zap.String("environment-variable", kv))
		}
	}
	return nil
}

// clientConfig resolves the global flags of cmd (environment included) into a
// client configuration and selects the printer.
func (a *app) clientConfig(cmd *cobra.Command) (*clientv3.ConfigSpec, error) {
	lg := a.newLogger(zapcore.InfoLevel)
	fs := cmd.InheritedFlags()
	if cmd.Name() == "watch" {
		// watch reads ETCDCTL_WATCH_KEY and ETCDCTL_WATCH_RANGE_END itself;
		// as in etcdctl they pass for flags that take no value: no warning,
		// and --debug lists them, empty.
		for _, name := range []string{"watch-key", "watch-range-end"} {
			if fs.Lookup(name) == nil {
				fs.AddFlag(&pflag.Flag{Name: name, Value: ignoredValue{}})
			}
		}
	}
	if err := a.applyEnv(lg, fs); err != nil {
		return nil, err
	}
	flags := cmd.Flags()

	debug, _ := flags.GetBool("debug")
	if debug {
		if a.proc {
			grpclog.SetLoggerV2(grpclog.NewLoggerV2WithVerbosity(os.Stderr, os.Stderr, os.Stderr, 4))
		}
		fs.VisitAll(func(f *pflag.Flag) {
			fmt.Fprintf(a.stderr, "%s=%v\n", envKey(f.Name), f.Value)
		})
	}

	eps, err := a.endpoints(cmd)
	if err != nil {
		return nil, exitWith(exitErr, err)
	}
	cfg := &clientv3.ConfigSpec{Endpoints: eps}
	cfg.DialTimeout, _ = flags.GetDuration("dial-timeout")
	cfg.KeepAliveTime, _ = flags.GetDuration("keepalive-time")
	cfg.KeepAliveTimeout, _ = flags.GetDuration("keepalive-timeout")
	cfg.MaxCallSendMsgSize, _ = flags.GetInt("max-request-bytes")
	cfg.MaxCallRecvMsgSize, _ = flags.GetInt("max-recv-bytes")
	if cfg.Secure, err = secureConfig(cmd); err != nil {
		return nil, err
	}
	if cfg.Auth, err = a.authConfig(cmd); err != nil {
		return nil, err
	}
	if err := a.selectPrinter(cmd); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (a *app) selectPrinter(cmd *cobra.Command) error {
	hex, _ := cmd.Flags().GetBool("hex")
	format, _ := cmd.Flags().GetString("write-out")
	a.display = newPrinter(format, hex, a.stdout, a.stderr)
	if a.display == nil {
		return exitf(exitBadFeature, "unsupported output format")
	}
	return nil
}

// newClient dials with cfg; the client logs through the invocation's stderr
// under the name logName.
func (a *app) newClient(cfg *clientv3.ConfigSpec, logName string) (*clientv3.Client, error) {
	lg := a.newLogger(zapcore.InfoLevel)
	c, err := clientv3.NewClientConfig(cfg, lg)
	if err != nil {
		return nil, exitWith(exitBadArgs, err)
	}
	c.Logger = a.newLogger(clientv3.ClientLogLevel()).Named(logName)
	cli, err := clientv3.New(*c)
	if err != nil {
		return nil, exitWith(exitBadConn, err)
	}
	return cli, nil
}

// client is the usual path of a command: configuration, printer, dial.
func (a *app) client(cmd *cobra.Command) (*clientv3.Client, error) {
	cfg, err := a.clientConfig(cmd)
	if err != nil {
		return nil, err
	}
	return a.newClient(cfg, "etcd-client")
}

// withClient runs f with a client for the command's endpoints, under a
// context bounded by --command-timeout that also covers connecting.
func (a *app) withClient(cmd *cobra.Command, f func(context.Context, *clientv3.Client) error) error {
	ctx, cancel := commandContext(cmd)
	defer cancel()
	cli, err := a.client(cmd)
	if err != nil {
		return err
	}
	defer cli.Close()
	return f(ctx, cli)
}

func commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	d, _ := cmd.Flags().GetDuration("command-timeout")
	return context.WithTimeout(context.Background(), d)
}

// endpoints returns the SRV-discovered endpoints if --discovery-srv is set and
// finds any, else --endpoints with blanks trimmed.
func (a *app) endpoints(cmd *cobra.Command) ([]string, error) {
	flags := cmd.Flags()
	domain, _ := flags.GetString("discovery-srv")
	if domain != "" {
		service, _ := flags.GetString("discovery-srv-name")
		insecure, _ := flags.GetBool("insecure-discovery")
		found, err := srv.GetClient("etcd-client", domain, service)
		if err != nil {
			return nil, err
		}
		var eps []string
		for _, ep := range found.Endpoints {
			if !insecure && strings.HasPrefix(ep, "http://") {
				fmt.Fprintf(a.stderr, "ignoring discovered insecure endpoint %q\n", ep)
				continue
			}
			eps = append(eps, ep)
		}
		if len(eps) > 0 {
			return eps, nil
		}
	}
	eps, err := flags.GetStringSlice("endpoints")
	if err != nil {
		return nil, err
	}
	for i := range eps {
		eps[i] = strings.TrimSpace(eps[i])
	}
	return eps, nil
}

func secureConfig(cmd *cobra.Command) (*clientv3.SecureConfig, error) {
	flags := cmd.Flags()
	files := map[string]string{}
	for _, name := range []string{"cert", "key", "cacert"} {
		v, _ := flags.GetString(name)
		if v == "" && flags.Changed(name) {
			return nil, exitf(exitBadArgs, "empty string is passed to --%s option", name)
		}
		files[name] = v
	}
	sc := &clientv3.SecureConfig{Cert: files["cert"], Key: files["key"], Cacert: files["cacert"]}
	sc.InsecureTransport, _ = flags.GetBool("insecure-transport")
	sc.InsecureSkipVerify, _ = flags.GetBool("insecure-skip-tls-verify")
	// The discovery domain doubles as the TLS server name, but only when
	// insecure discovery is off.
	if insecure, _ := flags.GetBool("insecure-discovery"); !insecure {
		sc.ServerName, _ = flags.GetString("discovery-srv")
	}
	return sc, nil
}

func (a *app) authConfig(cmd *cobra.Command) (*clientv3.AuthConfig, error) {
	flags := cmd.Flags()
	user, _ := flags.GetString("user")
	password, _ := flags.GetString("password")
	token, _ := flags.GetString("auth-jwt-token")
	switch {
	case user == "" && token == "":
		return nil, nil
	case token != "":
		return &clientv3.AuthConfig{Token: token}, nil
	case password != "":
		return &clientv3.AuthConfig{Username: user, Password: password}, nil
	}
	if name, pw, ok := strings.Cut(user, ":"); ok {
		return &clientv3.AuthConfig{Username: name, Password: pw}, nil
	}
	pw, err := a.askPassword("Password: ")
	if err != nil {
		return nil, exitWith(exitErr, err)
	}
	return &clientv3.AuthConfig{Username: user, Password: pw}, nil
}

// askPassword prompts on stdout and reads one line from stdin, with terminal
// echo off when stdin is a terminal.
func (a *app) askPassword(prompt string) (string, error) {
	fmt.Fprint(a.stdout, prompt)
	defer fmt.Fprintln(a.stdout)
	if f, ok := a.stdin.(*os.File); ok {
		fd := int(f.Fd())
		if old, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			quiet := *old
			quiet.Lflag &^= unix.ECHO
			if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err == nil {
				defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
			}
		}
	}
	// Read byte by byte: the rest of stdin may belong to the command.
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := a.stdin.Read(b)
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("failed during password entry: %s", err)
		}
		if n == 0 || b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	return strings.TrimSpace(strings.TrimSuffix(string(line), "\r")), nil
}

// argOrStdin mirrors etcdctl's "argument or stdin" rule: the argument at i
// if present, otherwise all of stdin, which must not be empty.
func argOrStdin(args []string, stdin io.Reader, i int) (string, bool) {
	if i < len(args) {
		return args[i], true
	}
	b, err := io.ReadAll(stdin)
	if err != nil || len(b) == 0 {
		return "", false
	}
	return string(b), true
}
