#!/usr/bin/env bash
# bench-tls.sh — the cost of TLS on SET and GET: one dbx node serving plain
# RESP (--resp-addr) and TLS RESP (--tls-resp-addr, TLS 1.3) side by side,
# the same dbx-bench load on each, alternating, ROUNDS times; medians.
#
#   scripts/bench-tls.sh                       3 rounds
#   ROUNDS=1 DURATION=5s scripts/bench-tls.sh  quicker
#
# The certificate (ECDSA P-256, self-signed CA) is made with openssl in a
# temporary directory. dbx-bench's clients keep their connections, so the
# figures are the record layer's cost (encryption, framing), not
# handshakes. Env: ROUNDS (3), DURATION (10s), WARMUP (2s), CLIENTS (50),
# VALUE (100), KEYS (100000), SYNC (none: no fsync, so the crypto is not
# hidden behind the disk; always is dbx's default), BASE_PORT (18479; uses
# BASE_PORT … +4), OUT (a new temporary directory).
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CLIENTS=${CLIENTS:-50}
VALUE=${VALUE:-100}
KEYS=${KEYS:-100000}
SYNC=${SYNC:-none}
BASE_PORT=${BASE_PORT:-18479}
OUT=${OUT:-$(mktemp -d /tmp/dbx-bench-tls.XXXXXX)}
mkdir -p "$OUT"
for tool in go openssl jq redis-cli; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench-tls: $tool not found" >&2; exit 1; }
done
. scripts/lib.sh
lib_init bench-tls
PLAIN=$BASE_PORT TLS=$((BASE_PORT + 4))
ports_free $PLAIN $((BASE_PORT + 1)) $((BASE_PORT + 2)) $((BASE_PORT + 3)) $TLS $((BASE_PORT + 10000))

echo "building dbx-node, dbx-bench"
go build -o "$WORK/dbx-node" ./cmd/dbx-node
go build -o "$WORK/dbx-bench" ./cmd/dbx-bench

C=$WORK/certs
mkdir -p "$C"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench-ca \
	-keyout "$C/ca.key" -out "$C/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=bench-node \
	-keyout "$C/node.key" -out "$C/node.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$C/ext"
openssl x509 -req -in "$C/node.csr" -CA "$C/ca.crt" -CAkey "$C/ca.key" -CAcreateserial -days 1 \
	-extfile "$C/ext" -out "$C/node.crt" 2>/dev/null

"$WORK/dbx-node" serve --id tls1 --data-dir "$WORK/tls1" --sync "$SYNC" \
	--resp-addr 127.0.0.1:$PLAIN --rpc-addr 127.0.0.1:$((BASE_PORT + 1)) \
	--gossip-addr 127.0.0.1:$((BASE_PORT + 2)) --http-addr 127.0.0.1:$((BASE_PORT + 3)) \
	--tls-cert "$C/node.crt" --tls-key "$C/node.key" --tls-resp-addr 127.0.0.1:$TLS \
	--log-level warn >"$OUT/tls1.log" 2>&1 &
PIDS+=($!)
for i in $(seq 1 150); do
	[ "$(redis-cli -p $PLAIN SET bench:ready 1 2>/dev/null)" = OK ] && break
	[ "$i" = 150 ] && { echo "bench-tls: node not ready in 30 s (log $OUT/tls1.log)" >&2; exit 1; }
	sleep 0.2
done

COMMON=(--clients "$CLIENTS" --value-bytes "$VALUE" --keys "$KEYS" --duration "$DURATION" --warmup "$WARMUP" --json --no-progress)
: >"$OUT/results"
run() { # NAME ROUND ARGS...
	local name=$1 round=$2
	shift 2
	local json=$OUT/$name.r$round.json
	"$WORK/dbx-bench" "$@" "${COMMON[@]}" --label "$name" >"$json" 2>"$OUT/$name.r$round.err" || true
	read -r ops p50 p99 errs < <(jq -r '[.throughput_ops_per_sec, .latency_us.p50, .latency_us.p99, .errors] | @tsv' "$json")
	printf '  round %s  %-9s %8.0f ops/s  p50 %5s µs  p99 %6s µs  errors %s\n' "$round" "$name" "$ops" "$p50" "$p99" "$errs"
	echo "$name $ops $p50 $p99 $errs" >>"$OUT/results"
}
plain() { run "$1-plain" "$2" --addrs 127.0.0.1:$PLAIN --workload "$1" "${@:3}"; }
tls() { run "$1-tls" "$2" --addrs 127.0.0.1:$TLS --cacert "$C/ca.crt" --workload "$1" "${@:3}"; }
for r in $(seq 1 "$ROUNDS"); do
	if [ $((r % 2)) = 1 ]; then
		plain set "$r"; tls set "$r"; plain get "$r" --load; tls get "$r"
	else
		tls set "$r"; plain set "$r"; tls get "$r" --load; plain get "$r"
	fi
done

echo
echo "medians of $ROUNDS rounds ($CLIENTS clients, $VALUE-byte values, $KEYS keys, --sync $SYNC, $DURATION each):"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
printf '| op | plain ops/s | TLS ops/s | TLS / plain | plain p50 / p99 µs | TLS p50 / p99 µs |\n|---|---|---|---|---|---|\n'
for op in set get; do
	pm=$(awk -v n="$op-plain" '$1==n {print $2}' "$OUT/results" | median)
	tm=$(awk -v n="$op-tls" '$1==n {print $2}' "$OUT/results" | median)
	p50p=$(awk -v n="$op-plain" '$1==n {print $3}' "$OUT/results" | median)
	p99p=$(awk -v n="$op-plain" '$1==n {print $4}' "$OUT/results" | median)
	p50t=$(awk -v n="$op-tls" '$1==n {print $3}' "$OUT/results" | median)
	p99t=$(awk -v n="$op-tls" '$1==n {print $4}' "$OUT/results" | median)
	printf '| %s | %.0f | %.0f | %.2f× | %s / %s | %s / %s |\n' "${op^^}" "$pm" "$tm" "$(echo "$tm $pm" | awk '{print $1/$2}')" "$p50p" "$p99p" "$p50t" "$p99t"
done
echo "(results and logs in $OUT)"
