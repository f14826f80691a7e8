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
# reflects just those keys; the watch workloads get a third (see "watch"
# below) and the lease workloads a fourth (see "Lease"). The whole sequence
# runs $BENCH_ROUNDS times
# (default 2), alternating which server goes first so that slow drift in the
# machine's load hits both alike; each cell is the median over the rounds,
# with [min, max] when there is more than one. Besides cairn-bench's own
# figures the script reads the server's CPU time (utime+stime from
# /proc/PID/stat) around each workload: CPU per request is far less sensitive
# than throughput to other work on a shared machine. Every workload is capped
# at $BENCH_STEP_TIMEOUT seconds (default 180): cairn-bench stops on SIGTERM
# and reports what it completed, and the table marks it "interrupted".
#
# Watch: 1000 watchers over 10 streams on 100 keys (10 per key) receive the
# events of WATCH_PUTS puts from 10 clients; then 1000 watchers over 10
# streams all watch one prefix, so each of FANOUT_PUTS puts from 100 clients
# becomes 1000 events (the watch path, not the puts, is then the limit);
# then, as a baseline, STALL_PUTS
# puts of 4 KiB from 10 clients with nobody watching; then the same puts
# again while 1000 more watchers on 10 streams that are never read watch the
# same keys. During that last run a sampler reads the server's VmRSS every
# 0.2 s; the table gives the peak.
#
# Lease: 100 clients over 10 connections grant 10000 leases of TTL 60 s
# and keep them (one step), then keep them alive with LEASE_TOTAL
# keep-alives, one LeaseKeepAlive stream per client with 64 in flight each
# (a second step, --existing-leases). Granting is a raft write per lease,
# so it has a step of its own: the keep-alive step's server CPU then counts
# the keep-alives alone (plus one LeaseLeases and the connection set-up).
#
# Cluster: three members of the same server on this machine (each with its
# own data dir, so three WALs fsync on the one disk), started together with
# --initial-cluster. 1 client on 1 connection to the leader sends
# PUT1_TOTAL puts (latency), then 1000 clients over 100 connections spread
# over all three members send PUTN_TOTAL puts (throughput; puts sent to a
# follower are forwarded to the leader, as with etcd). The server CPU column
# sums the three members. Not in the default sections: add "cluster" to
# BENCH_SECTIONS. Needs curl (to find the leader from /metrics).
#
# TLS: the main section's multi-client put and two ranges again, against a
# server whose client URL is https with --auto-tls (a self-signed
# certificate; cairn-bench does not verify it). Not in the default
# sections: add "tls" to BENCH_SECTIONS, with "main" for the plain-TCP
# figures beside them.
#
# Knobs (environment): BENCH_ROUNDS (2), BENCH_SECTIONS ("main load watch
# lease", and "cluster", "tls": which server processes to run), PUT1_TOTAL (2000), PUTN_TOTAL
# (100000), RANGE_TOTAL (100000), LOAD_KEYS (1000000), LOAD_TXN_OPS (10,
# at most etcd's --max-txn-ops of 128), BENCH_STEP_TIMEOUT
# (180), WATCH_PUTS (20000), FANOUT_PUTS (3000), STALL_PUTS (20000), LEASE_TOTAL (200000),
# BENCH_OUT (a new temp dir; raw JSON results and server logs go there),
# CAIRN_ETCD_BIN (use this etcd instead of building one), CAIRN_BIN (use
# this cairn instead of building one from the working tree). Needs go, jq,
# and Linux /proc. On 2 cores one round takes about 3 minutes, plus about 1
# minute per server for the watch section and 15-30 s per server for the
# lease section.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PUT1_TOTAL=${PUT1_TOTAL:-2000}
PUTN_TOTAL=${PUTN_TOTAL:-100000}
RANGE_TOTAL=${RANGE_TOTAL:-100000}
LOAD_KEYS=${LOAD_KEYS:-1000000}
# Keys per txn of the load. Both servers keep the raft entries since their
# last snapshot (up to --snapshot-count, 10000) in memory, so big txns inflate
# the RSS reading: 100 ops (27 KB entries) add ~270 MB to either server. 10
# keeps that share near 27 MB while loading 1M keys in well under a minute.
LOAD_TXN_OPS=${LOAD_TXN_OPS:-10}
WATCH_PUTS=${WATCH_PUTS:-20000}
FANOUT_PUTS=${FANOUT_PUTS:-3000}
STALL_PUTS=${STALL_PUTS:-20000}
LEASE_TOTAL=${LEASE_TOTAL:-200000}
SECTIONS=" ${BENCH_SECTIONS:-main load watch lease} "
STEP_TIMEOUT=${BENCH_STEP_TIMEOUT:-180}
ROUNDS=${BENCH_ROUNDS:-2}
CLK_TCK=$(getconf CLK_TCK)
OUT=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-compare.XXXXXX")}
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=(etcd cairn)

