#!/usr/bin/env bash
# Runs the 3-member cluster of ./Procfile without goreman: builds cairn once,
# starts the three members (data in ./infra{1,2,3}.cairn, logs in
# ./infra{1,2,3}.log), waits until each serves, and stops them all on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
echo "building bin/cairn..."
go build -o bin/cairn ./cmd/cairn

cluster='infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380'
pids=()
stop() {
	echo "stopping..."
	kill "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM

for i in 1 2 3; do
	client=$([ "$i" = 1 ] && echo 2379 || echo "${i}2379")
	bin/cairn --name "infra$i" \
		--listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
		--listen-peer-urls "http://127.0.0.1:${i}2380" --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
		--initial-cluster-token cairn-cluster-1 --initial-cluster "$cluster" --initial-cluster-state new \
		>"infra$i.log" 2>&1 &
	pids+=($!)
done
for i in 1 2 3; do
	for _ in $(seq 300); do
		if grep -qs "ready to serve client requests" "infra$i.log"; then
			echo "infra$i is serving (log: infra$i.log)"
			continue 2
		fi
		if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
			echo "infra$i exited; see infra$i.log" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "infra$i not ready after 30s; see infra$i.log" >&2
	exit 1
done
echo "cluster up: endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 (Ctrl-C stops it)"
wait
