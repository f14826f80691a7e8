package differential

import (
	"bytes"
	"context"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/protobuf/proto"
)

// TestLeasedKeys covers the KV answers that carry a lease: the lease
// field of keys_only ranges (etcd's fast keys-only path leaves it out),
// ignore_lease, LEASE compares, and the revision a revoke creates. Leases
// are granted with fixed IDs so both sides hold the same ones.
func TestLeasedKeys(t *testing.T) {
	p := newPair(t, options{})
	p.grant("grant lease 0x1000", &pb.LeaseGrantRequest{ID: 0x1000, TTL: 600})
	p.grant("grant lease 0x2000", &pb.LeaseGrantRequest{ID: 0x2000, TTL: 600})
	p.grant("grant an existing lease ID", &pb.LeaseGrantRequest{ID: 0x1000, TTL: 600})

	p.put("put with lease 0x1000", &pb.PutRequest{Key: b("l/a"), Value: b("1"), Lease: 0x1000})
	p.put("put with lease 0x2000", &pb.PutRequest{Key: b("l/b"), Value: b("2"), Lease: 0x2000})
	p.put("put without lease", put("l/c", "3"))
	pre := func(r *pb.RangeRequest) *pb.RangeRequest {
		r.Key, r.RangeEnd = b("l/"), prefixEnd("l/")
		return r
	}
	p.rng("range shows leases", pre(&pb.RangeRequest{}))
	p.rng("keys_only", pre(&pb.RangeRequest{KeysOnly: true}))
	p.rng("keys_only single key", &pb.RangeRequest{Key: b("l/a"), KeysOnly: true})
	p.rng("keys_only sorted by value", pre(&pb.RangeRequest{KeysOnly: true, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_ASCEND}))
	// The values rise with the keys, so only a descending sort by value
	// shows whether a keys-only range still reads the values it sorts by.
	p.rng("keys_only sorted by value, descending", pre(&pb.RangeRequest{KeysOnly: true, SortTarget: pb.RangeRequest_VALUE, SortOrder: pb.RangeRequest_DESCEND}))
	p.rng("keys_only sorted by version", pre(&pb.RangeRequest{KeysOnly: true, SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_DESCEND}))
	p.rng("keys_only with limit", pre(&pb.RangeRequest{KeysOnly: true, Limit: 1}))
	p.rng("keys_only with a filter", pre(&pb.RangeRequest{KeysOnly: true, MinModRevision: 2}))
	p.txn("keys_only inside a txn", &pb.TxnRequest{Success: ops(opGet(pre(&pb.RangeRequest{KeysOnly: true})))})
	p.stream("keys_only RangeStream", pre(&pb.RangeRequest{KeysOnly: true}))

	p.put("ignore_lease keeps the lease", &pb.PutRequest{Key: b("l/a"), Value: b("1b"), IgnoreLease: true, PrevKv: true})
	p.put("ignore_value keeps the value, drops the lease", &pb.PutRequest{Key: b("l/b"), IgnoreValue: true, PrevKv: true})
	p.put("move a key to another lease", &pb.PutRequest{Key: b("l/c"), Value: b("3"), Lease: 0x2000, PrevKv: true})
	p.rng("after lease changes", pre(&pb.RangeRequest{}))
	for _, res := range allResults {
		for _, n := range []int64{0, 0x1000, 0x2000, 0x3000} {
			p.txn("lease compare on l/a", readOnlyTxn(cmpLease("l/a", res, n)))
			p.txn("lease compare on the l/ range", readOnlyTxn(withEnd(cmpLease("l/", res, n), string(prefixEnd("l/")))))
		}
	}

	revoke := func(name string, id int64) {
		p.t.Helper()
		p.revoke(name, &pb.LeaseRevokeRequest{ID: id})
	}
	revoke("revoke 0x2000 (two keys)", 0x2000)
	p.rng("revoke deleted its keys in one revision", pre(&pb.RangeRequest{}))
	revoke("revoke it again", 0x2000)
	p.put("put with the revoked lease", &pb.PutRequest{Key: b("l/d"), Value: b("4"), Lease: 0x2000})
	revoke("revoke 0x1000 (one key)", 0x1000)
	revoke("revoke a lease that never existed", 0x9999)
	p.rng("after revokes", pre(&pb.RangeRequest{}))
}

