package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestGRPCLogGoesToTheMemberLog: what gRPC and the libraries logging
// through it print reaches the member's log as JSON lines like its own,
// not as raw lines on stderr beside them (so it also follows
// --log-outputs). A WebSocket watch that the client closes makes
// grpc-gateway log "Failed to notify error to client" through gRPC's
// logger; before the member routed that logger, the line came out raw.
func TestGRPCLogGoesToTheMemberLog(t *testing.T) {
	p := startCairn(t, "")
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+p.Endpoint+"/v3/watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"create_request":{"key":"aw=="}}`)); err != nil {
		t.Fatal(err)
	}
	_, msg, err := ws.ReadMessage()
	if err != nil || !strings.Contains(string(msg), `"created":true`) {
		t.Fatalf("watch over WebSocket: %s, %v", msg, err)
	}
	ws.Close()
	// The gateway logs once it finds the client gone.
	p.waitLog("Failed to notify error to client", 30*time.Second)
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}

	grpcLines := 0
	for line := range strings.Lines(p.Log()) {
		var entry struct {
			Level, Logger, Msg string
		}
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("a line of the member's stderr is not a JSON log entry: %q", line)
			continue
		}
		if entry.Logger == "grpc" {
			grpcLines++
			if entry.Level == "info" || entry.Level == "debug" {
				t.Errorf("gRPC's %s line logged at --log-level info: %q", entry.Level, line)
			}
		}
	}
	if grpcLines == 0 {
		t.Errorf("gRPC's line did not come through the member's logger; log:\n%s", p.Log())
	}
}

// TestGOMAXPROCS: cairn runs two Go processors per CPU the runtime would
// give it (cmd/cairn/procs.go: reads that miss the block cache block
// their thread), unless GOMAXPROCS in the environment says otherwise. The
// member's start-up line reports the value in force as etcd's
// "max-cpu-set".
func TestGOMAXPROCS(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set for the tests, so the runtime's own default is unknown here")
	}
	maxCPUSet := func(env string) int {
		t.Helper()
		ep, dir := fmt.Sprintf("127.0.0.1:%d", freePort(t)), filepath.Join(t.TempDir(), "data")
		p := startProc(t, ep, dir, []string{
			"--listen-client-urls", "http://" + ep, "--advertise-client-urls", "http://" + ep,
			"--listen-peer-urls", "http://127.0.0.1:0", "--data-dir", dir,
		}, []string{env})
		for line := range strings.Lines(p.Log()) {
			var entry struct {
				Msg string
				N   *int `json:"max-cpu-set"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "starting a cairn member" && entry.N != nil {
				return *entry.N
			}
		}
		t.Fatalf("no max-cpu-set in the start-up line; log:\n%s", p.Log())
		return 0
	}
	if got, want := maxCPUSet("GOMAXPROCS="), 2*runtime.GOMAXPROCS(0); got != want {
		t.Errorf("GOMAXPROCS unset: max-cpu-set %d, want %d (2 per CPU)", got, want)
	}
	if got := maxCPUSet("GOMAXPROCS=3"); got != 3 {
		t.Errorf("GOMAXPROCS=3: max-cpu-set %d, want 3", got)
	}
}

// TestLoggingErrorsDifferentialEtcd: bad logging options, and the v2
// proxy as --discovery-fallback, stop etcd and Cairn alike, before they
// serve: exit status 1, the command line, then the warning "failed to
// verify flags" with the same error. (An unknown
// --log-level is left out: etcd v3.7.3 panics on it, "unrecognized level";
// Cairn gives the warning with its own error, TestLoggerErrors.)
func TestLoggingErrorsDifferentialEtcd(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "member.log")
	for _, args := range [][]string{
		{"--log-format", "xml"},
		{"--enable-log-rotation"},
		{"--enable-log-rotation", "--log-outputs", logFile + "," + logFile + ".2"},
		{"--enable-log-rotation", "--log-outputs", logFile, "--log-rotation-config-json", `{"maxsize": "big"}`},
		{"--enable-log-rotation", "--log-outputs", logFile, "--log-rotation-config-json", `{"maxsize": 1`},
		{"--discovery-fallback", "proxy"},
	} {
		var got []string
		for _, bin := range []string{etcdBin, cairnBin} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, bin, append([]string{"--data-dir", filepath.Join(t.TempDir(), "data")}, args...)...)
			out, err := cmd.CombinedOutput()
			cancel()
			msgs := []string{fmt.Sprint(err)}
			for line := range strings.Lines(string(out)) {
				var e struct{ Msg, Error string }
				if json.Unmarshal([]byte(line), &e) == nil {
					msgs = append(msgs, strings.TrimSpace(e.Msg+" "+e.Error))
				}
			}
			got = append(got, strings.Join(msgs, " | "))
		}
		if got[0] != got[1] || !strings.Contains(got[0], "exit status 1 | Running: | failed to verify flags ") {
			t.Errorf("%q:\netcd:  %s\ncairn: %s", args, got[0], got[1])
		}
	}
}
