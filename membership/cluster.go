package membership

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-kv/cairn/storage"
)

// Errors of runtime reconfiguration, mapped by server/v3rpc to etcd's.
var (
	ErrIDRemoved       = errors.New("membership: ID removed")
	ErrIDExists        = errors.New("membership: ID exists")
	ErrIDNotFound      = errors.New("membership: ID not found")
	ErrPeerURLExists   = errors.New("membership: peer URL exists")
	ErrNotLearner      = errors.New("membership: can only promote a learner member")
	ErrTooManyLearners = errors.New("membership: too many learner members in cluster")
)

// DefaultMaxLearners is etcd's --max-learners default.
const DefaultMaxLearners = 1

// Store is where the member list lives: writes go into the apply group so
// they commit with the applied index.
type Store interface {
	PutRaw(key, value []byte)
	DeleteRaw(key []byte)
}

// Cluster is the replicated member list: the members, and the IDs removed
// from it, which may never come back. It changes only by applying conf
// changes in log order, so every member holds the same list at the same
// index. Reads are safe from any goroutine; changes come from the apply
// goroutine only.
type Cluster struct {
	st          Store
	eng         *storage.Engine
	maxLearners int

	mu      sync.RWMutex
	members map[uint64]*Member
	removed map[uint64]bool
}

// Key layout under storage.PrefixMembership:
//
//	'c' 'm' ID (8 B BE) → JSON Member
//	'c' 'r' ID (8 B BE) → empty (a removed ID)
//	'c' 'x' raft index (8 B BE) → empty (the conf change there was rejected)
func memberKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{storage.PrefixMembership, 'm'}, id)
}

func rejectedKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{storage.PrefixMembership, 'x'}, index)
}

func removedKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{storage.PrefixMembership, 'r'}, id)
}

// Load reads the member list committed in eng. maxLearners ≤ 0 means
// DefaultMaxLearners.
func Load(eng *storage.Engine, st Store, maxLearners int) (*Cluster, error) {
	if maxLearners <= 0 {
		maxLearners = DefaultMaxLearners
	}
	c := &Cluster{st: st, eng: eng, maxLearners: maxLearners}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the member list committed in the engine again, after its
// contents were replaced by a snapshot from the leader. Apply only.
func (c *Cluster) Reload() error {
	members, removed := map[uint64]*Member{}, map[uint64]bool{}
	lower := []byte{storage.PrefixMembership}
	it, err := c.eng.DB().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: storage.PrefixEnd(lower)})
	if err != nil {
		return err
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != 10 {
			return fmt.Errorf("membership: corrupt key %x", k)
		}
		id := binary.BigEndian.Uint64(k[2:])
		switch k[1] {
		case 'm':
			var m Member
			if err := json.Unmarshal(it.Value(), &m); err != nil || m.ID != id {
				return fmt.Errorf("membership: corrupt record of member %x", id)
			}
			members[id] = &m
		case 'r':
			removed[id] = true
		case 'x':
		default:
			return fmt.Errorf("membership: corrupt key %x", k)
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	c.mu.Lock()
	c.members, c.removed = members, removed
	c.mu.Unlock()
	return nil
}

// Members returns the members sorted by ID.
func (c *Cluster) Members() []Member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m.clone())
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Member returns the member with id.
func (c *Cluster) Member(id uint64) (Member, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.members[id]
	if !ok {
		return Member{}, false
	}
	return m.clone(), true
}

// IsLearner reports whether id is a learner. It copies nothing: every
// client request asks it.
func (c *Cluster) IsLearner(id uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.members[id]
	return ok && m.IsLearner
}

// IsRemoved reports whether id was removed from the cluster.
func (c *Cluster) IsRemoved(id uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.removed[id]
}

// Removed returns the IDs removed from the cluster, in no order.
func (c *Cluster) Removed() []uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ids := make([]uint64, 0, len(c.removed))
	for id := range c.removed {
		ids = append(ids, id)
	}
	return ids
}

// VotingMembers returns the number of members that are not learners.
func (c *Cluster) VotingMembers() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n := 0
	for _, m := range c.members {
		if !m.IsLearner {
			n++
		}
	}
	return n
}

func (m *Member) clone() Member {
	out := *m
	out.PeerURLs = slices.Clone(m.PeerURLs)
	out.ClientURLs = slices.Clone(m.ClientURLs)
	return out
}

