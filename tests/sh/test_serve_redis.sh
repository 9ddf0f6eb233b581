#!/bin/bash
# test_serve_redis.sh - two petcut serve instances sharing one bucket (s3rver)
# and one Redis (redis-server), both real servers on loopback, over real
# HTTP: a photo uploaded through A is processed through B; a result made on A
# is a cache hit on B (from the shared index); 10 identical requests at once,
# spread over A and B, run one inference in all (the two /metrics say so);
# with redis-server stopped both still answer, /readyz says degraded and the
# failures are counted; with it started again they use it again by
# themselves.
#
#   tests/sh/test_serve_redis.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
. tests/sh/lib.sh
need curl python3 redis-server redis-cli
need_s3rver
"$PETCUT" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }

# ===== the shared servers =====
s3_start
redis_start

# serve NAME: an instance on a free port, its URL in the variable NAME
serve() {
	petcut_start "$1" serve --data "$tmp/data-$1" --store s3://petcut/shop \
		--s3-endpoint "http://127.0.0.1:$S3PORT" --redis "redis://127.0.0.1:$RPORT/0" --threads 12
}
serve A
serve B

req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
field() { python3 -c "import json,sys; print(json.load(open('$tmp/body'))$1)"; }
rb() { req -H 'Content-Type: application/json' -d "$2" "$1/v1/remove-background"; }
inferences() { echo $(($(metric "$A" 'petcut_inference{what="requests"}') + $(metric "$B" 'petcut_inference{what="requests"}'))); }

[ "$(req "$A/readyz")" = 200 ] && [ "$(field "['status']") $(field "['redis']")" = "ready ok" ]
verdict $? "A ready, with Redis"
[ "$(req "$B/readyz")" = 200 ] && [ "$(field "['status']")" = ready ]
verdict $? "B ready, with Redis"

photo=samples/chelsea.jpg
sha=$(sha256sum "$photo" | cut -d' ' -f1)
check "upload through A: 201" [ "$(req -H 'Content-Type: image/jpeg' --data-binary @$photo "$A/v1/images")" = 201 ]
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\"}")" = 200 ] && [ "$(field "['cached']")" = False ]
verdict $? "the photo uploaded through A is processed through B"
[ "$(rb "$A" "{\"image_id\":\"$sha\",\"size\":\"preview\"}")" = 200 ] && [ "$(field "['cached']")" = True ]
verdict $? "B's result is a cache hit on A"
[ "$(rb "$A" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#3060ff\"}")" = 200 ] && [ "$(field "['cached']")" = False ]
verdict $? "a result computed on A (a new background)"
rid=$(field "['result_id']")
hits0=$(metric "$B" 'petcut_cache_requests_total{kind="index",outcome="hit"}')
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#3060ff\"}")" = 200 ] &&
	[ "$(field "['cached']") $(field "['result_id']")" = "True $rid" ] &&
	[ "$(metric "$B" 'petcut_cache_requests_total{kind="index",outcome="hit"}')" = $((hits0 + 1)) ]
verdict $? "is a cache hit on B, from the shared index, the same result"
check "B serves A's result" [ "$(req "$B/v1/results/$rid")" = 200 ]

# 10 identical requests at once, 5 to each instance, on a photo new to both
{ cat "$photo"; printf 'ten at once'; } >"$tmp/ten.jpg"
check "upload a new photo through B" [ "$(req -H 'Content-Type: image/jpeg' --data-binary @"$tmp/ten.jpg" "$B/v1/images")" = 201 ]
tid=$(field "['id']")
before=$(inferences)
waits0=$(($(metric "$A" petcut_singleflight_remote_waits_total) + $(metric "$B" petcut_singleflight_remote_waits_total)))
for i in $(seq 10); do
	if [ $((i % 2)) = 0 ]; then echo "$A"; else echo "$B"; fi
done | xargs -P 10 -I{} curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
	-d "{\"image_id\":\"$tid\",\"size\":\"full\"}" "{}/v1/remove-background" >"$tmp/codes"
after=$(inferences)
waits=$(($(metric "$A" petcut_singleflight_remote_waits_total) + $(metric "$B" petcut_singleflight_remote_waits_total) - waits0))
check "10 identical requests over A and B: all 200 ($(sort "$tmp/codes" | uniq -c | tr -s ' \n' ' '))" \
	[ "$(grep -c '^200$' "$tmp/codes")" = 10 ]
[ $((after - before)) = 1 ] && [ "$waits" -ge 1 ]
verdict $? "... and one inference in all ($((after - before)); $waits waited on the other instance)"

# ===== redis-server stops =====
redis_stop
check "Redis down: A still removes backgrounds (new work)" \
	[ "$(rb "$A" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#ff8000\"}")" = 200 ]
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\"}")" = 200 ] && [ "$(field "['cached']")" = True ]
verdict $? "Redis down: B still answers cache hits"
check "Redis down: uploads still work" \
	[ "$(req -H 'Content-Type: image/jpeg' --data-binary @samples/chelsea.jpg "$B/v1/images")" = 200 ]
[ "$(req "$A/readyz")" = 200 ] &&
	[ "$(field "['status']") $(field "['redis']")" = "degraded unavailable" ]
verdict $? "Redis down: /readyz 200 degraded"
[ "$(metric "$A" 'petcut_redis{what="errors"}')" -ge 1 ] && [ "$(metric "$A" 'petcut_redis{what="up"}')" = 0 ]
verdict $? "Redis down: /metrics counts the failures, up 0"

# ===== and starts again =====
redis_start "$RPORT"
all_ready "$A" "$B"
verdict $? "Redis back: both ready again, by themselves"
[ "$(metric "$A" 'petcut_redis{what="reconnects"}')" -ge 1 ] && [ "$(metric "$A" 'petcut_redis{what="up"}')" = 1 ]
verdict $? "Redis back: reconnects counted, up 1"
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#00a000\"}")" = 200 ] &&
	[ "$(redis-cli -p "$RPORT" exists "petcut:result:$(field "['result_id']")")" = 1 ] &&
	[ "$(rb "$A" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#00a000\"}")" = 200 ] && [ "$(field "['cached']")" = True ]
verdict $? "Redis back: a result made on B is indexed for A again"
check "no lock is left behind" [ -z "$(redis-cli -p "$RPORT" --scan --pattern 'petcut:lock:*')" ]

kill -TERM "$pid_A" "$pid_B"
wait "$pid_A"; rcA=$?
wait "$pid_B"; rcB=$?
[ $rcA = 0 ] && [ $rcB = 0 ]
verdict $? "SIGTERM: both exit 0 ($rcA $rcB)"
if [ "$fails" -gt 0 ]; then
	echo "the instances' logs end:"
	tail -5 "$tmp/log-A" "$tmp/log-B"
fi
finish
