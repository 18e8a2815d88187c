#!/usr/bin/env bash
# compose.sh — the 3-node Docker cluster of compose.yaml (project "dbx").
#
#   scripts/compose.sh up [SERVICE...]
#                             start it (image dbx-node:dev must exist: make docker),
#                             wait until the 3 nodes agree, smoke-test, print status
#   scripts/compose.sh down [-v]
#                             stop and remove containers and network (-v: and the volumes)
#   scripts/compose.sh ARGS   any other compose command, e.g. "logs n2", "ps", "restart n2"
#
# Works with the compose plugin (docker compose) and with the standalone
# docker-compose (v1, Debian's package). Every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

if docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	compose=(docker-compose)
else
	echo "neither 'docker compose' nor 'docker-compose' is installed (Debian: apt-get install docker-compose)" >&2
	exit 1
fi
compose+=(-p dbx -f compose.yaml)
http=127.0.0.1:${DBX_N1_HTTP:-9001}
bin=bin/docker/dbx-node # the static Linux binary make docker built; it also runs on the host

case "${1:-}" in
up)
	if ! docker image inspect dbx-node:dev >/dev/null 2>&1; then
		echo "image dbx-node:dev not found: run make docker (make cluster-up does)" >&2
		exit 1
	fi
	"${compose[@]}" up -d "${@:2}"
	echo -n "waiting for 3 active members with one leader "
	ok=
	for _ in $(seq 1 150); do
		if [ "$(curl -fsS "http://$http/v1/cluster" 2>/dev/null | grep -oE '"state": *"active"' | wc -l)" -eq 3 ]; then ok=1; break; fi
		echo -n .; sleep 0.2
	done
	echo
	if [ -z "$ok" ]; then
		echo "cluster did not form within 30 s:" >&2
		"${compose[@]}" logs --tail 20 >&2
		exit 1
	fi
	if command -v redis-cli >/dev/null 2>&1; then
		p1=${DBX_N1_RESP:-7001} p3=${DBX_N3_RESP:-7003}
		redis-cli -p "$p1" SET compose:hello world >/dev/null
		got=$(redis-cli -p "$p3" GET compose:hello)
		echo "smoke test: SET on port $p1, GET on port $p3 -> $got"
		[ "$got" = world ] || { echo "MISMATCH: want world" >&2; exit 1; }
	fi
	if [ -x "$bin" ]; then "$bin" status --http "$http"; fi
	echo "cluster up: redis-cli -p ${DBX_N1_RESP:-7001}; $bin status --http $http; make cluster-down stops it"
	;;
down)
	"${compose[@]}" down "${@:2}"
	case " ${*:2} " in
	*" -v "* | *" --volumes "*) echo "cluster stopped, data volumes deleted" ;;
	*) echo "cluster stopped; data kept in volumes dbx_n1-data, dbx_n2-data, dbx_n3-data (scripts/compose.sh down -v deletes them)" ;;
	esac
	;;
"")
	awk 'NR > 1 && /^#/ { print; next } NR > 1 { exit }' "$0"
	exit 2
	;;
*)
	"${compose[@]}" "$@"
	;;
esac
