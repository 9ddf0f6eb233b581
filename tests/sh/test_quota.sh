#!/bin/bash
# test_quota.sh - per-API-key limits over real HTTP (petcut serve --model
# none: uploads are what the requests do):
#
#   - a key file line with a malformed setting keeps serve from starting,
#     exit 1, naming the file and the line (and never echoing a word that
#     may be a key);
#   - a key with rate=5/h gets exactly 5 requests, its RateLimit's r going
#     4, 3, 2, 1, 0, then 429 rate_limited with Retry-After and the fields
#     in draft-ietf-httpapi-ratelimit-headers-11's syntax; counted in
#     petcut_ratelimited_total{reason="rate"};
#   - a key without limits is unaffected and its answers carry no RateLimit
#     fields;
#   - concurrency=1: a second request while a slow upload is in progress is
#     refused 429 concurrency_limited; once the upload ends, or its client
#     goes away, the key may send again;
#   - two instances sharing one redis-server: requests alternated between A
#     and B get 5 allowed in all; a slow upload on A holds the key's one slot
#     on B; A killed in the middle of it, the slot drains by itself after
#     the lock time; the counters' Redis keys never hold the API key and all
#     expire; redis-server stopped: B allows the spent key (fail open,
#     counted in petcut_ratelimit_fail_open_total) and still stops cleanly.
#
#   tests/sh/test_quota.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1

. tests/sh/lib.sh
need curl python3 redis-server redis-cli

RATED=rated-key-0123456789abcdef	# rate=5/h
SINGLE=single-key-0123456789abcdef	# concurrency=1
FREE=free-key-0123456789abcdef		# no limits
printf '# the shop keys\n%s rate=5/h\n%s   concurrency=1\n\n%s\n' "$RATED" "$SINGLE" "$FREE" >"$tmp/keys"
photo=samples/chelsea.jpg

# ===== Malformed lines =====

bad_line() { # SETTINGS: the file's third line is "KEY SETTINGS"
	printf '# keys\n%s\nbad-key-0123456789abcdef %s\n' "$FREE" "$1" >"$tmp/bad"
	"$PETCUT" serve --listen 127.0.0.1:0 --data "$tmp/bad-data" --model none --api-key-file "$tmp/bad" \
		>/dev/null 2>"$tmp/err"
	local rc=$?
	[ $rc = 1 ] && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "$tmp/bad:3: " "$tmp/err" ||
		{ echo "# exit $rc: $(cat "$tmp/err")"; return 1; }
}
for s in 'rate=5' 'rate=5/d' 'rate=0/s' 'rate=-1/s' 'rate=x/min' 'rate=1/s rate=2/s' 'concurrency=' \
	'concurrency=0' 'concurrency=two' 'burst=3' 'rate=5/h,concurrency=2'; do
	bad_line "$s"
	verdict $? "a key file line 'KEY $s': serve exits 1 naming the file and line 3 ($(cat "$tmp/err"))"
done
bad_line "second-key-written-by-mistake-0123"
! grep -q second-key "$tmp/err"
verdict $? "a line holding two keys: refused without the second key on stderr ($(cat "$tmp/err"))"
printf '%s rate=5/h\n%s rate=6/h\n' "$RATED" "$RATED" >"$tmp/twice"
"$PETCUT" serve --listen 127.0.0.1:0 --data "$tmp/bad-data" --model none --api-key-file "$tmp/twice" \
	>/dev/null 2>"$tmp/err"
[ $? = 1 ] && grep -q "$tmp/twice:2: " "$tmp/err"
verdict $? "one key on two lines with other limits: refused at line 2"

"$PETCUT" serve --help | grep -q 'KEY rate=N/s|N/min|N/h concurrency=N'
verdict $? "petcut serve --help gives the key file's settings"

# ===== One instance: counted in the process =====

serve_start --data "$tmp/data" --model none --api-key-file "$tmp/keys"

curl -s "$A/openapi.json" | python3 -c '
import json, sys
d = json.load(sys.stdin)
h = d["components"]["responses"]["TooManyRequests"]["headers"]
assert {"Retry-After", "RateLimit", "RateLimit-Policy"} <= set(h), h
for path in ("/v1/images", "/v1/remove-background", "/v1/jobs"):
    assert d["paths"][path]["post"]["responses"]["429"]["$ref"].endswith("/TooManyRequests"), path'
verdict $? "/openapi.json documents the 429 of the keyed routes with Retry-After, RateLimit and RateLimit-Policy"

