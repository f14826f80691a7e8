package main

import (
	"testing"
	"time"
)

func TestWatchOptionsValidate(t *testing.T) {
	ok := watchOptions{
		watchers: 1000, streams: 10, keySpace: 100, keySize: 8, puts: 20000,
		putClients: 10, valSize: 256, drainTimeout: time.Second, stallStreams: 10,
	}
	tests := []struct {
		name    string
		edit    func(*watchOptions)
		wantErr bool
	}{
		{"defaults", func(*watchOptions) {}, false},
		{"negative watchers", func(w *watchOptions) { w.watchers = -1 }, true},
		{"no streams", func(w *watchOptions) { w.streams = 0 }, true},
		{"more streams than watchers", func(w *watchOptions) { w.watchers = 5 }, true},
		{"only stalled watchers, streams unused", func(w *watchOptions) { w.watchers = 0; w.stallWatch = 1000 }, false},
		{"nothing to measure", func(w *watchOptions) { w.watchers = 0 }, true},
		{"no keys", func(w *watchOptions) { w.keySpace = 0 }, true},
		{"key space larger than the key size holds", func(w *watchOptions) { w.keySize = 1 }, true},
		{"key space the key size just holds", func(w *watchOptions) { w.keySize = 2 }, false},
		{"no puts", func(w *watchOptions) { w.puts = 0 }, true},
		{"no writers", func(w *watchOptions) { w.putClients = 0 }, true},
		{"negative rate", func(w *watchOptions) { w.putRate = -1 }, true},
		{"value too small for the stamp", func(w *watchOptions) { w.valSize = stampSize - 1 }, true},
		{"value just holds the stamp", func(w *watchOptions) { w.valSize = stampSize }, false},
		{"no drain time", func(w *watchOptions) { w.drainTimeout = 0 }, true},
		{"negative stalled", func(w *watchOptions) { w.stallWatch = -1 }, true},
		{"more stall streams than stalled", func(w *watchOptions) { w.stallWatch = 5 }, true},
		{"stalled without streams", func(w *watchOptions) { w.stallWatch = 5; w.stallStreams = 0 }, true},
		{"stalled", func(w *watchOptions) { w.stallWatch = 1000 }, false},
	}
	for _, tt := range tests {
		w := ok
		tt.edit(&w)
		if err := w.validate(); (err != nil) != tt.wantErr {
			t.Errorf("%s: validate = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

// TestExpectedEvents checks the expectation against a brute-force count:
// every put to a key reaches every watcher of that key, or every watcher
// with --prefix.
func TestExpectedEvents(t *testing.T) {
	for _, prefix := range []bool{false, true} {
		for _, tc := range []struct {
			watchers int
			keys     uint64
			puts     uint64
		}{{1000, 100, 20000}, {7, 3, 10}, {3, 7, 10}, {1, 1, 5}} {
			w := watchOptions{watchers: tc.watchers, keySpace: tc.keys, prefix: prefix}
			perKey := make([]uint64, tc.keys)
			for n := range tc.puts {
				perKey[w.putKey(n)]++
			}
			var total uint64
			for i := range tc.watchers {
				var want uint64
				for n := range tc.puts {
					if prefix || w.putKey(n) == w.watcherKey(i) {
						want++
					}
				}
				if got := w.expectedEvents(i, perKey); got != want {
					t.Fatalf("prefix=%v %+v: watcher %d expects %d, want %d", prefix, tc, i, got, want)
				}
				total += want
			}
			// Puts and watchers spread evenly: with W a multiple of K every
			// put reaches W/K watchers.
			if !prefix && uint64(tc.watchers)%tc.keys == 0 && total != tc.puts*uint64(tc.watchers)/tc.keys {
				t.Fatalf("%+v: %d events in total, want %d", tc, total, tc.puts*uint64(tc.watchers)/tc.keys)
			}
		}
	}
}

func TestStreamOf(t *testing.T) {
	counts := make([]int, 10)
	for i := range 1000 {
		counts[streamOf(i, len(counts))]++
	}
	for s, c := range counts {
		if c != 100 {
			t.Errorf("stream %d has %d watchers, want 100", s, c)
		}
	}
}

func TestWatchKey(t *testing.T) {
	w := watchOptions{keySize: 8}
	if got := w.watchKey(42); got != "watch/00000042" {
		t.Fatalf("watchKey(42) = %q", got)
	}
}

func TestStampRoundTrip(t *testing.T) {
	for _, ts := range []time.Time{time.Unix(0, 0), time.Unix(1_795_000_000, 123_456_789), time.Unix(0, 1)} {
		v := make([]byte, 16)
		putStamp(v, ts)
		got, ok := readStamp(v)
		if !ok || !got.Equal(ts) {
			t.Errorf("readStamp(putStamp(%v)) = %v, %v", ts, got, ok)
		}
	}
	if _, ok := readStamp(make([]byte, stampSize-1)); ok {
		t.Errorf("readStamp accepted a value shorter than the stamp")
	}
}

func TestWatcherTally(t *testing.T) {
	tests := []struct {
		name     string
		revs     []int64
		expected uint64
		want     eventCounts
	}{
		{"all in order", []int64{3, 5, 9}, 3, eventCounts{Expected: 3, Received: 3}},
		{"one missing", []int64{3, 9}, 3, eventCounts{Expected: 3, Received: 2, Missing: 1}},
		{"a repeat", []int64{3, 5, 5, 9}, 3, eventCounts{Expected: 3, Received: 3, Duplicate: 1}},
		{"out of order", []int64{3, 9, 5}, 3, eventCounts{Expected: 3, Received: 2, Missing: 1, Duplicate: 1}},
		{"more than acknowledged", []int64{3, 5, 9, 10}, 3, eventCounts{Expected: 3, Received: 4, Extra: 1}},
		{"nothing", nil, 2, eventCounts{Expected: 2, Missing: 2}},
	}
	for _, tt := range tests {
		var tally watcherTally
		for _, r := range tt.revs {
			tally.observe(r)
		}
		var got eventCounts
		got.add(&tally, tt.expected)
		if got != tt.want {
			t.Errorf("%s: counts %+v, want %+v", tt.name, got, tt.want)
		}
		if wrong := got.Missing + got.Duplicate; (got.wrong() != 0) != (wrong != 0) {
			t.Errorf("%s: wrong() = %d, want %d", tt.name, got.wrong(), wrong)
		}
	}
}
