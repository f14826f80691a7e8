package server

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.uber.org/zap"

	"github.com/cairn-kv/cairn/storage"
)

// Alarms, etcd's Maintenance.Alarm: a set of (member ID, alarm type) pairs
// that every member holds identically, because it changes only by applying
// InternalRaftRequest.Alarm entries in log order. The set is persisted in
// the apply group (so it commits with the applied index), reloaded at start
// and after a snapshot install, and read by any goroutine.
//
// While an alarm is active anywhere in the cluster, every member refuses at
// apply, as etcd's alarm appliers do:
//
//   - CORRUPT: puts, deletes, txns that go through raft (any txn that is not
//     read-only), compactions, lease grants and revokes, with "etcdserver:
//     corrupt cluster";
//   - NOSPACE: puts, txns with a put in either branch (nested txns
//     included) and lease grants, with "etcdserver: mvcc: database space
//     exceeded".
//
// Everything else, alarm requests included, applies as usual. A member raises
// NOSPACE for itself when it refuses a request for lack of space (see
// propose), and only an Alarm DEACTIVATE clears an alarm.

// alarmKey is one active alarm.
type alarmKey struct {
	typ    pb.AlarmType
	member uint64
}

func (k alarmKey) message() *pb.AlarmMember { return &pb.AlarmMember{MemberID: k.member, Alarm: k.typ} }

func compareAlarms(a, b alarmKey) int {
	return cmp.Or(cmp.Compare(a.typ, b.typ), cmp.Compare(a.member, b.member))
}

// Key layout under storage.PrefixAlarm:
//
//	'w' type (4 B BE, the enum's bits) member ID (8 B BE) → empty
func alarmStorageKey(k alarmKey) []byte {
	b := binary.BigEndian.AppendUint32([]byte{storage.PrefixAlarm}, uint32(k.typ))
	return binary.BigEndian.AppendUint64(b, k.member)
}

// rawStore writes into the apply group; *mvcc.Store is one.
type rawStore interface {
	PutRaw(key, value []byte)
	DeleteRaw(key []byte)
}

// alarmSet is the replicated set of active alarms. Changes come from the
// apply goroutine only; reads from anywhere.
type alarmSet struct {
	st  rawStore
	eng *storage.Engine

	mu     sync.RWMutex
	active []alarmKey // sorted by compareAlarms
	// types has bit t set while an alarm of type t is active: the apply
	// loop checks it for every entry, without the lock. Written under mu.
	types atomic.Uint32
}

// setLocked replaces the active alarms; a.mu held for writing.
func (a *alarmSet) setLocked(active []alarmKey) {
	a.active = active
	var types uint32
	for _, k := range active {
		types |= 1 << uint32(k.typ)
	}
	a.types.Store(types)
}

// loadAlarms reads the alarms committed in eng.
func loadAlarms(eng *storage.Engine, st rawStore) (*alarmSet, error) {
	a := &alarmSet{st: st, eng: eng}
	if err := a.reload(); err != nil {
		return nil, err
	}
	return a, nil
}

// reload reads the committed alarms again, after the engine's contents
// were replaced by a snapshot. Apply goroutine only.
func (a *alarmSet) reload() error {
	lower := []byte{storage.PrefixAlarm}
	it, err := a.eng.DB().NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: storage.PrefixEnd(lower)})
	if err != nil {
		return err
	}
	defer it.Close()
	var active []alarmKey
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) != 13 {
			return fmt.Errorf("server: corrupt alarm key %x", k)
		}
		active = append(active, alarmKey{typ: pb.AlarmType(int32(binary.BigEndian.Uint32(k[1:]))), member: binary.BigEndian.Uint64(k[5:])})
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("server: loading alarms: %w", err)
	}
	slices.SortFunc(active, compareAlarms)
	a.mu.Lock()
	a.setLocked(active)
	a.mu.Unlock()
	return nil
}

// get returns the active alarms of type t, or all of them for NONE, in the
// order of type then member ID. etcd filters a GET by type only, never by
// member.
func (a *alarmSet) get(t pb.AlarmType) []*pb.AlarmMember {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []*pb.AlarmMember
	for _, k := range a.active {
		if t == pb.AlarmType_NONE || k.typ == t {
			out = append(out, k.message())
		}
	}
	return out
}

// anyOf reports whether an alarm of type t is active for any member.
func (a *alarmSet) anyOf(t pb.AlarmType) bool { return a.types.Load()&(1<<uint32(t)) != 0 }

// has reports whether k is active.
func (a *alarmSet) has(k alarmKey) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, found := slices.BinarySearchFunc(a.active, k, compareAlarms)
	return found
}