# status of one upload as KEY to URL (default $A); headers in $tmp/h, body in $tmp/body
up() { curl -s -D "$tmp/h" -o "$tmp/body" -w '%{http_code}' -H "X-Api-Key: $1" -H 'Content-Type: image/jpeg' \
	-H 'Expect:' --data-binary @"$photo" "${2:-$A}/v1/images"; }
# hv NAME: the value of header NAME of the last answer (empty: none)
hv() { tr -d '\r' <"$tmp/h" | awk -v n="$(tr 'A-Z' 'a-z' <<<"$1")" 'tolower($0) ~ "^" n ": " { sub(/^[^:]*: /, ""); print; exit }'; }
has() { tr -d '\r' <"$tmp/h" | grep -qi "^$1:"; }
code() { python3 -c "import json; print(json.load(open('$tmp/body'))['error']['code'])" 2>/dev/null; }
ok2xx() { [ "$1" = 200 ] || [ "$1" = 201 ]; }
# rate_r / rate_t: r and t of the "rate" item of RateLimit, after checking
# the whole field's syntax (a structured-field list of one item)
rl_rate() {
	local v
	v=$(hv RateLimit)
	[[ $v =~ ^\"rate\"\;r=([0-9]+)\;t=([0-9]+)$ ]] || { echo "# RateLimit: '$v'" >&2; return 1; }
	r=${BASH_REMATCH[1]} t=${BASH_REMATCH[2]}
}

rs=() ok=1
for i in 1 2 3 4 5; do
	s=$(up "$RATED")
	ok2xx "$s" && [ "$(hv RateLimit-Policy)" = '"rate";q=5;w=3600' ] && rl_rate && [ "$t" -ge 1 ] && [ "$t" -le 720 ] ||
		{ ok=0; echo "# request $i: $s, $(hv RateLimit-Policy) / $(hv RateLimit)"; }
	rs+=("${r:-}")
done
[ $ok = 1 ] && [ "${rs[*]}" = "4 3 2 1 0" ]
verdict $? "rate=5/h: 5 uploads allowed, RateLimit-Policy \"rate\";q=5;w=3600, RateLimit r going ${rs[*]} with t in 1..720"
s=$(up "$RATED")
ra=$(hv Retry-After)
[ "$s" = 429 ] && [ "$(code)" = rate_limited ] && [[ $ra =~ ^[0-9]+$ ]] && [ "$ra" -ge 1 ] && [ "$ra" -le 720 ] &&
	rl_rate && [ "$r" = 0 ] && [ "$t" = "$ra" ] && [ "$(hv RateLimit-Policy)" = '"rate";q=5;w=3600' ]
verdict $? "the 6th: 429 rate_limited, Retry-After $ra (1..720), RateLimit \"rate\";r=0;t=$ra"
s=$(up "$RATED")
[ "$s" = 429 ] && [ "$(metric "$A" 'petcut_ratelimited_total{reason="rate"}')" = 2 ] &&
	[ "$(metric "$A" 'petcut_ratelimited_total{reason="concurrency"}')" = 0 ]
verdict $? "a 7th is refused too; petcut_ratelimited_total{reason=\"rate\"} counts the 2 refusals"

ok=1
for i in $(seq 8); do
	s=$(up "$FREE")
	ok2xx "$s" && ! has RateLimit && ! has RateLimit-Policy || { ok=0; echo "# $s"; }
done
[ $ok = 1 ]
verdict $? "a key without limits: 8 uploads allowed, none with a RateLimit or RateLimit-Policy field"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$A/v1/images/$(sha256sum "$photo" | cut -d' ' -f1)")" = 200 ]
verdict $? "GETs that need no key stay open after the key is spent"

# slow KEY URL NAME: uploads the photo at 8 kB/s (about 5 s) in the
# background, its pid in slow_pid, its status in $tmp/NAME.code; returns once
# curl has sent its headers (the server counts the request then) and a
# moment more
slow() {
	: >"$tmp/$3.trace"
	curl -s -o /dev/null -w '%{http_code}' --limit-rate 8k --trace-ascii "$tmp/$3.trace" -H "X-Api-Key: $1" \
		-H 'Content-Type: image/jpeg' -H 'Expect:' --data-binary @"$photo" "$2/v1/images" >"$tmp/$3.code" 2>/dev/null &
	slow_pid=$!
	pids+=("$slow_pid")
	for _ in $(seq 100); do grep -q '^=> Send data' "$tmp/$3.trace" && break; sleep 0.1; done
	sleep 0.5
}
# until_allowed KEY URL SECONDS: polls until an upload as KEY is allowed;
# false if none is within SECONDS
until_allowed() {
	for _ in $(seq $(($3 * 5))); do
		ok2xx "$(up "$1" "$2")" && return 0
		sleep 0.2
	done
	return 1
}

slow "$SINGLE" "$A" s1
s=$(up "$SINGLE")
kill -0 "$slow_pid" 2>/dev/null && [ "$s" = 429 ] && [ "$(code)" = concurrency_limited ] && [ "$(hv Retry-After)" = 1 ] &&
	[ "$(hv RateLimit-Policy)" = '"concurrency";q=1;qu="concurrent-requests"' ] &&
	[ "$(hv RateLimit)" = '"concurrency";r=0' ]
verdict $? "concurrency=1: a second request during a slow upload: 429 concurrency_limited, Retry-After 1, RateLimit \"concurrency\";r=0"
wait "$slow_pid"
lib_forget "$slow_pid"
s=$(up "$SINGLE")
ok2xx "$(cat "$tmp/s1.code")" && ok2xx "$s" && [ "$(hv RateLimit)" = '"concurrency";r=0' ] &&
	[ "$(metric "$A" 'petcut_ratelimited_total{reason="concurrency"}')" = 1 ]
verdict $? "the slow upload ends $(cat "$tmp/s1.code"); the next is allowed ($s, its own slot taken: r=0); one refusal counted"
slow "$SINGLE" "$A" s2
s=$(up "$SINGLE")
kill "$slow_pid"
wait "$slow_pid" 2>/dev/null
lib_forget "$slow_pid"
[ "$s" = 429 ] && until_allowed "$SINGLE" "$A" 5
verdict $? "a slow upload whose client goes away: its slot is released (the key is allowed again within 5 s)"

# ===== Two instances sharing redis-server =====

redis_start
R=redis://127.0.0.1:$RPORT/0
export PETCUT_REDIS_LOCK_MS=5000 # an in-flight entry of a killed instance drains after 5 s
petcut_start A2 serve --data "$tmp/data-a" --model none --api-key-file "$tmp/keys" --redis "$R"
petcut_start B2 serve --data "$tmp/data-b" --model none --api-key-file "$tmp/keys" --redis "$R"

seq_=() rs=()
for u in "$A2" "$B2" "$A2" "$B2" "$A2" "$B2" "$A2"; do
	s=$(up "$RATED" "$u")
	ok2xx "$s" && s=ok
	seq_+=("$s")
	if [ "$s" = ok ]; then rl_rate && rs+=("$r"); fi
done
[ "${seq_[*]}" = "ok ok ok ok ok 429 429" ] && [ "${rs[*]}" = "4 3 2 1 0" ]
verdict $? "rate=5/h on A and B alternately: ${seq_[*]} (5 allowed in all, r ${rs[*]})"
keys=$(redis-cli -p "$RPORT" --scan)
ok=1
for k in $(grep '^petcut:rl:' <<<"$keys"); do
	[[ $k =~ ^petcut:rl:\{[0-9a-f]{16}\}:(rate|conc)$ ]] && [ "$(redis-cli -p "$RPORT" pttl "$k")" -gt 0 ] ||
		{ ok=0; echo "# $k: pttl $(redis-cli -p "$RPORT" pttl "$k")"; }
done
[ $ok = 1 ] && grep -q '^petcut:rl:' <<<"$keys" && ! grep -q -- "$RATED\|$SINGLE\|$FREE" <<<"$keys"
verdict $? "Redis holds the counters under petcut:rl:{digest}, each with an expiry, never the key itself"

slow "$SINGLE" "$A2" s3
s=$(up "$SINGLE" "$B2")
[ "$s" = 429 ] && [ "$(code)" = concurrency_limited ]
verdict $? "concurrency=1: a slow upload on A holds the key's slot on B (429 concurrency_limited)"
lib_kill "$pid_A2"
wait "$slow_pid" 2>/dev/null
lib_forget "$slow_pid"
s=$(up "$SINGLE" "$B2")
[ "$s" = 429 ] && until_allowed "$SINGLE" "$B2" 15
verdict $? "A killed in the middle of it: the slot is still held ($s), then drains by itself after the lock time"

redis_stop
s=$(up "$RATED" "$B2")
ok2xx "$s" && [ "$(hv RateLimit-Policy)" = '"rate";q=5;w=3600' ] && ! has RateLimit &&
	[ "$(metric "$B2" petcut_ratelimit_fail_open_total)" -ge 1 ]
verdict $? "redis-server stopped: the spent key is allowed on B ($s: fail open, the policy without counts), counted in petcut_ratelimit_fail_open_total"

finish
