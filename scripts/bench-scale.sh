#!/usr/bin/env bash
# Scale benchmark: loads one member of the reference etcd v3.7.3 and of
# Cairn with N keys of 2 KiB, measures put and range at that size, then
# times a restart. docs/scale.md explains the method and records a run.
#
# Usage: scripts/bench-scale.sh [etcd] [cairn]   (default: both)
#
# For each server in turn:
#   1. for each size in SCALE_SIZES, smallest first, start a fresh single
#      member (loopback ports, new data dir under $TMPDIR) with
#      --quota-backend-bytes SCALE_QUOTA (64 GiB; etcd warns "quota exceeds
#      the maximum value" above 8 GiB and runs anyway), and load it: txn-put
#      of SCALE_TXN_OPS sequential keys per txn, 100 clients over 10
#      connections, until N keys of SCALE_VAL_SIZE bytes exist, each with
#      its own incompressible value (--distinct-values). cairn-bench prints
#      a progress line every second. The load stops early when it has run
#      SCALE_LOAD_TIMEOUT seconds (0: never), when the disk has less than
#      SCALE_MIN_FREE_GIB left, or on more than 100 failed requests (etcd's
#      quota, say); the keys reached are then the measured key space, less
#      the txns that may have been in flight. Every size's member keeps
#      running, idle, while the next one loads;
#   2. SCALE_ROUNDS rounds of the measured steps, each step at every size
#      before the next step (sizes in alternating order): 100 clients over
#      10 connections send SCALE_REQUESTS requests of put (random keys of
#      the loaded space, same value size), range-random linearizable, or
#      range-random serializable (one random loaded key per request; a
#      missing key fails). The sizes compared are thus measured minutes
#      apart, not a 10 M load apart, so drift in the neighbours' load on a
#      shared machine hits both alike. Before each step the script waits
#      until that server is idle (under 5% of a core over 5 s; at most
#      SCALE_SETTLE_TIMEOUT s, 0: no wait): an LSM engine is still
#      compacting what the load or the last step wrote, a cost that work
#      incurred, not the step after it; the longest wait is in the table,
#      and so is the share of the data dir in the kernel's page cache as
#      the step starts (fincore, if installed): a random read the block
#      cache misses costs a page-cache copy or a disk read;
#      A step's figures are the median of its rounds; a second table gives
#      the median of the rounds' ratios against the smallest size;
#   3. for each size: SIGTERM, then restart on the same data dir and time
#      the restart to "ready to serve client requests" in the log; 1000
#      serializable random reads check the data is there; for Cairn, stop
#      and time one more restart with SCALE_CAIRN_RESTART_FLAGS (default
#      --initial-corrupt-check=false: Cairn hashes all its data at start-up
#      unless told not to, etcd does not); stop and delete the data dir.
# For Cairn, each step also records its block cache hit rate and the write
# stalls it saw, from the server's /metrics before and after the step
# (cairn_storage_block_cache_{hits,misses}_total, write_stalls_total).
# A sampler reads the server's VmRSS every 0.2 s during each step; the
# table also gives VmHWM (the kernel's exact peak) over the first process's
# whole life, and server CPU per request (utime+stime from /proc/PID/stat).
#
# Knobs (environment): SCALE_SIZES ("100000 10000000"), SCALE_VAL_SIZE
# (2048), SCALE_TXN_OPS (10), SCALE_REQUESTS (50000, per step and round),
# SCALE_ROUNDS (5), SCALE_QUOTA
# (68719476736), SCALE_CAIRN_RESTART_FLAGS (--initial-corrupt-check=false;
# set it empty for no second restart),
# SCALE_LOAD_TIMEOUT (0), SCALE_STEP_TIMEOUT (600, per measurement step),
# SCALE_SETTLE_TIMEOUT (900),
# SCALE_READY_TIMEOUT (600), SCALE_MIN_FREE_GIB (8),
# BENCH_OUT (a new temp dir: raw JSON, logs, summary per run), CAIRN_BIN,
# CAIRN_ETCD_BIN, CAIRN_BENCH_BIN (prebuilt binaries instead of building
# them; the script runs private copies, so a rebuild of bin/ mid-run does
# not change the binary under test). Needs go, jq and Linux /proc.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SCALE_SIZES:-100000 10000000}
VAL_SIZE=${SCALE_VAL_SIZE:-2048}
TXN_OPS=${SCALE_TXN_OPS:-10}
REQUESTS=${SCALE_REQUESTS:-50000}
ROUNDS=${SCALE_ROUNDS:-5}
QUOTA=${SCALE_QUOTA:-68719476736}
LOAD_TIMEOUT=${SCALE_LOAD_TIMEOUT:-0}
STEP_TIMEOUT=${SCALE_STEP_TIMEOUT:-600}
SETTLE_TIMEOUT=${SCALE_SETTLE_TIMEOUT:-900}
READY_TIMEOUT=${SCALE_READY_TIMEOUT:-600}
CAIRN_RESTART_FLAGS=${SCALE_CAIRN_RESTART_FLAGS---initial-corrupt-check=false}
MIN_FREE_KIB=$((${SCALE_MIN_FREE_GIB:-8} * 1024 * 1024))
CLK_TCK=$(getconf CLK_TCK)
OUT=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/bench-scale.XXXXXX")}
SERVERS=("$@")
[ ${#SERVERS[@]} -gt 0 ] || SERVERS=(etcd cairn)

command -v jq >/dev/null || { echo "bench-scale: needs jq (apt-get install jq)" >&2; exit 2; }
for n in $SIZES; do
	if ((n % TXN_OPS != 0)); then echo "bench-scale: size $n is not a multiple of SCALE_TXN_OPS $TXN_OPS" >&2; exit 2; fi
done
log() { echo "bench-scale: $(date -u +%H:%M:%S) $*" >&2; }

# --- binaries: build, then run private copies ---------------------------------

mkdir -p bin "$OUT/bin"
if [ -z "${CAIRN_BENCH_BIN:-}" ]; then
	log "building cairn-bench"
	go build -o bin/cairn-bench ./cmd/cairn-bench
fi
cp "${CAIRN_BENCH_BIN:-bin/cairn-bench}" "$OUT/bin/cairn-bench"
for s in "${SERVERS[@]}"; do
	case $s in
	etcd)
		if [ -z "${CAIRN_ETCD_BIN:-}" ] && [ ! -x bin/etcd ]; then
			log "building reference etcd (tools/go.mod)"
			(cd tools && go build -o ../bin/etcd go.etcd.io/etcd/server/v3)
		fi
		cp "${CAIRN_ETCD_BIN:-bin/etcd}" "$OUT/bin/etcd"
		;;
	cairn)
		if [ -z "${CAIRN_BIN:-}" ]; then
			log "building cairn"
			go build -o bin/cairn ./cmd/cairn
		fi
		cp "${CAIRN_BIN:-bin/cairn}" "$OUT/bin/cairn"
		;;
	*) echo "usage: $0 [etcd] [cairn]" >&2; exit 2 ;;
	esac
