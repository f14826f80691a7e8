package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zapgrpc"
	"google.golang.org/grpc/grpclog"
	"gopkg.in/natefinch/lumberjack.v2"
)

// etcd's --log-outputs values besides file paths.
const (
	logOutputDefault = "default" // stderr, alone
	logOutputStderr  = "stderr"
	logOutputStdout  = "stdout"
	logOutputJournal = "systemd/journal"
)

// defaultLogRotation is etcd's --log-rotation-config-json default: files
// of up to 100 MB, every old one kept, times in UTC, no compression.
const defaultLogRotation = `{"maxsize": 100, "maxage": 0, "maxbackups": 0, "localtime": false, "compress": false}`

// errLogRotationOutput is etcd's error for --enable-log-rotation without
// exactly one file among --log-outputs.
var errLogRotationOutput = errors.New("--log-outputs requires a single file path when --log-rotate-config-json is defined")

// logRotation returns the rotating writer of --enable-log-rotation, with
// etcd's checks and errors: the outputs must name one file (stderr or
// stdout beside it are not rotated), and the JSON is lumberjack's
// settings. The caller sets Filename.
func logRotation(outputs []string, config string) (*lumberjack.Logger, error) {
	files := 0
	for _, out := range outputs {
		if out != logOutputDefault && out != logOutputStderr && out != logOutputStdout {
			files++
		}
	}
	if files > 1 || (len(outputs) == 1 && files == 0) {
		return nil, errLogRotationOutput
	}
	// Named as etcd names it: the name appears in json's type errors.
	type logRotationConfig struct{ *lumberjack.Logger }
	var l logRotationConfig
	if err := json.Unmarshal([]byte(config), &l); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return nil, fmt.Errorf("improperly formatted log rotation config: %w", err)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("invalid log rotation config: %w", err)
		default:
			return nil, fmt.Errorf("fail to unmarshal log rotation config: %w", err)
		}
	}
	if l.Logger == nil {
		l.Logger = &lumberjack.Logger{} // "{}" or "null": lumberjack's defaults
	}
	return l.Logger, nil
}

// stringList is a comma-separated flag kept as a sorted set, etcd's
// UniqueStringsValue (--log-outputs). Each Set replaces the value.
type stringList []string

func newStringList(p *[]string, def ...string) flag.Value {
	*p = def
	return (*stringList)(p)
}

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Get() any       { return []string(*l) }

func (l *stringList) Set(s string) error {
	var vs []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	*l = slices.Compact(vs)
	return nil
}

// originList is etcd's --cors: like stringList, but each origin must be
// "*" or a URL as etcd takes one (its types.NewURLs: http or https with
// host:port and no path, or unix and unixs), with etcd's errors.
type originList struct{ *stringList }

func (l *originList) Set(s string) error {
	if err := l.stringList.Set(s); err != nil {
		return err
	}
	for _, v := range *l.stringList {
		if v == "*" {
			continue
		}
		if _, err := types.NewURLs([]string{v}); err != nil {
			return err
		}
	}
	return nil
}

// encoderConfig is etcd's (client/pkg/logutil's default zap config): keys
// "level", "ts", "caller", "msg", "stacktrace", microsecond timestamps,
// durations as strings.
func encoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:       "ts",
		LevelKey:      "level",
		NameKey:       "logger",
		CallerKey:     "caller",
		MessageKey:    "msg",
		StacktraceKey: "stacktrace",
		LineEnding:    zapcore.DefaultLineEnding,
		EncodeLevel:   zapcore.LowercaseLevelEncoder,
		EncodeTime: func(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
			enc.AppendString(t.Format("2006-01-02T15:04:05.000000Z0700"))
		},
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
	}
}

