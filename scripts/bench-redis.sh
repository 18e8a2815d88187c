#!/usr/bin/env bash
# bench-redis.sh — one dbx node vs a plain Redis, same redis-benchmark runs.
#
#   scripts/bench-redis.sh            one round
#   ROUNDS=3 scripts/bench-redis.sh   three rounds, medians in the table
#   PROFILE=1 scripts/bench-redis.sh  also a 10 s CPU profile of the dbx node
#                                     during its first SET run (-P 1)
#
# Starts `redis-server --save '' --appendonly no` (nothing on disk) and one
# dbx-node (default --sync always: an fsync per commit group) on loopback,
# runs `redis-benchmark -t set,get -n $N -c $C -d $D -q` without and with
# -P 16 against each (the server order alternates per round), prints
# requests/s and dbx/redis, and stops everything it started.
# Targets (issue): GET >= 0.7x Redis, SET >= 0.5x Redis.
#
# Env: ROUNDS (1), N (200000), C (50), D (100), BASE_PORT (16379: redis,
# +1..+4 the dbx node's RESP, RPC, gossip, HTTP), OUT (kept files: profile,
# logs; default a new temporary directory), SYNC (always), R (unset: every
# SET/GET hits the one key "key:__rand_int__", as in the issue's command;
# R=100000 passes -r 100000: random keys over 100000, spread over buckets).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-1}
N=${N:-200000}
C=${C:-50}
D=${D:-100}
BASE_PORT=${BASE_PORT:-16379}
SYNC=${SYNC:-always}
PROFILE=${PROFILE:-}
R=${R:-}
OUT=${OUT:-$(mktemp -d /tmp/dbx-bench-redis.XXXXXX)}
mkdir -p "$OUT"

for tool in redis-server redis-benchmark redis-cli curl go; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench-redis: $tool not found (Debian: apt-get install redis-server redis-tools curl)" >&2; exit 1; }
done

REDIS_PORT=$BASE_PORT
DBX_PORT=$((BASE_PORT + 1))
DBX_HTTP=127.0.0.1:$((BASE_PORT + 4))
. scripts/lib.sh
lib_init bench-redis
ports_free $REDIS_PORT $DBX_PORT $((BASE_PORT + 2)) $((BASE_PORT + 3)) $((BASE_PORT + 4))

echo "building dbx-node"
go build -o "$WORK/dbx-node" ./cmd/dbx-node

redis-server --save '' --appendonly no --port "$REDIS_PORT" --bind 127.0.0.1 \
	--daemonize no --logfile "$OUT/redis.log" &
PIDS+=($!)
"$WORK/dbx-node" serve --id bench1 --data-dir "$WORK/dbx" --sync "$SYNC" \
	--resp-addr 127.0.0.1:$DBX_PORT --rpc-addr 127.0.0.1:$((BASE_PORT + 2)) \
	--gossip-addr 127.0.0.1:$((BASE_PORT + 3)) --http-addr "$DBX_HTTP" \
	--log-level warn >"$OUT/dbx.log" 2>&1 &
PIDS+=($!)

for port in $REDIS_PORT $DBX_PORT; do
	ok=
	for _ in $(seq 1 100); do
		[ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && { ok=1; break; }
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "bench-redis: server on port $port did not answer PING in 10 s (logs in $OUT)" >&2; exit 1; }
done

# The dbx node answers PING before its first placement is committed
# (until then keys answer CLUSTERDOWN): wait for a write to succeed.
ok=
for _ in $(seq 1 150); do
	[ "$(redis-cli -p "$DBX_PORT" SET bench:ready 1 2>/dev/null)" = OK ] && { ok=1; break; }
	sleep 0.2
done
[ -n "$ok" ] || { echo "bench-redis: dbx node did not accept a write in 30 s (log $OUT/dbx.log)" >&2; exit 1; }

# bench SERVER PORT PIPELINE ROUND: runs redis-benchmark, appends
# "server pipeline cmd rps" lines to $WORK/results.
bench() {
	local server=$1 port=$2 pipe=$3 round=$4 prof_pid=
	local cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$N" -c "$C" -d "$D" -q)
	[ "$pipe" -gt 1 ] && cmd+=(-P "$pipe")
	[ -n "$R" ] && cmd+=(-r "$R")
	if [ -n "$PROFILE" ] && [ "$server" = dbx ] && [ "$pipe" = 1 ] && [ "$round" = 1 ]; then
		curl -fsS -o "$OUT/dbx-cpu.pprof" "http://$DBX_HTTP/debug/pprof/profile?seconds=10" &
		prof_pid=$!
	fi
	echo "  round $round  $server: ${cmd[*]}"
	timeout 600 "${cmd[@]}" | tr '\r' '\n' | grep -E '^[A-Z]+: [0-9.]+ requests per second' |
		while read -r name rps _; do
			echo "    ${name%:} $rps/s"
			echo "$server $pipe ${name%:} $rps" >>"$WORK/results"
		done
	if [ -n "$prof_pid" ]; then
		wait "$prof_pid" || echo "  (profile failed)"
		echo "  CPU profile: $OUT/dbx-cpu.pprof (go tool pprof -top $WORK/dbx-node $OUT/dbx-cpu.pprof)"
		cp "$WORK/dbx-node" "$OUT/dbx-node"
	fi
}

for round in $(seq 1 "$ROUNDS"); do
	for pipe in 1 16; do
		if [ $((round % 2)) -eq 1 ]; then
			bench dbx "$DBX_PORT" "$pipe" "$round"
			bench redis "$REDIS_PORT" "$pipe" "$round"
		else
			bench redis "$REDIS_PORT" "$pipe" "$round"
			bench dbx "$DBX_PORT" "$pipe" "$round"
		fi
	done
done

[ "$(redis-cli -p "$DBX_PORT" PING)" = PONG ] || { echo "bench-redis: dbx node stopped answering (log $OUT/dbx.log)" >&2; exit 1; }

echo
echo "redis-benchmark -t set,get -n $N -c $C -d $D -q [-P 16]${R:+ -r $R}; dbx --sync $SYNC, redis --save '' --appendonly no"
echo "median of $ROUNDS round(s), requests/s:"
awk -v rounds="$ROUNDS" '
	function median(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{ k = $2 " " $3; v[$1 " " k] = v[$1 " " k] " " $4; keys[k] = 1 }
	END {
		printf "%-12s %-5s %12s %12s %10s %8s\n", "pipeline", "cmd", "dbx", "redis", "dbx/redis", "target"
		for (p = 1; p <= 16; p += 15) for (ci = 1; ci <= 2; ci++) {
			c = ci == 1 ? "SET" : "GET"; k = p " " c
			if (!(k in keys)) continue
			d = median(v["dbx " k]); r = median(v["redis " k])
			target = c == "SET" ? 0.5 : 0.7
			ratio = r > 0 ? d / r : 0
			printf "%-12s %-5s %12.0f %12.0f %9.2fx %7.1fx%s\n", (p == 1 ? "-P 1" : "-P 16"), c, d, r, ratio, target, (ratio < target ? "  MISSED" : "")
		}
	}' "$WORK/results"
echo "(kept in $OUT: dbx.log, redis.log${PROFILE:+, dbx-cpu.pprof})"
