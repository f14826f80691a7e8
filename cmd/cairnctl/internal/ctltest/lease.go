package ctltest

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// LeaseIDs replaces the lease IDs one server granted by placeholders,
// "<lease#0>", "<lease#1>"..., numbered in the order the test first saw them:
// registered with Add, or printed by a CLI.
//
// Twin servers grant different IDs for the same lease (etcd mixes the clock
// into them) but grant the same leases in the same order, so two correct runs
// print the same placeholders, and an ID printed in the wrong place still
// shows as a different placeholder. Only the places where etcdctl prints a
// lease ID are rewritten, in the forms it uses there: "lease <16 hex digits>"
// and list lines in the simple format, the "ID", "Lease" and "PrevLease"
// fields (decimal, or 16 hex digits with --hex), and the "ID", "id" and
// "lease" JSON members. Lease 0 means no lease and is left alone.
type LeaseIDs struct {
	index map[int64]int
	// keep holds IDs written on the command line by the test, which are
	// the same on both sides and must stay visible.
	keep map[int64]bool
}

// NewLeaseIDs returns an empty mapping.
func NewLeaseIDs() *LeaseIDs {
	return &LeaseIDs{index: map[int64]int{}, keep: map[int64]bool{}}
}

// Add registers id (a lease the test granted itself) and returns its number.
func (m *LeaseIDs) Add(id int64) int {
	if n, ok := m.index[id]; ok {
		return n
	}
	n := len(m.index)
	m.index[id] = n
	return n
}

// Keep leaves id as printed: a literal ID of the test's command lines.
func (m *LeaseIDs) Keep(id int64) { m.keep[id] = true }

// The groups come in pairs, one pair per alternative: the text kept before
// the ID, then the ID.
var leaseIDRE = regexp.MustCompile(`(?m)` +
	`(lease )([0-9a-f]{16})\b` + // simple: "lease 6a6c... granted"
	`|^()([0-9a-f]{16})$` + // simple: lease list
	`|("(?:ID|Lease|PrevLease)" : )(-?[0-9a-f]{16}|-?\d+)$` + // fields
	`|("(?:ID|id|lease)":)(-?\d+)\b`) // json

// Normalize rewrites the lease IDs of s, a CLI's stdout. hex says whether the
// CLI ran with --hex, under which the fields format prints IDs in hex.
func (m *LeaseIDs) Normalize(s string, hex bool) string {
	var b strings.Builder
	last := 0
	for _, loc := range leaseIDRE.FindAllStringSubmatchIndex(s, -1) {
		for alt := 0; alt < 4; alt++ {
			start, end := loc[2+4*alt+2], loc[2+4*alt+3]
			if start < 0 {
				continue
			}
			tok := s[start:end]
			base := 10
			if alt < 2 || (alt == 2 && hex) {
				base = 16
			}
			id, ok := parseLeaseID(tok, base)
			if !ok || id == 0 || m.keep[id] {
				break
			}
			b.WriteString(s[last:start])
			b.WriteString("<lease#" + strconv.Itoa(m.Add(id)) + ">")
			last = end
			break
		}
	}
	b.WriteString(s[last:])
	return b.String()
}

// parseLeaseID reads an ID as printed: %016x of an int64 (a sign, then the
// digits of the magnitude) or %d.
func parseLeaseID(tok string, base int) (int64, bool) {
	if base == 16 {
		neg := strings.HasPrefix(tok, "-")
		u, err := strconv.ParseUint(strings.TrimPrefix(tok, "-"), 16, 64)
		if err != nil {
			return 0, false
		}
		if neg {
			return -int64(u), true
		}
		return int64(u), true
	}
	id, err := strconv.ParseInt(tok, 10, 64)
	return id, err == nil
}

var remainingRE = regexp.MustCompile(`remaining\((-?\d+)s\)|"ttl":(-?\d+)|"TTL" : (-?\d+)`)

// AlignRemaining returns got with each remaining TTL that of want when the
// two differ by at most one second, for the output of lease timetolive in
// any format (for protobuf, which holds only the header, it changes
// nothing).
//
// The servers count the remaining time from their own clock and round it
// down to a second. Twin servers granted the lease, and the two CLIs asked,
// a few milliseconds apart, so the two sides may stand on either side of a
// second boundary: no test can make that deterministic short of freezing
// the servers' clocks. A difference of more than a second, or in any other
// number, is still reported.
func AlignRemaining(want, got string) string {
	w, g := remainingRE.FindAllStringSubmatchIndex(want, -1), remainingRE.FindAllStringSubmatchIndex(got, -1)
	if len(w) != len(g) {
		return got
	}
	var b strings.Builder
	last := 0
	for i := range g {
		ws, we := numberGroup(w[i])
		gs, ge := numberGroup(g[i])
		wv, err1 := strconv.ParseInt(want[ws:we], 10, 64)
		gv, err2 := strconv.ParseInt(got[gs:ge], 10, 64)
		if err1 != nil || err2 != nil || wv-gv > 1 || gv-wv > 1 {
			continue
		}
		b.WriteString(got[last:gs])
		b.WriteString(want[ws:we])
		last = ge
	}
	b.WriteString(got[last:])
	return b.String()
}

// numberGroup returns the bounds of the one group that matched.
func numberGroup(loc []int) (int, int) {
	for i := 2; i < len(loc); i += 2 {
		if loc[i] >= 0 {
			return loc[i], loc[i+1]
		}
	}
	return loc[0], loc[1]
}

var (
	simpleKeysRE = regexp.MustCompile(`attached keys\(\[([^\]]*)\]\)`)
	jsonKeysRE   = regexp.MustCompile(`"keys":\[([^\]]*)\]`)
	fieldsKeysRE = regexp.MustCompile(`(?m)(?:^"Key" : .*\n)+`)
)

// SortLeaseKeys sorts the attached keys of lease timetolive --keys in every
// format. etcd returns them in the order of a Go map, which changes from
// one call to the next; only a lease with several keys needs this. Keys
// must not contain spaces, commas or "]".
func SortLeaseKeys(s string) string {
	s = simpleKeysRE.ReplaceAllStringFunc(s, func(m string) string {
		inner := simpleKeysRE.FindStringSubmatch(m)[1]
		ks := strings.Fields(inner)
		slices.Sort(ks)
		return "attached keys([" + strings.Join(ks, " ") + "])"
	})
	s = jsonKeysRE.ReplaceAllStringFunc(s, func(m string) string {
		ks := strings.Split(jsonKeysRE.FindStringSubmatch(m)[1], ",")
		slices.Sort(ks)
		return `"keys":[` + strings.Join(ks, ",") + "]"
	})
	return fieldsKeysRE.ReplaceAllStringFunc(s, func(m string) string {
		ls := strings.SplitAfter(m, "\n")
		ls = ls[:len(ls)-1] // after the last "\n"
		slices.Sort(ls)
		return strings.Join(ls, "")
	})
}
