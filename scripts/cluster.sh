#!/usr/bin/env bash
# cluster.sh — run a 3-node dbx cluster on loopback.
#
#   scripts/cluster.sh          build bin/dbx-node, start n1..n3, smoke-test,
#                               print status, then wait; Ctrl-C stops it
#   scripts/cluster.sh demo     the same, then kill -9 one node and read every
#                               key back through the others (failover), restart
#                               it, stop the cluster and exit (non-zero if a
#                               check failed)
#   scripts/cluster.sh stop     stop a cluster started by this script
#
# Ports: RESP 6379-6381 (cluster clients: 16379-16381), RPC+Raft 7380-7382, gossip 7946-7948 (TCP and UDP),
# HTTP 8080-8082; all are checked before anything starts (a port in use is
# named, with its process when ss can tell, and the script exits 1). A node
# that exits while the cluster forms has the end of its log printed.
# Data and logs: $DBX_CLUSTER_DIR (default ./.cluster). Every wait is bounded.
# Replication factor: $DBX_RF (default 3: every bucket on all three nodes).
set -euo pipefail

cd "$(dirname "$0")/.."
DIR=${DBX_CLUSTER_DIR:-$PWD/.cluster}
BIN=$PWD/bin/dbx-node
IDS=(n1 n2 n3)
RF=${DBX_RF:-3}

