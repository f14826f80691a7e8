package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// latencies summarises the latency of the successful requests.
type latencies struct {
	Avg, Min, P50, P90, P99, Max time.Duration
}

// result is the report of one run.
type result struct {
	Workload     string
	Endpoints    []string
	Clients      int
	Conns        int
	Total        uint64  // requests asked for
	Rate         float64 // requests per second asked for; 0 = unlimited
	Seed         uint64
	Succeeded    uint64
	Errors       uint64
	ErrorSamples []string      // first few distinct error messages
	Interrupted  bool          // by a signal
	Aborted      bool          // after more than --max-errors failures
	Duration     time.Duration // from the first request to the last reply
	Latency      latencies
	Lease        *leaseSummary // lease-keepalive only
}

// leaseSummary is what the lease-keepalive report adds: the leases behind
// the keep-alives, which are not themselves counted as requests.
type leaseSummary struct {
	Leases        int   // kept alive
	TTL           int64 // seconds, as granted; 0 with --existing-leases
	InFlight      int   // keep-alives in flight per stream at most
	GrantDuration time.Duration
	Revoked       int
	NotRevoked    int    // left to expire: kept, or after a revoke failed
	RevokeError   string // the failure that stopped the revokes
}

// throughput is successful requests per second over the whole run.
func (r *result) throughput() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Succeeded) / r.Duration.Seconds()
}

// jsonResult is the --json shape: stable field names, durations as floating
// point seconds or milliseconds so that scripts need no duration parser.
type jsonResult struct {
	Workload          string      `json:"workload"`
	Endpoints         []string    `json:"endpoints"`
	Clients           int         `json:"clients"`
	Conns             int         `json:"conns"`
	Total             uint64      `json:"total"`
	Rate              float64     `json:"rate"`
	Seed              uint64      `json:"seed"`
	Succeeded         uint64      `json:"succeeded"`
	Errors            uint64      `json:"errors"`
	ErrorSamples      []string    `json:"error_samples"`
	Interrupted       bool        `json:"interrupted"`
	Aborted           bool        `json:"aborted"`
	DurationSeconds   float64     `json:"duration_seconds"`
	RequestsPerSecond float64     `json:"requests_per_second"`
	LatencyMillis     jsonLatency `json:"latency_ms"`
	Lease             *jsonLease  `json:"lease,omitempty"`
}

type jsonLease struct {
	Leases       int     `json:"leases"`
	TTLSeconds   int64   `json:"ttl_seconds"`
	InFlight     int     `json:"in_flight_per_stream"`
	GrantSeconds float64 `json:"grant_seconds"`
	Revoked      int     `json:"revoked"`
	NotRevoked   int     `json:"not_revoked"`
	RevokeError  string  `json:"revoke_error,omitempty"`
}

type jsonLatency struct {
	Avg float64 `json:"avg"`
	Min float64 `json:"min"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *result) failed() bool {
	return r.Errors > 0 || r.Interrupted || r.Aborted || (r.Lease != nil && r.Lease.RevokeError != "")
}

func (r *result) writeJSON(w io.Writer) error {
	samples := r.ErrorSamples
	if samples == nil {
		samples = []string{}
	}
	var lease *jsonLease
	if l := r.Lease; l != nil {
		lease = &jsonLease{
			Leases: l.Leases, TTLSeconds: l.TTL, InFlight: l.InFlight, GrantSeconds: l.GrantDuration.Seconds(),
			Revoked: l.Revoked, NotRevoked: l.NotRevoked, RevokeError: l.RevokeError,
		}
	}
	return json.NewEncoder(w).Encode(jsonResult{
		Workload:          r.Workload,
		Endpoints:         r.Endpoints,
		Clients:           r.Clients,
		Conns:             r.Conns,
		Total:             r.Total,
		Rate:              r.Rate,
		Seed:              r.Seed,
		Succeeded:         r.Succeeded,
		Errors:            r.Errors,
		ErrorSamples:      samples,
		Interrupted:       r.Interrupted,
		Aborted:           r.Aborted,
		DurationSeconds:   r.Duration.Seconds(),
		RequestsPerSecond: r.throughput(),
		LatencyMillis: jsonLatency{
			Avg: millis(r.Latency.Avg),
			Min: millis(r.Latency.Min),
			P50: millis(r.Latency.P50),
			P90: millis(r.Latency.P90),
			P99: millis(r.Latency.P99),
			Max: millis(r.Latency.Max),
		},
		Lease: lease,
	})
}

func (r *result) writeText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Workload:      %s, %d clients over %d connections to %s\n",
		r.Workload, r.Clients, r.Conns, strings.Join(r.Endpoints, ","))
	if r.Interrupted {
		fmt.Fprintf(&b, "Interrupted:   after %d of %d requests\n", r.Succeeded+r.Errors, r.Total)
	}
	if r.Aborted {
		fmt.Fprintf(&b, "Aborted:       too many errors, after %d of %d requests\n", r.Succeeded+r.Errors, r.Total)
	}
	if l := r.Lease; l != nil {
		fmt.Fprintf(&b, "Leases:        %d", l.Leases)
		if l.TTL > 0 {
			fmt.Fprintf(&b, " of TTL %d s, granted in %.4f s", l.TTL, l.GrantDuration.Seconds())
		}
		fmt.Fprintf(&b, "; %d keep-alives in flight per stream; %d revoked, %d left to expire\n", l.InFlight, l.Revoked, l.NotRevoked)
	}
	fmt.Fprintf(&b, "Total time:    %.4f s\n", r.Duration.Seconds())
	fmt.Fprintf(&b, "Requests:      %d succeeded, %d errors\n", r.Succeeded, r.Errors)
	fmt.Fprintf(&b, "Requests/sec:  %.1f\n", r.throughput())
	fmt.Fprintf(&b, "Latency (ms):  avg %.4f  p50 %.4f  p90 %.4f  p99 %.4f  max %.4f\n",
		millis(r.Latency.Avg), millis(r.Latency.P50), millis(r.Latency.P90), millis(r.Latency.P99), millis(r.Latency.Max))
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(&b, "Error:         %s\n", s)
	}
	if r.Lease != nil && r.Lease.RevokeError != "" {
		fmt.Fprintf(&b, "Revoke error:  %s\n", r.Lease.RevokeError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
