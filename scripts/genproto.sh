#!/usr/bin/env bash
# Regenerates the Go code of Cairn's own .proto files (api/v3lockpb,
# api/v3electionpb): messages, gRPC stubs, and the JSON gateway's routes
# (api/gateway.yaml). Needs protoc (apt-get install protobuf-compiler);
# installs the Go plugins at the versions below into a temporary GOBIN.
# The generated files are committed: building and testing never run this.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
GOBIN=$bin go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
GOBIN=$bin go install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@v2.29.0
PATH=$bin:$PATH protoc -I api -I api/stubs \
	--go_out=api --go_opt=paths=source_relative \
	--go-grpc_out=api --go-grpc_opt=paths=source_relative \
	--grpc-gateway_out=api --grpc-gateway_opt=paths=source_relative \
	--grpc-gateway_opt=grpc_api_configuration=api/gateway.yaml \
	api/v3lockpb/v3lock.proto api/v3electionpb/v3election.proto
