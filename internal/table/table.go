package table

import (
	"io"
	"strings"
	"unicode/utf8"
)

// Render writes header and rows as a table. A table without rows is only the
// header between the top and bottom borders.
func Render(w io.Writer, header []string, rows [][]string) error {
	head := make([]string, len(header))
	for i, h := range header {
		head[i] = strings.ToUpper(strings.TrimSpace(h))
	}
	widths := make([]int, len(head))
	for i, h := range head {
		widths[i] = utf8.RuneCountInString(h)
	}
	cells := make([][]string, len(rows))
	for r, row := range rows {
		cells[r] = make([]string, len(head))
		for i := range head {
			if i < len(row) {
				cells[r][i] = strings.TrimSpace(row[i])
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cells[r][i]))
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
		b.WriteString(right)
		b.WriteByte('\n')
	}
	line := func(vals []string, align func(string, int) string) {
		b.WriteString("│")
		for i, wd := range widths {
			b.WriteString(" ")
			b.WriteString(align(vals[i], wd))
			b.WriteString(" │")
		}
		b.WriteByte('\n')
	}

	border("┌", "┬", "┐")
	line(head, center)
	if len(cells) > 0 {
		border("├", "┼", "┤")
		for _, row := range cells {
			line(row, right)
		}
	}
	border("└", "┴", "┘")
	_, err := io.WriteString(w, b.String())
	return err
}

// center puts an odd leftover space on the right.
func center(s string, width int) string {
	gap := width - utf8.RuneCountInString(s)
	if gap <= 0 {
		return s
	}
	return strings.Repeat(" ", gap/2) + s + strings.Repeat(" ", gap-gap/2)
}

func right(s string, width int) string {
	gap := width - utf8.RuneCountInString(s)
	if gap <= 0 {
		return s
	}
	return strings.Repeat(" ", gap) + s
}
