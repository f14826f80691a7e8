package integration

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/cairn-kv/cairn/server"
	"github.com/cairn-kv/cairn/tests/framework"
)

// TestMemberLogsStorageEngine: the storage engine of a member logs through
// the member's logger, so its write stall warnings reach the operator.
// Pebble logs its log replay when a member reopens its engine; those
// lines must arrive in the member's log, from storage/engine.go (before
// the member passed its logger, the engine logged nowhere).
func TestMemberLogsStorageEngine(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	c := framework.StartCluster(t, 1, func(cfg *server.Config) {
		cfg.Logger = zap.New(core, zap.AddCaller())
	})
	ctx := framework.Context(t, 30*time.Second)
	if _, err := c.Client().Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	m := c.Members[0]
	m.Stop()
	logs.TakeAll()
	m.Start()
	var engine []string
	for _, e := range logs.All() {
		if strings.HasSuffix(e.Caller.File, "storage/engine.go") {
			engine = append(engine, e.Message)
		}
	}
	if len(engine) == 0 {
		t.Fatalf("no line of the storage engine in the member's log across a restart (%d lines in all)", logs.Len())
	}
	t.Logf("engine lines: %q", engine)
}
