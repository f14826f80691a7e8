#!/usr/bin/env bash
# Runs the same cairn-bench workloads against the reference etcd v3.7.3 and
# against Cairn, one server at a time on this machine, and prints one table:
# workload | metric | etcd | cairn | cairn/etcd. docs/benchmarks.md explains the
# workloads and records a run.
#
# Usage: scripts/bench-compare.sh [etcd] [cairn]   (default: both)
#
# Each server runs as a single member on loopback ports picked at random,
# with a fresh data directory under $TMPDIR. The first four workloads share
# one server process; the 1,000,000-key load gets a fresh one so that its RSS
# reflects just those keys. Every workload is capped at $BENCH_STEP_TIMEOUT
# seconds (default 180): cairn-bench stops on SIGTERM and reports what it
# completed, and the table marks it "interrupted".
#
# Knobs (environment): PUT1_TOTAL (2000), PUTN_TOTAL (100000), RANGE_TOTAL
# (100000), LOAD_KEYS (1000000), BENCH_STEP_TIMEOUT (180), BENCH_OUT (a new
# temp dir; raw JSON results and server logs go there), CAIRN_ETCD_BIN (use
# this etcd instead of building one). Needs go, jq, and Linux /proc.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PUT1_TOTAL=${PUT1_TOTAL:-2000}
PUTN_TOTAL=${PUTN_TOTAL:-100000}
RANGE_TOTAL=${RANGE_TOTAL:-100000}
LOAD_KEYS=${LOAD_KEYS:-1000000}
LOAD_TXN_OPS=100 # below etcd's default --max-txn-ops of 128
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-180}
OUT=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")}
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=(etcd cairn)

if (( LOAD_KEYS % LOAD_TXN_OPS != 0 )); then
	echo "LOAD_KEYS must be a multiple of $LOAD_TXN_OPS" >&2
	exit 2
fi
command -v jq >/dev/null || { echo "bench-compare: needs jq (apt-get install jq)" >&2; exit 2; }

log() { echo "bench-compare: $*" >&2; }

# --- build -------------------------------------------------------------------

mkdir -p bin "$OUT"
BENCH=$ROOT/bin/cairn-bench
ETCD=${CAIRN_ETCD_BIN:-$ROOT/bin/etcd}
CAIRN=$ROOT/bin/cairn
log "building cairn-bench"
go build -o "$BENCH" ./cmd/cairn-bench
declare -A AVAILABLE=()
for s in "${SERVERS[@]}"; do
	case $s in
	etcd)
		if [ -z "${CAIRN_ETCD_BIN:-}" ]; then
			log "building reference etcd (tools/go.mod)"
			(cd tools && go build -o ../bin/etcd go.etcd.io/etcd/server/v3)
		fi
		AVAILABLE[etcd]=1
		;;
	cairn)
		log "building cairn"
		if go build -o "$CAIRN" ./cmd/cairn 2>"$OUT/cairn-build.log"; then
			AVAILABLE[cairn]=1
		else
			log "cairn does not build; its column stays empty (see $OUT/cairn-build.log)"
		fi
		;;
	*)
		echo "usage: $0 [etcd] [cairn]" >&2
		exit 2
		;;
	esac
done

# --- servers -----------------------------------------------------------------

SERVER_PID=""
ENDPOINT=""
DATA_DIRS=()

cleanup() {
	stop_server
	for d in "${DATA_DIRS[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

# free_port prints a loopback port nobody listens on right now. Another
# process may still take it before our server binds; start_server retries.
free_port() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# start_server KIND LOGNAME: starts etcd or cairn with a fresh data dir and
# waits for "ready to serve client requests"; sets SERVER_PID and ENDPOINT.
start_server() {
	local kind=$1 logf=$OUT/$1-$2.log attempt cport pport dir bin
	for attempt in 1 2 3; do
		cport=$(free_port)
		pport=$(free_port)
		dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-$kind.XXXXXX")
		DATA_DIRS+=("$dir")
		case $kind in
		etcd) bin=$ETCD ;;
		cairn) bin=$CAIRN ;;
		esac
		"$bin" --name default --data-dir "$dir/data" \
			--listen-client-urls "http://127.0.0.1:$cport" \
			--advertise-client-urls "http://127.0.0.1:$cport" \
			--listen-peer-urls "http://127.0.0.1:$pport" \
			--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
			--initial-cluster "default=http://127.0.0.1:$pport" \
			>"$logf" 2>&1 &
		SERVER_PID=$!
		SERVER_DIR=$dir/data
		for _ in $(seq 600); do
			if ! kill -0 "$SERVER_PID" 2>/dev/null; then
				break
			fi
			if grep -q "ready to serve client requests" "$logf"; then
				ENDPOINT=127.0.0.1:$cport
				log "$kind ready on $ENDPOINT (pid $SERVER_PID)"
				return 0
			fi
			sleep 0.1
		done
		log "$kind did not become ready (attempt $attempt); log tail:"
		tail -n 5 "$logf" >&2
		stop_server
	done
	return 1
}

stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	kill -TERM "$SERVER_PID" 2>/dev/null || true
	for _ in $(seq 200); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SERVER_PID" 2>/dev/null || true
	wait "$SERVER_PID" 2>/dev/null || true
	SERVER_PID=""
}