if (( LOAD_KEYS % LOAD_TXN_OPS != 0 )); then
	echo "LOAD_KEYS must be a multiple of $LOAD_TXN_OPS" >&2
	exit 2
fi
command -v jq >/dev/null || { echo "bench-compare: needs jq (apt-get install jq)" >&2; exit 2; }
if [[ " ${BENCH_SECTIONS:-} " == *" cluster "* ]]; then
	command -v curl >/dev/null || { echo "bench-compare: the cluster section needs curl (apt-get install curl)" >&2; exit 2; }
fi

log() { echo "bench-compare: $*" >&2; }

# --- build -------------------------------------------------------------------

mkdir -p bin "$OUT"
BENCH=$ROOT/bin/cairn-bench
ETCD=${CAIRN_ETCD_BIN:-$ROOT/bin/etcd}
CAIRN=${CAIRN_BIN:-$ROOT/bin/cairn}
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
		if [ -n "${CAIRN_BIN:-}" ]; then
			AVAILABLE[cairn]=1
			continue
		fi
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

# shellcheck source=lib/bench-servers.sh
. scripts/lib/bench-servers.sh

trap cleanup_servers EXIT

# bench NAME ARGS...: runs cairn-bench against the running server, JSON into
# $RES/NAME.json with the server's CPU seconds added as server_cpu_seconds.
# A failed or interrupted run still leaves its report.
bench() {
	local name=$1 out=$RES/$1.json before after
	shift
	log "round $ROUND, $KIND: $name: cairn-bench $*"
	before=$(cpu_ticks)
	timeout --signal=TERM "$STEP_TIMEOUT" "$BENCH" --endpoints "$ENDPOINT" --json "$@" \
		>"$out" || log "$KIND: $name: cairn-bench exited with status $?"
	after=$(cpu_ticks) || return 0
	if jq -e . "$out" >/dev/null 2>&1; then
		jq --argjson cpu "$(awk -v a="$before" -v b="$after" -v t="$CLK_TCK" 'BEGIN { print (b - a) / t }')" \
			'. + {server_cpu_seconds: $cpu}' "$out" >"$out.tmp" && mv "$out.tmp" "$out"
	fi
}

