package main

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/cairn-kv/cairn/server"
)

// etcd 3.7 switches its alpha and beta server features with
// --feature-gates=Name=true,Other=false (also ETCD_FEATURE_GATES, and the
// config file's feature-gates string). Cairn accepts the same values, parses
// them by the rules of etcd's featuregate package, and gives each gate its
// meaning in Cairn: two switch a Cairn option, the others have no effect
// because Cairn always behaves one way (the gates table says which).

// Maturities of the gates, as etcd prints them.
const (
	alpha = "ALPHA"
	beta  = "BETA"
)

// featureGate is one of etcd 3.7.3's server feature gates.
type featureGate struct {
	name  string
	stage string // alpha or beta
	// etcdDefault is etcd's value when the gate is not given.
	etcdDefault bool
	// flags are the Cairn flags (name and alias) of the option the gate
	// switches, nil when the gate has no effect in Cairn.
	flags []string
	// cairn is what the gate means in Cairn, for --help.
	cairn string
	// always is what Cairn does whatever a gate without flags says, for
	// etcd_server_feature_enabled (etcdAll: the value the gate was given,
	// as for AllAlpha and AllBeta).
	always gateState
}

// gateState is what etcd_server_feature_enabled reports for a gate
// without an option of Cairn's.
type gateState int

const (
	off     gateState = iota // Cairn never behaves so
	on                       // Cairn always behaves so
	etcdAll                  // AllAlpha, AllBeta: the value given
	leaseCP                  // on while lease checkpoints are (--lease-checkpoint-interval > 0)
)

// Names of the gates with a role in the code.
const (
	gateAllAlpha               = "AllAlpha"
	gateAllBeta                = "AllBeta"
	gateInitialCorruptCheck    = "InitialCorruptCheck"
	gateCompactHashCheck       = "CompactHashCheck"
	gateLeaseCheckpoint        = "LeaseCheckpoint"
	gateLeaseCheckpointPersist = "LeaseCheckpointPersist"
)

// featureGates are etcd 3.7.3's server gates (its features/etcd_features.go
// and the two generic ones), sorted by name as etcd's help lists them.
var featureGates = []featureGate{
	{gateAllAlpha, alpha, false, nil, "sets every ALPHA gate not given otherwise", etcdAll},
	{gateAllBeta, beta, false, nil, "sets every BETA gate not given otherwise", etcdAll},
	{gateCompactHashCheck, alpha, false, []string{"compact-hash-check-enabled", "experimental-compact-hash-check-enabled"},
		"sets --compact-hash-check-enabled, whose default is true", off},
	{"FastLeaseKeepAlive", beta, true, nil, "no effect, Cairn's leader always renews leases without waiting for its apply loop", on},
	{gateInitialCorruptCheck, alpha, false, []string{"initial-corrupt-check", "experimental-initial-corrupt-check"},
		"sets --initial-corrupt-check, whose default is true", off},
	{gateLeaseCheckpoint, alpha, false, nil, "no effect, Cairn always checkpoints remaining TTLs (--lease-checkpoint-interval)", leaseCP},
	{gateLeaseCheckpointPersist, alpha, false, nil, "no effect, Cairn's checkpoints always persist; true still needs LeaseCheckpoint=true, as in etcd", leaseCP},
	{"PriorityRequest", alpha, false, nil, "no effect, Cairn refuses no request for a backlog of unapplied entries", off},
	{"SetMemberLocalAddr", alpha, false, nil, "no effect, Cairn dials peers from the address the system picks", off},
	{"StopGRPCServiceOnDefrag", alpha, false, nil, "no effect, Cairn's defragment does not stop reads or writes", off},
	{"TxnModeWriteWithSharedBuffer", beta, true, nil, "no effect, a detail of etcd's bbolt reads; Cairn stores in Pebble", off},
}

func lookupGate(name string) *featureGate {
	for i := range featureGates {
		if featureGates[i].name == name {
			return &featureGates[i]
		}
	}
	return nil
}

// featureGatesUsage is the help of --feature-gates: etcd's text, with each
// gate's meaning in Cairn.
func featureGatesUsage() string {
	var b strings.Builder
	b.WriteString("A set of `key=value` pairs that describe server level feature gates for alpha/experimental features. Options are:")
	for _, g := range featureGates {
		fmt.Fprintf(&b, "\n%s=true|false (%s - default=%t); in Cairn: %s", g.name, g.stage, g.etcdDefault, g.cairn)
	}
	b.WriteString("\nThe defaults above are etcd's. Giving a gate and its option's flag with different values is an error.")
	return b.String()
}

// gateValues is the flag.Value of --feature-gates. Like etcd's, every Set
// (a repeated flag) adds to the gates set before.
type gateValues struct {
	// enabled is etcd's state: the gates given, and those AllAlpha or
	// AllBeta set because they were not set yet. Its String is etcd's.
	enabled map[string]bool
	// named are the gates given by name rather than through AllAlpha or
	// AllBeta.
	named map[string]bool
}

