package ctltest

import (
	"bytes"
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Multi-member tests run etcdctl and cairnctl against one cluster, one
// after the other, each adding and removing members of its own. What each
// run creates differs between the runs: a member's ID mixes the clock into
// a hash of its peer URLs, and each run's new members listen on ports of
// their own. Created turns those into placeholders; SortMembers then puts
// the members of an output in a fixed order, since the server lists them by
// ID and a random ID lands anywhere in the list.

// Created is what one run created: member IDs and addresses, each with the
// placeholder that replaces it.
type Created struct {
	ids   []createdID
	addrs []createdAddr
}

type createdID struct {
	id   uint64
	name string
	n    uint64 // the ID that replaces it in protobuf output
}

type createdAddr struct{ addr, name string }

// AddID registers a member ID the run created, shown as "<name>".
func (c *Created) AddID(id uint64, name string) {
	c.ids = append(c.ids, createdID{id: id, name: name, n: uint64(len(c.ids) + 1)})
}

// AddAddr registers an address (host:port) the run created, shown as
// "<name>" wherever it appears, URLs included.
func (c *Created) AddAddr(addr, name string) {
	c.addrs = append(c.addrs, createdAddr{addr: addr, name: name})
	// Longest first: no address is then replaced inside a longer one.
	slices.SortStableFunc(c.addrs, func(a, b createdAddr) int { return cmp.Compare(len(b.addr), len(a.addr)) })
}

// Text rewrites the IDs and addresses in the output of a text format: IDs
// in hex (padded to 16 columns as member changes print them, or not) and
// in decimal.
func (c *Created) Text(s string) string {
	for _, id := range c.ids {
		ph := "<" + id.name + ">"
		s = strings.ReplaceAll(s, strconv.FormatUint(id.id, 16), ph)
		s = strings.ReplaceAll(s, strconv.FormatUint(id.id, 10), ph)
		// etcdctl pads some IDs to 16 hex digits ("%16x"): a created ID
		// with fewer digits leaves extra spaces, another run's does not.
		s = regexp.MustCompile(`  +`+regexp.QuoteMeta(ph)).ReplaceAllString(s, " "+ph)
	}
	for _, a := range c.addrs {
		s = strings.ReplaceAll(s, a.addr, "<"+a.name+">")
	}
	return s
}

// Proto decodes the protobuf output of a member command into m, rewrites
// the created IDs (as small numbers, in the order they were added) and
// addresses, sorts the members by ID, and returns the result in protobuf's
// text format. Output that is not the canonical encoding of what it
// decodes to says so in the result, so two outputs that differ only in
// encoding still differ.
func (c *Created) Proto(out string, m proto.Message) string {
	if err := proto.Unmarshal([]byte(out), m); err != nil {
		return fmt.Sprintf("undecodable %T (%v): %q", m, err, out)
	}
	var note string
	if b, err := proto.Marshal(m); err != nil || !bytes.Equal(b, []byte(out)) {
		note = fmt.Sprintf("non-canonical encoding: %x\n", out)
	}
	var members *[]*pb.Member
	switch r := m.(type) {
	case *pb.MemberAddResponse:
		c.member(r.Member)
		members = &r.Members
	case *pb.MemberRemoveResponse:
		members = &r.Members
	case *pb.MemberUpdateResponse:
		members = &r.Members
	case *pb.MemberPromoteResponse:
		members = &r.Members
	case *pb.MemberListResponse:
		members = &r.Members
	}
	if members != nil {
		for _, mb := range *members {
			c.member(mb)
		}
		slices.SortStableFunc(*members, func(a, b *pb.Member) int { return cmp.Compare(a.GetID(), b.GetID()) })
	}
	return note + prototext.MarshalOptions{Multiline: true}.Format(m)
}

func (c *Created) member(m *pb.Member) {
	if m == nil {
		return
	}
	for _, id := range c.ids {
		if m.ID == id.id {
			m.ID = id.n
		}
	}
	for i := range m.PeerURLs {
		m.PeerURLs[i] = c.Text(m.PeerURLs[i])
	}
	for i := range m.ClientURLs {
		m.ClientURLs[i] = c.Text(m.ClientURLs[i])
	}
}

var (
	memberRowRE     = regexp.MustCompile(`^[^,]+, (?:un)?started, `)
	initialRE       = regexp.MustCompile(`(?m)^(ETCD_INITIAL_CLUSTER=")([^"]*)(")$`)
	fieldsMemberKey = `"ID" :` // no space: a placeholder may replace a padded ID with its padding
)

// SortMembers puts the members in the output of a member command in a fixed
// order, for the text formats: the rows of member list (simple and table),
// the items of ETCD_INITIAL_CLUSTER (member add's simple format), the
// "members" array of json and the member blocks of fields.
func SortMembers(format, s string) string {
	switch format {
	case "simple":
		s = sortLineRuns(s, memberRowRE.MatchString)
		return initialRE.ReplaceAllStringFunc(s, func(m string) string {
			g := initialRE.FindStringSubmatch(m)
			items := strings.Split(g[2], ",")
			slices.Sort(items)
			return g[1] + strings.Join(items, ",") + g[3]
		})
	case "table":
		return sortTableRows(s)
	case "json":
		return sortJSONArray(s, `"members":[`)
	case "fields":
		return sortFieldBlocks(s, fieldsMemberKey)
	}
	return s
}

// SortEndpoints puts the per-endpoint records of endpoint health in a
// fixed order: etcdctl prints them as the probes finish.
func SortEndpoints(format, s string) string {
	switch format {
	case "simple":
		return sortLineRuns(s, func(string) bool { return true })
	case "table":
		return sortTableRows(s)
	case "json":
		return sortJSONArray(s, "[")
	case "fields":
		return sortFieldBlocks(s, `"Endpoint" : `)
	}
	return s
}

// sortLineRuns sorts each run of consecutive lines that match.
func sortLineRuns(s string, match func(string) bool) string {
	lines := strings.SplitAfter(s, "\n")
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && lines[j] != "" && match(lines[j]) {
			j++
		}
		if j == i {
			i++
			continue
		}
		// The last line may lack its newline; sort without it.
		last := !strings.HasSuffix(lines[j-1], "\n")
		if last {
			lines[j-1] += "\n"
		}
		slices.Sort(lines[i:j])
		if last {
			lines[j-1] = strings.TrimSuffix(lines[j-1], "\n")
		}
		i = j
	}
	return strings.Join(lines, "")
}