# run_server KIND: one round of every workload against a server of KIND.
run_server() {
	KIND=$1
	RES=$OUT/round$ROUND/$KIND
	mkdir -p "$RES"
	if [[ $SECTIONS == *" main "* ]]; then
		if ! start_server "$KIND" "main-$ROUND"; then
			log "$KIND: cannot start; skipping this round"
			return 0
		fi
		echo "{\"vmrss_kib\": $(status_kib VmRSS)}" >"$RES/idle.json"
		bench put1 --clients 1 --conns 1 --total "$PUT1_TOTAL" put
		bench putN --clients 1000 --conns 100 --total "$PUTN_TOTAL" put --key-space-size 100000 --sequential-keys
		# Key 00000000 exists: both put workloads wrote it.
		bench rangeL --clients 100 --conns 10 --total "$RANGE_TOTAL" range 00000000 --consistency l
		bench rangeS --clients 100 --conns 10 --total "$RANGE_TOTAL" range 00000000 --consistency s
		stop_server
	fi

	if [[ $SECTIONS == *" load "* ]]; then
		if ! start_server "$KIND" "load-$ROUND"; then
			log "$KIND: cannot start; skipping the load"
			return 0
		fi
		bench load --clients 100 --conns 10 --total $((LOAD_KEYS / LOAD_TXN_OPS)) \
			txn-put --txn-ops "$LOAD_TXN_OPS" --key-space-size "$LOAD_KEYS" --sequential-keys
		printf '{"vmrss_kib": %s, "rssanon_kib": %s, "rssfile_kib": %s, "data_kib": %s}\n' \
			"$(status_kib VmRSS)" "$(status_kib RssAnon)" "$(status_kib RssFile)" "$(du -sk "$SERVER_DIR" | cut -f1)" \
			>"$RES/rss.json"
		stop_server
	fi

	if [[ $SECTIONS == *" watch "* ]]; then
		if ! start_server "$KIND" "watch-$ROUND"; then
			log "$KIND: cannot start; skipping the watch workloads"
			return 0
		fi
		bench watch watch --watchers 1000 --streams 10 --watch-key-space 100 --puts "$WATCH_PUTS" --put-clients 10
		bench fanout watch --watchers 1000 --streams 10 --prefix --puts "$FANOUT_PUTS" --put-clients 100
		# The stalled watchers watch the keys the puts write (10 per key), so
		# a server that buffered their events would hold 10 x 4 KiB per put.
		# Same key length (14 B) and value size as the stalled run, other keys.
		bench stallbase --clients 10 --conns 10 --total "$STALL_PUTS" put --val-size 4096 --key-space-size 100 --key-size 14
		local before samples=$RES/stall-rss.samples
		before=$(status_kib VmRSS)
		sample_rss "$samples"
		bench stall watch --watchers 0 --stall-watchers 1000 --stall-streams 10 --watch-key-space 100 \
			--puts "$STALL_PUTS" --put-clients 10 --val-size 4096
		stop_sampler
		printf '{"before_kib": %s, "peak_kib": %s, "after_kib": %s}\n' "$before" \
			"$(sort -n "$samples" | tail -n 1)" "$(status_kib VmRSS)" >"$RES/stall-rss.json"
		stop_server
	fi

	if [[ $SECTIONS == *" lease "* ]]; then
		if ! start_server "$KIND" "lease-$ROUND"; then
			log "$KIND: cannot start; skipping the lease workloads"
			return 0
		fi
		bench leasegrant --clients 100 --conns 10 --total 1 lease-keepalive --leases 10000 --ttl 60 --keep-leases
		bench lease --clients 100 --conns 10 --total "$LEASE_TOTAL" lease-keepalive --existing-leases --in-flight 64
		stop_server
	fi

	if [[ $SECTIONS == *" tls "* ]]; then
		if ! CLIENT_SCHEME=https start_server "$KIND" "tls-$ROUND" --auto-tls; then
			log "$KIND: cannot start with TLS; skipping the TLS workloads"
			return 0
		fi
		bench tlsPutN --insecure-skip-tls-verify --clients 1000 --conns 100 --total "$PUTN_TOTAL" put --key-space-size 100000 --sequential-keys
		bench tlsRangeL --insecure-skip-tls-verify --clients 100 --conns 10 --total "$RANGE_TOTAL" range 00000000 --consistency l
		bench tlsRangeS --insecure-skip-tls-verify --clients 100 --conns 10 --total "$RANGE_TOTAL" range 00000000 --consistency s
		stop_server
	fi

	if [[ $SECTIONS == *" cluster "* ]]; then
		if ! start_cluster "$KIND" "cluster-$ROUND"; then
			log "$KIND: cannot start a cluster; skipping the cluster workloads"
			return 0
		fi
		ENDPOINT=$LEADER_EP
		bench cput1 --clients 1 --conns 1 --total "$PUT1_TOTAL" put
		ENDPOINT=$CLUSTER_EPS
		bench cputN --clients 1000 --conns 100 --total "$PUTN_TOTAL" put --key-space-size 100000 --sequential-keys
		stop_server
	fi
}

log "results in $OUT; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
START=$(date +%s)
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	for s in $(round_order "$ROUND" "${SERVERS[@]}"); do
		if [ -n "${AVAILABLE[$s]:-}" ]; then
			run_server "$s"
		fi
	done