done
BENCH=$OUT/bin/cairn-bench
"$OUT/bin/etcd" --version 2>/dev/null | head -n 1 >"$OUT/etcd-version" || true

# --- server ------------------------------------------------------------------

# The private copies; restarts and shutdowns of big data sets are slow.
ETCD=$OUT/bin/etcd CAIRN=$OUT/bin/cairn STOP_TIMEOUT=120
# shellcheck source=lib/bench-servers.sh
. scripts/lib/bench-servers.sh

GUARD_PID="" BENCH_PID="" DIR=""
# Per size of the server kind being run: its pid, ports, temp dir and the
# keys its load reached. A kind's sizes run side by side (see run).
declare -A PID_OF=() CPORT_OF=() PPORT_OF=() DIR_OF=() REACHED_OF=()
cleanup() {
	local n
	[ -z "$BENCH_PID" ] || kill -TERM "$BENCH_PID" "$GUARD_PID" 2>/dev/null || true
	stop_sampler
	for n in "${!PID_OF[@]}"; do
		[ -z "${PID_OF[$n]}" ] || { SERVER_PID=${PID_OF[$n]}; stop_server; }
	done
	for n in "${!DIR_OF[@]}"; do [ -z "${DIR_OF[$n]}" ] || rm -rf "${DIR_OF[$n]}"; done
}
trap cleanup EXIT

