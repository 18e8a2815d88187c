#!/usr/bin/env bash
# bench-compare.sh — dbx next to Redis and etcd: same workloads, same load
# generator, one table.
#
#   scripts/bench-compare.sh              one round
#   ROUNDS=3 scripts/bench-compare.sh     three rounds, medians in the table
#
# Starts on loopback, all at once:
#   - redis-server --save '' --appendonly no   (nothing on disk)
#   - a one-member etcd (Debian etcd-server; fsyncs its WAL per commit)
#   - one dbx node, a 3-node dbx cluster and a 3-node cluster at
#     --replication-factor 3, --sync always (an fdatasync per commit group)
# and runs, with CLIENTS (50) clients, VALUE (100) byte values and KEYS
# (100000) uniform keys, WARMUP (2s) unrecorded then DURATION (10s) measured:
#   redis, dbx 1 node     dbx-bench set; get; get --pipeline 16 (get: --load first)
#   dbx 3 nodes           dbx-bench --cluster: set; txn --txn-keys 2 --cross-node
#                         (two owners: 2PC); txn --txn-keys 2 --same-node (1PC);
#                         get; and set, get, txn cross-node on the RF-3 cluster
#   etcd                  etcdbench (bench/etcdbench, go.etcd.io/etcd/client/v3)
#                         set (Put)
# The server order alternates per round. It prints ops/s and p99 of each and
# the ratios: dbx 1 node / Redis (SET, GET, -P16 GET), dbx 3 nodes SET / etcd
# Put, txn / SET on the 3 nodes, RF 3 / RF 1 (SET, GET), RF 3 SET / etcd. A run that cannot start (e.g. a server
# without MULTI/EXEC) shows "n/a: <error>". Every run's JSON and every
# server's log stay in OUT: `dbx-bench --compare OUT/*.r1.json` shows all
# of one round side by side. Everything it started is stopped on exit.
#
# Needs go, redis-server, redis-cli, etcd, jq and curl; when run as root on
# Debian it installs what is missing (redis-server redis-tools etcd-server jq
# curl; on a systemd host that also starts their system services, which
# then idle next to the benchmark: `systemctl stop redis-server etcd`).
#
# Env: ROUNDS (1), DURATION (10s), WARMUP (2s), CLIENTS (50), VALUE (100),
# KEYS (100000), BASE_PORT (18379; uses BASE_PORT … BASE_PORT+43), OUT (a
# new temporary directory), INSTALL (1; 0: never apt-get).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CLIENTS=${CLIENTS:-50}
VALUE=${VALUE:-100}
KEYS=${KEYS:-100000}
BASE_PORT=${BASE_PORT:-18379}
INSTALL=${INSTALL:-1}
OUT=${OUT:-$(mktemp -d /tmp/dbx-bench-compare.XXXXXX)}
mkdir -p "$OUT"

# ---- tools ----
declare -A PKG=([redis-server]=redis-server [redis-cli]=redis-tools [etcd]=etcd-server [jq]=jq [curl]=curl)
missing=()
for tool in redis-server redis-cli etcd jq curl; do
	command -v "$tool" >/dev/null 2>&1 || missing+=("${PKG[$tool]}")
done
command -v go >/dev/null 2>&1 || { echo "bench-compare: go not found (Go 1.26 is needed to build dbx)" >&2; exit 1; }
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y --no-install-recommends "${missing[@]}" >"$OUT/apt.log" 2>&1 ||
			{ apt-get update >>"$OUT/apt.log" 2>&1 && apt-get install -y --no-install-recommends "${missing[@]}" >>"$OUT/apt.log" 2>&1; } ||
			{ echo "bench-compare: apt-get install ${missing[*]} failed (log $OUT/apt.log)" >&2; exit 1; }
	else
		echo "bench-compare: missing ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" >&2
		exit 1
	fi
fi