done
log "done in $(($(date +%s) - START)) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- table -------------------------------------------------------------------

# cell KIND NAME JQ-EXPR: the median of one figure over the rounds, with
# [min, max] when there are several, and a note when a run had errors or was
# cut short; "n/a" when there is no result.
cell() {
	local f files=()
	for f in "$OUT"/round*/"$1/$2.json"; do
		if [ -s "$f" ] && jq -e . "$f" >/dev/null 2>&1; then files+=("$f"); fi
	done
	if [ ${#files[@]} -eq 0 ]; then
		echo "n/a"
		return
	fi
	jq -rs "def fmt: . * 100 | round / 100 | tostring;
		(map($3) | map(select(type == \"number\")) | sort) as \$v
		| (\$v | length) as \$n
		| (if \$n == 0 then \"n/a\"
		   else ((\$v[(\$n - 1) / 2 | floor] + \$v[\$n / 2 | floor]) / 2 | fmt)
		     + (if \$n > 1 then \" [\" + (\$v[0] | fmt) + \", \" + (\$v[-1] | fmt) + \"]\" else \"\" end)
		   end)
		+ ((map(.errors // 0) | add) as \$e | if \$e > 0 then \" (\(\$e) errors)\" else \"\" end)
		+ (if any(.[]; .interrupted // false) then \" (interrupted)\" else \"\" end)
		+ (if any(.[]; .aborted // false) then \" (aborted)\" else \"\" end)" "${files[@]}"
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

CPU_PER_REQ='.server_cpu_seconds / ((.succeeded + .errors) | if . == 0 then null else . end) * 1e6'
echo
echo "| workload | metric | etcd | cairn | cairn/etcd |"
echo "| --- | --- | ---: | ---: | ---: |"
if [[ $SECTIONS == *" main "* ]]; then
	row "put, 1 client, 1 conn, $PUT1_TOTAL req" "p50 latency ms (lower is better)" put1 .latency_ms.p50
	row "put, 1 client, 1 conn" "p99 latency ms" put1 .latency_ms.p99
	row "put, 1 client, 1 conn" "requests/s" put1 .requests_per_second
	row "put, 1000 clients, 100 conns, $PUTN_TOTAL req" "requests/s (higher is better)" putN .requests_per_second
	row "put, 1000 clients, 100 conns" "p99 latency ms" putN .latency_ms.p99
	row "put, 1000 clients, 100 conns" "server CPU us/request" putN "$CPU_PER_REQ"
	row "range 1 key linearizable, 100 clients, 10 conns, $RANGE_TOTAL req" "requests/s (higher is better)" rangeL .requests_per_second
	row "range 1 key linearizable" "server CPU us/request" rangeL "$CPU_PER_REQ"
	row "range 1 key serializable, 100 clients, 10 conns, $RANGE_TOTAL req" "requests/s (higher is better)" rangeS .requests_per_second
	row "range 1 key serializable" "server CPU us/request" rangeS "$CPU_PER_REQ"
	row "idle, fresh data dir" "VmRSS MiB" idle '.vmrss_kib / 1024'
fi
if [[ $SECTIONS == *" load "* ]]; then
	row "load $LOAD_KEYS keys x 256 B (txn-put $LOAD_TXN_OPS ops, 100 clients)" "keys/s" load ".requests_per_second * $LOAD_TXN_OPS"
	row "load" "server CPU us/key" load "$CPU_PER_REQ / $LOAD_TXN_OPS"
	row "after the load" "VmRSS MiB (lower is better)" rss '.vmrss_kib / 1024'
	row "after the load" "RssAnon MiB" rss '.rssanon_kib / 1024'
	row "after the load" "RssFile MiB" rss '.rssfile_kib / 1024'
	row "after the load" "data dir MiB" rss '.data_kib / 1024'
fi
if [[ $SECTIONS == *" watch "* ]]; then
	# watch_rows LABEL SHORT FILE: the rows of one watch workload.
	watch_rows() {
		row "$1" "events/s (higher is better)" "$3" .events_per_second
		row "$2" "p50 put-to-event ms" "$3" .event_latency_ms.p50
		row "$2" "p99 put-to-event ms (lower is better)" "$3" .event_latency_ms.p99
		row "$2" "puts/s" "$3" .puts_per_second
		row "$2" "events missing + duplicate" "$3" '.events_missing + .events_duplicate'
		row "$2" "server CPU us/event" "$3" '.server_cpu_seconds / (.events_received | if . == 0 then null else . end) * 1e6'
	}
	watch_rows "watch, 1000 watchers, 10 streams, 100 keys, $WATCH_PUTS puts x 256 B from 10 clients" watch watch
	watch_rows "fan-out: 1000 watchers of one prefix, 10 streams, $FANOUT_PUTS puts x 256 B from 100 clients" fan-out fanout
	row "baseline: $STALL_PUTS puts x 4 KiB, 10 clients, no watchers" "puts/s" stallbase .requests_per_second
	row "baseline" "server CPU us/put" stallbase "$CPU_PER_REQ"
	row "the same puts, 1000 stalled watchers on 10 streams" "puts/s (higher is better)" stall .puts_per_second
	row "stalled" "p99 put latency ms" stall .put_latency_ms.p99
	row "stalled" "server CPU us/put" stall "$CPU_PER_REQ"
	row "stalled" "VmRSS MiB before" stall-rss '.before_kib / 1024'
	row "stalled" "peak VmRSS MiB during the puts (lower is better)" stall-rss '.peak_kib / 1024'
fi
if [[ $SECTIONS == *" tls "* ]]; then
	row "TLS (--auto-tls): put, 1000 clients, 100 conns, $PUTN_TOTAL req" "requests/s (higher is better)" tlsPutN .requests_per_second
	row "TLS: put, 1000 clients, 100 conns" "p99 latency ms" tlsPutN .latency_ms.p99
	row "TLS: put, 1000 clients, 100 conns" "server CPU us/request" tlsPutN "$CPU_PER_REQ"
	row "TLS: range 1 key linearizable, 100 clients, 10 conns, $RANGE_TOTAL req" "requests/s (higher is better)" tlsRangeL .requests_per_second
	row "TLS: range 1 key linearizable" "server CPU us/request" tlsRangeL "$CPU_PER_REQ"
	row "TLS: range 1 key serializable, 100 clients, 10 conns, $RANGE_TOTAL req" "requests/s (higher is better)" tlsRangeS .requests_per_second
	row "TLS: range 1 key serializable" "server CPU us/request" tlsRangeS "$CPU_PER_REQ"
fi
if [[ $SECTIONS == *" cluster "* ]]; then
	row "3-member cluster: put, 1 client, 1 conn to the leader, $PUT1_TOTAL req" "p50 latency ms (lower is better)" cput1 .latency_ms.p50
	row "3-member cluster: put, 1 client" "p99 latency ms" cput1 .latency_ms.p99
	row "3-member cluster: put, 1000 clients, 100 conns over 3 members, $PUTN_TOTAL req" "requests/s (higher is better)" cputN .requests_per_second
	row "3-member cluster: put, 1000 clients" "p99 latency ms" cputN .latency_ms.p99
	row "3-member cluster: put, 1000 clients" "server CPU us/request (3 members)" cputN "$CPU_PER_REQ"
fi
if [[ $SECTIONS == *" lease "* ]]; then
	row "lease keep-alive, 10000 leases, 100 clients, 10 conns, 64 in flight per stream, $LEASE_TOTAL keep-alives" "keep-alives/s (higher is better)" lease .requests_per_second
	row "lease keep-alive" "p50 latency ms" lease .latency_ms.p50
	row "lease keep-alive" "p99 latency ms" lease .latency_ms.p99
	row "lease keep-alive" "server CPU us/keep-alive" lease "$CPU_PER_REQ"
	row "grant 10000 leases, 100 clients, 10 conns" "grants/s" leasegrant '.lease.leases / .lease.grant_seconds'
	row "grant" "server CPU us/grant" leasegrant '.server_cpu_seconds / .lease.leases * 1e6'
fi
