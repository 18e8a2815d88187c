#!/usr/bin/env bash
# bench-migrate.sh — online migration speed vs a raw copy of the same data,
# and the p99 of a light GET/SET load before and during the migration.
#
#   scripts/bench-migrate.sh              1 GiB (DATA_MB=1024)
#   DATA_MB=256 scripts/bench-migrate.sh  smaller, quicker
#
# Starts dbx-node n1 alone (--sync always), loads DATA_MB of data with
# dbx-bench (VALUE-byte values), then times `cp -r` of n1's engine
# directory on the same disk (raw copy MB/s). It runs a light load
# (dbx-bench mixed A, LIGHT_CLIENTS clients) for LIGHT_SECS to get the p99
# before; then, with the same load running, starts n2 with --weight 100,
# which takes ~99% of the buckets: the migration moves almost all the data.
# Migration MB/s = bytes moved (from /v1/cluster) / time from the join to
# the end of the migration. Prints a table; stops what it started.
#
# Env: DATA_MB (1024), VALUE (1000), LIGHT_CLIENTS (4), LIGHT_SECS (10),
# BASE_PORT (17379: n1's RESP, RPC, gossip, HTTP; n2 at +10), OUT (logs,
# JSON; default a new temporary directory), RATE (bytes/s per move, 0 =
# unthrottled), CONC (moves at once, 2), PROFILE (seconds of CPU profile
# taken from both nodes at the start of the migration, 0 = none; files
# n1.pprof and n2.pprof in OUT, read with go tool pprof).
set -euo pipefail

cd "$(dirname "$0")/.."
DATA_MB=${DATA_MB:-1024}
VALUE=${VALUE:-1000}
LIGHT_CLIENTS=${LIGHT_CLIENTS:-4}
LIGHT_SECS=${LIGHT_SECS:-10}
BASE_PORT=${BASE_PORT:-17379}
RATE=${RATE:-0}
CONC=${CONC:-2}
PROFILE=${PROFILE:-0}
OUT=${OUT:-$(mktemp -d /tmp/dbx-bench-migrate.XXXXXX)}
mkdir -p "$OUT"
for tool in go curl python3; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench-migrate: $tool not found" >&2; exit 1; }
done
. scripts/lib.sh
lib_init bench-migrate
ports_free $(seq "$BASE_PORT" $((BASE_PORT + 13)))

echo "building dbx-node and dbx-bench"
go build -o "$WORK/dbx-node" ./cmd/dbx-node
go build -o "$WORK/dbx-bench" ./cmd/dbx-bench

