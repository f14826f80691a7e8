package ctltest

import "testing"

func TestNormalizeDropsRacyClientWarnings(t *testing.T) {
	racy := `{"level":"warn","ts":"2026-11-22T06:46:55Z","logger":"etcd-client","caller":"v3/lease.go:1","msg":"error occurred during lease keep alive request sending","error":"EOF"}` + "\n"
	other := `{"level":"warn","ts":"2026-11-22T06:46:55Z","logger":"etcd-client","caller":"v3/retry.go:1","msg":"retrying of unary invoker failed","error":"EOF"}` + "\n"
	got := Normalize("out\n"+racy+other, nil, false)
	want := "out\n" + `LOG error="EOF" level="warn" logger="etcd-client" msg="retrying of unary invoker failed"` + "\n"
	if got != want {
		t.Fatalf("Normalize:\n got %q\nwant %q", got, want)
	}
}
