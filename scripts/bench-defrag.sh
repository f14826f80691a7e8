#!/usr/bin/env bash
# Measures how a compaction and a defragment affect a steady put load, on
# the reference etcd v3.7.3 and on Cairn, one server at a time on this
# machine, and prints one table. docs/benchmarks.md ("Defragmentation and
# compaction under load") explains the method and records a run.
#
# Usage: scripts/bench-defrag.sh [etcd] [cairn]   (default: both)
#
# Each round starts every server afresh (single member on loopback ports,
# new data dir under $TMPDIR, default settings) and runs one
# `cairn-bench defrag` against it (see cmd/cairn-bench/doc.go):
#
#   1. history: FILL_KEYS keys × FILL_VERSIONS versions of FILL_VAL_SIZE
#      bytes, written FILL_TXN_OPS per request (1: plain puts, one revision
#      each) by FILL_CLIENTS clients over FILL_CONNS connections of their
#      own;
#   2. the load starts: LOAD_CLIENTS clients on 10 connections putting
#      256 B at LOAD_RATE puts/s in all, to 1000 keys; 1 s of warm-up;
#   3. "baseline": BASELINE seconds of load alone;
#   4. "compaction": Compact at the newest revision with physical=true,
#      which returns once the history is gone from the backend;
#   5. "defragment": Defragment of the member;
#   6. "after": BASELINE seconds of load alone.
#
# For each phase the report gives the puts in flight during it, their p50,
# p99 and max latency, and the longest time in which no put completed (the
# stall). Rounds alternate which server goes first; the table gives every
# round, not a median: the maxima are the point.
#
# Knobs (environment): BENCH_ROUNDS (2), FILL_KEYS (100000), FILL_VERSIONS
# (10), FILL_VAL_SIZE (256), FILL_TXN_OPS (1), FILL_CLIENTS (1000),
# FILL_CONNS (100), LOAD_CLIENTS (10), LOAD_RATE (1000), BASELINE (5s),
# BENCH_OUT (a new temp dir: raw JSON and server logs), CAIRN_ETCD_BIN,
# CAIRN_BIN (prebuilt binaries instead of building them). Needs go, jq and
# Linux /proc. With the defaults, writing the history takes 1.5-3 minutes
# per server and round on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ROUNDS=${BENCH_ROUNDS:-2}
FILL_KEYS=${FILL_KEYS:-100000}
FILL_VERSIONS=${FILL_VERSIONS:-10}
FILL_VAL_SIZE=${FILL_VAL_SIZE:-256}
FILL_TXN_OPS=${FILL_TXN_OPS:-1}
FILL_CLIENTS=${FILL_CLIENTS:-1000}
FILL_CONNS=${FILL_CONNS:-100}
LOAD_CLIENTS=${LOAD_CLIENTS:-10}
LOAD_RATE=${LOAD_RATE:-1000}
BASELINE=${BASELINE:-5s}
OUT=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-defrag.XXXXXX")}
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=(etcd cairn)

command -v jq >/dev/null || { echo "bench-defrag: needs jq (apt-get install jq)" >&2; exit 2; }
log() { echo "bench-defrag: $*" >&2; }

mkdir -p bin "$OUT"
BENCH=$ROOT/bin/cairn-bench
ETCD=${CAIRN_ETCD_BIN:-$ROOT/bin/etcd}
CAIRN=${CAIRN_BIN:-$ROOT/bin/cairn}
log "building cairn-bench"
go build -o "$BENCH" ./cmd/cairn-bench
for s in "${SERVERS[@]}"; do
	case $s in
	etcd)
		if [ -z "${CAIRN_ETCD_BIN:-}" ]; then
			log "building reference etcd (tools/go.mod)"
			(cd tools && go build -o ../bin/etcd go.etcd.io/etcd/server/v3)
		fi
		;;
	cairn)
		if [ -z "${CAIRN_BIN:-}" ]; then
			log "building cairn"
			go build -o "$CAIRN" ./cmd/cairn
		fi
		;;
	*)
		echo "usage: $0 [etcd] [cairn]" >&2
		exit 2
		;;
	esac
done

# shellcheck source=lib/bench-servers.sh
. scripts/lib/bench-servers.sh

trap cleanup_servers EXIT

run_server() {
	local kind=$1 out=$OUT/round$ROUND-$1.json
	if ! start_server "$kind" "round$ROUND"; then
		log "$kind: cannot start; skipping this round"
		return 0
	fi
	log "round $ROUND, $kind: cairn-bench defrag"
	"$BENCH" --endpoints "$ENDPOINT" --json --clients "$LOAD_CLIENTS" --conns 10 --rate "$LOAD_RATE" \
		defrag --fill-keys "$FILL_KEYS" --fill-versions "$FILL_VERSIONS" --fill-val-size "$FILL_VAL_SIZE" --fill-txn-ops "$FILL_TXN_OPS" \
		--fill-clients "$FILL_CLIENTS" --fill-conns "$FILL_CONNS" --baseline "$BASELINE" >"$out" || log "$kind: cairn-bench exited with status $?"
	stop_server
}

log "results in $OUT; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s)
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for s in $(round_order "$ROUND" "${SERVERS[@]}"); do run_server "$s"; done
done
log "done in $(($(date +%s) - START)) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
echo "| server, round | phase | seconds | puts | p50 ms | p99 ms | max ms | longest stall ms |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for f in "$OUT"/round*-*.json; do
	[ -s "$f" ] && jq -e . "$f" >/dev/null 2>&1 || continue
	name=$(basename "$f" .json)
	jq -r --arg n "${name#*-}, ${name%%-*}" 'def r: . * 100 | round / 100;
		.phases[] | "| \($n) | \(.name)\(if .note then " (" + .note + ")" else "" end) | \(.seconds | r) | \(.puts) | \(.latency_ms.p50 | r) | \(.latency_ms.p99 | r) | \(.latency_ms.max | r) | \(.longest_gap_ms | r) |"' "$f"
done
echo
echo "| server, round | history | written in s | db size MiB (in use): before / after compaction / after defragment | put errors |"
echo "| --- | --- | ---: | --- | ---: |"
for f in "$OUT"/round*-*.json; do
	[ -s "$f" ] && jq -e . "$f" >/dev/null 2>&1 || continue
	name=$(basename "$f" .json)
	jq -r --arg n "${name#*-}, ${name%%-*}" 'def mib: . / 1048576 * 10 | round / 10;
		"| \($n) | \(.fill_puts) puts, compacted at revision \(.compact_revision) | \(.fill_seconds * 10 | round / 10) | \([.db_sizes[] | "\(.db_size | mib) (\(.db_size_in_use | mib))"] | join(" / ")) | \(.errors) |"' "$f"
done
