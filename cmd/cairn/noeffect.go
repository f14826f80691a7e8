package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
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
	// v3 discovery's client options act only with --discovery-endpoints,
	// which Cairn accepts empty only (defaultOnlyFlags): in etcd too they
	// then do nothing.
	{"discovery-dial-timeout", 2 * time.Second, "v3 discovery (use --initial-cluster)"},
	{"discovery-request-timeout", 5 * time.Second, "v3 discovery (use --initial-cluster)"},
	{"discovery-keepalive-time", 2 * time.Second, "v3 discovery (use --initial-cluster)"},
	{"discovery-keepalive-timeout", 6 * time.Second, "v3 discovery (use --initial-cluster)"},
	{"discovery-insecure-transport", true, "v3 discovery (use --initial-cluster)"},
	{"discovery-insecure-skip-tls-verify", false, "v3 discovery (use --initial-cluster)"},
	{"discovery-cert", "", "v3 discovery (use --initial-cluster)"},
	{"discovery-key", "", "v3 discovery (use --initial-cluster)"},
	{"discovery-cacert", "", "v3 discovery (use --initial-cluster)"},
	{"discovery-user", "", "v3 discovery (use --initial-cluster)"},
	{"discovery-password", "", "v3 discovery (use --initial-cluster)"},
}

// deprecatedFlags are etcd's options that etcd warns about when given, with
// etcd's warnings, logged by run before the command line.
var deprecatedFlags = map[string]string{
	"max-snapshots":  "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.",
	"v2-deprecation": "--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.",
}

// noteDeprecated records the warnings of the deprecated flags given,
// whatever the source: fs must hold every value given.
func (o *options) noteDeprecated(fs *flag.FlagSet) {
	fs.Visit(func(fl *flag.Flag) {
		if msg, ok := deprecatedFlags[fl.Name]; ok {
			o.deprecated = append(o.deprecated, msg)
		}
	})
}

// v2Deprecation is etcd's --v2-deprecation: one of its four stages is
// accepted and, as in etcd v3.7, ignored (etcd enforces its default).
type v2Deprecation string

func (v *v2Deprecation) String() string { return string(*v) }
func (v *v2Deprecation) Get() any       { return string(*v) }

func (v *v2Deprecation) Set(s string) error {
	switch s {
	case "not-yet", "write-only", "write-only-drop-data", "gone":
		*v = v2Deprecation(s)
		return nil
	}
	return fmt.Errorf("invalid value %q", s)
}

// defaultOnlyFlags are etcd's options for features Cairn does not have.
// Each is accepted, as flag, ETCD_* variable or config-file key, at etcd's
// default, which asks for none of the feature, so that a deployment that
// spells out the defaults still starts; any other value stops the member
// (checkDefaultOnly), since it asks for what Cairn cannot do.
var defaultOnlyFlags = []struct {
	name  string
	value any // etcd's default, of the flag's type
	what  string
}{
	{"auth-token", "simple", "authentication (the Auth service)"},
	{"bcrypt-cost", uint(10), "authentication (the Auth service)"},
	{"auth-token-ttl", uint(300), "authentication (the Auth service)"},
	{"enable-distributed-tracing", false, "OpenTelemetry tracing"},
	{"distributed-tracing-address", "localhost:4317", "OpenTelemetry tracing"},
	{"distributed-tracing-service-name", "etcd", "OpenTelemetry tracing"},
	{"distributed-tracing-instance-id", "", "OpenTelemetry tracing"},
	{"distributed-tracing-sampling-rate", 0, "OpenTelemetry tracing"},
	{"discovery-srv", "", "DNS discovery (use --initial-cluster)"},
	{"discovery-srv-name", "", "DNS discovery (use --initial-cluster)"},
	{"discovery-token", "", "v3 discovery (use --initial-cluster)"},
	{"discovery-endpoints", "", "v3 discovery (use --initial-cluster)"},
	{"memory-mlock", false, "memory locking: its storage is not memory-mapped"},
}

func addNoEffectFlags(fs *flag.FlagSet) {
	for _, f := range noEffectFlags {
		addTyped(fs, f.name, f.value, "Accepted for etcd compatibility; no effect: "+f.why+".")
	}
	for _, f := range defaultOnlyFlags {
		addTyped(fs, f.name, f.value, "Accepted at etcd's default only: Cairn has no "+f.what+".")
	}
	fs.Var(&selective{v: "exit", valids: []string{"exit", "proxy"}}, "discovery-fallback", `What to do when discovery fails: "exit" (etcd's "proxy" is refused, as etcd refuses it).`)
	v2 := v2Deprecation("write-only")
	fs.Var(&v2, "v2-deprecation", "v2store deprecation stage: not-yet, write-only, write-only-drop-data or gone. Deprecated; accepted and ignored, as etcd v3.7 ignores it.")
}

// addTyped defines flag name with default value, of value's type.
func addTyped(fs *flag.FlagSet, name string, value any, usage string) {
	switch v := value.(type) {
	case time.Duration:
		fs.Duration(name, v, usage)
	case int:
		fs.Int(name, v, usage)
	case uint:
		fs.Uint(name, v, usage)
	case string:
		fs.String(name, v, usage)
	case bool:
		fs.Bool(name, v, usage)
	}
}

// selective is a string option that takes one of a few values, with
// etcd's error for any other.
type selective struct {
	v      string
	valids []string
}

func (s *selective) String() string { return s.v }
func (s *selective) Get() any       { return s.v }

func (s *selective) Set(v string) error {
	if !slices.Contains(s.valids, v) {
		return errors.New("invalid value")
	}
	s.v = v
	return nil
}

// unsupportedError is an option of defaultOnlyFlags given another value
// than etcd's default. run reports it as etcd reports an invalid
// configuration ("failed to verify flags", exit status 1).
type unsupportedError struct{ error }

// checkDefaultOnly refuses the options of defaultOnlyFlags set to anything
// but etcd's default, whatever the source: fs must hold every value given.
func checkDefaultOnly(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "discovery-fallback" && fl.Value.String() == "proxy" && err == nil {
			err = &unsupportedError{errors.New(`v2 proxy is deprecated, and --discovery-fallback can't be configured as "proxy"`)}
		}
		for _, f := range defaultOnlyFlags {
			if f.name == fl.Name && fl.Value.String() != fl.DefValue && err == nil {
				err = &unsupportedError{fmt.Errorf("--%s=%s: etcd's option is not supported by cairn, which has no %s (remove it, or give etcd's default %q)", fl.Name, fl.Value, f.what, fl.DefValue)}
			}
		}
	})
	return err
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