stop_cluster() {
	local pidf pid
	for pidf in "$DIR"/*.pid; do
		[ -e "$pidf" ] || continue
		pid=$(cat "$pidf")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$pid" 2>/dev/null && { echo "node pid $pid did not stop in 5 s, killing"; kill -KILL "$pid" 2>/dev/null || true; }
		fi
		rm -f "$pidf"
	done
	echo "cluster stopped (data kept in $DIR)"
}

# port_bound PROTO PORT: true if a socket bound to PORT would make the
# node's bind of 127.0.0.1:PORT fail: a TCP listener, or any UDP socket, on
# 127.0.0.1, 0.0.0.0 or :: (from /proc/net, so it needs no tools).
port_bound() {
	local proto=$1 port=$2 files=() f
	for f in /proc/net/"$proto" /proc/net/"$proto"6; do [ -r "$f" ] && files+=("$f"); done
	[ "${#files[@]}" -gt 0 ] || return 1
	awk -v hex="$(printf '%04X' "$port")" -v proto="$proto" '
		FNR > 1 {
			n = split($2, a, ":"); if (a[n] != hex) next
			if (proto == "tcp" && $4 != "0A") next # LISTEN only
			addr = a[1]
			if (addr == "0100007F" || addr ~ /^0+$/ || addr == "0000000000000000FFFF00000100007F") found = 1
		}
		END { exit !found }' "${files[@]}"
}

# port_holder PROTO PORT: "name (pid N)" of the process bound to PORT, if ss
# can tell (other users' processes need root).
port_holder() {
	local opt=-Hltnp
	[ "$1" = udp ] && opt=-Hlunp
	command -v ss >/dev/null 2>&1 || return 0
	ss "$opt" "sport = :$2" 2>/dev/null | grep -oE 'users:\(\("[^"]*",pid=[0-9]+' | head -1 |
		sed -E 's/users:\(\("([^"]*)",pid=([0-9]+)/\1 (pid \2)/' || true
}

# check_ports: exits 1, naming every port in use and its holder, before
# anything starts (a node would fail to bind and the cluster not form).
check_ports() {
	local busy=0 p proto who
	for p in 6379 6380 6381 16379 16380 16381 7380 7381 7382 7946 7947 7948 8080 8081 8082; do
		for proto in tcp udp; do
			if [ "$proto" = udp ] && { [ "$p" -lt 7946 ] || [ "$p" -gt 7948 ]; }; then
				continue # only gossip uses UDP
			fi
			port_bound "$proto" "$p" || continue
			who=$(port_holder "$proto" "$p")
			if [ -n "$who" ]; then
				echo "port $p/$proto is in use by $who" >&2
			else
				echo "port $p/$proto is in use (by a process ss cannot name; try: sudo ss -ltnup 'sport = :$p')" >&2
			fi
			busy=1
		done
	done
	if [ "$busy" -ne 0 ]; then
		echo "the cluster needs RESP 6379-6381 and 16379-16381, RPC 7380-7382, gossip 7946-7948 (TCP+UDP), HTTP 8080-8082 on 127.0.0.1: free them first" >&2
		exit 1
	fi
}

# check_nodes: if a started node has exited, prints its exit status and the
# end of its log (the node's own error), stops the others and exits 1.
check_nodes() {
	local id pid rc
	for id in "${IDS[@]}"; do
		[ -e "$DIR/$id.pid" ] || continue
		pid=$(cat "$DIR/$id.pid")
		kill -0 "$pid" 2>/dev/null && continue
		rc=0
		wait "$pid" 2>/dev/null || rc=$?
		echo >&2
		echo "node $id (pid $pid) exited with status $rc while the cluster was forming; last lines of $DIR/$id.log:" >&2
		tail -n 15 "$DIR/$id.log" | sed 's/^/  /' >&2
		rm -f "$DIR/$id.pid"
		stop_cluster
		exit 1
	done
}

if [ "${1:-}" = "stop" ]; then
	stop_cluster
	exit 0
fi

mkdir -p "$DIR" bin
if ls "$DIR"/*.pid >/dev/null 2>&1; then
	echo "a cluster seems to run already (pid files in $DIR); run: $0 stop" >&2
	exit 1
fi
check_ports
echo "building $BIN"
go build -o "$BIN" ./cmd/dbx-node

trap 'echo; stop_cluster; exit 0' INT TERM
start_node() {
	local i=$1 id=${IDS[$1]} join=()
	[ "$i" -gt 0 ] && join=(--join 127.0.0.1:7946)
	[ "$i" -eq 2 ] && join=(--join 127.0.0.1:7946,127.0.0.1:7947)
	"$BIN" serve --id "$id" --data-dir "$DIR/$id" --replication-factor "$RF" \
		--resp-addr 127.0.0.1:$((6379 + i)) --rpc-addr 127.0.0.1:$((7380 + i)) \
		--gossip-addr 127.0.0.1:$((7946 + i)) --http-addr 127.0.0.1:$((8080 + i)) \
		"${join[@]}" >>"$DIR/$id.log" 2>&1 &
	echo $! >"$DIR/$id.pid"
	disown $! # no job-control notice when the demo kills it
	echo "started $id (pid $!, log $DIR/$id.log)"
}

for i in 0 1 2; do
	start_node "$i"
	if [ "$i" -eq 0 ]; then
		for _ in $(seq 1 100); do
			curl -fsS http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
			check_nodes
			sleep 0.1
		done
	fi
done

echo -n "waiting for 3 active members in /v1/cluster "
ok=
for _ in $(seq 1 150); do
	if [ "$(curl -fsS http://127.0.0.1:8080/v1/cluster 2>/dev/null | grep -oE '"state": *"active"' | wc -l)" -eq 3 ]; then ok=1; break; fi
	check_nodes
	echo -n .; sleep 0.2
done
echo
if [ -z "$ok" ]; then
	echo "cluster did not form within 30 s; logs in $DIR" >&2
	stop_cluster
	exit 1
fi

fail=0
if command -v redis-cli >/dev/null 2>&1; then
	# The first writes wait until every bucket's replicas hold a lease.
	for _ in $(seq 1 100); do
		[ "$(redis-cli -p 6379 SET warmup 1 2>/dev/null)" = "OK" ] && break
		sleep 0.2
	done
	echo "smoke test with redis-cli (each key written on one node, read on another):"
	for i in 0 1 2; do redis-cli -p $((6379 + i)) SET "key:$i" "value-$i" >/dev/null; done
	for i in 0 1 2; do
		j=$(( (i + 1) % 3 ))
		got=$(redis-cli -p $((6379 + j)) GET "key:$i")
		echo "  SET key:$i on port $((6379 + i)), GET on port $((6379 + j)) -> $got"
		[ "$got" = "value-$i" ] || { echo "  MISMATCH: want value-$i" >&2; fail=1; }
	done
	got=$(redis-cli -c -p 6379 GET key:1)
	echo "  redis-cli -c (cluster mode) GET key:1 -> $got"
	[ "$got" = "value-1" ] || { echo "  MISMATCH: want value-1" >&2; fail=1; }
	# One transaction over keys of several owners (atomic: two-phase commit).
	got=$(printf 'MULTI\nSET key:0 tx-0\nSET key:1 tx-1\nSET key:2 tx-2\nEXEC\n' | redis-cli -p 6380 | tr '\n' ' ')
	echo "  MULTI; SET key:0 key:1 key:2; EXEC on port 6380 (one atomic transaction across owners) -> $got"
	got=$(redis-cli -p 6381 MGET key:0 key:1 key:2 | tr '\n' ' ')
	echo "  MGET key:0 key:1 key:2 on port 6381 -> $got"
	[ "$got" = "tx-0 tx-1 tx-2 " ] || { echo "  MISMATCH: want tx-0 tx-1 tx-2" >&2; fail=1; }
	# SCAN through one node covers every node's keys (each once).
	got=$(redis-cli -p 6380 --scan --pattern 'key:*' | sort | tr '\n' ' ')
	echo "  redis-cli -p 6380 --scan --pattern 'key:*' (the whole cluster) -> $got"
	[ "$got" = "key:0 key:1 key:2 " ] || { echo "  MISMATCH: want key:0 key:1 key:2" >&2; fail=1; }
else
	echo "redis-cli not found (apt-get install redis-tools): skipping the key smoke test"
fi

"$BIN" status --http 127.0.0.1:8080
echo
if [ "${1:-}" = "demo" ] && [ "$RF" -ge 2 ] && command -v redis-cli >/dev/null 2>&1; then
	echo "failover: 100 keys written through n1, then kill -9 of n3 (the replicas take over):"
	for k in $(seq 1 100); do echo "SET demo:$k v$k"; done | redis-cli -p 6379 >/dev/null
	kill -KILL "$(cat "$DIR/n3.pid")"
	rm -f "$DIR/n3.pid"
	t0=$(date +%s.%N)
	ok=
	for _ in $(seq 1 150); do
		got=$(for k in $(seq 1 100); do echo "GET demo:$k"; done | redis-cli -p 6380 2>/dev/null | grep -c '^v' || true)
		if [ "$got" -eq 100 ] && [ "$(redis-cli -p 6379 SET demo:after-kill yes 2>/dev/null)" = "OK" ]; then ok=1; break; fi
		sleep 0.2
	done
	t1=$(date +%s.%N)
	if [ -n "$ok" ]; then
		awk -v a="$t0" -v b="$t1" 'BEGIN { printf "  all 100 keys read back through n2 and writable again %.1f s after the kill\n", b - a }'
	else
		echo "  FAILED: not every key readable and writable within 30 s of the kill (read $got of 100)" >&2
		fail=1
	fi
	"$BIN" status --http 127.0.0.1:8080
	echo "restarting n3: it catches up from the others and rejoins every replica set"
	start_node 2
	for _ in $(seq 1 150); do
		curl -fsS http://127.0.0.1:8080/v1/cluster 2>/dev/null | grep -qE '"under_replicated": *0[,}]' && break
		sleep 0.2
	done
	"$BIN" status --http 127.0.0.1:8080
	echo
fi
if [ "${1:-}" = "demo" ]; then
	stop_cluster
	exit $fail
fi
echo "cluster running: redis-cli -c -p 6379; $BIN status --http 127.0.0.1:8080"
echo "Ctrl-C (or: $0 stop) stops it"
# Run until Ctrl-C, or until "cluster.sh stop" removed the pid files.
while ls "$DIR"/*.pid >/dev/null 2>&1; do sleep 1; done
