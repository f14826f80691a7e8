#!/usr/bin/env bash
# Scale benchmark: loads one member of the reference etcd v3.7.3 and of
# Cairn with N keys of 2 KiB, measures put and range at that size, then
# times a restart. docs/scale.md explains the method and records a run.
#
# Usage: scripts/bench-scale.sh [etcd] [cairn]   (default: both)
#
# For each size in SCALE_SIZES, and each server in turn:
#   1. start a fresh single member (loopback ports, new data dir under
#      $TMPDIR) with --quota-backend-bytes SCALE_QUOTA (64 GiB; etcd warns
#      "quota exceeds the maximum value" above 8 GiB and runs anyway);
#   2. load: txn-put of SCALE_TXN_OPS sequential keys per txn, 100 clients
#      over 10 connections, until N keys of SCALE_VAL_SIZE bytes exist,
#      each with its own incompressible value (--distinct-values).
#      cairn-bench prints a progress line every second. The load stops early
#      when it has run SCALE_LOAD_TIMEOUT seconds (0: never), when the disk
#      has less than SCALE_MIN_FREE_GIB left, or on more than 100 failed
#      requests (etcd's quota, say); the keys reached are then the
#      measured key space, less the txns that may have been in flight;
#   3. waits until the server is idle (under 5% of a core over 5 s; at
#      most SCALE_SETTLE_TIMEOUT s, 0: no wait): an LSM engine is still
#      compacting what the load wrote, a cost the load has incurred, not
#      the steps after it; the wait is repeated before each step below and
#      its length is in the table;
#      then, at that size, 100 clients over 10 connections each send
#      SCALE_REQUESTS requests of: put (random keys of the loaded space,
#      same value size), range-random linearizable, range-random
#      serializable (one random loaded key per request; a missing key fails);
#   4. SIGTERM, then restart on the same data dir and time the restart to
#      "ready to serve client requests" in the log; 1000 serializable
#      random reads check the data is there; for Cairn, stop and time one
#      more restart with SCALE_CAIRN_RESTART_FLAGS (default
#      --initial-corrupt-check=false: Cairn hashes all its data at start-up
#      unless told not to, etcd does not); stop and delete the data dir.
# A sampler reads the server's VmRSS every 0.2 s during each step; the
# table also gives VmHWM (the kernel's exact peak) over the first process's
# whole life, and server CPU per request (utime+stime from /proc/PID/stat).
#
# Knobs (environment): SCALE_SIZES ("100000 10000000"), SCALE_VAL_SIZE
# (2048), SCALE_TXN_OPS (10), SCALE_REQUESTS (50000), SCALE_QUOTA
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
cleanup() {
	[ -z "$BENCH_PID" ] || kill -TERM "$BENCH_PID" "$GUARD_PID" 2>/dev/null || true
	stop_sampler
	stop_server
	[ -z "$DIR" ] || rm -rf "$DIR"
}
trap cleanup EXIT

# dir_kib DIR: du -sk of DIR; Pebble may delete a file while du walks.
dir_kib() { du -sk "$1" 2>/dev/null | cut -f1 || true; }

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
	log "$KIND at $N: $name: cairn-bench $*"
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
			--argjson settled "$SETTLED" \
			'. + {server_cpu_seconds: $cpu, peak_vmrss_kib: $peak, settle_seconds: $settled}' "$out" >"$out.tmp" && mv "$out.tmp" "$out"
	fi
}

# json FILE: FILE's JSON object, or null if it has none.
json() { jq -e . "$1" 2>/dev/null || echo null; }