// sortTableRows sorts the body rows of each box-drawn table: the lines
// between the header's separator and the bottom border.
func sortTableRows(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "├") {
			continue
		}
		j := i + 1
		for j < len(lines) && strings.HasPrefix(lines[j], "│") {
			j++
		}
		slices.Sort(lines[i+1 : j])
		i = j
	}
	return strings.Join(lines, "")
}

// sortJSONArray sorts the elements of the first array that opens with
// start (which ends with "["), by their bytes. The output is compact JSON,
// so the elements are rejoined exactly as they were written. Placeholders
// (<name>) may stand for numbers: the array is split by its brackets and
// quotes, not decoded.
func sortJSONArray(s, start string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return s
	}
	from := i + len(start)
	var elems []string
	depth, inString, escaped := 0, false, false
	last := from
	for k := from; k < len(s); k++ {
		ch := s[k]
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case ch == '\\':
				escaped = true
			case ch == '"':
				inString = false
			}
		case ch == '"':
			inString = true
		case ch == '{' || ch == '[':
			depth++
		case (ch == ',' || ch == ']') && depth == 0:
			if k > last {
				elems = append(elems, s[last:k])
			}
			last = k + 1
			if ch == ']' {
				slices.Sort(elems)
				return s[:from] + strings.Join(elems, ",") + s[k:]
			}
		case ch == '}' || ch == ']':
			depth--
		}
	}
	return s
}

// sortFieldBlocks sorts the records of the fields format: each starts with
// a line beginning with key and ends with an empty line.
func sortFieldBlocks(s, key string) string {
	lines := strings.SplitAfter(s, "\n")
	var out, blocks []string
	flush := func() {
		slices.Sort(blocks)
		out = append(out, blocks...)
		blocks = nil
	}
	for i := 0; i < len(lines); {
		if !strings.HasPrefix(lines[i], key) {
			flush()
			out = append(out, lines[i])
			i++
			continue
		}
		j := i + 1
		for j < len(lines) && lines[j-1] != "\n" {
			j++
		}
		blocks = append(blocks, strings.Join(lines[i:j], ""))
		i = j
	}
	flush()
	return strings.Join(out, "")
}