# dir_kib DIR: du -sk of DIR; Pebble may delete a file while du walks.
dir_kib() { du -sk "$1" 2>/dev/null | cut -f1 || true; }

# cached_pct DIR: the share of DIR's bytes in the kernel's page cache, in
# percent (fincore from util-linux; "null" without it). Random reads of a
# data set larger than the block cache are served from the page cache or
# from the disk, at very different costs, so each step records it.
cached_pct() {
	command -v fincore >/dev/null || { echo null; return 0; }
	find "$1" -type f -print0 2>/dev/null | xargs -0 -r fincore -b -n -o RES,SIZE 2>/dev/null |
		awk '{ r += $1; s += $2 } END { if (s > 0) printf "%.1f\n", 100 * r / s; else print "null" }'
}

# engine_metrics: the current server's block cache and write stall
# counters from its /metrics, as JSON {hits, misses, stalls}; null for a
# server without them (etcd).
engine_metrics() {
	curl -sf --max-time 5 "http://127.0.0.1:$CPORT/metrics" 2>/dev/null | awk '
		$1 == "cairn_storage_block_cache_hits_total" { h = $2 }
		$1 == "cairn_storage_block_cache_misses_total" { m = $2 }
		$1 == "cairn_storage_write_stalls_total" { s = $2 }
		END { if (h == "" || m == "" || s == "") print "null"; else printf "{\"hits\": %s, \"misses\": %s, \"stalls\": %s}\n", h, m, s }'
}

# settle: waits until the server used under 5% of a core over 5 s, or
# SETTLE_TIMEOUT s have passed; sets SETTLED to the seconds waited.
settle() {
	local start=$SECONDS a b
	SETTLED=0
	((SETTLE_TIMEOUT > 0)) || return 0
	while ((SECONDS - start < SETTLE_TIMEOUT)); do
		a=$(cpu_ticks)
		sleep 5
		b=$(cpu_ticks)
		if (((b - a) * 100 < 5 * 5 * CLK_TCK)); then
			break
		fi
	done
	SETTLED=$((SECONDS - start))
	log "$KIND at $N: idle after $SETTLED s"
}

# bench NAME TIMEOUT ARGS...: cairn-bench into $RES/NAME.json, with the
# server's CPU seconds and the step's sampled peak VmRSS added. Stops the
# step after TIMEOUT seconds (0: never) or when the disk runs short.
bench() {
	local name=$1 limit=$2 out=$RES/$1.json before
	shift 2
	SETTLED=0
	[ "$name" = load ] || settle
	local cached
	cached=$(cached_pct "$DIR/data")
	log "$KIND at $N: $name: cairn-bench $* (data in page cache: $cached%)"
	local m0
	m0=$(engine_metrics)
	before=$(cpu_ticks)
	sample_rss "$RES/$name.rss"
	"$BENCH" --endpoints "127.0.0.1:$CPORT" --json "$@" >"$out" &
	BENCH_PID=$!
	( start=$SECONDS
	while sleep 5; do
		kill -0 "$BENCH_PID" 2>/dev/null || exit 0
		if ((limit > 0 && SECONDS - start >= limit)); then
			echo "bench-scale: $name: stopping after $limit s" >&2; kill -TERM "$BENCH_PID"; exit 0
		fi
		if (($(df -Pk "$DIR" | awk 'NR == 2 { print $4 }') < MIN_FREE_KIB)); then
			echo "bench-scale: $name: less than $MIN_FREE_KIB KiB free on disk; stopping" >&2
			echo disk >"$RES/$name.stopped"; kill -TERM "$BENCH_PID"; exit 0
		fi
	done ) &
	GUARD_PID=$!
	wait "$BENCH_PID" || log "$KIND: $name: cairn-bench exited with status $?"
	kill "$GUARD_PID" 2>/dev/null || true
	wait "$GUARD_PID" 2>/dev/null || true
	BENCH_PID=""
	stop_sampler
	kill -0 "$SERVER_PID" 2>/dev/null || { log "$KIND: server exited during $name"; return 1; }
	if jq -e . "$out" >/dev/null 2>&1; then
		jq --argjson cpu "$(awk -v a="$before" -v b="$(cpu_ticks)" -v t="$CLK_TCK" 'BEGIN { print (b - a) / t }')" \
			--argjson peak "$(sort -n "$RES/$name.rss" | tail -n 1 | grep . || echo null)" \
			--argjson settled "$SETTLED" --argjson cached "${cached:-null}" \
			--argjson m0 "${m0:-null}" --argjson m1 "$(engine_metrics)" \
			'. + {server_cpu_seconds: $cpu, peak_vmrss_kib: $peak, settle_seconds: $settled, page_cache_pct: $cached}
			 + if $m0 and $m1 then
				(($m1.hits - $m0.hits) as $h | ($m1.misses - $m0.misses) as $m |
				 {block_cache_hit_pct: (if $h + $m > 0 then 100 * $h / ($h + $m) else null end),
				  write_stalls: ($m1.stalls - $m0.stalls)})
			   else {} end' "$out" >"$out.tmp" && mv "$out.tmp" "$out"
	fi
}

