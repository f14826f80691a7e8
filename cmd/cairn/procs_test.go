package main

import (
	"runtime"
	"testing"
)

func TestSetProcs(t *testing.T) {
	def := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(def) })

	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	if got := setProcs(env(nil)); got != procsPerCPU*def {
		t.Errorf("without GOMAXPROCS in the environment: %d processors, want %d×%d", got, procsPerCPU, def)
	}
	runtime.GOMAXPROCS(def)
	// The runtime read the variable itself; setProcs leaves its choice.
	if got := setProcs(env(map[string]string{"GOMAXPROCS": "3"})); got != def {
		t.Errorf("with GOMAXPROCS=3: %d processors, want the runtime's %d", got, def)
	}
	// The runtime ignores a value it cannot use, and so does setProcs.
	for _, v := range []string{"", "0", "-1", "many"} {
		runtime.GOMAXPROCS(def)
		if got := setProcs(env(map[string]string{"GOMAXPROCS": v})); got != procsPerCPU*def {
			t.Errorf("with GOMAXPROCS=%q: %d processors, want %d×%d", v, got, procsPerCPU, def)
		}
	}
}
