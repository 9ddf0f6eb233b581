#!/bin/bash
# test_client_metrics.sh - POST /v1/client-metrics over real HTTP: good
# reports show in /metrics as counters and a latency histogram by network
# type and device class; malformed, oversized or implausible ones are
# refused with a JSON error, counted, and change nothing else.
#
#   tests/sh/test_client_metrics.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1

. tests/sh/lib.sh
need curl python3

serve_start --data "$tmp/data"

report() { curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' -d "$1" "$A/v1/client-metrics"; }
code() { python3 -c "import json; print(json.load(open('$tmp/body'))['error']['code'])" 2>/dev/null; }
metrics() { curl -s "$A/metrics" >"$tmp/m"; }

check "a success on 4g from a phone: 204" \
	[ "$(report '{"outcome":"success","bytes":1500000,"duration_ms":2300,"tries":1,"network":"4g","device":"phone"}')" = 204 ]
check "another, after 3 tries, resumable: 204" \
	[ "$(report '{"outcome":"success","bytes":500000,"duration_ms":700.5,"tries":3,"network":"4g","device":"phone","resumable":true}')" = 204 ]
check "a failure on 3g from a desktop: 204" \
	[ "$(report '{"outcome":"failure","bytes":0,"duration_ms":30000,"tries":5,"network":"3g","device":"desktop"}')" = 204 ]
check "sent as text/plain (sendBeacon): 204" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: text/plain;charset=UTF-8' -d '{"outcome":"cancelled","bytes":10,"duration_ms":5}' "$A/v1/client-metrics")" = 204 ]
metrics
{ grep -q '^petcut_client_uploads_total{network="4g",device="phone",outcome="success"} 2$' "$tmp/m" &&
	grep -q '^petcut_client_uploads_total{network="3g",device="desktop",outcome="failure"} 1$' "$tmp/m" &&
	grep -q '^petcut_client_uploads_total{network="unknown",device="unknown",outcome="cancelled"} 1$' "$tmp/m"; }; verdict $? "uploads counted by network, device and outcome"
{ grep -q '^petcut_client_upload_duration_seconds_count{network="4g",device="phone"} 2$' "$tmp/m" &&
	grep -q '^petcut_client_upload_duration_seconds_bucket{network="4g",device="phone",le="1"} 1$' "$tmp/m" &&
	grep -q '^petcut_client_upload_duration_seconds_bucket{network="4g",device="phone",le="3"} 2$' "$tmp/m" &&
	! grep -q 'petcut_client_upload_duration_seconds_count{network="3g"' "$tmp/m"; }; verdict $? "the latency histogram of successes: 2 on 4g/phone, one under 1 s, both under 3 s"
{ grep -q '^petcut_client_upload_bytes_total{network="4g",device="phone"} 2000000$' "$tmp/m" &&
	grep -q '^petcut_client_upload_retries_total{network="4g",device="phone"} 2$' "$tmp/m" &&
	grep -q '^petcut_client_upload_retries_total{network="3g",device="desktop"} 4$' "$tmp/m"; }; verdict $? "bytes and retries summed"

{ [ "$(report '{"outcome":"success","bytes":1,"duration_ms":1,"network":"5g-ultra"}')" = 400 ] && [ "$(code)" = bad_report ]; }; verdict $? "an unknown network type: 400 bad_report"
check "an unknown device class: 400" [ "$(report '{"outcome":"success","bytes":1,"duration_ms":1,"device":"fridge"}')" = 400 ]
check "an unknown outcome: 400" [ "$(report '{"outcome":"great","bytes":1,"duration_ms":1}')" = 400 ]
check "an unknown field: 400" [ "$(report '{"outcome":"success","bytes":1,"duration_ms":1,"user":"alice"}')" = 400 ]
check "a negative duration: 400" [ "$(report '{"outcome":"success","bytes":1,"duration_ms":-5}')" = 400 ]
check "a duration over an hour: 400" [ "$(report '{"outcome":"success","bytes":1,"duration_ms":3600001}')" = 400 ]
check "bytes not an integer: 400" [ "$(report '{"outcome":"success","bytes":1.5,"duration_ms":1}')" = 400 ]
check "tries 0: 400" [ "$(report '{"outcome":"success","bytes":1,"duration_ms":1,"tries":0}')" = 400 ]
check "missing bytes: 400" [ "$(report '{"outcome":"success","duration_ms":1}')" = 400 ]
{ [ "$(report 'outcome=success')" = 400 ] && [ "$(code)" = bad_json ]; }; verdict $? "not JSON: 400 bad_json"
big=$(python3 -c "print('{\"outcome\":\"success\",\"bytes\":1,\"duration_ms\":1,\"network\":\"' + 'x' * 5000 + '\"}')")
{ [ "$(report "$big")" = 413 ] && [ "$(code)" = too_large ]; }; verdict $? "a report over 2 KB: 413"
check "a form post: 415" \
	[ "$(curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/x-www-form-urlencoded' -d 'a=b' "$A/v1/client-metrics")" = 415 ]
check "GET: 405" [ "$(curl -s -o /dev/null -w '%{http_code}' "$A/v1/client-metrics")" = 405 ]
metrics
{ grep -q '^petcut_client_reports_rejected_total 12$' "$tmp/m" &&
	[ "$(grep -c '^petcut_client_uploads_total{' "$tmp/m")" = 3 ] &&
	grep -q '^petcut_client_uploads_total{network="4g",device="phone",outcome="success"} 2$' "$tmp/m"; }; verdict $? "the 12 refusals are counted, and changed nothing else"

kill -TERM "$pid"
wait "$pid"
pid=
finish