# node N PORT0 [flags...]: starts dbx-node nN on PORT0..PORT0+3.
node() {
	local id=$1 p=$2
	shift 2
	"$WORK/dbx-node" serve --id "$id" --data-dir "$WORK/$id" --sync always \
		--resp-addr 127.0.0.1:$p --rpc-addr 127.0.0.1:$((p + 1)) \
		--gossip-addr 127.0.0.1:$((p + 2)) --http-addr 127.0.0.1:$((p + 3)) \
		--log-level warn "$@" >"$OUT/$id.log" 2>&1 &
	PIDS+=($!)
}
cluster() { curl -fsS "http://127.0.0.1:$((BASE_PORT + 3))/v1/cluster"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

node n1 "$BASE_PORT" --move-concurrency "$CONC" --move-rate "$RATE"
for _ in $(seq 1 150); do
	[ "$(cluster 2>/dev/null | field "d['nodes'][0]['buckets'] if d['nodes'] else 0" 2>/dev/null)" = 16384 ] && break
	sleep 0.2
done

KEYS=$((DATA_MB * 1024 * 1024 / VALUE))
echo "loading $KEYS keys of $VALUE bytes (~$DATA_MB MiB) into n1"
"$WORK/dbx-bench" --addrs 127.0.0.1:$BASE_PORT --workload set --keys "$KEYS" --value-bytes "$VALUE" \
	--load --requests 1 --clients 32 --pipeline 16 --no-progress >"$OUT/load.txt" 2>&1
ENGINE_MB=$(du -sm "$WORK/n1/engine" | cut -f1)

echo "raw copy of n1's engine directory ($ENGINE_MB MiB)"
sync
t0=$(date +%s.%N)
cp -r "$WORK/n1/engine" "$WORK/copy"
sync
t1=$(date +%s.%N)
rm -rf "$WORK/copy"
CP_SECS=$(python3 -c "print($t1 - $t0)")

LIGHT=("$WORK/dbx-bench" --addrs 127.0.0.1:$BASE_PORT --workload mixed --mix A --keys "$KEYS" --value-bytes 100
	--clients "$LIGHT_CLIENTS" --requests 0 --no-progress --json)
echo "light load before the migration (${LIGHT_SECS}s)"
"${LIGHT[@]}" --duration "${LIGHT_SECS}s" --label before >"$OUT/before.json" 2>"$OUT/before.err" || true

echo "joining n2 with weight 100: it takes ~99% of the buckets"
# The same load during the migration, stopped with SIGINT when it ends
# (dbx-bench then prints its partial result).
"${LIGHT[@]}" --duration 1h --label during >"$OUT/during.json" 2>"$OUT/during.err" &
LIGHT_PID=$!
PIDS+=($LIGHT_PID)
t0=$(date +%s.%N)
node n2 $((BASE_PORT + 10)) --join 127.0.0.1:$((BASE_PORT + 2)) --weight 100
if [ "$PROFILE" -gt 0 ]; then
	for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$((BASE_PORT + 13))/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
	curl -fsS -o "$OUT/n1.pprof" "http://127.0.0.1:$((BASE_PORT + 3))/debug/pprof/profile?seconds=$PROFILE" &
	curl -fsS -o "$OUT/n2.pprof" "http://127.0.0.1:$((BASE_PORT + 13))/debug/pprof/profile?seconds=$PROFILE" &
fi
for _ in $(seq 1 3000); do
	ci=$(cluster 2>/dev/null || true)
	if [ -n "$ci" ] && [ "$(echo "$ci" | field "int(len(d['nodes'])==2 and not d['migration']['active'] and d['migration']['done']>0)")" = 1 ]; then
		break
	fi
	sleep 0.2
done
t1=$(date +%s.%N)
kill -INT "$LIGHT_PID" 2>/dev/null || true
wait "$LIGHT_PID" 2>/dev/null || true
MIG_SECS=$(python3 -c "print($t1 - $t0)")
MIG=$(cluster)
echo "$MIG" >"$OUT/cluster-after.json"

python3 - "$OUT" "$ENGINE_MB" "$CP_SECS" "$MIG_SECS" "$RATE" <<'EOF'
import json, sys
out, engine_mb, cp_secs, mig_secs, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
mig = json.load(open(f"{out}/cluster-after.json"))["migration"]
mb = mig["bytes"] / 2**20
def p99(label):
    try:
        d = json.load(open(f"{out}/{label}.json"))
        return d["latency_us"]["p99"] / 1000, d["throughput_ops_per_sec"], d["errors"]
    except Exception as e:
        return float("nan"), 0, -1
b, d = p99("before"), p99("during")
print()
print(f"{'':34} {'value':>12}")
print(f"{'raw cp of the engine dir':34} {engine_mb/cp_secs:10.1f} MB/s  ({engine_mb:.0f} MiB in {cp_secs:.2f} s)")
label = "migration, unthrottled" if rate == 0 else f"migration, {rate/1e6:g} MB/s per move"
print(f"{label:34} {mb/mig_secs:10.1f} MB/s  ({mb:.0f} MiB of keys+values, {mig['done']} buckets, {mig_secs:.2f} s)")
print(f"{'migration / raw copy':34} {mb/mig_secs/(engine_mb/cp_secs):10.2f} x")
print(f"{'light load p99 before':34} {b[0]:10.2f} ms   ({b[1]:.0f} ops/s, {b[2]} errors)")
print(f"{'light load p99 during':34} {d[0]:10.2f} ms   ({d[1]:.0f} ops/s, {d[2]} errors)")
print(f"{'p99 during / before':34} {d[0]/b[0]:10.2f} x")
EOF
echo "logs and JSON in $OUT"
