package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorruptWALRefusesStart flips one byte inside an early WAL record of a
// stopped member: cairn must refuse to start and name the file and offset,
// rather than truncate acknowledged history away.
func TestCorruptWALRefusesStart(t *testing.T) {
	p := startCairn(t, "")
	for i := 0; i < 50; i++ {
		if _, errOut, code := p.ctl(cairnctl, "", "put", fmt.Sprintf("k%02d", i), strings.Repeat("v", 100)); code != 0 {
			t.Fatalf("put: %s", errOut)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	segs, err := filepath.Glob(filepath.Join(p.DataDir, "member", "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no WAL segments: %v", err)
	}
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Offset 2048 lies within the first dozen entries of 100-byte values,
	// with many valid records after it.
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 2048); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, 2048); err != nil {
		t.Fatal(err)
	}
	f.Close()

	cmd := exec.Command(cairnBin, p.args...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Fatalf("cairn started on a corrupt WAL: err %v\n%s", err, out)
	}
	t.Logf("cairn refused to start:\n%s", out)
	if !strings.Contains(string(out), filepath.Base(segs[0])) || !strings.Contains(string(out), "offset") {
		t.Fatalf("start-up error does not name the file and offset:\n%s", out)
	}
}