# json FILE: FILE's JSON object, or null if it has none.
json() { jq -e . "$1" 2>/dev/null || echo null; }

# use N: makes the server of size N the current one for bench and the
# lib's functions.
use() {
	N=$1 RES=$OUT/$KIND-$1 SERVER_PID=${PID_OF[$1]} CPORT=${CPORT_OF[$1]} PPORT=${PPORT_OF[$1]} DIR=${DIR_OF[$1]}
}

# load KIND N: starts a fresh server of KIND and loads N keys into it; it
# stays running for the rounds. Sets REACHED_OF[N] (0 if it did not start
# or the load failed).
load() {
	KIND=$1 N=$2 RES=$OUT/$1-$2
	mkdir -p "$RES"
	REACHED_OF[$N]=0
	DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale-$KIND.XXXXXX")
	DIR_OF[$N]=$DIR PID_OF[$N]=""
	# A port found free may be taken before the server binds it: three tries.
	local attempt
	for attempt in 1 2 3; do
		CPORT_OF[$N]=$(free_port) PPORT_OF[$N]=$(free_port)
		launch "$KIND" "$RES/server.log" "$DIR/data" "${CPORT_OF[$N]}" "${PPORT_OF[$N]}" --quota-backend-bytes "$QUOTA" && break
		rm -rf "$DIR/data"
		if ((attempt == 3)); then
			echo '{"error": "did not start"}' >"$RES/summary.json"
			return 0
		fi
	done
	PID_OF[$N]=$SERVER_PID
	use "$N"
	log "$KIND ready on 127.0.0.1:$CPORT (pid $SERVER_PID), loading $N keys"
	if bench load "$LOAD_TIMEOUT" --clients 100 --conns 10 --total $((N / TXN_OPS)) --max-errors 100 \
		txn-put --txn-ops "$TXN_OPS" --key-space-size "$N" --sequential-keys --val-size "$VAL_SIZE" --distinct-values; then
		REACHED_OF[$N]=$(jq -r --argjson ops "$TXN_OPS" --argjson n "$N" \
			'if .succeeded * $ops >= $n then $n else ([.succeeded - .clients, 0] | max) * $ops end' "$RES/load.json" || echo 0)
		log "$KIND: ${REACHED_OF[$N]} keys to measure over (vmrss $(status_kib VmRSS) KiB, data $(dir_kib "$DIR/data") KiB)"
	fi
}

