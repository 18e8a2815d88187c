# lib.sh — what the bench scripts share: a work directory and the processes
# they start, both removed at exit (also on Ctrl-C), and a port check.
# Source it from a script run with bash:
#
#   . "$(dirname "$0")/lib.sh"
#   lib_init bench-foo          # sets WORK (a new temporary dir) and PIDS ()
#   ports_free 16379 16380      # exits with a message if one is in use
#   some-server & PIDS+=($!)    # stopped (TERM, then KILL after 5 s) at exit

# lib_init NAME: NAME prefixes messages and the work directory's name.
lib_init() {
	LIB_NAME=$1
	WORK=$(mktemp -d "/tmp/dbx-$1-work.XXXXXX")
	PIDS=()
	trap lib_cleanup EXIT
	trap 'exit 130' INT TERM
}

lib_cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$WORK"
}

# ports_free PORT...: exits 1, naming the port, if any is in use on 127.0.0.1.
ports_free() {
	local p
	for p in "$@"; do
		if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
			echo "$LIB_NAME: port $p is in use (set BASE_PORT)" >&2
			exit 1
		fi
	done
}