// TestLeaseAPI compares the Lease service's answers: grants at the TTL
// limits, duplicate and server-chosen IDs, TimeToLive with and without
// keys, the lease list, keep-alives of live and unknown leases, and
// revokes. Remaining TTLs tick on each side's own clock, so TimeToLive's
// TTL is compared only as "within a second of the granted TTL".
func TestLeaseAPI(t *testing.T) {
	p := newPair(t, options{})
	grant := p.grant
	grant("grant with TTL 0 gets the minimum TTL", &pb.LeaseGrantRequest{ID: 0x10, TTL: 0})
	grant("grant with a negative TTL gets the minimum TTL", &pb.LeaseGrantRequest{ID: 0x11, TTL: -5})
	grant("grant with the largest TTL", &pb.LeaseGrantRequest{ID: 0x12, TTL: 9_000_000_000})
	grant("grant with a TTL above the largest", &pb.LeaseGrantRequest{ID: 0x13, TTL: 9_000_000_001})
	grant("grant with a negative ID", &pb.LeaseGrantRequest{ID: -7, TTL: 500})
	grant("grant a duplicate ID", &pb.LeaseGrantRequest{ID: 0x12, TTL: 30})
	grant("grant 0x20", &pb.LeaseGrantRequest{ID: 0x20, TTL: 300})

	// A server-chosen ID differs between the sides; both must be positive.
	chosen := map[string]int64{}
	r := &pb.LeaseGrantRequest{TTL: 400}
	p.step("grant with a server-chosen ID", r, func(ctx context.Context, s *side) (proto.Message, error) {
		resp, err := s.lease.LeaseGrant(ctx, r)
		if err != nil {
			return nil, err
		}
		if resp.ID <= 0 {
			p.t.Errorf("%s chose lease ID %d, want a positive one", s.name, resp.ID)
		}
		chosen[s.name] = resp.ID
		resp.ID = 1
		return resp, nil
	})

	p.put("attach two keys to 0x20", &pb.PutRequest{Key: b("t/b"), Value: b("1"), Lease: 0x20})
	p.put("attach another", &pb.PutRequest{Key: b("t/a"), Value: b("2"), Lease: 0x20})
	ttl := func(name string, r *pb.LeaseTimeToLiveRequest) {
		p.t.Helper()
		p.step(name, r, func(ctx context.Context, s *side) (proto.Message, error) {
			resp, err := s.lease.LeaseTimeToLive(ctx, r)
			if err == nil {
				// etcd lists a lease's keys in map order; compare them as a set.
				slices.SortFunc(resp.Keys, bytes.Compare)
			}
			if err == nil && resp.GrantedTTL > 0 {
				if resp.TTL < resp.GrantedTTL-1 || resp.TTL > resp.GrantedTTL {
					p.t.Errorf("%s: TimeToLive of a fresh lease: TTL %d of %d", s.name, resp.TTL, resp.GrantedTTL)
				}
				resp.TTL = resp.GrantedTTL
			}
			return resp, err
		})
	}
	ttl("timetolive with keys", &pb.LeaseTimeToLiveRequest{ID: 0x20, Keys: true})
	ttl("timetolive without keys", &pb.LeaseTimeToLiveRequest{ID: 0x20})
	ttl("timetolive of a lease without keys", &pb.LeaseTimeToLiveRequest{ID: 0x12, Keys: true})
	ttl("timetolive of the minimum-TTL lease", &pb.LeaseTimeToLiveRequest{ID: 0x10})
	ttl("timetolive of an unknown lease", &pb.LeaseTimeToLiveRequest{ID: 0x99, Keys: true})

	lr := &pb.LeaseLeasesRequest{}
	p.step("list leases", lr, func(ctx context.Context, s *side) (proto.Message, error) {
		resp, err := s.lease.LeaseLeases(ctx, lr)
		if err == nil {
			for _, l := range resp.Leases {
				if l.ID == chosen[s.name] {
					l.ID = 1
				}
			}
		}
		return resp, err
	})

	keepAlive := func(name string, ids ...int64) {
		p.t.Helper()
		req := &pb.LeaseKeepAliveRequest{ID: ids[0]}
		p.step(name, req, func(ctx context.Context, s *side) (proto.Message, error) {
			st, err := s.lease.LeaseKeepAlive(ctx)
			if err != nil {
				return nil, err
			}
			// One response per request, in order, on one stream.
			all := &pb.LeaseLeasesResponse{}
			var last *pb.LeaseKeepAliveResponse
			for _, id := range ids {
				if err := st.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
					return nil, err
				}
				if last, err = st.Recv(); err != nil {
					return nil, err
				}
				all.Leases = append(all.Leases, &pb.LeaseStatus{ID: last.ID*1000 + last.TTL})
			}
			all.Header = last.Header
			return all, st.CloseSend()
		})
	}
	keepAlive("keep-alive of live and unknown leases on one stream", 0x20, 0x99, 0x10, -7, 0)

	p.rng("keys before revoke", &pb.RangeRequest{Key: b("t/"), RangeEnd: prefixEnd("t/")})
	p.revoke("revoke a lease with two keys", &pb.LeaseRevokeRequest{ID: 0x20})
	p.rng("keys after revoke", &pb.RangeRequest{Key: b("t/"), RangeEnd: prefixEnd("t/")})
	keepAlive("keep-alive of the revoked lease", 0x20)
	ttl("timetolive of the revoked lease", &pb.LeaseTimeToLiveRequest{ID: 0x20, Keys: true})
	p.revoke("revoke lease 0", &pb.LeaseRevokeRequest{ID: 0})
}