# ---- ports ----
REDIS_PORT=$BASE_PORT
ETCD_PORT=$((BASE_PORT + 1)) # client; peer is +2
ONE_BASE=$((BASE_PORT + 10)) # RESP, RPC, gossip, HTTP: +0 … +3
CL_BASE=$((BASE_PORT + 20))  # node i: CL_BASE + 10*i + 0 … 3
RF_BASE=$((BASE_PORT + 60))  # the replication-factor-3 cluster, laid out the same
ports=($REDIS_PORT $ETCD_PORT $((ETCD_PORT + 1)))
for base in $ONE_BASE $CL_BASE $((CL_BASE + 10)) $((CL_BASE + 20)) $RF_BASE $((RF_BASE + 10)) $((RF_BASE + 20)); do
	ports+=($base $((base + 1)) $((base + 2)) $((base + 3)))
done
. scripts/lib.sh
lib_init bench-compare
ports_free "${ports[@]}"

echo "building dbx-node, dbx-bench, etcdbench"
go build -o "$WORK/dbx-node" ./cmd/dbx-node
go build -o "$WORK/dbx-bench" ./cmd/dbx-bench
(cd bench && go build -o "$WORK/etcdbench" ./etcdbench)

# ---- servers ----
redis-server --save '' --appendonly no --port "$REDIS_PORT" --bind 127.0.0.1 \
	--daemonize no --logfile "$OUT/redis.log" &
PIDS+=($!)
etcd --name bench --data-dir "$WORK/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
	--initial-cluster "bench=http://127.0.0.1:$((ETCD_PORT + 1))" --logger zap --log-level warn >"$OUT/etcd.log" 2>&1 &
PIDS+=($!)

