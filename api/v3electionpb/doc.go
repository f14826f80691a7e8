// Package v3electionpb is etcd's v3 Election service on the wire (package
// v3electionpb, service Election), generated from Cairn's own
// v3election.proto with etcd's names and field numbers: the messages,
// gRPC stubs and JSON gateway routes that server/recipes serves and tests
// call. Regenerate with scripts/genproto.sh; do not edit the .pb.go files.
package v3electionpb