# rounds KIND: ROUNDS rounds of the measured steps over the kind's loaded
# sizes. Each step runs at every size before the next step starts, in
# round_order, so the steps being compared run minutes apart, not the
# length of a load apart, and slow drift in the neighbours' load hits
# every size alike.
rounds() {
	local r step n
	local -a sizes=()
	for n in $SIZES; do
		if [ -n "${PID_OF[$n]}" ] && ((REACHED_OF[$n] > 0)) && kill -0 "${PID_OF[$n]}" 2>/dev/null; then sizes+=("$n"); fi
	done
	[ ${#sizes[@]} -gt 0 ] || return 0
	for r in $(seq "$ROUNDS"); do
		for step in put rangeL rangeS; do
			for n in $(round_order "$r" "${sizes[@]}"); do
				use "$n"
				kill -0 "$SERVER_PID" 2>/dev/null || continue
				case $step in
				put) bench "put.r$r" "$STEP_TIMEOUT" --clients 100 --conns 10 --total "$REQUESTS" \
					put --key-space-size "${REACHED_OF[$n]}" --val-size "$VAL_SIZE" --distinct-values || true ;;
				rangeL) bench "rangeL.r$r" "$STEP_TIMEOUT" --clients 100 --conns 10 --total "$REQUESTS" \
					range-random --key-space-size "${REACHED_OF[$n]}" --consistency l || true ;;
				rangeS) bench "rangeS.r$r" "$STEP_TIMEOUT" --clients 100 --conns 10 --total "$REQUESTS" \
					range-random --key-space-size "${REACHED_OF[$n]}" --consistency s || true ;;
				esac
			done
		done
	done
}

# steps_json STEP: the rounds of STEP at the current size, as a JSON array.
steps_json() {
	local r
	for r in $(seq "$ROUNDS"); do json "$RES/$1.r$r.json"; done | jq -s .
}

