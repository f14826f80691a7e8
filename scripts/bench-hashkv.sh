#!/usr/bin/env bash
# Times `etcdctl endpoint hashkv` on a compacted store, the pass a member's
# corruption checks run (docs/scale.md, "The hash of a compacted store"),
# for one or more Cairn builds on one data dir.
#
# Usage: scripts/bench-hashkv.sh [BINARY...]   (default: bin/cairn, built
#                                               from this checkout)
#
#   1. the first binary starts a single member on loopback ports (new data
#      dir under $TMPDIR) and loads HASHKV_KEYS keys (3000000) of 2 KiB,
#      each with its own incompressible value, 10 per txn;
#   2. it compacts at the newest revision and waits for the log's
#      "finished compaction", then rewrites the first HASHKV_CHANGED keys
#      (30000), so the hash has versions on both sides of the compact
#      revision;
#   3. each binary in turn serves the same data dir and is timed for two
#      hashes with the page cache as the load left it ("warm") and one
#      after `echo 3 > /proc/sys/vm/drop_caches` ("cold", needs root;
#      skipped otherwise). Every hash line printed must be the same.
#
# Needs about 7 GiB of disk at the default size.
set -euo pipefail
cd "$(dirname "$0")/.."

keys=${HASHKV_KEYS:-3000000}
changed=${HASHKV_CHANGED:-30000}
go build -o bin/cairn-bench ./cmd/cairn-bench
[ -x bin/etcdctl ] || (cd tools && go build -o ../bin/etcdctl go.etcd.io/etcd/etcdctl/v3)
if [ $# -eq 0 ]; then
	go build -o bin/cairn ./cmd/cairn
	set -- bin/cairn
fi

log() { echo "bench-hashkv: $(date -u +%H:%M:%S) $*" >&2; }
OUT=$(mktemp -d "${TMPDIR:-/tmp}/bench-hashkv.XXXXXX")
# shellcheck source=lib/bench-servers.sh
. scripts/lib/bench-servers.sh
READY_TIMEOUT=600
DATA_DIRS+=("$OUT")
trap cleanup_servers EXIT
data=$OUT/data cport=$(free_port) pport=$(free_port)
log "data dir and logs: $OUT"

start() { # binary log
	CAIRN=$1
	launch cairn "$2" "$data" "$cport" "$pport" --quota-backend-bytes 68719476736 || exit 1
	ctl=(bin/etcdctl --command-timeout=900s --endpoints "$ENDPOINT")
}
timed_hash() { # label
	local t0 t1
	t0=$(date +%s.%N)
	"${ctl[@]}" endpoint hashkv
	t1=$(date +%s.%N)
	echo "$1: $(echo "$t1 - $t0" | bc) s"
}

loadlog=$OUT/server-0.log
start "$1" "$loadlog"
log "loading $keys keys"
bin/cairn-bench --endpoints "$ENDPOINT" --clients 100 --conns 10 --total $((keys / 10)) txn-put --txn-ops 10 \
	--key-space-size "$keys" --sequential-keys --val-size 2048 --distinct-values
rev=$("${ctl[@]}" endpoint status -w json | grep -o '"revision":[0-9]*' | cut -d: -f2)
"${ctl[@]}" compact "$rev"
log "waiting for the physical compaction"
until grep -q '"finished compaction"' "$loadlog"; do sleep 1; done
bin/cairn-bench --endpoints "$ENDPOINT" --clients 10 --total "$changed" put --key-space-size "$changed" \
	--sequential-keys --val-size 2048 >/dev/null
stop_server

i=0
for bin in "$@"; do
	i=$((i + 1))
	start "$bin" "$OUT/server-$i.log"
	timed_hash "$bin warm"
	timed_hash "$bin warm"
	if [ -w /proc/sys/vm/drop_caches ]; then
		sync
		echo 3 >/proc/sys/vm/drop_caches
		timed_hash "$bin cold"
	fi
	stop_server
done
