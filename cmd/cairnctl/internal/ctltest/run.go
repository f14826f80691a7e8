package ctltest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Result is what one invocation of a CLI produced.
type Result struct {
	Stdout, Stderr string
	Code           int
	// Stopped is set when the run was ended by the test (Live.Stop), not
	// by itself: Code is then meaningless.
	Stopped bool
}

// Invocation is one command line as a script would run it.
type Invocation struct {
	Args  []string // without the program name
	Env   []string // KEY=value added to a minimal environment
	Stdin string
}

// BaseEnv is the environment every invocation starts from: no ETCDCTL_*
// variable of the developer's shell leaks into a comparison.
func BaseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// RunBinary runs a CLI binary (the reference etcdctl).
func RunBinary(bin string, inv Invocation) Result {
	cmd := exec.Command(bin, inv.Args...)
	cmd.Env = append(BaseEnv(), inv.Env...)
	cmd.Stdin = strings.NewReader(inv.Stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else {
			code = -1
			errb.WriteString("harness: " + err.Error())
		}
	}
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

// Normalize rewrites what may differ between two correct runs:
//   - JSON log lines lose the fields that depend on time, source location,
//     pointers and local ports (ts, caller, stacktrace, target, peer);
//   - each side's own endpoints become "<ep0>", "<ep1>"...;
//   - with durations, Go durations (endpoint health's "took") become "<dur>";
//   - the "marshal unsupported" error, which shows a response with %v, loses
//     its pointers and the width of the gaps of protobuf's text format (the
//     protobuf library varies them from one binary to another on purpose);
//   - the client library's warnings that depend only on how the CLI's exit
//     races the library's own goroutines (racyClientLogs) are dropped: the
//     same binary prints them in one run and not in the next.
func Normalize(s string, endpoints []string, durations bool) string {
	for i, ep := range endpoints {
		s = strings.ReplaceAll(s, ep, "<ep"+string(rune('0'+i))+">")
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, `{"level":`) && racyClientLog(l):
			lines[i] = ""
		case strings.HasPrefix(l, `{"level":`):
			lines[i] = normalizeLog(l)
		case strings.HasPrefix(l, marshalUnsupported):
			l = pointerRE.ReplaceAllString(l, "0x<ptr>")
			lines[i] = spacesRE.ReplaceAllString(l, " ")
		}
	}
	s = strings.Join(lines, "")
	if durations {
		s = durationRE.ReplaceAllString(s, "<dur>")
	}
	return s
}

var durationRE = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|us|ms|s)\b`)

const marshalUnsupported = "Error: marshal unsupported for type "

var (
	pointerRE = regexp.MustCompile(`\b0x[0-9a-f]+\b`)
	spacesRE  = regexp.MustCompile(` {2,}`)
)

// racyClientLogs are clientv3 warnings printed when a CLI exits while the
// library is still sending: a keep-alive request on a stream the exit
// closes fails with EOF.
var racyClientLogs = []string{"error occurred during lease keep alive request sending"}

func racyClientLog(line string) bool {
	var m struct {
		Logger string `json:"logger"`
		Msg    string `json:"msg"`
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil || m.Logger != "etcd-client" {
		return false
	}
	return slices.Contains(racyClientLogs, m.Msg)
}

func normalizeLog(line string) string {
	trimmed := strings.TrimRight(line, "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(trimmed), &m); err != nil {
		return line
	}
	for _, k := range []string{"ts", "caller", "stacktrace", "target", "peer"} {
		delete(m, k)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("LOG")
	for _, k := range keys {
		v, _ := json.Marshal(m[k])
		b.WriteString(" " + k + "=" + string(v))
	}
	return b.String() + line[len(trimmed):]
}

// TableShape collapses the padding of box-drawn tables, for tables whose
// cells (durations) legitimately differ in width.
func TableShape(s string) string {
	s = regexp.MustCompile(`─+`).ReplaceAllString(s, "─")
	return regexp.MustCompile(` +`).ReplaceAllString(s, " ")
}

// FirstLine returns s up to its first newline.
func FirstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// LastLine returns the last non-empty line of s.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
