package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// watchResult is the report of one watch run.
type watchResult struct {
	Endpoints     []string
	Opts          watchOptions
	Seed          uint64
	PutsSucceeded uint64
	PutErrors     uint64
	ErrorSamples  []string
	WatchErrors   uint64 // watchers that failed or were canceled during the run
	Events        eventCounts
	Drained       bool // every expected event arrived before --drain-timeout
	Interrupted   bool
	Aborted       bool
	PutDuration   time.Duration // from the first put to the last reply
	EventDuration time.Duration // from the first put to the last unique event
	PutLatency    latencies
	EventLatency  latencies // send timestamp in the value to receipt
}

// errors counts everything that makes the run fail: failed puts, failed
// watchers, and events missing, duplicated or delivered to the wrong watcher.
func (r *watchResult) errors() uint64 {
	return r.PutErrors + r.WatchErrors + r.Events.wrong()
}

func perSecond(n uint64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

type jsonWatchResult struct {
	Workload          string      `json:"workload"`
	Endpoints         []string    `json:"endpoints"`
	Watchers          int         `json:"watchers"`
	Streams           int         `json:"streams"`
	WatchKeySpace     uint64      `json:"watch_key_space"`
	Prefix            bool        `json:"prefix"`
	StallWatchers     int         `json:"stall_watchers"`
	StallStreams      int         `json:"stall_streams"`
	Puts              uint64      `json:"puts"`
	PutClients        int         `json:"put_clients"`
	PutRate           float64     `json:"put_rate"`
	ValSize           int         `json:"val_size"`
	Seed              uint64      `json:"seed"`
	Succeeded         uint64      `json:"succeeded"` // puts
	Errors            uint64      `json:"errors"`    // see watchResult.errors
	PutErrors         uint64      `json:"put_errors"`
	WatchErrors       uint64      `json:"watch_errors"`
	ErrorSamples      []string    `json:"error_samples"`
	EventsExpected    uint64      `json:"events_expected"`
	EventsReceived    uint64      `json:"events_received"`
	EventsMissing     uint64      `json:"events_missing"`
	EventsDuplicate   uint64      `json:"events_duplicate"`
	EventsExtra       uint64      `json:"events_extra"`
	EventsForeign     uint64      `json:"events_foreign"`
	Drained           bool        `json:"drained"`
	Interrupted       bool        `json:"interrupted"`
	Aborted           bool        `json:"aborted"`
	PutSeconds        float64     `json:"put_duration_seconds"`
	PutsPerSecond     float64     `json:"puts_per_second"`
	PutLatencyMillis  jsonLatency `json:"put_latency_ms"`
	EventSeconds      float64     `json:"event_duration_seconds"`
	EventsPerSecond   float64     `json:"events_per_second"`
	EventLatencyMilli jsonLatency `json:"event_latency_ms"`
}

func toJSONLatency(l latencies) jsonLatency {
	return jsonLatency{
		Avg: millis(l.Avg), Min: millis(l.Min), P50: millis(l.P50),
		P90: millis(l.P90), P99: millis(l.P99), Max: millis(l.Max),
	}
}

func (r *watchResult) writeJSON(w io.Writer) error {
	samples := r.ErrorSamples
	if samples == nil {
		samples = []string{}
	}
	o := r.Opts
	return json.NewEncoder(w).Encode(jsonWatchResult{
		Workload:          "watch",
		Endpoints:         r.Endpoints,
		Watchers:          o.watchers,
		Streams:           o.streams,
		WatchKeySpace:     o.keySpace,
		Prefix:            o.prefix,
		StallWatchers:     o.stallWatch,
		StallStreams:      o.stallStreams,
		Puts:              o.puts,
		PutClients:        o.putClients,
		PutRate:           o.putRate,
		ValSize:           o.valSize,
		Seed:              r.Seed,
		Succeeded:         r.PutsSucceeded,
		Errors:            r.errors(),
		PutErrors:         r.PutErrors,
		WatchErrors:       r.WatchErrors,
		ErrorSamples:      samples,
		EventsExpected:    r.Events.Expected,
		EventsReceived:    r.Events.Received,
		EventsMissing:     r.Events.Missing,
		EventsDuplicate:   r.Events.Duplicate,
		EventsExtra:       r.Events.Extra,
		EventsForeign:     r.Events.Foreign,
		Drained:           r.Drained,
		Interrupted:       r.Interrupted,
		Aborted:           r.Aborted,
		PutSeconds:        r.PutDuration.Seconds(),
		PutsPerSecond:     perSecond(r.PutsSucceeded, r.PutDuration),
		PutLatencyMillis:  toJSONLatency(r.PutLatency),
		EventSeconds:      r.EventDuration.Seconds(),
		EventsPerSecond:   perSecond(r.Events.Received, r.EventDuration),
		EventLatencyMilli: toJSONLatency(r.EventLatency),
	})
}

func (r *watchResult) writeText(w io.Writer) error {
	var b strings.Builder
	o := r.Opts
	what := fmt.Sprintf("one key of %d each", o.keySpace)
	if o.prefix {
		what = fmt.Sprintf("prefix %s (%d keys)", watchKeyPrefix, o.keySpace)
	}
	fmt.Fprintf(&b, "Workload:      watch, %d watchers over %d streams on %s, %d puts of %d B from %d clients to %s\n",
		o.watchers, o.streams, what, o.puts, o.valSize, o.putClients, strings.Join(r.Endpoints, ","))
	if o.stallWatch > 0 {
		fmt.Fprintf(&b, "Stalled:       %d watchers over %d streams never read\n", o.stallWatch, o.stallStreams)
	}
	if r.Interrupted {
		fmt.Fprintf(&b, "Interrupted\n")
	}
	if r.Aborted {
		fmt.Fprintf(&b, "Aborted:       too many put errors\n")
	}
	fmt.Fprintf(&b, "Puts:          %d succeeded, %d errors in %.4f s, %.1f/s\n",
		r.PutsSucceeded, r.PutErrors, r.PutDuration.Seconds(), perSecond(r.PutsSucceeded, r.PutDuration))
	fmt.Fprintf(&b, "Put (ms):      avg %.4f  p50 %.4f  p90 %.4f  p99 %.4f  max %.4f\n",
		millis(r.PutLatency.Avg), millis(r.PutLatency.P50), millis(r.PutLatency.P90), millis(r.PutLatency.P99), millis(r.PutLatency.Max))
	if o.watchers > 0 {
		e := r.Events
		fmt.Fprintf(&b, "Events:        %d expected, %d received, %d missing, %d duplicate, %d extra, %d for another key\n",
			e.Expected, e.Received, e.Missing, e.Duplicate, e.Extra, e.Foreign)
		fmt.Fprintf(&b, "Events/sec:    %.1f (%d in %.4f s from the first put to the last event)\n",
			perSecond(e.Received, r.EventDuration), e.Received, r.EventDuration.Seconds())
		fmt.Fprintf(&b, "Put→event ms:  avg %.4f  p50 %.4f  p90 %.4f  p99 %.4f  max %.4f\n",
			millis(r.EventLatency.Avg), millis(r.EventLatency.P50), millis(r.EventLatency.P90), millis(r.EventLatency.P99), millis(r.EventLatency.Max))
		if !r.Drained && !r.Interrupted && !r.Aborted {
			fmt.Fprintf(&b, "Not drained:   events still missing after --drain-timeout %v\n", o.drainTimeout)
		}
	}
	if r.WatchErrors > 0 {
		fmt.Fprintf(&b, "Watch errors:  %d watchers failed\n", r.WatchErrors)
	}
	for _, s := range r.ErrorSamples {
		fmt.Fprintf(&b, "Error:         %s\n", s)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func executeWatch(ctx context.Context, o *options, w *watchOptions) error {
	if len(o.endpoints) == 0 {
		return fmt.Errorf("--endpoints: at least one endpoint is required")
	}
	res, err := runWatch(ctx, o, w, os.Stderr)
	if err != nil {
		return err
	}
	return emit(o, res)
}

func (r *watchResult) failed() bool { return r.errors() > 0 || r.Interrupted || r.Aborted }
