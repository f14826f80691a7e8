package ctl

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// progressBar draws the bar of etcdctl's check commands, as the progress
// bar library etcdctl uses (cheggaaa/pb v3, default template) draws it:
//
//	2897 / 10000 [------------------->______________] 28.97% 3477 p/s
//
// counters, a bar filling the rest of the line, the percentage and a speed
// in units per second (an exponentially weighted average of the rates
// between frames at least half a second apart; "?" until there is one;
// the overall rate on the final frame). The whole line is as wide as the
// terminal, 100 columns when there is none. A frame is drawn every 200 ms
// and once more by finish. Where the output is a terminal each frame
// starts with "\r" and is padded to the width, and the final one ends the
// line; elsewhere (a pipe, a file) frames follow each other with nothing
// between them and no final newline, exactly as etcdctl writes them.
type progressBar struct {
	w        io.Writer
	total    int64
	width    int
	terminal bool
	now      func() time.Time

	mu      sync.Mutex
	current int64
	// Speed: frames is the number of frames drawn; the average starts at
	// the first frame and takes a new rate from frames at least
	// speedEvery after the last one it took.
	frames    uint64
	first     time.Time
	prevTime  time.Time
	prevValue int64
	ewma      float64

	// stop ends the drawing goroutine, drawing the final frame if it
	// carries true; done is closed once it has ended.
	stop chan bool
	done chan struct{}
}

const (
	progressRefresh = 200 * time.Millisecond
	speedEvery      = 500 * time.Millisecond
	// ewmaDecay is the weight of a new rate in the speed average: a
	// 30-sample moving average.
	ewmaDecay = 2.0 / (30 + 1)
	// defaultProgressWidth is the line width without a terminal.
	defaultProgressWidth = 100
)

// newProgressBar returns a bar of total units writing to w, which is a
// terminal when stderr (the raw writer of the invocation) is one; stdin is
// the invocation's, consulted for the width when the process has no
// controlling terminal, as the library does.
func newProgressBar(w, rawStderr io.Writer, stdin io.Reader, total int64) *progressBar {
	return &progressBar{
		w:        w,
		total:    total,
		width:    terminalWidth(stdin),
		terminal: isTerminal(rawStderr),
		now:      time.Now,
	}
}

// start draws a frame every progressRefresh until finish.
func (p *progressBar) start() {
	p.stop, p.done = make(chan bool), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(progressRefresh)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw(false)
			case final := <-p.stop:
				if final {
					p.draw(true)
				}
				return
			}
		}
	}()
}

// finish draws the final frame and stops the bar; it may be called more
// than once.
func (p *progressBar) finish() { p.end(true) }

// abandon stops the bar without a final frame, as a killed process would.
func (p *progressBar) abandon() { p.end(false) }

func (p *progressBar) end(final bool) {
	if p.stop == nil {
		return
	}
	select {
	case p.stop <- final:
	case <-p.done:
	}
	<-p.done
}

func (p *progressBar) add(n int64) {
	p.mu.Lock()
	p.current += n
	p.mu.Unlock()
}

func (p *progressBar) draw(final bool) {
	p.mu.Lock()
	line := p.frameLocked(p.now(), final)
	p.mu.Unlock()
	if p.terminal {
		if pad := p.width - len(line); pad > 0 {
			line += strings.Repeat(" ", pad)
		}
		line = "\r" + line
		if final {
			line += "\n"
		}
	}
	_, _ = io.WriteString(p.w, line)
}

// frameLocked renders one frame at time now.
func (p *progressBar) frameLocked(now time.Time, final bool) string {
	return formatFrame(p.current, p.total, p.speedLocked(now, final), p.width, final)
}

// formatFrame renders a frame of a bar width columns wide at value of
// total, at speed units per second (0: unknown).
func formatFrame(value, total int64, speed float64, width int, final bool) string {
	counters := fmt.Sprint(value)
	percent := "?%"
	if total > 0 {
		counters = fmt.Sprintf("%d / %d", value, total)
		percent = fmt.Sprintf("%.02f%%", float64(value)/(float64(total)/100))
	}
	sp := "? p/s"
	if speed != 0 {
		sp = fmt.Sprintf("%d p/s", int64(math.Round(speed))) // speed is never negative
	}
	// The bar takes whatever the rest leaves of the width.
	rest := counters + "  " + percent + " " + sp
	barWidth := width - len(rest)
	if barWidth <= 0 {
		if len(rest) > width {
			rest = rest[:max(width, 0)]
		}
		return rest
	}
	return counters + " " + renderBar(value, total, barWidth, final) + " " + percent + " " + sp
}

func (p *progressBar) speedLocked(now time.Time, final bool) float64 {
	p.frames++
	if p.frames == 1 {
		p.first, p.prevTime, p.prevValue, p.ewma = now, now, p.current, 0
		return 0
	}
	if final {
		if d := now.Sub(p.first); d > 0 {
			return float64(p.current) / d.Seconds()
		}
		return 0
	}
	d := now.Sub(p.prevTime)
	if d < speedEvery {
		return p.ewma
	}
	rate := math.Abs(float64(p.current-p.prevValue)) / d.Seconds()
	p.prevTime, p.prevValue = now, p.current
	if p.ewma == 0 {
		p.ewma = rate
	} else {
		p.ewma = rate*ewmaDecay + p.ewma*(1-ewmaDecay)
	}
	return p.ewma
}

// renderBar draws "[--->___]" in width columns: done units as dashes, the
// head as ">", the rest as underscores; a finished full bar has no head.
func renderBar(value, total int64, width int, final bool) string {
	if total < 0 {
		total = -total
	}
	if value < 0 {
		value = -value
	}
	if total != 0 && value > total {
		total = value
	}
	var b strings.Builder
	left := width
	if left <= 1 {
		return strings.Repeat("[", left)
	}
	b.WriteString("[")
	left--
	if left <= 1 {
		return b.String() + strings.Repeat("]", left)
	}
	left--
	cur := 0
	if total > 0 {
		cur = int(math.Ceil(float64(value) / float64(total) * float64(left)))
	}
	switch {
	case total == value && final:
		b.WriteString(strings.Repeat("-", cur))
		left -= cur
	case cur > 1:
		b.WriteString(strings.Repeat("-", cur-1) + ">")
		left -= cur
	case cur > 0:
		b.WriteString(">")
		left -= cur
	}
	if left > 0 {
		b.WriteString(strings.Repeat("_", left))
	}
	b.WriteString("]")
	return b.String()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// terminalWidth is the width of the controlling terminal, else of stdin if
// that is a terminal, else defaultProgressWidth.
func terminalWidth(stdin io.Reader) int {
	var fd int
	if tty, err := os.Open("/dev/tty"); err == nil {
		defer tty.Close()
		fd = int(tty.Fd())
	} else if f, ok := stdin.(*os.File); ok {
		fd = int(f.Fd())
	} else {
		return defaultProgressWidth
	}
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return defaultProgressWidth
	}
	return int(ws.Col)
}