# start_node ID BASE [JOIN_GOSSIP] [RF]: a dbx node with RESP/RPC/gossip/HTTP on BASE+0…3.
start_node() {
	local id=$1 base=$2 join=()
	[ -n "${3:-}" ] && join=(--join "$3")
	local rf=${4:-1}
	"$WORK/dbx-node" serve --id "$id" --data-dir "$WORK/$id" --sync always --replication-factor "$rf" \
		--resp-addr 127.0.0.1:$base --rpc-addr 127.0.0.1:$((base + 1)) \
		--gossip-addr 127.0.0.1:$((base + 2)) --http-addr 127.0.0.1:$((base + 3)) \
		"${join[@]}" --log-level warn >"$OUT/$id.log" 2>&1 &
	PIDS+=($!)
}
# wait_for WHAT SECONDS CMD...: retry CMD every 0.2 s.
wait_for() {
	local what=$1 secs=$2
	shift 2
	for _ in $(seq 1 $((secs * 5))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "bench-compare: $what not ready in $secs s (logs in $OUT)" >&2
	exit 1
}
set_ok() { [ "$(redis-cli -p "$1" SET bench:ready 1 2>/dev/null)" = OK ]; }
active3() { [ "$(curl -fsS "http://127.0.0.1:$1/v1/cluster" | grep -oE '"state": *"active"' | wc -l)" -eq 3 ]; }
slots3() { [ "$(redis-cli -p "$1" CLUSTER SLOTS | grep -E '^c[1-3]$' | sort -u | wc -l)" -eq 3 ]; }

start_node one $ONE_BASE
start_node c1 $CL_BASE
wait_for "dbx node c1 (HTTP)" 20 curl -fsS "http://127.0.0.1:$((CL_BASE + 3))/healthz"
start_node c2 $((CL_BASE + 10)) 127.0.0.1:$((CL_BASE + 2))
start_node c3 $((CL_BASE + 20)) 127.0.0.1:$((CL_BASE + 2))
start_node r1 $RF_BASE "" 3
wait_for "dbx node r1 (HTTP)" 20 curl -fsS "http://127.0.0.1:$((RF_BASE + 3))/healthz"
start_node r2 $((RF_BASE + 10)) 127.0.0.1:$((RF_BASE + 2)) 3
start_node r3 $((RF_BASE + 20)) 127.0.0.1:$((RF_BASE + 2)) 3

wait_for "redis-server" 10 redis-cli -p "$REDIS_PORT" PING
wait_for "etcd" 20 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
wait_for "dbx node one (a write)" 30 set_ok $ONE_BASE
wait_for "3 active members of the dbx cluster" 30 active3 $((CL_BASE + 3))
for i in 0 1 2; do wait_for "dbx node c$((i + 1)) (a write)" 30 set_ok $((CL_BASE + 10 * i)); done
wait_for "CLUSTER SLOTS naming 3 owners" 30 slots3 $CL_BASE
wait_for "3 active members of the RF-3 cluster" 30 active3 $((RF_BASE + 3))
for i in 0 1 2; do wait_for "dbx node r$((i + 1)) (a write)" 30 set_ok $((RF_BASE + 10 * i)); done
RF_ADDRS=127.0.0.1:$RF_BASE,127.0.0.1:$((RF_BASE + 10)),127.0.0.1:$((RF_BASE + 20))

CL_ADDRS=127.0.0.1:$CL_BASE,127.0.0.1:$((CL_BASE + 10)),127.0.0.1:$((CL_BASE + 20))
COMMON=(--clients "$CLIENTS" --value-bytes "$VALUE" --keys "$KEYS" --duration "$DURATION" --warmup "$WARMUP" --json --no-progress)

# run NAME ROUND TOOL ARGS...: one run; appends "NAME ops p99_us errors" or
# "NAME n/a message" to $WORK/results.
run() {
	local name=$1 round=$2 tool=$3 rc=0
	shift 3
	local json=$OUT/$name.r$round.json err=$OUT/$name.r$round.err
	echo "  round $round  $name: $(basename "$tool") $* ${COMMON[*]}"
	timeout 600 "$tool" "$@" "${COMMON[@]}" --label "$name" >"$json" 2>"$err" || rc=$?
	if [ "$rc" = 0 ] || [ "$rc" = 3 ]; then
		read -r ops p99 errs < <(jq -r '[.throughput_ops_per_sec, .latency_us.p99, .errors] | @tsv' "$json")
		echo "$name $ops $p99 $errs" >>"$WORK/results"
		printf '    %.0f ops/s  p99 %s µs%s\n' "$ops" "$p99" "$([ "$errs" -gt 0 ] && echo "  errors $errs: $(jq -r '.error_messages[0].message' "$json")")"
	else
		local msg
		msg=$(grep -v '^\s*$' "$err" | head -1 | sed 's/^dbx-bench: //; s/^etcdbench: //')
		echo "$name n/a ${msg:-exit status $rc}" >>"$WORK/results"
		echo "    n/a: ${msg:-exit status $rc}"
		rm -f "$json"
	fi
}

single() { # SERVER PORT ROUND
	local s=$1 port=$2 r=$3
	run "$s-set" "$r" "$WORK/dbx-bench" --addrs 127.0.0.1:$port --workload set
	run "$s-get" "$r" "$WORK/dbx-bench" --addrs 127.0.0.1:$port --workload get --load
	run "$s-get-P16" "$r" "$WORK/dbx-bench" --addrs 127.0.0.1:$port --workload get --load --pipeline 16
}
cluster() { # ROUND
	local r=$1
	run dbx3-set "$r" "$WORK/dbx-bench" --addrs "$CL_ADDRS" --cluster --workload set
	run dbx3-get "$r" "$WORK/dbx-bench" --addrs "$CL_ADDRS" --cluster --workload get --load
	run rf3-set "$r" "$WORK/dbx-bench" --addrs "$RF_ADDRS" --cluster --workload set
	run rf3-get "$r" "$WORK/dbx-bench" --addrs "$RF_ADDRS" --cluster --workload get --load
	run rf3-txn2-cross "$r" "$WORK/dbx-bench" --addrs "$RF_ADDRS" --cluster --workload txn --txn-keys 2 --cross-node
	run dbx3-txn2-cross "$r" "$WORK/dbx-bench" --addrs "$CL_ADDRS" --cluster --workload txn --txn-keys 2 --cross-node
	run dbx3-txn2-same "$r" "$WORK/dbx-bench" --addrs "$CL_ADDRS" --cluster --workload txn --txn-keys 2 --same-node
}
etcd_runs() { # ROUND
	run etcd-put "$1" "$WORK/etcdbench" --endpoints 127.0.0.1:$ETCD_PORT --workload set
}

for r in $(seq 1 "$ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then
		single dbx1 $ONE_BASE "$r"; single redis $REDIS_PORT "$r"; cluster "$r"; etcd_runs "$r"
	else
		single redis $REDIS_PORT "$r"; single dbx1 $ONE_BASE "$r"; etcd_runs "$r"; cluster "$r"
	fi
done

for p in $ONE_BASE $CL_BASE $((CL_BASE + 10)) $((CL_BASE + 20)) $RF_BASE $((RF_BASE + 10)) $((RF_BASE + 20)); do
	[ "$(redis-cli -p "$p" PING 2>/dev/null)" = PONG ] || echo "bench-compare: WARNING: dbx node on port $p stopped answering (logs in $OUT)" >&2
done

echo
echo "clients $CLIENTS, value $VALUE B, keys $KEYS uniform, warmup $WARMUP, measured $DURATION; median of $ROUNDS round(s)"
echo "redis: --save '' --appendonly no; etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $3}'): one member, WAL fsync; dbx: --sync always"
awk '
	function median(list,   n, a, i, j, t) {
		n = split(list, a, " ")
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function thousands(v,   s, r) {
		s = sprintf("%.0f", v); r = ""
		while (length(s) > 3) { r = "," substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }
		return s r
	}
	function us(v) { return v >= 1000 ? sprintf("%.2fms", v / 1000) : sprintf("%dµs", v) }
	function opsc(k) { return (k in na) ? "n/a" : (k in ops) ? thousands(median(ops[k])) : "-" }
	function p99c(k) { return (k in ops) ? us(median(p99[k])) : "-" }
	function note(k) {
		if ((k in na) && !(k in noted)) { notes = notes sprintf("  %s: n/a: %s\n", k, na[k]); noted[k] = 1 }
		if ((k in errs) && !(k in noted)) { notes = notes sprintf("  %s: %d failed operations (see %s.r*.json)\n", k, errs[k], k); noted[k] = 1 }
	}
	function row(label, a, an, b, bn,   ra, rp) {
		ra = "n/a"; rp = "n/a"
		if (!(a in na) && !(b in na) && (a in ops) && (b in ops) && median(ops[b]) > 0) {
			ra = sprintf("%.2fx", median(ops[a]) / median(ops[b]))
			if (median(p99[b]) > 0) rp = sprintf("%.2fx", median(p99[a]) / median(p99[b]))
		}
		note(a); note(b)
		printf fmt, label, an, opsc(a), p99c(a), bn, opsc(b), p99c(b), ra, rp
	}
	$2 == "n/a" { m = $0; sub(/^[^ ]+ n\/a /, "", m); na[$1] = m; next }
	{ ops[$1] = ops[$1] " " $2; p99[$1] = p99[$1] " " $3; if ($4 > 0) errs[$1] += $4 }
	END {
		fmt = "%-26s %-12s %9s %9s   %-14s %9s %9s   %7s %7s\n"
		printf fmt, "workload", "system", "ops/s", "p99", "vs", "ops/s", "p99", "ops/s", "p99"
		row("SET", "dbx1-set", "dbx 1 node", "redis-set", "redis")
		row("GET", "dbx1-get", "dbx 1 node", "redis-get", "redis")
		row("GET, pipeline 16", "dbx1-get-P16", "dbx 1 node", "redis-get-P16", "redis")
		row("SET vs etcd Put", "dbx3-set", "dbx 3 nodes", "etcd-put", "etcd")
		row("txn 2 keys on 2 nodes", "dbx3-txn2-cross", "dbx 3 nodes", "dbx3-set", "dbx 3n SET")
		row("txn 2 keys on 1 node", "dbx3-txn2-same", "dbx 3 nodes", "dbx3-set", "dbx 3n SET")
		row("SET, RF 3 vs RF 1", "rf3-set", "dbx 3n RF 3", "dbx3-set", "dbx 3n RF 1")
		row("GET, RF 3 vs RF 1", "rf3-get", "dbx 3n RF 3", "dbx3-get", "dbx 3n RF 1")
		row("SET RF 3 vs etcd Put", "rf3-set", "dbx 3n RF 3", "etcd-put", "etcd")
		row("txn 2 keys, 2 nodes, RF 3", "rf3-txn2-cross", "dbx 3n RF 3", "rf3-set", "RF 3 SET")
		print "ratios: system / vs, medians (ops/s: above 1 is faster; p99: below 1 is lower); a txn counts as one op"
		printf "%s", notes
	}' "$WORK/results"
echo "(kept in $OUT: every run's JSON and stderr, server logs; round 1 side by side: go run ./cmd/dbx-bench --compare $OUT/*.r1.json)"