# finish KIND N: stops the server of size N, times its restarts, checks
# its data, removes it, and writes $RES/summary.json.
finish() {
	KIND=$1
	use "$2"
	[ -n "$SERVER_PID" ] || return 0
	local reached=${REACHED_OF[$N]} died="" ready="" restart_rss="" check="{}" hwm="" data_kib="" stop_s="" ready2=""
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		hwm=$(status_kib VmHWM)
		data_kib=$(dir_kib "$DIR/data")
		stop_server
		stop_s=$STOP_SECONDS
		log "$KIND at $N: stopped in $stop_s s; restarting on $data_kib KiB of data"
		if launch "$KIND" "$RES/restart.log" "$DIR/data" "$CPORT" "$PPORT" --quota-backend-bytes "$QUOTA"; then
			ready=$READY_SECONDS
			restart_rss=$(status_kib VmRSS)
			log "$KIND at $N: ready after $ready s (vmrss $restart_rss KiB)"
			if ((reached > 0)); then
				"$BENCH" --endpoints "127.0.0.1:$CPORT" --json --clients 10 --conns 2 --total 1000 \
					range-random --key-space-size "$reached" --consistency s 2>/dev/null >"$RES/check.json" || true
				check=$(jq -c '{check_succeeded: .succeeded, check_errors: .errors}' "$RES/check.json" 2>/dev/null || echo '{}')
			fi
			stop_server
			# shellcheck disable=SC2086 # the flags are words
			if [ "$KIND" = cairn ] && [ -n "$CAIRN_RESTART_FLAGS" ] && launch cairn "$RES/restart2.log" "$DIR/data" "$CPORT" "$PPORT" --quota-backend-bytes "$QUOTA" $CAIRN_RESTART_FLAGS; then
				ready2=$READY_SECONDS
				log "$KIND at $N: with $CAIRN_RESTART_FLAGS ready after $ready2 s"
				stop_server
			fi
		fi
	else
		died=$(tail -n 3 "$RES/server.log" | cut -c1-400 | jq -Rs .)
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	SERVER_PID="" PID_OF[$N]=""
	# A step's figures are the median of its rounds (the middle one of an
	# odd number, the lower middle of an even one); errors add up.
	jq -n --arg kind "$KIND" --argjson n "$N" --argjson reached "$reached" --argjson ops "$TXN_OPS" \
		--arg hwm "$hwm" --arg data "$data_kib" --arg stop "$stop_s" --arg ready "$ready" --arg ready2 "$ready2" --arg rrss "$restart_rss" \
		--argjson died "${died:-null}" --argjson check "$check" \
		--arg stopped "$(cat "$RES/load.stopped" 2>/dev/null || true)" \
		--slurpfile load <(json "$RES/load.json") \
		--slurpfile put <(steps_json put) \
		--slurpfile rangeL <(steps_json rangeL) \
		--slurpfile rangeS <(steps_json rangeS) \
		'def num: if . == "" then null else tonumber end;
		def med: map(select(. != null)) | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end;
		def cpu: if . == null or .server_cpu_seconds == null then null
			else .server_cpu_seconds / ((.succeeded + .errors) | if . == 0 then null else . end) * 1e6 end;
		def step: map(select(. != null)) | if length == 0 then null else
			{rounds: ., requests_per_second: (map(.requests_per_second) | med),
			 latency_ms: {p50: (map(.latency_ms.p50) | med), p99: (map(.latency_ms.p99) | med)},
			 errors: (map(.errors) | add), cpu_us_per_request: (map(cpu) | med),
			 settle_seconds: (map(.settle_seconds) | max), peak_vmrss_kib: (map(.peak_vmrss_kib) | max),
			 page_cache_pct: (map(.page_cache_pct) | med),
			 write_stalls: (map(.write_stalls) | if any(. != null) then map(. // 0) | add else null end)} end;
		{kind: $kind, size: $n, keys_reached: $reached, txn_ops: $ops, load_stopped_by: $stopped,
		 vmhwm_kib: ($hwm | num), data_kib: ($data | num), stop_seconds: ($stop | num),
		 restart_ready_seconds: ($ready | num), restart2_ready_seconds: ($ready2 | num), restart_vmrss_kib: ($rrss | num), died: $died,
		 load: $load[0], put: ($put[0] | step), rangeL: ($rangeL[0] | step), rangeS: ($rangeS[0] | step)} + $check' >"$RES/summary.json"
	rm -rf "$DIR"
	DIR="" DIR_OF[$N]=""
}

# run KIND: loads every size of KIND (smallest first), measures them in
# rounds side by side, then stops and restarts each.
run() {
	local n
	PID_OF=() CPORT_OF=() PPORT_OF=() DIR_OF=() REACHED_OF=()
	for n in $SIZES; do load "$1" "$n"; done
	rounds "$1"
	for n in $SIZES; do finish "$1" "$n"; done
}

log "results in $OUT; sizes: $SIZES; rounds: $ROUNDS; load average: $(cut -d' ' -f1-3 /proc/loadavg); free: $(df -h --output=avail "${TMPDIR:-/tmp}" | tail -n 1)"
START=$SECONDS
for s in "${SERVERS[@]}"; do run "$s"; done
log "done in $((SECONDS - START)) s; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- table -------------------------------------------------------------------

# One column per server and size, from the summaries.
cols=()
for s in "${SERVERS[@]}"; do for n in $SIZES; do cols+=("$OUT/$s-$n/summary.json"); done; done
row() {
	local line="| $1 |" f
	for f in "${cols[@]}"; do
		line+=" $(jq -r "def r: . * 100 | round / 100; ($2) // \"n/a\" | if type == \"number\" then r else . end" "$f" 2>/dev/null || echo n/a) |"
	done
	echo "$line"
}
header="| metric |" sep="| --- |"
for s in "${SERVERS[@]}"; do for n in $SIZES; do header+=" $s $n |"; sep+=" ---: |"; done; done
CPU='(.server_cpu_seconds / ((.succeeded + .errors) | if . == 0 then null else . end) * 1e6)'
MED='map(select(. != null)) | sort | if length == 0 then null else .[(length - 1) / 2 | floor] end'
echo
echo "$header"
echo "$sep"
row "keys loaded ($VAL_SIZE B values)" '.keys_reached'
row "load stopped early by" 'if .load_stopped_by != "" then .load_stopped_by elif .load.interrupted then "timeout" elif .load.aborted then "errors" else "-" end'
row "load keys/s" '.load.requests_per_second * .txn_ops'
row "load minutes" '.load.duration_seconds / 60'
row "load p99 ms per txn" '.load.latency_ms.p99'
row "load errors" '.load.errors'
row "load server CPU us/key" ".load | $CPU / $TXN_OPS"
row "load write stalls" '.load.write_stalls'
for w in put rangeL rangeS; do
	row "$w: longest idle wait before, s" ".$w.settle_seconds"
	row "$w: data dir in page cache before, % (each round)" "[.$w.rounds[].page_cache_pct] | map(tostring) | join(\" / \")"
	row "$w req/s (median of rounds)" ".$w.requests_per_second"
	row "$w req/s, each round" "[.$w.rounds[].requests_per_second | round] | map(tostring) | join(\" / \")"
	row "$w p50 ms (median)" ".$w.latency_ms.p50"
	row "$w p99 ms (median)" ".$w.latency_ms.p99"
	row "$w errors (all rounds)" ".$w.errors"
	row "$w server CPU us/req (median)" ".$w.cpu_us_per_request"
	row "$w block cache hit %, each round" "[.$w.rounds[].block_cache_hit_pct | values | . * 10 | round / 10] | if length == 0 then null else map(tostring) | join(\" / \") end"
	row "$w write stalls (all rounds)" ".$w.write_stalls"
done
row "peak VmRSS MiB sampled: load" '.load.peak_vmrss_kib / 1024'
row "peak VmRSS MiB sampled: put, ranges" '[.put.peak_vmrss_kib, .rangeL.peak_vmrss_kib, .rangeS.peak_vmrss_kib] | max / 1024'
row "VmHWM MiB (exact peak, whole run)" '.vmhwm_kib / 1024'
row "data dir MiB" '.data_kib / 1024'
row "SIGTERM to exit s" '.stop_seconds'
row "restart to ready s" '.restart_ready_seconds'
[ -z "$CAIRN_RESTART_FLAGS" ] || row "restart to ready s, cairn with $CAIRN_RESTART_FLAGS" '.restart2_ready_seconds'
row "VmRSS MiB after restart" '.restart_vmrss_kib / 1024'
row "reads after restart ok/failed" 'if .check_succeeded then "\(.check_succeeded)/\(.check_errors)" else null end'
row "server died" 'if .died then .died else "-" end'

# Against the smallest size of the same server: the median over rounds of
# each round's ratio, so a round's neighbours affect both sides of it.
# ratio SMALL BIG STEP EXPR: that median for EXPR of a round's figures.
ratio() {
	jq -rn --slurpfile a "$1" --slurpfile b "$2" \
		"[range(\$a[0].$3.rounds | length) as \$i | (\$a[0].$3.rounds[\$i] | $4) as \$x |
		  (\$b[0].$3.rounds[\$i] // null | if . then $4 else null end) as \$y |
		  if \$x and \$y and \$x != 0 then \$y / \$x else null end] | $MED |
		 if . then \"\(. * 100 | round / 100)x\" else \"n/a\" end" 2>/dev/null || echo n/a
}
first=${SIZES%% *}
echo
echo "| against $first (median of the rounds' ratios) | throughput | p50 | p99 | server CPU per request |"
echo "| --- | ---: | ---: | ---: | ---: |"
for s in "${SERVERS[@]}"; do for n in $SIZES; do
	[ "$n" = "$first" ] && continue
	for w in put rangeL rangeS; do
		a=$OUT/$s-$first/summary.json b=$OUT/$s-$n/summary.json
		echo "| $s $n $w | $(ratio "$a" "$b" "$w" .requests_per_second) | $(ratio "$a" "$b" "$w" .latency_ms.p50) |" \
			"$(ratio "$a" "$b" "$w" .latency_ms.p99) | $(ratio "$a" "$b" "$w" "$CPU") |"
	done
done; done
