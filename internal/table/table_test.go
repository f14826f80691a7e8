package table

import (
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []string
		rows   [][]string
		want   string
	}{
		{
			name:   "header only",
			header: []string{"endpoint", "ID"},
			want: `
┌──────────┬────┐
│ ENDPOINT │ ID │
└──────────┴────┘
`,
		},
		{
			name:   "rows right aligned, header centred with the odd space on the right",
			header: []string{"ID", "Status", "is learner"},
			rows:   [][]string{{"2e1259d415f2a040", "started", "false"}, {"1", "", "true"}},
			want: `
┌──────────────────┬─────────┬────────────┐
│        ID        │ STATUS  │ IS LEARNER │
├──────────────────┼─────────┼────────────┤
│ 2e1259d415f2a040 │ started │      false │
│                1 │         │       true │
└──────────────────┴─────────┴────────────┘
`,
		},
		{
			name:   "cells trimmed, short rows padded",
			header: []string{"a", "b"},
			rows:   [][]string{{"  x "}},
			want: `
┌───┬───┐
│ A │ B │
├───┼───┤
│ x │   │
└───┴───┘
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := Render(&b, tc.header, tc.rows); err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(tc.want, "\n"); b.String() != want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), want)
			}
		})
	}
}
