#!/bin/bash
# test_web.sh - the browser side (web/petcut-upload.js and the demo page) in
# a real headless Chromium against a real petcut serve on loopback: runs
# tests/web/e2e.mjs (playwright-core, installed by scripts/test-setup.sh into
# BUILD/web-tests). Screenshots of the demo page go to BUILD/web-screens/.
#
#   tests/sh/test_web.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
CHROMIUM=${PETCUT_CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "skip: $CHROMIUM is not installed (scripts/install-deps.sh installs Debian's chromium)"; exit 77; }
command -v node >/dev/null || { echo "skip: node is not installed"; exit 77; }
[ -f "$BUILD/web-tests/node_modules/playwright-core/package.json" ] ||
	{ echo "skip: playwright-core is not in $BUILD/web-tests (scripts/test-setup.sh installs it)"; exit 77; }
command -v vips >/dev/null || { echo "skip: the vips command is not installed"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/petcut-web.XXXXXX")
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$PETCUT" serve --listen 127.0.0.1:0 --data "$tmp/data" >"$tmp/out" 2>"$tmp/log" &
pid=$!
A=
for _ in $(seq 600); do # a minute: serve prepares its plans before it listens
	A=$(sed -n 's/^listening on //p' "$tmp/out")
	[ -n "$A" ] && break
	sleep 0.1
done
[ -n "$A" ] || { echo "server did not start:"; cat "$tmp/log"; exit 1; }

node tests/web/e2e.mjs "$A" "$BUILD"
rc=$?
if [ $rc != 0 ]; then
	echo "# the server's log, last 40 lines:"
	tail -40 "$tmp/log" | sed 's/^/# /'
fi
kill -TERM "$pid"
wait "$pid"
pid=
exit $rc
