package membership

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-kv/cairn/storage"
)

// ResetMembers replaces the member list kept in eng, which no Cluster may
// have loaded, with members, for a data dir restored from a snapshot into
// a new cluster: every member, removed ID and rejected conf change of the
// old cluster goes (its IDs and raft indexes mean nothing to the new
// one), and each of members is written with its ID and peer URLs only,
// as a founding member is at bootstrap (names and client URLs come when
// each member publishes its own). One synced batch.
func ResetMembers(eng *storage.Engine, members []Member) error {
	if len(members) == 0 {
		return fmt.Errorf("membership: reset members: %w: no members", ErrBadInitialCluster)
	}
	b := eng.DB().NewBatch()
	defer b.Close()
	lower := []byte{storage.PrefixMembership}
	if err := b.DeleteRange(lower, storage.PrefixEnd(lower), nil); err != nil {
		return err
	}
	seen := map[uint64]bool{}
	for _, m := range members {
		if m.ID == 0 || seen[m.ID] {
			return fmt.Errorf("membership: reset members: %w: member ID %x is zero or repeated", ErrBadInitialCluster, m.ID)
		}
		seen[m.ID] = true
		v, err := json.Marshal(Member{ID: m.ID, PeerURLs: m.PeerURLs})
		if err != nil {
			return err
		}
		if err := b.Set(memberKey(m.ID), v, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("membership: reset members: %w", err)
	}
	return nil
}
