package main

import (
	"flag"
	"time"
)

// noEffectFlags are etcd's tuning options for parts of etcd that Cairn does
// not have. An existing deployment that passes them still starts: each is
// accepted with etcd's type and default (a bad value is still an error),
// does nothing, and is logged once at start-up ("flags that have no effect
// in cairn"). docs/operations.md gives each one's reason.
var noEffectFlags = []struct {
	name  string
	value any // etcd's default, of the flag's type
	why   string
}{
	{"backend-batch-interval", time.Duration(0), "bbolt's commit batching; Cairn commits each applied group"},
	{"backend-batch-limit", 0, "bbolt's commit batching; Cairn commits each applied group"},
	{"backend-bbolt-freelist-type", "map", "Cairn's storage is not bbolt"},
	{"compaction-batch-limit", 1000, "etcd's compaction batches; Cairn's compaction is paced and holds no write back"},
	{"compaction-sleep-interval", 10 * time.Millisecond, "etcd's compaction batches; Cairn's compaction is paced and holds no write back"},
	{"bootstrap-defrag-threshold-megabytes", uint(0), "Cairn reclaims space without stopping; there is nothing to defragment at start"},
	{"downgrade-check-time", 5 * time.Second, "Cairn cannot be downgraded (Downgrade answers as a cluster that cannot)"},
	{"raft-read-timeout", 5 * time.Second, "etcd's rafthttp timeouts; Cairn's peer transport detects dead connections by its own pings"},
	{"raft-write-timeout", 5 * time.Second, "etcd's rafthttp timeouts; Cairn's peer transport detects dead connections by its own pings"},
}

func addNoEffectFlags(fs *flag.FlagSet) {
	for _, f := range noEffectFlags {
		usage := "Accepted for etcd compatibility; no effect: " + f.why + "."
		switch v := f.value.(type) {
		case time.Duration:
			fs.Duration(f.name, v, usage)
		case int:
			fs.Int(f.name, v, usage)
		case uint:
			fs.Uint(f.name, v, usage)
		case string:
			fs.String(f.name, v, usage)
		}
	}
}

// noteNoEffect records in o.noEffect which of those flags were given,
// whatever the source: fs must hold every value given.
func (o *options) noteNoEffect(fs *flag.FlagSet) {
	fs.Visit(func(fl *flag.Flag) {
		for _, f := range noEffectFlags {
			if f.name == fl.Name {
				o.noEffect = append(o.noEffect, fl.Name+"="+fl.Value.String())
			}
		}
	})
}
