package v3rpc

import (
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// snapshotMethod is the one stream a learner serves, as in etcd.
const snapshotMethod = "/etcdserverpb.Maintenance/Snapshot"

// Snapshot streams the member's snapshot file; server.Server.Snapshot
// holds the contract (chunks, remaining_bytes, checksum, version).
func (m *maintenanceServer) Snapshot(r *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	return toGRPC(m.s.Snapshot(srv.Context(), srv.Send))
}
