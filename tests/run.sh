#!/bin/sh
# tests/run.sh - petcut's suite runner.
#
#   tests/run.sh [BUILD [NAME...]]
#
# Runs every executable BUILD/tests/test_* (the unit tests the Makefile builds
# from tests/unit/*.c) and every tests/sh/test_*.sh (given BUILD as $1), each
# from the repository root. A test's exit status says how it went: 0 passed,
# 77 skipped (the test prints why), anything else failed. With NAMEs, only the
# tests whose name contains one of them run.
#
# Prints one line per test with its result and time, the test's output when it
# fails or skips, and ends with the line "N passed, N failed, N skipped" (and
# how many checks were skipped inside passing tests: lines of their output
# that start with "skip", "SKIP" or "# skip", shown under their test). Exits
# 1 when a test failed (or none was found), 0 otherwise.
#
# With CI=true a skip is a failure, a whole test's (exit 77) or one inside a
# passing test, unless its line matches one of the patterns of
# tests/skips-allowed: what a machine may lack that no install can add.
#
# Environment: PETCUT_TEST_TIMEOUT, seconds one test may run (default 3600);
# PETCUT_TEST_VERBOSE=1 shows the output of passing tests too; CI.

set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
[ $# -gt 0 ] && shift
TIMEOUT=${PETCUT_TEST_TIMEOUT:-3600}

cd "$ROOT" || exit 1
if [ ! -d "$BUILD" ]; then
	echo "tests/run.sh: no build folder '$BUILD' (run make first)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/petcut-tests.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

passed=0
failed=0
skipped=0
failed_names=""

# selected NAME: true when no filter was given or NAME contains one of them.
selected() {
	[ -z "$filters" ] && return 0
	for f in $filters; do
		case "$1" in *"$f"*) return 0 ;; esac
	done
	return 1
}
filters="$*"

# indent: the test's output, indented under its result line.
indent() {
	sed 's/^/    | /' "$1"
}

inner=0
ALLOWED=tests/skips-allowed
strict=0
case "${CI:-}" in true | 1 | yes) strict=1 ;; esac

# skips FILE: the skip lines of a test's output.
skips() {
	grep -Ei '^(# )?skip' "$1"
}

# unallowed FILE: the skip lines of FILE that tests/skips-allowed does not
# take (its comments and blank lines are no patterns); none: false.
unallowed() {
	skips "$1" >"$tmp/skips" || return 1
	grep -Ev '^[[:space:]]*(#|$)' "$ALLOWED" >"$tmp/allowed" 2>/dev/null
	if [ -s "$tmp/allowed" ]; then
		grep -Ev -f "$tmp/allowed" "$tmp/skips" >"$tmp/bad"
	else
		cp "$tmp/skips" "$tmp/bad"
	fi
	[ -s "$tmp/bad" ]
}

# run_one NAME CMD...: runs one test, records and prints its result.
run_one() {
	name=$1
	shift
	start=$(date +%s)
	if command -v timeout >/dev/null 2>&1; then
		timeout "$TIMEOUT" "$@" >"$tmp/out" 2>&1 </dev/null
	else
		"$@" >"$tmp/out" 2>&1 </dev/null
	fi
	rc=$?
	secs=$(($(date +%s) - start))
	why=
	# in CI a skip with no allowed reason fails; a test skipped as a whole
	# must say why
	if [ $strict = 1 ] && { [ $rc = 0 ] || [ $rc = 77 ]; }; then
		if unallowed "$tmp/out"; then
			why="skipped in CI: $(head -1 "$tmp/bad")"
			rc=1
		elif [ $rc = 77 ] && ! skips "$tmp/out" >/dev/null; then
			why="skipped in CI without a reason"
			rc=1
		fi
	fi
	case $rc in
	0)
		passed=$((passed + 1))
		n=$(skips "$tmp/out" | wc -l)
		if [ "$n" -gt 0 ]; then
			inner=$((inner + n))
			printf '%-6s %-32s %5ss  (%s skipped inside)\n' PASS "$name" "$secs" "$n"
			[ "${PETCUT_TEST_VERBOSE:-0}" = 1 ] && indent "$tmp/out" || skips "$tmp/out" | sed 's/^/    | /'
		else
			printf '%-6s %-32s %5ss\n' PASS "$name" "$secs"
			[ "${PETCUT_TEST_VERBOSE:-0}" = 1 ] && indent "$tmp/out"
		fi
		;;
	77)
		skipped=$((skipped + 1))
		printf '%-6s %-32s %5ss\n' SKIP "$name" "$secs"
		indent "$tmp/out"
		;;
	*)
		failed=$((failed + 1))
		failed_names="$failed_names $name"
		if [ -n "$why" ]; then
			:
		elif [ $rc -eq 124 ]; then
			why="timed out after ${TIMEOUT}s"
		elif [ $rc -gt 128 ]; then
			why="killed by signal $((rc - 128))"
		else
			why="exit $rc"
		fi
		printf '%-6s %-32s %5ss  (%s)\n' FAIL "$name" "$secs" "$why"
		indent "$tmp/out"
		;;
	esac
}

echo "petcut tests (build: $BUILD)"
for t in "$BUILD"/tests/test_*; do
	case "$t" in *.d | *.o) continue ;; esac
	if [ ! -f "$t" ] || [ ! -x "$t" ]; then
		continue
	fi
	name=$(basename "$t")
	selected "$name" || continue
	run_one "$name" "$t"
done
for t in tests/sh/test_*.sh; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .sh).sh
	selected "$name" || continue
	# Scripts run by their own #! line; one without the x bit by bash.
	if [ -x "$t" ]; then
		run_one "$name" "./$t" "$BUILD"
	else
		run_one "$name" bash "$t" "$BUILD"
	fi
done

total=$((passed + failed + skipped))
if [ $total -eq 0 ]; then
	echo "tests/run.sh: no tests found (is '$BUILD' built?)" >&2
	echo "0 passed, 0 failed, 0 skipped"
	exit 1
fi
[ $failed -gt 0 ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed, $skipped skipped; $inner checks skipped inside passing tests"
[ $failed -eq 0 ]
