package membership

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cairn-kv/cairn/internal/memberurl"
)

// ErrBadInitialCluster reports a malformed --initial-cluster value.
var ErrBadInitialCluster = errors.New("membership: invalid initial cluster")

// ErrBadPeerURLs reports peer URLs that MemberAdd or MemberUpdate refuses.
var ErrBadPeerURLs = errors.New("membership: invalid peer URLs")

// Member is one member of the cluster as clients see it in MemberList.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// NewMember returns a member whose ID is derived from its peer URLs and the
// cluster token.
func NewMember(name string, peerURLs []string, token string) Member {
	urls := slices.Clone(peerURLs)
	slices.Sort(urls)
	h := sha256.New()
	h.Write([]byte(token))
	h.Write([]byte{0})
	h.Write([]byte(strings.Join(urls, ",")))
	return Member{ID: nonZero(h.Sum(nil)), Name: name, PeerURLs: urls}
}

// ClusterID derives the cluster ID from the IDs of the founding members.
func ClusterID(members []Member) uint64 {
	ids := make([]uint64, len(members))
	for i, m := range members {
		ids[i] = m.ID
	}
	slices.Sort(ids)
	h := sha256.New()
	var b [8]byte
	for _, id := range ids {
		binary.BigEndian.PutUint64(b[:], id)
		h.Write(b[:])
	}
	return nonZero(h.Sum(nil))
}

func nonZero(sum []byte) uint64 {
	id := binary.BigEndian.Uint64(sum[:8])
	if id == 0 {
		id = 1
	}
	return id
}

// ParseInitialCluster parses "name=url,name=url2,…" into members; several
// URLs for one name are allowed, as in etcd. Members come back in the order of
// their first appearance.
func ParseInitialCluster(s, token string) ([]Member, error) {
	urlsByName := map[string][]string{}
	var order []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, raw, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: %q is not name=url", ErrBadInitialCluster, part)
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("%w: %q is not a URL with scheme and host", ErrBadInitialCluster, raw)
		}
		if _, seen := urlsByName[name]; !seen {
			order = append(order, name)
		}
		urlsByName[name] = append(urlsByName[name], raw)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("%w: no members", ErrBadInitialCluster)
	}
	members := make([]Member, 0, len(order))
	for _, name := range order {
		members = append(members, NewMember(name, urlsByName[name], token))
	}
	return members, nil
}

// NewAddedMember returns a member being added at runtime (MemberAdd). Its
// ID also depends on the time of the request, so a member added again with
// the same URLs after a removal gets a new ID: raft never reuses one.
func NewAddedMember(peerURLs []string, token string, now time.Time) Member {
	return NewMember("", peerURLs, fmt.Sprintf("%s\x00%d", token, now.UnixNano()))
}

// ValidatePeerURLs checks URLs given to MemberAdd or MemberUpdate as etcd
// does: each is scheme://host:port with scheme http, https, unix or unixs
// and no path.
func ValidatePeerURLs(urls []string) error {
	if len(urls) == 0 {
		return fmt.Errorf("%w: no URLs", ErrBadPeerURLs)
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrBadPeerURLs, err)
		}
		if !memberurl.ValidScheme(u.Scheme) {
			return fmt.Errorf("%w: %q has scheme %q", ErrBadPeerURLs, raw, u.Scheme)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrBadPeerURLs, raw, err)
		}
		if u.Path != "" {
			return fmt.Errorf("%w: %q has a path", ErrBadPeerURLs, raw)
		}
	}
	return nil
}