# rss_kib FIELD: a field of /proc/PID/status of the running server, in KiB.
rss_kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$SERVER_PID/status"; }

# bench NAME ARGS...: runs cairn-bench against the running server, JSON into
# $OUT/KIND/NAME.json. A failed or interrupted run still leaves its report.
bench() {
	local name=$1
	shift
	log "$KIND: $name: cairn-bench $*"
	timeout --signal=TERM "$STEP_TIMEOUT" "$BENCH" --endpoints "$ENDPOINT" --json "$@" \
		>"$OUT/$KIND/$name.json" || log "$KIND: $name: cairn-bench exited with status $?"
}

run_server() {
	KIND=$1
	mkdir -p "$OUT/$KIND"
	start_server "$KIND" main
	echo "{\"vmrss_kib\": $(rss_kib VmRSS)}" >"$OUT/$KIND/idle.json"
	bench put1 --clients 1 --conns 1 --total "$PUT1_TOTAL" put
	bench putN --clients 1000 --conns 100 --total "$PUTN_TOTAL" put --key-space-size 100000 --sequential-keys
	# Key 00000000 exists: both put workloads wrote it.
	bench rangeL --clients 100 --conns 10 --total "$RANGE_TOTAL" range 00000000 --consistency l
	bench rangeS --clients 100 --conns 10 --total "$RANGE_TOTAL" range 00000000 --consistency s
	stop_server

	start_server "$KIND" load
	bench load --clients 100 --conns 10 --total $((LOAD_KEYS / LOAD_TXN_OPS)) \
		txn-put --txn-ops "$LOAD_TXN_OPS" --key-space-size "$LOAD_KEYS" --sequential-keys
	printf '{"vmrss_kib": %s, "rssanon_kib": %s, "rssfile_kib": %s, "data_kib": %s}\n' \
		"$(rss_kib VmRSS)" "$(rss_kib RssAnon)" "$(rss_kib RssFile)" "$(du -sk "$SERVER_DIR" | cut -f1)" \
		>"$OUT/$KIND/rss.json"
	stop_server
}

log "results in $OUT; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s)
for s in "${SERVERS[@]}"; do
	if [ -n "${AVAILABLE[$s]:-}" ]; then
		run_server "$s"
	fi
done
log "done in $(($(date +%s) - START)) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- table -------------------------------------------------------------------

# cell KIND FILE JQ-EXPR: one figure, with a note when the run had errors or
# was cut short; "n/a" when there is no result.
cell() {
	local f=$OUT/$1/$2.json
	if [ ! -s "$f" ] || ! jq -e . "$f" >/dev/null 2>&1; then
		echo "n/a"
		return
	fi
	jq -r "($3) as \$v
		| (if (\$v | type) == \"number\" then (\$v * 100 | round / 100 | tostring) else \"n/a\" end)
		+ (if (.errors // 0) > 0 then \" (\(.errors) errors)\" else \"\" end)
		+ (if (.interrupted // false) then \" (interrupted at \(.succeeded)/\(.total))\" else \"\" end)
		+ (if (.aborted // false) then \" (aborted)\" else \"\" end)" "$f"
}

ratio() {
	awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN {
		if (a + 0 > 0 && b ~ /^[0-9.]+$/) printf "%.2f", b / a; else printf "n/a" }'
}

row() {
	local label=$1 metric=$2 file=$3 expr=$4 e c
	e=$(cell etcd "$file" "$expr")
	c=$(cell cairn "$file" "$expr")
	echo "| $label | $metric | $e | $c | $(ratio "$e" "$c") |"
}

echo
echo "| workload | metric | etcd | cairn | cairn/etcd |"
echo "| --- | --- | ---: | ---: | ---: |"
row "put, 1 client, 1 conn, $PUT1_TOTAL req" "p50 latency ms (lower is better)" put1 .latency_ms.p50
row "put, 1 client, 1 conn" "p99 latency ms" put1 .latency_ms.p99
row "put, 1 client, 1 conn" "requests/s" put1 .requests_per_second
row "put, 1000 clients, 100 conns, $PUTN_TOTAL req" "requests/s (higher is better)" putN .requests_per_second
row "put, 1000 clients, 100 conns" "p99 latency ms" putN .latency_ms.p99
row "range 1 key linearizable, 100 clients, 10 conns, $RANGE_TOTAL req" "requests/s (higher is better)" rangeL .requests_per_second
row "range 1 key serializable, 100 clients, 10 conns, $RANGE_TOTAL req" "requests/s (higher is better)" rangeS .requests_per_second
row "idle, fresh data dir" "VmRSS MiB" idle '.vmrss_kib / 1024'
row "load $LOAD_KEYS keys x 256 B (txn-put $LOAD_TXN_OPS ops, 100 clients)" "keys/s" load ".requests_per_second * $LOAD_TXN_OPS"
row "after the load" "VmRSS MiB (lower is better)" rss '.vmrss_kib / 1024'
row "after the load" "RssAnon MiB" rss '.rssanon_kib / 1024'
row "after the load" "RssFile MiB" rss '.rssfile_kib / 1024'
row "after the load" "data dir MiB" rss '.data_kib / 1024'
