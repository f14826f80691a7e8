package main

import (
	"io"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestLeaseCheckpointFlags: etcd's current and experimental names both set
// the checkpoint interval, from flags or ETCD_* variables, and reach the
// server config; --lease-checkpoint-persist is accepted.
func TestLeaseCheckpointFlags(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	for _, c := range []struct {
		args []string
		env  map[string]string
		want time.Duration
	}{
		{nil, nil, 5 * time.Minute},
		{[]string{"--lease-checkpoint-interval", "2s"}, nil, 2 * time.Second},
		{[]string{"--experimental-lease-checkpoint-interval=3s", "--lease-checkpoint-persist=true"}, nil, 3 * time.Second},
		{[]string{"--experimental-enable-lease-checkpoint-persist"}, map[string]string{"ETCD_LEASE_CHECKPOINT_INTERVAL": "4s"}, 4 * time.Second},
	} {
		getenv := noEnv
		if c.env != nil {
			getenv = func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
		}
		o, err := parse(c.args, io.Discard, getenv)
		if err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		cfg, _, err := o.config(zap.NewNop())
		if err != nil {
			t.Fatalf("%v %v: config: %v", c.args, c.env, err)
		}
		if cfg.LeaseCheckpointInterval != c.want {
			t.Errorf("%v %v: interval %v, want %v", c.args, c.env, cfg.LeaseCheckpointInterval, c.want)
		}
	}
}