// Change is the context of a conf change: the member it adds or updates,
// and whether an AddNode promotes an existing learner.
type Change struct {
	Member  Member `json:"member"`
	Promote bool   `json:"promote,omitempty"`
}

// Encode encodes ch as a conf change context.
func (ch Change) Encode() []byte {
	b, err := json.Marshal(ch)
	if err != nil {
		panic(err) // a Change always encodes
	}
	return b
}

// DecodeChange decodes a conf change's context.
func DecodeChange(b []byte) (Change, error) {
	var ch Change
	if err := json.Unmarshal(b, &ch); err != nil {
		return Change{}, fmt.Errorf("membership: conf change context: %w", err)
	}
	return ch, nil
}

// Validate checks a conf change against the current list. Apply calls it
// and turns an invalid change into a no-op, so every member decides alike;
// proposers call it first to answer with the right error at once.
func (c *Cluster) Validate(cc *raftpb.ConfChange, ch Change) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	id := cc.GetNodeId()
	if c.removed[id] {
		return ErrIDRemoved
	}
	cur, exists := c.members[id]
	switch cc.GetType() {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		if ch.Promote {
			switch {
			case !exists:
				return ErrIDNotFound
			case !cur.IsLearner:
				return ErrNotLearner
			}
			return nil
		}
		if exists {
			return ErrIDExists
		}
		if err := c.checkURLsLocked(id, ch.Member.PeerURLs); err != nil {
			return err
		}
		if cc.GetType() == raftpb.ConfChangeAddLearnerNode && c.learnersLocked() >= c.maxLearners {
			return ErrTooManyLearners
		}
	case raftpb.ConfChangeRemoveNode:
		if !exists {
			return ErrIDNotFound
		}
	case raftpb.ConfChangeUpdateNode:
		if !exists {
			return ErrIDNotFound
		}
		if err := c.checkURLsLocked(id, ch.Member.PeerURLs); err != nil {
			return err
		}
	default:
		return fmt.Errorf("membership: unsupported conf change type %v", cc.GetType())
	}
	return nil
}

func (c *Cluster) checkURLsLocked(self uint64, urls []string) error {
	for id, m := range c.members {
		if id == self {
			continue
		}
		for _, u := range m.PeerURLs {
			if slices.Contains(urls, u) {
				return ErrPeerURLExists
			}
		}
	}
	return nil
}

func (c *Cluster) learnersLocked() int {
	n := 0
	for _, m := range c.members {
		if m.IsLearner {
			n++
		}
	}
	return n
}

// Add adds m. Apply only, after Validate.
func (c *Cluster) Add(m Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mm := m.clone()
	c.members[m.ID] = &mm
	c.persistLocked(&mm)
}

// Promote makes the learner id a voting member. Apply only, after
// Validate.
func (c *Cluster) Promote(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[id]; ok {
		m.IsLearner = false
		c.persistLocked(m)
	}
}

// Remove removes id for good. Apply only, after Validate.
func (c *Cluster) Remove(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.members, id)
	c.removed[id] = true
	c.st.DeleteRaw(memberKey(id))
	c.st.PutRaw(removedKey(id), nil)
}

// UpdatePeerURLs changes a member's peer URLs. Apply only, after Validate.
func (c *Cluster) UpdatePeerURLs(id uint64, urls []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[id]; ok {
		m.PeerURLs = slices.Clone(urls)
		c.persistLocked(m)
	}
}

// SetAttributes records the name and client URLs a member published when
// it started. Unknown or removed members are ignored. Apply only.
func (c *Cluster) SetAttributes(id uint64, name string, clientURLs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[id]; ok {
		m.Name, m.ClientURLs = name, slices.Clone(clientURLs)
		c.persistLocked(m)
	}
}

func (c *Cluster) persistLocked(m *Member) {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // a Member always encodes
	}
	c.st.PutRaw(memberKey(m.ID), b)
}

// RecordRejected remembers that the conf change at raft index was rejected
// (applied to raft as a no-op). Apply only. A member replaying that entry
// later, against a list that already moved past it, must make raft decide
// as it did the first time: WasRejected tells it.
func (c *Cluster) RecordRejected(index uint64) { c.st.PutRaw(rejectedKey(index), nil) }

// WasRejected reports whether the committed conf change at raft index was
// rejected.
func (c *Cluster) WasRejected(index uint64) (bool, error) {
	_, closer, err := c.eng.DB().Get(rejectedKey(index))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	closer.Close()
	return true, nil
}
