#!/bin/bash
# test_limits.sh - the service's limits on hostile clients, over real HTTP:
# a request body trickling in at 5 kB/s is cut off (the connection closed,
# nothing stored, counted in /metrics) while other clients are served, an
# upload at normal speed still works, and an oversized header block is
# refused without reaching the handlers.
#
#   tests/sh/test_limits.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1

. tests/sh/lib.sh
need curl python3

serve_start --data "$tmp/data"

# a 200 kB JPEG: the sample with bytes after its end (still an image)
{ cat samples/chelsea.jpg; head -c 200000 /dev/zero; } >"$tmp/big.jpg"
sha=$(sha256sum "$tmp/big.jpg" | cut -d' ' -f1)

start=$(date +%s.%N)
code=$(curl -s -o /dev/null -w '%{http_code}' --limit-rate 5k -H 'Content-Type: image/jpeg' \
	--data-binary @"$tmp/big.jpg" "$A/v1/images" --max-time 60)
took=$(python3 -c "import time; print('%.1f' % (time.time() - $start))")
[ "$code" = 000 ] && python3 -c "import sys; sys.exit(not 9 < $took < 30)"
verdict $? "a body at 5 kB/s: the connection is closed after ${took} s (status ${code}, none sent)"
[ ! -e "$tmp/data/img/${sha:0:2}/${sha:2:2}/$sha" ]
verdict $? "... nothing stored under its id"
curl -s "$A/metrics" >"$tmp/m"
grep -q '^petcut_http_slow_bodies_cut_total 1$' "$tmp/m"
verdict $? "... and counted ($(grep '^petcut_http_slow_bodies_cut_total' "$tmp/m"))"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: image/jpeg' --data-binary @"$tmp/big.jpg" "$A/v1/images")" = 201 ]
verdict $? "the same bytes at full speed: 201"

# while a trickle is held, other clients are answered at once
curl -s -o /dev/null --limit-rate 3k -H 'Content-Type: image/jpeg' --data-binary @"$tmp/big.jpg" "$A/v1/images" &
slow=$!
sleep 1
hz=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' "$A/healthz")
[ "${hz% *}" = 200 ] && python3 -c "import sys; sys.exit(not ${hz#* } < 1)"
verdict $? "during a trickle, /healthz answers (${hz})"
kill "$slow" 2>/dev/null
wait "$slow" 2>/dev/null

{ printf 'X-Padding: '; head -c 200000 /dev/zero | tr '\0' a; printf '\n'; } >"$tmp/hdr"
code=$(curl -s -o /dev/null -w '%{http_code}' -H @"$tmp/hdr" "$A/healthz")
[ -n "$code" ] && [ "$code" != 200 ]
verdict $? "a 200 kB header: refused ($code)"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$A/healthz")" = 200 ]
verdict $? "the server still answers"

finish
