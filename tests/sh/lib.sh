# tests/sh/lib.sh - what the shell tests share; sourced, never run alone.
#
#   . tests/sh/lib.sh        (from the repository root, after set -u)
#
# Gives: fails (the count of failed checks), tmp (a private folder removed at
# exit, with every process in pids killed), check and verdict to record
# checks, and serve_start to run `petcut serve` on a free port.

fails=0
pids=()
tmp=$(mktemp -d "${TMPDIR:-/tmp}/petcut-test.XXXXXX") || exit 1
lib_cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap lib_cleanup EXIT

# check DESCRIPTION COMMAND...: runs one command, records ok / not ok.
check() {
	local what=$1
	shift
	if "$@"; then echo "ok - $what"; else echo "not ok - $what"; fails=$((fails + 1)); fi
}

# verdict STATUS DESCRIPTION: records a check made by the command list just
# before it ({ a && b; }; verdict $? "...").
verdict() {
	if [ "$1" = 0 ]; then echo "ok - $2"; else echo "not ok - $2"; fails=$((fails + 1)); fi
}

# serve_start [SERVE OPTIONS]: `petcut serve` on a free port of 127.0.0.1,
# its stdout in $tmp/out and stderr in $tmp/log; its URL in $A, its pid in
# $pid (and in pids). Exits the test if it does not start.
serve_start() {
	"$PETCUT" serve --listen 127.0.0.1:0 "$@" >"$tmp/out" 2>"$tmp/log" &
	pid=$!
	pids+=("$pid")
	A=
	for _ in $(seq 100); do
		A=$(sed -n 's/^listening on //p' "$tmp/out")
		[ -n "$A" ] && return 0
		sleep 0.1
	done
	echo "server did not start:"
	cat "$tmp/log"
	exit 1
}

# finish: the last line and the exit status of a test.
finish() {
	[ "$fails" -eq 0 ] && echo "all passed" || echo "$fails failed"
	[ "$fails" -eq 0 ]
}
