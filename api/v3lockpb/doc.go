// Package v3lockpb is etcd's v3 Lock service on the wire (package
// v3lockpb, service Lock), generated from Cairn's own v3lock.proto with
// etcd's names and field numbers: the messages, gRPC stubs and JSON
// gateway routes that server/recipes serves and tests call. Regenerate
// with scripts/genproto.sh; do not edit the .pb.go files.
package v3lockpb
