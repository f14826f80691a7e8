package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

func (r *defragResult) failed() bool { return r.Errors > 0 || r.Interrupted || r.Aborted }

type jsonDefragResult struct {
	Workload        string           `json:"workload"`
	Endpoints       []string         `json:"endpoints"`
	Clients         int              `json:"clients"`
	Conns           int              `json:"conns"`
	Rate            float64          `json:"rate"`
	Seed            uint64           `json:"seed"`
	ValSize         int              `json:"val_size"`
	FillKeys        uint64           `json:"fill_keys"`
	FillVersions    uint64           `json:"fill_versions"`
	FillValSize     int              `json:"fill_val_size"`
	FillPuts        uint64           `json:"fill_puts"`
	FillSeconds     float64          `json:"fill_seconds"`
	CompactRevision int64            `json:"compact_revision"`
	Sizes           []jsonDBSizes    `json:"db_sizes"`
	Phases          []jsonPhaseStats `json:"phases"`
	Succeeded       uint64           `json:"succeeded"`
	Errors          uint64           `json:"errors"`
	ErrorSamples    []string         `json:"error_samples"`
	Interrupted     bool             `json:"interrupted"`
	Aborted         bool             `json:"aborted"`
}

type jsonDBSizes struct {
	When       string `json:"when"`
	DBSize     int64  `json:"db_size"`
	DBSizeUsed int64  `json:"db_size_in_use"`
}

type jsonPhaseStats struct {
	Name          string      `json:"name"`
	Note          string      `json:"note,omitempty"`
	Seconds       float64     `json:"seconds"`
	Puts          int         `json:"puts"`
	LatencyMillis jsonLatency `json:"latency_ms"`
	LongestGapMs  float64     `json:"longest_gap_ms"`
}

func (r *defragResult) writeJSON(w io.Writer) error {
	j := jsonDefragResult{
		Workload: "defrag", Endpoints: r.Endpoints, Clients: r.Clients, Conns: r.Conns, Rate: r.Rate, Seed: r.Seed,
		ValSize: r.Opts.valSize, FillKeys: r.Opts.fillKeys, FillVersions: r.Opts.fillVersions, FillValSize: r.Opts.fillValSize,
		FillPuts: r.FillPuts, FillSeconds: r.FillDuration.Seconds(), CompactRevision: r.CompactRev,
		Sizes: []jsonDBSizes{}, Phases: []jsonPhaseStats{},
		Succeeded: r.Succeeded, Errors: r.Errors, ErrorSamples: r.ErrorSamples,
		Interrupted: r.Interrupted, Aborted: r.Aborted,
	}
	if j.ErrorSamples == nil {
		j.ErrorSamples = []string{}
	}
	for _, s := range r.Sizes {
		j.Sizes = append(j.Sizes, jsonDBSizes{When: s.When, DBSize: s.DBSize, DBSizeUsed: s.InUse})
	}
	for _, p := range r.Phases {
		j.Phases = append(j.Phases, jsonPhaseStats{
			Name: p.Name, Note: p.Note, Seconds: p.Duration.Seconds(), Puts: p.Puts,
			LatencyMillis: jsonLatency{
				Avg: millis(p.Latency.Avg), Min: millis(p.Latency.Min), P50: millis(p.Latency.P50),
				P90: millis(p.Latency.P90), P99: millis(p.Latency.P99), Max: millis(p.Latency.Max),
			},
			LongestGapMs: millis(p.LongestGap),
		})
	}
	return json.NewEncoder(w).Encode(j)
}

func (r *defragResult) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Workload:      defrag, %d clients over %d connections to %s", r.Clients, r.Conns, strings.Join(r.Endpoints, ","))
	if r.Rate > 0 {
		fmt.Fprintf(&b, " at %.0f puts/s", r.Rate)
	}
	fmt.Fprintf(&b, "\nHistory:       %d puts (%d keys × %d versions of %d B, %d per txn) written in %.1f s\n",
		r.FillPuts, r.Opts.fillKeys, r.Opts.fillVersions, r.Opts.fillValSize, r.Opts.fillTxnOps, r.FillDuration.Seconds())
	for _, s := range r.Sizes {
		fmt.Fprintf(&b, "DB size:       %.1f MiB, %.1f MiB in use (%s)\n", float64(s.DBSize)/(1<<20), float64(s.InUse)/(1<<20), s.When)
	}
	fmt.Fprintf(&b, "%-12s %9s %7s %9s %9s %9s %12s\n", "phase", "seconds", "puts", "p50 ms", "p99 ms", "max ms", "longest gap")
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "%-12s %9.3f %7d %9.2f %9.2f %9.2f %9.2f ms", p.Name, p.Duration.Seconds(), p.Puts,
			millis(p.Latency.P50), millis(p.Latency.P99), millis(p.Latency.Max), millis(p.LongestGap))
		if p.Note != "" {
			fmt.Fprintf(&b, "  (%s)", p.Note)
		}
		b.WriteString("\n")
	}
	if r.Interrupted {
		b.WriteString("Interrupted\n")
	}
	if r.Aborted {
		b.WriteString("Aborted:       too many errors\n")
	}
	fmt.Fprintf(&b, "Puts:          %d succeeded, %d errors\n", r.Succeeded, r.Errors)
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(&b, "Error:         %s\n", s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
