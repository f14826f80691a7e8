#!/usr/bin/env bash
# The whole test suite, as CI runs it. Builds the reference etcd v3.7 server
# and etcdctl from the module proxy (through tools/go.mod) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
# The npm etcd3 client's differential test (tests/e2e/node) runs the real
# package under Node.js; it comes from the npm registry on first use.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "scripts/test.sh: the tests need Node.js and npm for the npm etcd3 client (apt-get install nodejs npm)" >&2
	exit 1
fi
if [ ! -d tests/e2e/node/node_modules/etcd3 ]; then
	(cd tests/e2e/node && npm install --no-package-lock --no-audit --no-fund --loglevel=error)
fi
go vet ./...
go test -count=1 -timeout 25m ./...
# cairnctl's differential test again, with Cairn as the server under test
# (by default it runs against the reference etcd).
go build -o bin/cairn ./cmd/cairn
CAIRNCTL_DIFF_SERVER="$PWD/bin/cairn" go test -count=1 ./cmd/cairnctl/
# The packages with concurrency on the data path, again under the race detector.
go test -race -count=1 -timeout 25m ./raftnode/... ./server/... ./wal/... ./mvcc/... ./lease/... ./transport/...
# Leases and clusters end to end through clientv3 under the race detector
# too: the lessor is shared by the apply loop, its expiry loop and the RPC
# handlers; clusters add the transport, snapshot install and forwarding.
go test -race -count=1 -run 'TestLease|TestCluster' ./tests/integration/