// activate makes k active and reports whether it was not already. Apply
// goroutine only.
func (a *alarmSet) activate(k alarmKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, found := slices.BinarySearchFunc(a.active, k, compareAlarms)
	if found {
		return false
	}
	a.setLocked(slices.Insert(a.active, i, k))
	a.st.PutRaw(alarmStorageKey(k), nil)
	return true
}

// deactivate clears k and reports whether it was active. Apply goroutine
// only.
func (a *alarmSet) deactivate(k alarmKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	i, found := slices.BinarySearchFunc(a.active, k, compareAlarms)
	if !found {
		return false
	}
	a.setLocked(slices.Delete(a.active, i, i+1))
	a.st.DeleteRaw(alarmStorageKey(k))
	return true
}

// Alarms returns the cluster's active alarms as this member has applied
// them, ordered by type then member ID.
func (s *Server) Alarms() []*pb.AlarmMember { return s.alarms.get(pb.AlarmType_NONE) }

// Alarm serves Maintenance.Alarm. Every action goes through raft, GET too,
// as in etcd: the answer is linearizable.
func (s *Server) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: r.Action, MemberID: r.MemberID, Alarm: r.Alarm}})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.AlarmResponse), nil
}

// applyAlarm applies an alarm request. The answer lists, as etcd's does:
// for GET the active alarms of the type asked (all for NONE); for ACTIVATE
// the alarm, whether or not it was active before (nothing for type NONE);
// for DEACTIVATE the alarm cleared (nothing if it was not active). An
// action etcd does not know answers an empty list; etcd's own server fails
// on it.
func (s *Server) applyAlarm(r *pb.AlarmRequest) result {
	resp := &pb.AlarmResponse{}
	k := alarmKey{typ: r.Alarm, member: r.MemberID}
	switch r.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = s.alarms.get(r.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if r.Alarm == pb.AlarmType_NONE {
			break
		}
		if s.alarms.activate(k) {
			s.lg.Warn("alarm raised", zap.String("member-id", fmt.Sprintf("%x", k.member)), zap.Stringer("alarm", k.typ))
		}
		resp.Alarms = []*pb.AlarmMember{k.message()}
	case pb.AlarmRequest_DEACTIVATE:
		if s.alarms.deactivate(k) {
			s.lg.Warn("alarm cleared", zap.String("member-id", fmt.Sprintf("%x", k.member)), zap.Stringer("alarm", k.typ))
			resp.Alarms = []*pb.AlarmMember{k.message()}
		}
	}
	return result{resp: resp}
}

// alarmRefusal returns the error with which an active alarm refuses r at
// apply, or nil. CORRUPT is checked first, as etcd's corrupt applier wraps
// its space-capped one.
func (s *Server) alarmRefusal(r *pb.InternalRaftRequest) error {
	if s.alarms.anyOf(pb.AlarmType_CORRUPT) &&
		(r.Put != nil || r.DeleteRange != nil || r.Txn != nil || r.Compaction != nil || r.LeaseGrant != nil || r.LeaseRevoke != nil) {
		return ErrCorrupt
	}
	if s.alarms.anyOf(pb.AlarmType_NOSPACE) && needsQuota(r) {
		return ErrNoSpace
	}
	return nil
}

// raiseNoSpace activates NOSPACE for this member, unless it is active
// already, and waits until that is applied, so that once the refused
// request's caller hears "database space exceeded", the alarm is listed. A
// failure to raise it is logged; the request is refused all the same.
func (s *Server) raiseNoSpace(ctx context.Context) {
	if s.alarms.has(alarmKey{typ: pb.AlarmType_NOSPACE, member: s.id}) {
		return
	}
	_, inUse := s.dbSizes()
	s.lg.Warn("database exceeds the space quota; raising the NOSPACE alarm",
		zap.Int64("quota-size-bytes", s.cfg.QuotaBackendBytes), zap.Int64("db-size-in-use-bytes", inUse))
	req := &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: s.id, Alarm: pb.AlarmType_NOSPACE}
	if _, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: req}); err != nil {
		s.lg.Warn("raising the NOSPACE alarm failed", zap.Error(err))
	}
}

// alarmText is an alarm as Status lists it among its errors: protobuf's
// text format, as etcd writes it (fields at their zero value left out),
// always with a single space between fields. Protobuf widens that gap to
// two spaces in some builds, on purpose, so etcd's text varies from one
// binary to another; Cairn's does not.
func alarmText(a *pb.AlarmMember) string {
	var fields []string
	if a.MemberID != 0 {
		fields = append(fields, fmt.Sprintf("memberID:%d", a.MemberID))
	}
	if a.Alarm != pb.AlarmType_NONE {
		fields = append(fields, "alarm:"+a.Alarm.String())
	}
	return strings.Join(fields, " ")
}
