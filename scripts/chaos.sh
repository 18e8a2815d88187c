#!/usr/bin/env bash
# chaos.sh — the Docker chaos suite (integration/chaos, TestChaos).
#
#   scripts/chaos.sh short        CI mode: one round of every nemesis (~3 minutes)
#   scripts/chaos.sh [DURATION]   rounds of every nemesis for DURATION (default 10m)
#   scripts/chaos.sh clean        remove containers, volumes, networks and images
#                                 a killed run left (label dbx.chaos)
#
# More go test flags through CHAOS_FLAGS, e.g.
#   CHAOS_FLAGS="-chaos.seed 42 -chaos.nemeses pause,kill-one -chaos.multi off"
# A failed run keeps its history, porcupine's HTML view and the node logs in
# integration/chaos/results/<run>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [ "${1:-}" = clean ]; then
	f=label=dbx.chaos
	ids=$(docker ps -aq --filter "$f"); [ -z "$ids" ] || docker rm -f -v $ids
	ids=$(docker volume ls -q --filter "$f"); [ -z "$ids" ] || docker volume rm -f $ids
	ids=$(docker network ls -q --filter "$f"); [ -z "$ids" ] || docker network rm $ids
	ids=$(docker images -q --filter "$f"); [ -z "$ids" ] || docker rmi -f $ids
	echo "chaos leftovers removed"
	exit 0
fi

if ! docker info >/dev/null 2>&1; then
	echo "the chaos suite needs a running Docker engine (docker info failed)" >&2
	exit 1
fi

# Network faults run the host's nsenter, iptables and tc inside the
# containers' namespaces. Install them if missing (root + apt), else those
# nemeses are skipped with the reason.
missing=()
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v tc >/dev/null 2>&1 || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		export DEBIAN_FRONTEND=noninteractive
		{ apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >/dev/null ||
			echo "could not install ${missing[*]}: network nemeses will be skipped" >&2
	else
		echo "missing ${missing[*]} (and not root with apt-get): network nemeses will be skipped" >&2
	fi
fi

mode=${1:-10m}
if [ "$mode" = short ]; then
	duration=0s timeout=12m
else
	duration=$mode timeout=${CHAOS_TIMEOUT:-90m}
fi
echo "chaos suite: fault phase $([ "$duration" = 0s ] && echo "one round" || echo "$duration"), go test timeout $timeout"
# shellcheck disable=SC2086
DBX_CHAOS=1 go test ./integration/chaos -run '^TestChaos$' -count=1 -v -timeout "$timeout" \
	-chaos.duration "$duration" ${CHAOS_FLAGS:-}
