package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// The two formatting helpers etcdutl's status output needs, in the form
// etcdctl and cairnctl print them (cmd/cairnctl/internal/table, which
// another command cannot import).

// renderTable writes a box-drawn table: headers upper-cased and centred,
// cells right-aligned, one space of padding, columns as wide as their
// widest cell.
func renderTable(w io.Writer, header []string, rows [][]string) error {
	widths := make([]int, len(header))
	head := make([]string, len(header))
	for i, h := range header {
		head[i] = strings.ToUpper(h)
		widths[i] = utf8.RuneCountInString(head[i])
	}
	for _, row := range rows {
		for i := range header {
			widths[i] = max(widths[i], utf8.RuneCountInString(row[i]))
		}
	}
	var b strings.Builder
	border := func(left, mid, right string) {
		b.WriteString(left)
		for i, wd := range widths {
			if i > 0 {
				b.WriteString(mid)
			}
			b.WriteString(strings.Repeat("─", wd+2))
		}
		b.WriteString(right + "\n")
	}
	line := func(vals []string, centre bool) {
		b.WriteString("│")
		for i, wd := range widths {
			gap := wd - utf8.RuneCountInString(vals[i])
			left := gap
			if centre {
				left = gap / 2
			}
			b.WriteString(" " + strings.Repeat(" ", left) + vals[i] + strings.Repeat(" ", gap-left) + " │")
		}
		b.WriteString("\n")
	}
	border("┌", "┬", "┐")
	line(head, true)
	border("├", "┼", "┤")
	for _, row := range rows {
		line(row, false)
	}
	border("└", "┴", "┘")
	_, err := io.WriteString(w, b.String())
	return err
}

// siBytes formats a size as go-humanize's Bytes does ("20 kB", "2.1 GB",
// "7 B").
func siBytes(n uint64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	exp := math.Floor(math.Log(float64(n)) / math.Log(1000))
	v := math.Floor(float64(n)/math.Pow(1000, exp)*10+0.5) / 10
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[int(exp)])
	}
	return fmt.Sprintf("%.0f %s", v, units[int(exp)])
}
