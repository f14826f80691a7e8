package v3rpc

import (
	"bytes"
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// authServer answers the Auth service as etcd answers it with
// authentication disabled and no user or role: Cairn can add neither
// (UserAdd and RoleAdd answer Unimplemented), so that state is the only
// one a Cairn cluster is ever in, and every other call has etcd's answer
// for it. Clients configured with a user and password then connect as they
// do to such an etcd: Authenticate says authentication is not enabled,
// and clientv3 goes on without a token.
type authServer struct {
	pb.UnimplementedAuthServer
	hdr header
}

func (a *authServer) AuthStatus(context.Context, *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	// etcd's auth revision starts at 1 and moves only with users and roles.
	return &pb.AuthStatusResponse{Header: a.hdr.new(), AuthRevision: 1}, nil
}

func (a *authServer) AuthEnable(context.Context, *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return nil, rpctypes.ErrGRPCRootUserNotExist
}

func (a *authServer) AuthDisable(context.Context, *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return &pb.AuthDisableResponse{Header: a.hdr.new()}, nil // disabled already
}

func (a *authServer) Authenticate(context.Context, *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	return nil, rpctypes.ErrGRPCAuthNotEnabled
}

func (a *authServer) UserList(context.Context, *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return &pb.AuthUserListResponse{Header: a.hdr.new()}, nil
}

func (a *authServer) RoleList(context.Context, *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return &pb.AuthRoleListResponse{Header: a.hdr.new()}, nil
}

func (a *authServer) UserGet(context.Context, *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return nil, rpctypes.ErrGRPCUserNotFound
}

func (a *authServer) UserDelete(context.Context, *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return nil, rpctypes.ErrGRPCUserNotFound
}

func (a *authServer) UserChangePassword(context.Context, *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	return nil, rpctypes.ErrGRPCUserNotFound
}

func (a *authServer) UserGrantRole(context.Context, *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return nil, rpctypes.ErrGRPCUserNotFound
}

func (a *authServer) UserRevokeRole(context.Context, *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return nil, rpctypes.ErrGRPCUserNotFound
}

func (a *authServer) RoleGet(context.Context, *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return nil, rpctypes.ErrGRPCRoleNotFound
}

func (a *authServer) RoleDelete(context.Context, *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return nil, rpctypes.ErrGRPCRoleNotFound
}

func (a *authServer) RoleRevokePermission(context.Context, *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return nil, rpctypes.ErrGRPCRoleNotFound
}

// RoleGrantPermission checks the permission first, as etcd does, then
// finds no role.
func (a *authServer) RoleGrantPermission(_ context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	p := r.GetPerm()
	switch {
	case p == nil:
		return nil, rpctypes.ErrGRPCPermissionNotGiven
	case !validPermissionRange(p.Key, p.RangeEnd):
		return nil, rpctypes.ErrGRPCInvalidAuthMgmt
	}
	return nil, rpctypes.ErrGRPCRoleNotFound
}

// validPermissionRange is etcd's rule for a permission's keys: a key, and
// no range end, a range end above the key, or "\x00" (every key from the
// key on).
func validPermissionRange(key, end []byte) bool {
	return len(key) > 0 && (len(end) == 0 || bytes.Compare(key, end) < 0 || bytes.Equal(end, []byte{0}))
}
