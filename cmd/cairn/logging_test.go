package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// logWith builds the logger of args, logs an info and a warn line through
// it, and returns what reached stdout and stderr.
func logWith(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	o, err := parse(args, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	lg, closeLog, err := newLogger(o, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	lg.Info("an info line", zap.Duration("took", 1500*time.Millisecond))
	lg.Warn("a warn line", zap.String("k", "v"))
	lg.Sync()
	closeLog()
	return out.String(), errOut.String()
}

// etcdTime is the "ts" format of etcd's logs.
var etcdTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d{4})$`)

// TestLogFormatJSON: etcd's default format, one JSON object a line with
// its keys and encodings.
func TestLogFormatJSON(t *testing.T) {
	stdout, stderr := logWith(t)
	if stdout != "" {
		t.Fatalf("stdout %q, want nothing by default", stdout)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), stderr)
	}
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil {
		t.Fatalf("%q: %v", lines[0], err)
	}
	if e["level"] != "info" || e["msg"] != "an info line" || e["took"] != "1.5s" ||
		!strings.HasPrefix(e["caller"].(string), "cairn/logging_test.go:") || !etcdTime.MatchString(e["ts"].(string)) {
		t.Fatalf("line %q does not have etcd's keys and encodings", lines[0])
	}
	if !strings.HasPrefix(lines[0], `{"level":"info","ts":"`) {
		t.Fatalf("line %q: want etcd's key order", lines[0])
	}
}

func TestLogFormatConsole(t *testing.T) {
	_, stderr := logWith(t, "--log-format", "console", "--log-level", "warn")
	fields := strings.Split(strings.TrimSuffix(stderr, "\n"), "\t")
	if len(fields) != 5 || !etcdTime.MatchString(fields[0]) || fields[1] != "warn" ||
		!strings.HasPrefix(fields[2], "cairn/logging_test.go:") || fields[3] != "a warn line" || fields[4] != `{"k": "v"}` {
		t.Fatalf("console output %q: want ts, level, caller, msg and fields, the info line filtered out", stderr)
	}
}

// TestLogOutputs: stdout, stderr and files, together, from the flag or
// the environment.
func TestLogOutputs(t *testing.T) {
	stdout, stderr := logWith(t, "--log-outputs", "stdout")
	if strings.Count(stdout, "\n") != 2 || stderr != "" {
		t.Fatalf("--log-outputs stdout: stdout %q, stderr %q", stdout, stderr)
	}

	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	if err := os.WriteFile(a, []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr = logWith(t, "--log-outputs", a+","+b+",stderr,"+a)
	if stdout != "" || strings.Count(stderr, "\n") != 2 {
		t.Fatalf("stdout %q, stderr %q", stdout, stderr)
	}
	for _, f := range []string{a, b} {
		got, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := stderr
		if f == a {
			want = "kept\n" + stderr // appended, and written once though named twice
		}
		if string(got) != want {
			t.Fatalf("%s: %q, want %q", f, got, want)
		}
	}

	o, err := parse(nil, io.Discard, envOf(map[string]string{"ETCD_LOG_OUTPUTS": "stdout", "ETCD_LOG_FORMAT": "console"}))
	if err != nil || len(o.logOutputs) != 1 || o.logOutputs[0] != "stdout" || o.logFormat != "console" {
		t.Fatalf("from the environment: %q %q %v", o.logOutputs, o.logFormat, err)
	}
}

func TestLoggerErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--logger", "capnslog"}, "--logger=capnslog is removed in v3.5"},
		{[]string{"--logger", "logrus"}, `unknown logger option "logrus"`},
		{[]string{"--log-level", "verbose"}, `--log-level "verbose"`},
		{[]string{"--log-format", "xml"}, "unknown log format: xml, supported values json, console"},
		{[]string{"--log-outputs", "default,stdout"}, `multi logoutput for "default" is not supported yet`},
		{[]string{"--log-outputs", "systemd/journal"}, "not supported by cairn"},
		{[]string{"--log-outputs", filepath.Join(t.TempDir(), "missing", "x.log")}, "no such file or directory"},
	} {
		o, err := parse(c.args, io.Discard, noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := newLogger(o, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.err)
		}
	}
	// As etcd: the default logger says "failed to verify flags", exit 1.
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--log-format", "xml"}, io.Discard, &stderr, noEnv); code != 1 ||
		failedToVerify(t, stderr.String()) != "unknown log format: xml, supported values json, console" {
		t.Fatalf("run: exit %d, stderr %q", code, stderr.String())
	}
}

// TestRunLogs: run logs where and how the flags say; here an invalid
// configuration, reported before the member starts.
func TestRunLogs(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--log-outputs=stdout", "--log-format=console", "--initial-cluster-state=old"}, &stdout, &stderr, noEnv)
	if code != 1 || stderr.Len() != 0 || !strings.Contains(stdout.String(), "\terror\t") || !strings.Contains(stdout.String(), "\tinvalid configuration\t") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	// A stack trace from error level, as etcd's production config.
	if !strings.Contains(stdout.String(), "cmd/cairn.run\n") {
		t.Fatalf("no stack trace in %q", stdout.String())
	}
}

// TestLogRotation: with --enable-log-rotation the file of --log-outputs is
// cut at the JSON's maxsize (MB) and the old part kept beside it under
// lumberjack's name (the file's, with a timestamp), as etcd does; stderr
// beside it is not rotated.
func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "member.log")
	o, err := parse([]string{"--log-outputs", "stderr," + file, "--enable-log-rotation", "--log-rotation-config-json", `{"maxsize": 1, "maxbackups": 2}`}, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	lg, closeLog, err := newLogger(o, io.Discard, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	// 1,500 lines of about 1 KiB, each its own message (the logger
	// samples repeated ones).
	field := strings.Repeat("x", 1000)
	for i := range 1500 {
		lg.Info(fmt.Sprintf("line %d", i), zap.String("field", field))
	}
	closeLog()
	old, _ := filepath.Glob(filepath.Join(dir, "member-*.log"))
	if len(old) != 1 {
		t.Fatalf("rotated files %v, want 1", old)
	}
	total := 0
	for _, f := range append(old, file) {
		b, err := os.ReadFile(f)
		if err != nil || len(b) > 1<<20 {
			t.Errorf("%s: %v, %d bytes, want at most 1 MiB", f, err, len(b))
		}
		total += strings.Count(string(b), "\n")
	}
	if total != 1500 || strings.Count(stderr.String(), "\n") != 1500 {
		t.Errorf("%d lines in the files, %d on stderr, want 1500 each", total, strings.Count(stderr.String(), "\n"))
	}
}
