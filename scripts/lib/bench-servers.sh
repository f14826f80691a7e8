# shellcheck shell=bash
# Server processes for the benchmark scripts (bench-compare.sh,
# bench-defrag.sh, bench-scale.sh, bench-hashkv.sh): start etcd or Cairn as
# a single member or a three-member cluster on loopback ports, stop it, and
# read its memory and CPU from /proc. Sourced, not run.
#
# The caller provides:
#   log MESSAGE...  a function printing a progress line on stderr;
#   ETCD, CAIRN     the server binaries of the kinds "etcd" and "cairn";
#   OUT             the directory the server logs go to.
# Knobs (set before or after sourcing): READY_TIMEOUT (60 s), how long a
# server may take to log "ready to serve client requests"; STOP_TIMEOUT
# (20 s), how long it may take to exit after SIGTERM before SIGKILL;
# CLIENT_SCHEME (http), the single member's client URL scheme: with https,
# pass the server its certificate flags (--auto-tls) and ENDPOINT carries
# the scheme.
#
# State, read by the caller: SERVER_PID (the server, or the cluster's first
# member), SERVER_PIDS (every member of a running cluster), ENDPOINT,
# SERVER_DIR (its data dir), READY_SECONDS, STOP_SECONDS, CLUSTER_EPS,
# LEADER_EP, SAMPLER_PID, and DATA_DIRS (every temporary directory made,
# for the caller's cleanup).

READY_TIMEOUT=${READY_TIMEOUT:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-20}
SERVER_PID=""
SERVER_PIDS=()
SAMPLER_PID=""
ENDPOINT=""
DATA_DIRS=()

# server_bin KIND: the binary of etcd or cairn.
server_bin() {
	case $1 in
	etcd) echo "$ETCD" ;;
	cairn) echo "$CAIRN" ;;
	*) echo "unknown server kind $1" >&2; return 1 ;;
	esac
}

# free_port prints a loopback port nobody listens on right now. Another
# process may still take it before the server binds; start_server retries.
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

# launch KIND LOG DATA CPORT PPORT [FLAG...]: starts KIND as a new single
# member on DATA with client port CPORT and peer port PPORT, the FLAGs
# added, logging to LOG, and waits up to READY_TIMEOUT for "ready to serve
# client requests". Sets SERVER_PID, SERVER_DIR, ENDPOINT and READY_SECONDS
# (from exec to the line, 0.1 s resolution). A server that does not get
# ready is stopped, its log tail shown, and launch returns 1.
launch() {
	local kind=$1 logf=$2 data=$3 cport=$4 pport=$5 bin t0 scheme=${CLIENT_SCHEME:-http}
	shift 5
	bin=$(server_bin "$kind")
	t0=$(date +%s.%N)
	"$bin" --name default --data-dir "$data" \
		--listen-client-urls "$scheme://127.0.0.1:$cport" \
		--advertise-client-urls "$scheme://127.0.0.1:$cport" \
		--listen-peer-urls "http://127.0.0.1:$pport" \
		--initial-advertise-peer-urls "http://127.0.0.1:$pport" \
		--initial-cluster "default=http://127.0.0.1:$pport" \
		"$@" >"$logf" 2>&1 &
	SERVER_PID=$!
	SERVER_DIR=$data
	for _ in $(seq $((READY_TIMEOUT * 10))); do
		kill -0 "$SERVER_PID" 2>/dev/null || break
		if grep -qs "ready to serve client requests" "$logf"; then
			ENDPOINT=127.0.0.1:$cport
			[ "$scheme" = http ] || ENDPOINT=$scheme://$ENDPOINT
			READY_SECONDS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
			return 0
		fi
		sleep 0.1
	done
	log "$kind did not become ready in $READY_TIMEOUT s; log tail:"
	tail -n 5 "$logf" >&2
	stop_server
	return 1
}

# start_server KIND LOGNAME [FLAG...]: launches KIND with a fresh data dir
# under $TMPDIR on fresh ports, logging to $OUT/KIND-LOGNAME.log; tries
# three times, since a port found free may be taken before the server binds
# it.
start_server() {
	local kind=$1 logf=$OUT/$1-$2.log attempt dir cport pport
	shift 2
	for attempt in 1 2 3; do
		cport=$(free_port)
		pport=$(free_port)
		dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-$kind.XXXXXX")
		DATA_DIRS+=("$dir")
		if launch "$kind" "$logf" "$dir/data" "$cport" "$pport" "$@"; then
			log "$kind ready on $ENDPOINT (pid $SERVER_PID)"
			return 0
		fi
		log "$kind: attempt $attempt failed"
	done
	return 1
}