func (g *gateValues) String() string {
	pairs := make([]string, 0, len(g.enabled))
	for k, v := range g.enabled {
		pairs = append(pairs, fmt.Sprintf("%s=%t", k, v))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}

// Get makes the config file's feature-gates a string, as in etcd.
func (g *gateValues) Get() any { return g.String() }

// Set adds the gates of a comma-separated list of Name=bool, with etcd's
// rules and error texts: empty items are skipped, spaces around names and
// values trimmed, bools are strconv.ParseBool's, a gate given twice takes
// its last value, and AllAlpha and AllBeta set every gate of their stage
// that has no value yet (neither given by name in this list nor set
// before). On an error nothing changes.
func (g *gateValues) Set(value string) error {
	given := map[string]bool{}
	var order []string
	for _, item := range strings.Split(value, ",") {
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return fmt.Errorf("missing bool value for %s", k)
		}
		v = strings.TrimSpace(v)
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("invalid value of %s=%s, err: %w", k, v, err)
		}
		if _, dup := given[k]; !dup {
			order = append(order, k)
		}
		given[k] = b
	}
	// etcd reports the first unknown gate in map order, so any one of
	// several; Cairn the first in the list.
	for _, k := range order {
		if lookupGate(k) == nil {
			return fmt.Errorf("unrecognized feature gate: %s", k)
		}
	}
	enabled, named := maps.Clone(g.enabled), maps.Clone(g.named)
	if enabled == nil {
		enabled, named = map[string]bool{}, map[string]bool{}
	}
	for _, k := range order {
		enabled[k], named[k] = given[k], true
	}
	// etcd applies the gates of one list in map order, but the outcome
	// does not depend on it: AllAlpha and AllBeta only fill gates without
	// a value.
	for _, all := range []struct{ gate, stage string }{{gateAllAlpha, alpha}, {gateAllBeta, beta}} {
		v, ok := given[all.gate]
		if !ok {
			continue
		}
		for _, f := range featureGates {
			if _, set := enabled[f.name]; f.stage == all.stage && !set {
				enabled[f.name] = v
			}
		}
	}
	g.enabled, g.named = enabled, named
	return nil
}

// enabledOr is the gate's value in etcd: set, or etcd's default.
func (g *gateValues) enabledOr(name string) bool {
	if v, ok := g.enabled[name]; ok {
		return v
	}
	return lookupGate(name).etcdDefault
}

// states are the gates as etcd_server_feature_enabled reports them: what
// the member does. A gate with an option of Cairn's is that option's value
// (given the gates, the flags and Cairn's defaults); a gate without one is
// what Cairn always does, whatever it was given (see always).
func (o *options) states(options map[string]bool) []server.FeatureGate {
	out := make([]server.FeatureGate, 0, len(featureGates))
	for _, g := range featureGates {
		enabled := options[g.name]
		if g.flags == nil {
			switch g.always {
			case on:
				enabled = true
			case etcdAll:
				enabled = o.featureGates.enabledOr(g.name)
			case leaseCP:
				enabled = o.leaseCheckpointInterval > 0
			}
		}
		out = append(out, server.FeatureGate{Name: g.name, Stage: g.stage, Enabled: enabled})
	}
	return out
}

// validate refuses what etcd refuses.
func (g *gateValues) validate() error {
	if g.enabledOr(gateLeaseCheckpointPersist) && !g.enabledOr(gateLeaseCheckpoint) {
		return fmt.Errorf("enabling feature gate LeaseCheckpointPersist requires enabling feature gate LeaseCheckpoint")
	}
	return nil
}

// noEffect lists the gates set, by name or through AllAlpha or AllBeta,
// that have no effect in Cairn, as Name=bool.
func (g *gateValues) noEffect() []string {
	var out []string
	for _, f := range featureGates {
		v, ok := g.enabled[f.name]
		if ok && f.flags == nil && f.name != gateAllAlpha && f.name != gateAllBeta {
			out = append(out, fmt.Sprintf("%s=%t", f.name, v))
		}
	}
	return out
}

// noteGatedFlags records in o.gatedFlags which flag, if any, set the option
// of each gate that switches one, whatever the source (command line,
// ETCD_* or config file): fs must hold every value given.
func (o *options) noteGatedFlags(fs *flag.FlagSet) {
	fs.Visit(func(fl *flag.Flag) {
		for _, g := range featureGates {
			if _, done := o.gatedFlags[g.name]; !done && slices.Contains(g.flags, fl.Name) {
				if o.gatedFlags == nil {
					o.gatedFlags = map[string]string{}
				}
				o.gatedFlags[g.name] = fl.Name
			}
		}
	})
}

// gated is the value of option, the option gate switches: the gate's
// when given by name, else the flag's when given, else the value AllAlpha
// or AllBeta gave the gate, else the flag's default (Cairn's). A gate given
// by name and the flag given with another value are an error.
func (o *options) gated(gate string, option bool) (bool, error) {
	flagName := o.gatedFlags[gate]
	v, set := o.featureGates.enabled[gate]
	switch {
	case o.featureGates.named[gate] && flagName != "" && v != option:
		return false, fmt.Errorf("cannot specify both flags: --%s=%t and --feature-gates=%s=%t at the same time, please just use one of them",
			flagName, option, gate, v)
	case o.featureGates.named[gate]:
		return v, nil
	case flagName != "":
		return option, nil
	case set:
		return v, nil
	}
	return option, nil
}