# run KIND N: one server at one size; leaves $RES/summary.json.
run() {
	KIND=$1 N=$2 RES=$OUT/$1-$2
	mkdir -p "$RES"
	DIR=$(mktemp -d "${TMPDIR:-/tmp}/bench-scale-$KIND.XXXXXX")
	CPORT=$(free_port) PPORT=$(free_port)
	local reached=0 died="" ready="" restart_rss="" check="{}" hwm="" data_kib="" stop_s="" ready2=""
	if ! launch "$KIND" "$RES/server.log" "$DIR/data" "$CPORT" "$PPORT" --quota-backend-bytes "$QUOTA"; then
		echo '{"error": "did not start"}' >"$RES/summary.json"
		rm -rf "$DIR"; DIR=""
		return 0
	fi
	log "$KIND ready on 127.0.0.1:$CPORT (pid $SERVER_PID), loading $N keys"
	if bench load "$LOAD_TIMEOUT" --clients 100 --conns 10 --total $((N / TXN_OPS)) --max-errors 100 \
		txn-put --txn-ops "$TXN_OPS" --key-space-size "$N" --sequential-keys --val-size "$VAL_SIZE" --distinct-values; then
		reached=$(jq -r --argjson ops "$TXN_OPS" --argjson n "$N" \
			'if .succeeded * $ops >= $n then $n else ([.succeeded - .clients, 0] | max) * $ops end' "$RES/load.json" || echo 0)
		log "$KIND: $reached keys to measure over (vmrss $(status_kib VmRSS) KiB, data $(dir_kib "$DIR/data") KiB)"
		if ((reached > 0)) &&
			bench put "$STEP_TIMEOUT" --clients 100 --conns 10 --total "$REQUESTS" \
				put --key-space-size "$reached" --val-size "$VAL_SIZE" --distinct-values &&
			bench rangeL "$STEP_TIMEOUT" --clients 100 --conns 10 --total "$REQUESTS" \
				range-random --key-space-size "$reached" --consistency l &&
			bench rangeS "$STEP_TIMEOUT" --clients 100 --conns 10 --total "$REQUESTS" \
				range-random --key-space-size "$reached" --consistency s; then
			:
		fi
	fi
	if kill -0 "$SERVER_PID" 2>/dev/null; then
		hwm=$(status_kib VmHWM)
		data_kib=$(dir_kib "$DIR/data")
		stop_server
		stop_s=$STOP_SECONDS
		log "$KIND: stopped in $stop_s s; restarting on $data_kib KiB of data"
		if launch "$KIND" "$RES/restart.log" "$DIR/data" "$CPORT" "$PPORT" --quota-backend-bytes "$QUOTA"; then
			ready=$READY_SECONDS
			restart_rss=$(status_kib VmRSS)
			log "$KIND: ready after $ready s (vmrss $restart_rss KiB)"
			if ((reached > 0)); then
				"$BENCH" --endpoints "127.0.0.1:$CPORT" --json --clients 10 --conns 2 --total 1000 \
					range-random --key-space-size "$reached" --consistency s 2>/dev/null >"$RES/check.json" || true
				check=$(jq -c '{check_succeeded: .succeeded, check_errors: .errors}' "$RES/check.json" 2>/dev/null || echo '{}')
			fi
			stop_server
			# shellcheck disable=SC2086 # the flags are words
			if [ "$KIND" = cairn ] && [ -n "$CAIRN_RESTART_FLAGS" ] && launch cairn "$RES/restart2.log" "$DIR/data" "$CPORT" "$PPORT" --quota-backend-bytes "$QUOTA" $CAIRN_RESTART_FLAGS; then
				ready2=$READY_SECONDS
				log "$KIND: with $CAIRN_RESTART_FLAGS ready after $ready2 s"
				stop_server
			fi
		fi
	else
		died=$(tail -n 3 "$RES/server.log" | cut -c1-400 | jq -Rs .)
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
	jq -n --arg kind "$KIND" --argjson n "$N" --argjson reached "$reached" --argjson ops "$TXN_OPS" \
		--arg hwm "$hwm" --arg data "$data_kib" --arg stop "$stop_s" --arg ready "$ready" --arg ready2 "$ready2" --arg rrss "$restart_rss" \
		--argjson died "${died:-null}" --argjson check "$check" \
		--arg stopped "$(cat "$RES/load.stopped" 2>/dev/null || true)" \
		--slurpfile load <(json "$RES/load.json") \
		--slurpfile put <(json "$RES/put.json") \
		--slurpfile rangeL <(json "$RES/rangeL.json") \
		--slurpfile rangeS <(json "$RES/rangeS.json") \
		'def num: if . == "" then null else tonumber end;
		{kind: $kind, size: $n, keys_reached: $reached, txn_ops: $ops, load_stopped_by: $stopped,
		 vmhwm_kib: ($hwm | num), data_kib: ($data | num), stop_seconds: ($stop | num),
		 restart_ready_seconds: ($ready | num), restart2_ready_seconds: ($ready2 | num), restart_vmrss_kib: ($rrss | num), died: $died,
		 load: $load[0], put: $put[0], rangeL: $rangeL[0], rangeS: $rangeS[0]} + $check' >"$RES/summary.json"
	rm -rf "$DIR"
	DIR=""
}

log "results in $OUT; sizes: $SIZES; load average: $(cut -d' ' -f1-3 /proc/loadavg); free: $(df -h --output=avail "${TMPDIR:-/tmp}" | tail -n 1)"
START=$SECONDS
for n in $SIZES; do
	for s in "${SERVERS[@]}"; do run "$s" "$n"; done
done
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
for w in put rangeL rangeS; do
	row "$w: idle wait before, s" ".$w.settle_seconds"
	row "$w req/s" ".$w.requests_per_second"
	row "$w p50 ms" ".$w.latency_ms.p50"
	row "$w p99 ms" ".$w.latency_ms.p99"
	row "$w errors" ".$w.errors"
	row "$w server CPU us/req" ".$w | $CPU"
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