// newLogger builds the logger of --logger, --log-level, --log-format and
// --log-outputs as etcd's zap configuration does: sampled (the first 100
// entries of a message each second, then every 100th), with the caller,
// and stack traces from error level. "default" and "stderr" write to
// stderr, "stdout" to stdout, anything else appends to that file, which
// --enable-log-rotation rotates (logRotation). close closes the files.
func newLogger(o *options, stdout, stderr io.Writer) (lg *zap.Logger, close func(), err error) {
	switch o.logger {
	case "zap":
	case "capnslog":
		return nil, nil, errors.New("--logger=capnslog is removed in v3.5")
	default:
		return nil, nil, fmt.Errorf("unknown logger option %q", o.logger)
	}
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, nil, fmt.Errorf("--log-level %q: want debug, info, warn, error, panic or fatal", o.logLevel)
	}
	var enc zapcore.Encoder
	switch o.logFormat {
	case "json", "":
		enc = zapcore.NewJSONEncoder(encoderConfig())
	case "console":
		enc = zapcore.NewConsoleEncoder(encoderConfig())
	default:
		return nil, nil, fmt.Errorf("unknown log format: %s, supported values json, console", o.logFormat)
	}
	outputs := o.logOutputs
	if len(outputs) == 0 {
		outputs = []string{logOutputDefault}
	}
	if len(outputs) > 1 && slices.Contains(outputs, logOutputDefault) {
		return nil, nil, fmt.Errorf("multi logoutput for %q is not supported yet", logOutputDefault)
	}
	if slices.Contains(outputs, "/dev/null") {
		outputs = []string{"/dev/null"} // etcd's way to discard everything
	}
	var rotate *lumberjack.Logger
	if o.enableLogRotation {
		if rotate, err = logRotation(outputs, o.logRotationConfigJSON); err != nil {
			return nil, nil, err
		}
	}
	var (
		sinks []zapcore.WriteSyncer
		files []io.Closer
	)
	close = func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, out := range outputs {
		switch out {
		case logOutputDefault, logOutputStderr:
			sinks = append(sinks, zapcore.AddSync(stderr))
		case logOutputStdout:
			sinks = append(sinks, zapcore.AddSync(stdout))
		case logOutputJournal:
			close()
			return nil, nil, fmt.Errorf("--log-outputs %s is not supported by cairn", out)
		default:
			// Never rotate /dev/null: lumberjack would rename it away.
			if rotate != nil && out != "/dev/null" {
				rotate.Filename = out
				files = append(files, rotate)
				sinks = append(sinks, zapcore.AddSync(rotate))
				continue
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				close()
				return nil, nil, fmt.Errorf("--log-outputs: %w", err)
			}
			files = append(files, f)
			sinks = append(sinks, f)
		}
	}
	sink := zapcore.Lock(zapcore.NewMultiWriteSyncer(sinks...))
	core := zapcore.NewSamplerWithOptions(zapcore.NewCore(enc, sink, lvl), time.Second, 100, 100)
	lg = zap.New(core, zap.ErrorOutput(sink), zap.AddCaller(), zap.AddStacktrace(zap.ErrorLevel))
	return lg, close, nil
}

// routeGRPCLog makes run send gRPC's own log (grpclog) to the member's
// logger. Only main sets it: grpclog's logger is one setting for the whole
// process, made before any gRPC use and never again, so the tests that
// call run in-process keep gRPC's default.
var routeGRPCLog bool

// setGRPCLogger sends the log of gRPC and of the libraries logging through
// it (grpc-gateway, the WebSocket proxy's errors) to lg, as JSON lines
// like the member's own, to the same --log-outputs: warnings and errors
// only, everything at --log-level debug, as etcd keeps gRPC's info lines
// for debug. The lines carry no caller or stack trace: both would point
// into the adapter, not at the library that logged.
func setGRPCLogger(lg *zap.Logger, level string) {
	never := zap.LevelEnablerFunc(func(zapcore.Level) bool { return false })
	lg = lg.Named("grpc").WithOptions(zap.WithCaller(false), zap.AddStacktrace(never))
	if level != "debug" {
		lg = lg.WithOptions(zap.IncreaseLevel(zapcore.WarnLevel))
	}
	grpclog.SetLoggerV2(zapgrpc.NewLogger(lg))
}
