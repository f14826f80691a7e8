package ctl

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// progressFrame matches one frame of the check commands' progress bar.
var progressFrame = regexp.MustCompile(`(\d+) / (\d+) \[[-_>]*\] \d+\.\d\d% (\?|\d+) p/s`)

// TestFormatFrameLikeEtcdctl redraws every frame etcdctl 3.7.3 drew in
// the recorded runs (../../testdata/check, see README there) from its
// counters and speed, and expects the same bytes.
func TestFormatFrameLikeEtcdctl(t *testing.T) {
	for _, name := range []string{"etcdctl-perf-auto.stderr", "etcdctl-datascale.stderr"} {
		b, err := os.ReadFile("../../testdata/check/" + name)
		if err != nil {
			t.Fatal(err)
		}
		frames := progressFrame.FindAllStringSubmatch(string(b), -1)
		if len(frames) < 10 || progressFrame.ReplaceAllString(string(b), "") != "" {
			t.Fatalf("%s: %d frames and %q besides", name, len(frames), progressFrame.ReplaceAllString(string(b), ""))
		}
		for i, f := range frames {
			value, _ := strconv.ParseInt(f[1], 10, 64)
			total, _ := strconv.ParseInt(f[2], 10, 64)
			speed, _ := strconv.ParseFloat(f[3], 64) // "?" is 0
			final := i == len(frames)-1
			if got := formatFrame(value, total, speed, 100, final); got != f[0] {
				t.Fatalf("%s frame %d:\n got %q\nwant %q", name, i, got, f[0])
			}
		}
	}
}

func TestRenderBar(t *testing.T) {
	for _, c := range []struct {
		value, total int64
		width        int
		final        bool
		want         string
	}{
		{0, 10, 12, false, "[__________]"},
		{1, 10, 12, false, "[>_________]"},
		{5, 10, 12, false, "[---->_____]"},
		{10, 10, 12, false, "[--------->]"},
		{10, 10, 12, true, "[----------]"},
		{7, 10, 12, true, "[------>___]"},
		{20, 10, 12, false, "[--------->]"}, // past the total
		{0, 0, 6, true, "[____]"},
		{3, 0, 6, false, "[____]"},
		{1, 2, 1, false, "["},
		{1, 2, 2, false, "[]"},
		{1, 2, 3, false, "[>]"},
	} {
		if got := renderBar(c.value, c.total, c.width, c.final); got != c.want {
			t.Errorf("renderBar(%d, %d, %d, %v) = %q, want %q", c.value, c.total, c.width, c.final, got, c.want)
		}
	}
}

func TestFormatFrameNarrow(t *testing.T) {
	// No room for the bar: the rest, cut to the width.
	if got := formatFrame(5, 10, 0, 20, false); got != "5 / 10  50.00% ? p/s" {
		t.Errorf("got %q", got)
	}
	if got := formatFrame(5, 10, 0, 8, false); got != "5 / 10  " {
		t.Errorf("got %q", got)
	}
	if got := formatFrame(5, 10, 0, 0, false); got != "" {
		t.Errorf("got %q", got)
	}
	if got := formatFrame(5, 0, 0, 24, false); got != "5 [___________] ?% ? p/s" {
		t.Errorf("no total: got %q", got)
	}
}

// TestProgressBarFrames drives a bar with a fake clock: the speed is
// unknown until two frames half a second apart, averaged after that, the
// overall rate on the final frame; at a terminal frames start with "\r",
// fill the width and the last one ends the line.
func TestProgressBarFrames(t *testing.T) {
	for _, terminal := range []bool{false, true} {
		var out bytes.Buffer
		now := time.Unix(0, 0)
		p := &progressBar{w: &out, total: 100, width: 40, terminal: terminal, now: func() time.Time { return now }}
		step := func(d time.Duration, n int64) {
			now = now.Add(d)
			p.add(n)
			p.draw(false)
		}
		step(0, 0)                    // first frame: speed unknown
		step(200*time.Millisecond, 5) // too soon for a rate
		step(300*time.Millisecond, 5) // 10 units in 0.5 s: 20/s
		step(time.Second, 10)         // 10/s averaged in
		now = now.Add(500 * time.Millisecond)
		p.add(80)
		p.draw(true) // 100 in 2 s
		want := []string{
			"0 / 100 [__________________] 0.00% ? p/s",
			"5 / 100 [>_________________] 5.00% ? p/s",
			"10 / 100 [->_____________] 10.00% 20 p/s",
			"20 / 100 [-->____________] 20.00% 19 p/s",
			"100 / 100 [-------------] 100.00% 50 p/s",
		}
		var got []string
		if terminal {
			s := out.String()
			if !strings.HasSuffix(s, "\n") {
				t.Fatalf("terminal output does not end the line: %q", s)
			}
			for _, f := range strings.Split(strings.TrimSuffix(s, "\n"), "\r")[1:] {
				if len(f) != 40 {
					t.Errorf("terminal frame %q is %d wide, want 40", f, len(f))
				}
				got = append(got, strings.TrimRight(f, " "))
			}
		} else {
			got = progressFrame.FindAllString(out.String(), -1)
			if strings.Join(got, "") != out.String() {
				t.Errorf("frames with something between them: %q", out.String())
			}
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("terminal=%v frames:\n%s\nwant:\n%s", terminal, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

func TestProgressBarFinishWithoutStart(t *testing.T) {
	p := &progressBar{w: &bytes.Buffer{}, total: 1, width: 10, now: time.Now}
	p.finish() // not started: nothing to stop
	p.start()
	p.finish()
	p.finish()
	p.abandon()

	var out bytes.Buffer
	p = &progressBar{w: &out, total: 1, width: 10, now: time.Now}
	p.start()
	p.abandon()
	n := out.Len()
	p.finish() // already stopped: no final frame any more
	if out.Len() != n {
		t.Errorf("a stopped bar drew %q", out.String()[n:])
	}
}

func TestSummarize(t *testing.T) {
	s := summarize([]float64{0.1, 0.3, 0.2, 0.2}, nil, 2*time.Second)
	if s.rps != 2 || s.slowest != 0.3 || math.Abs(s.stddev-math.Sqrt(0.005)) > 1e-12 {
		t.Errorf("summary %+v", s)
	}
	// Nothing succeeded: etcd's report has no mean, hence NaN.
	if s := summarize(nil, map[string]int{"x": 3}, time.Second); s.rps != 0 || s.slowest != 0 || !math.IsNaN(s.stddev) {
		t.Errorf("empty summary %+v", s)
	}
	st := newLatencyStats()
	st.begin()
	at := time.Now()
	st.add(at, at.Add(time.Millisecond), nil)
	st.add(at, at, errors.New("b"))
	st.add(at, at, errors.New("a"))
	st.add(at, at, errors.New("b"))
	s = st.end()
	if len(st.lats) != 1 || strings.Join(s.sortedErrors(), ",") != "a,b" || s.errors["b"] != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestPacerStopsBeforeDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newPacer(1)
	if !p.wait(ctx) {
		t.Fatal("the first request waits for nothing")
	}
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	start := time.Now()
	if p.wait(short) {
		t.Fatal("the next slot, a second away, is past the deadline")
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Error("a slot past the deadline is refused without waiting")
	}
	cancel()
	if p.wait(ctx) {
		t.Fatal("a done context stops the pacer")
	}
}