# start_cluster KIND LOGNAME: starts three members of KIND as one new
# cluster with fresh data dirs and waits until each is ready and one leads;
# sets SERVER_PIDS, SERVER_PID (the first member), CLUSTER_EPS (all client
# endpoints, comma-separated) and LEADER_EP. Needs curl (the leader is
# found in /metrics).
start_cluster() {
	local kind=$1 attempt i bin dir initial ready
	local -a cports pports
	bin=$(server_bin "$kind")
	for attempt in 1 2 3; do
		cports=() pports=() initial=""
		for i in 0 1 2; do
			cports+=("$(free_port)")
			pports+=("$(free_port)")
			initial+="${initial:+,}m$i=http://127.0.0.1:${pports[i]}"
		done
		dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-$kind-cluster.XXXXXX")
		DATA_DIRS+=("$dir")
		SERVER_PIDS=()
		for i in 0 1 2; do
			"$bin" --name "m$i" --data-dir "$dir/m$i" \
				--listen-client-urls "http://127.0.0.1:${cports[i]}" \
				--advertise-client-urls "http://127.0.0.1:${cports[i]}" \
				--listen-peer-urls "http://127.0.0.1:${pports[i]}" \
				--initial-advertise-peer-urls "http://127.0.0.1:${pports[i]}" \
				--initial-cluster "$initial" --initial-cluster-state new \
				>"$OUT/$kind-$2-m$i.log" 2>&1 &
			SERVER_PIDS+=($!)
		done
		SERVER_PID=${SERVER_PIDS[0]}
		CLUSTER_EPS=127.0.0.1:${cports[0]},127.0.0.1:${cports[1]},127.0.0.1:${cports[2]}
		for _ in $(seq $((READY_TIMEOUT * 10))); do
			ready=0
			for i in 0 1 2; do
				kill -0 "${SERVER_PIDS[i]}" 2>/dev/null || break 2
				grep -qs "ready to serve client requests" "$OUT/$kind-$2-m$i.log" && ready=$((ready + 1))
			done
			if [ "$ready" -eq 3 ]; then
				for i in 0 1 2; do
					# No grep -q: with pipefail, curl's SIGPIPE would fail the test.
					if curl -fsS "http://127.0.0.1:${cports[i]}/metrics" | grep -x 'etcd_server_is_leader 1' >/dev/null; then
						LEADER_EP=127.0.0.1:${cports[i]}
						log "$kind cluster ready on $CLUSTER_EPS, leader $LEADER_EP"
						return 0
					fi
				done
			fi
			sleep 0.1
		done
		log "$kind cluster did not become ready with a leader (attempt $attempt); log tails:"
		for i in 0 1 2; do tail -n 3 "$OUT/$kind-$2-m$i.log" >&2; done
		stop_server
	done
	return 1
}

# stop_server stops the running server, or every member of the running
# cluster: SIGTERM, up to STOP_TIMEOUT for a clean exit, then SIGKILL. Sets
# STOP_SECONDS.
stop_server() {
	local pid t0=$SECONDS
	[ -n "$SERVER_PID" ] || return 0
	[ ${#SERVER_PIDS[@]} -gt 0 ] || SERVER_PIDS=("$SERVER_PID")
	for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${SERVER_PIDS[@]}"; do
		for _ in $(seq $((STOP_TIMEOUT * 10))); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	STOP_SECONDS=$((SECONDS - t0))
	SERVER_PID=""
	SERVER_PIDS=()
}

# status_kib FIELD: a field of /proc/PID/status of the running server (VmRSS,
# VmHWM, RssAnon...), in KiB; empty if the server is gone.
status_kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || true; }

# sample_rss FILE: writes the server's VmRSS in KiB to FILE every 0.2 s
# until stop_sampler; sets SAMPLER_PID.
sample_rss() {
	local pid=$SERVER_PID
	( while [ -r "/proc/$pid/status" ]; do
		awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status" 2>/dev/null || true
		sleep 0.2
	done ) >"$1" &
	SAMPLER_PID=$!
}

stop_sampler() {
	[ -n "$SAMPLER_PID" ] || return 0
	kill "$SAMPLER_PID" 2>/dev/null || true
	wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=""
}

# cpu_ticks: user+system CPU time of the running server (or the sum over
# the running cluster's members), in clock ticks.
cpu_ticks() {
	local pid files=()
	[ ${#SERVER_PIDS[@]} -gt 0 ] || files=("/proc/$SERVER_PID/stat")
	for pid in "${SERVER_PIDS[@]}"; do files+=("/proc/$pid/stat"); done
	awk '{ t += $14 + $15 } END { print t }' "${files[@]}"
}

# cleanup_servers stops the sampler and the servers and removes the data
# dirs made: an EXIT trap for the caller.
cleanup_servers() {
	stop_sampler
	stop_server
	for d in "${DATA_DIRS[@]}"; do rm -rf "$d"; done
}

# round_order ROUND SERVER...: prints the servers in the order to run in
# that round, reversed every other round so that slow drift in the
# machine's load hits all alike.
round_order() {
	local round=$1 i
	shift
	if ((round % 2 == 0)); then
		for ((i = $#; i >= 1; i--)); do echo "${!i}"; done
	else
		printf '%s\n' "$@"
	fi
}
