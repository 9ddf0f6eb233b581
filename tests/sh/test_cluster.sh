#!/bin/bash
# test_cluster.sh - the layout of "Scaling out" on loopback, over real HTTP:
# two petcut serve instances (A and B) and one petcut worker sharing one
# bucket on a real S3-compatible server (s3rver) and one real redis-server.
#
#   - a photo uploaded through A is processed through B;
#   - a result computed on A is a cache hit on B (the shared index);
#   - 10 identical requests at once, 5 to A and 5 to B, run one inference in
#     all (the three /metrics);
#   - 20 jobs, queued on A and B, all end done exactly once in the bucket
#     although the worker is killed with SIGKILL in the middle of one and
#     started again; nothing is left pending in the stream, nothing dropped;
#   - redis-server stopped: A and B still answer (new work, hits, uploads),
#     /readyz 200 degraded, failures counted, jobs refused with 503; started
#     again on its port: all ready by themselves, the index and the jobs work
#     again (the worker remakes its group);
#   - the S3 server stopped: 503 with Retry-After from A and B for anything
#     not in their memory tiers (a result B served before still is), /readyz 503,
#     a job waits (deferred); started again on its port: the job ends done,
#     the refused upload left no object, and every object is whole.
#
#   tests/sh/test_cluster.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
. tests/sh/lib.sh
need curl python3 redis-server redis-cli
need_s3rver
"$PETCUT" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }

# an S3 server that is down answers 503 within a second or two
export PETCUT_S3_RETRIES=1 PETCUT_S3_CONNECT_TIMEOUT_MS=500 PETCUT_S3_TIMEOUT_MS=10000
unset PETCUT_LISTEN
s3_start
redis_start
OBJ=$tmp/s3/petcut/shop # the bucket's objects: OBJ/KEY._S3rver_object
common=(--store s3://petcut/shop --s3-endpoint "http://127.0.0.1:$S3PORT" --redis "redis://127.0.0.1:$RPORT/0")
petcut_start A serve --data "$tmp/data-A" "${common[@]}" --threads 12
petcut_start B serve --data "$tmp/data-B" "${common[@]}" --threads 12
worker() { petcut_start "$1" worker --data "$tmp/data-$1" "${common[@]}" --consumers 2 --claim-ms 2000; }
started=$(date +%s)
section() { echo "# $* (at $(($(date +%s) - started)) s)"; }

# status CODE of a curl call; the body in $tmp/body, the headers in $tmp/headers
req() { curl -s -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "$@"; }
field() { python3 -c "import json; print(json.load(open('$tmp/body'))$1)"; }
retry_after() { grep -qi '^Retry-After: [0-9]' "$tmp/headers"; }
rb() { req -H 'Content-Type: application/json' -d "$2" "$1/v1/remove-background"; }
upload() { req -H 'Content-Type: image/jpeg' --data-binary @"$2" "$1/v1/images"; }
job() { req -H 'Content-Type: application/json' -d "$2" "${@:3}" "$1/v1/jobs"; }
# sum 'NAME{LABELS}' URL...: a series summed over instances
sum() {
	local n=$1 t=0 u
	shift
	for u in "$@"; do t=$((t + $(metric "$u" "$n"))); done
	echo $t
}
objects() { find "$OBJ/$1" -name '*._S3rver_object' 2>/dev/null | wc -l; }
# statuses JOB...: each job's status, one a line, from its record in Redis
# (one redis-cli for all: polled often, on two cores shared with the work)
statuses() {
	redis-cli -p "$RPORT" --raw mget "${@/#/petcut:job:}" |
		awk '{ print match($0, /"status":"[a-z]+"/) ? substr($0, RSTART + 10, RLENGTH - 11) : "none" }'
}
# wait_done URL JOB...: true once every job is done (within 60 s), as
# GET URL/v1/jobs/JOB says for the last
wait_done() {
	local u=$1
	shift
	for _ in $(seq 300); do
		[ "$(statuses "$@" | grep -vc '^done$')" = 0 ] && break
		sleep 0.2
	done
	for j in "$@"; do
		[ "$(req "$u/v1/jobs/$j")" = 200 ] && [ "$(field "['status']")" = "done" ] || return 1
	done
}

for n in A B; do
	u=${!n}
	[ "$(req "$u/readyz")" = 200 ] && [ "$(field "['status']") $(field "['redis']")" = "ready ok" ]
	verdict $? "$n ready, with Redis"
done

section "one bucket, one index"
photo=samples/chelsea.jpg
sha=$(sha256sum "$photo" | cut -d' ' -f1)
check "upload through A: 201" [ "$(upload "$A" "$photo")" = 201 ]
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\"}")" = 200 ] && [ "$(field "['cached']")" = False ]
verdict $? "the photo uploaded through A is processed through B"
[ "$(rb "$A" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#3060ff\"}")" = 200 ] &&
	[ "$(field "['cached']")" = False ]
verdict $? "a result computed on A"
rid=$(field "['result_id']")
hits0=$(metric "$B" 'petcut_cache_requests_total{kind="index",outcome="hit"}')
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#3060ff\"}")" = 200 ] &&
	[ "$(field "['cached']") $(field "['result_id']")" = "True $rid" ] &&
	[ "$(metric "$B" 'petcut_cache_requests_total{kind="index",outcome="hit"}')" = $((hits0 + 1)) ]
verdict $? "is a cache hit on B, from the shared index, the same result"
[ "$(req "$B/v1/results/$rid")" = 200 ] && cmp -s "$tmp/body" "$OBJ/res/$rid._S3rver_object"
verdict $? "B serves A's result, the bucket's bytes"

section "10 identical requests at once over A and B"
{ cat "$photo"; printf 'ten at once'; } >"$tmp/ten.jpg"
check "upload a new photo through B" [ "$(upload "$B" "$tmp/ten.jpg")" = 201 ]
tid=$(field "['id']")
inf='petcut_inference{what="requests"}'
waits='petcut_singleflight_remote_waits_total'
inf0=$(sum "$inf" "$A" "$B")
waits0=$(sum "$waits" "$A" "$B")
for i in $(seq 10); do
	if [ $((i % 2)) = 0 ]; then echo "$A"; else echo "$B"; fi
done | xargs -P 10 -I{} curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/json' \
	-d "{\"image_id\":\"$tid\",\"size\":\"full\"}" "{}/v1/remove-background" >"$tmp/codes"
ninf=$(($(sum "$inf" "$A" "$B") - inf0))
nwaits=$(($(sum "$waits" "$A" "$B") - waits0))
check "10 identical requests over A and B: all 200 ($(sort "$tmp/codes" | uniq -c | tr -s ' \n' ' '))" \
	[ "$(grep -c '^200$' "$tmp/codes")" = 10 ]
[ "$ninf" = 1 ] && [ "$nwaits" -ge 1 ]
verdict $? "... one inference in all ($ninf; $nwaits waited on the other instance)"

section "20 jobs, the worker killed in the middle of one"
ids=()
for i in $(seq 20); do
	{ cat "$photo"; printf 'job photo %d' "$i"; } >"$tmp/p$i.jpg"
	if [ $((i % 2)) = 0 ]; then u=$A; else u=$B; fi
	upload "$u" "$tmp/p$i.jpg" >/dev/null
	ids+=("$(field "['id']")")
done
res0=$(objects res)
jobs=()
ok=1
for i in $(seq 20); do
	if [ $((i % 2)) = 0 ]; then u=$A; else u=$B; fi
	code=$(job "$u" "{\"image_id\":\"${ids[$((i - 1))]}\",\"size\":\"preview\"}" -H "Idempotency-Key: order-$i")
	[ "$code" = 202 ] && [ "$(field "['status']")" = queued ] || ok=0
	jobs+=("$(field "['job_id']")")
done
check "20 jobs queued, 10 on A and 10 on B: all 202" [ $ok = 1 ]
[ "$(job "$A" "{\"image_id\":\"${ids[0]}\",\"size\":\"preview\"}" -H 'Idempotency-Key: order-1')" = 202 ] &&
	[ "$(field "['job_id']")" = "${jobs[0]}" ] && [ "$(req "$A/v1/jobs/${jobs[1]}")" = 200 ]
verdict $? "a job queued on B is known to A (its Idempotency-Key and its record)"
worker W
[ "$(req "$W/readyz")" = 200 ] && [ "$(field "['status']") $(field "['redis']")" = "ready ok" ]
verdict $? "the worker ready, with Redis"
killed=0
for _ in $(seq 600); do
	s=$(statuses "${jobs[@]}")
	if grep -q running <<<"$s" && grep -q "done" <<<"$s"; then
		kill -9 "$pid_W"
		wait "$pid_W" 2>/dev/null
		lib_forget "$pid_W"
		killed=1
		break
	fi
	sleep 0.05
done
check "the worker killed with SIGKILL in the middle of a job ($(statuses "${jobs[@]}" | sort | uniq -c | tr -s ' \n' ' '))" \
	[ $killed = 1 ]
worker W2
check "the worker started again: all 20 jobs end done" wait_done "$B" "${jobs[@]}"
tries=$(for j in "${jobs[@]}"; do curl -s "$A/v1/jobs/$j"; echo; done | python3 -c '
import json, sys
print(" ".join(str(json.loads(l)["tries"]) for l in sys.stdin if l.strip()))')
check "the killed worker's job was taken again (tries: $tries)" grep -qv '^1$' <<<"${tries// /$'\n'}"
results=$(for j in "${jobs[@]}"; do curl -s "$B/v1/jobs/$j" | python3 -c '
import json, sys; print(json.load(sys.stdin)["result"]["result_id"])'; done | sort -u)
missing=0
for r in $results; do [ -s "$OBJ/res/$r._S3rver_object" ] || missing=$((missing + 1)); done
[ "$(wc -l <<<"$results")" = 20 ] && [ "$(objects res)" = $((res0 + 20)) ] && [ $missing = 0 ]
verdict $? "20 distinct results, each once in the bucket ($(($(objects res) - res0)) new objects)"
check "nothing is left pending in the stream" \
	[ "$(redis-cli -p "$RPORT" xpending petcut:jobs petcut-workers | head -1)" = 0 ]
check "and the stream holds no entry once its job is done ($(redis-cli -p "$RPORT" xlen petcut:jobs))" \
	[ "$(redis-cli -p "$RPORT" xlen petcut:jobs)" = 0 ]
check "no entry dropped (petcut_jobs_total{outcome=\"dropped\"} 0)" \
	[ "$(sum 'petcut_jobs_total{outcome="dropped"}' "$A" "$B" "$W2")" = 0 ]

section "redis-server stops"
redis_stop
check "Redis down: A still removes backgrounds (new work)" \
	[ "$(rb "$A" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#ff8000\"}")" = 200 ]
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\"}")" = 200 ] && [ "$(field "['cached']")" = True ]
verdict $? "Redis down: B still answers cache hits"
check "Redis down: uploads still work" [ "$(upload "$B" "$photo")" = 200 ]
for n in A B; do
	u=${!n}
	[ "$(req "$u/readyz")" = 200 ] && [ "$(field "['status']") $(field "['redis']")" = "degraded unavailable" ]
	verdict $? "Redis down: $n's /readyz 200 degraded"
done
[ "$(metric "$A" 'petcut_redis{what="errors"}')" -ge 1 ] && [ "$(metric "$B" 'petcut_redis{what="up"}')" = 0 ]
verdict $? "Redis down: the failures counted, up 0"
[ "$(job "$A" "{\"image_id\":\"$sha\"}")" = 503 ] && retry_after
verdict $? "Redis down: a job is refused, 503 with Retry-After"

section "redis-server starts again, on its port"
redis_start "$RPORT"
all_ready "$A" "$B" "$W2"
verdict $? "Redis back: A, B and the worker ready again, by themselves"
[ "$(metric "$A" 'petcut_redis{what="reconnects"}')" -ge 1 ] && [ "$(metric "$B" 'petcut_redis{what="up"}')" = 1 ]
verdict $? "Redis back: reconnects counted, up 1"
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#00a000\"}")" = 200 ] &&
	[ "$(redis-cli -p "$RPORT" exists "petcut:result:$(field "['result_id']")")" = 1 ] &&
	[ "$(rb "$A" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#00a000\"}")" = 200 ] &&
	[ "$(field "['cached']")" = True ]
verdict $? "Redis back: a result made on B is indexed for A again"
[ "$(job "$B" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#a000a0\"}")" = 202 ] &&
	wait_done "$A" "$(field "['job_id']")"
verdict $? "Redis back (empty): a new job is done, the worker's group made again"

section "the S3 server stops"
s3_stop
other=$tmp/other.jpg
{ cat "$photo"; printf 'another photo'; } >"$other"
osha=$(sha256sum "$other" | cut -d' ' -f1)
res0=$(objects res)
t0=$(date +%s.%N)
code=$(upload "$A" "$other")
t1=$(date +%s.%N)
[ "$code" = 503 ] && [ "$(field "['error']['code']")" = storage_unavailable ] && retry_after &&
	python3 -c "assert $t1 - $t0 < 5"
verdict $? "S3 down: an upload through A: 503 storage_unavailable with Retry-After, within 5 s"
[ "$(rb "$B" "{\"image_id\":\"$sha\",\"size\":\"full\",\"bg\":\"#102030\"}")" = 503 ] && retry_after
verdict $? "S3 down: new work on B: 503 with Retry-After"
cold=$(head -1 <<<"$results") # made by the worker, never read through B
[ "$(req "$B/v1/results/$cold")" = 503 ] && retry_after
verdict $? "S3 down: a result B does not hold: 503 with Retry-After"
[ "$(req "$B/v1/results/$rid")" = 200 ] && cmp -s "$tmp/body" "$OBJ/res/$rid._S3rver_object"
verdict $? "S3 down: a result B served before is still served from its memory tier, the same bytes"
[ "$(req "$A/readyz")" = 503 ] && retry_after && [ "$(req "$B/readyz")" = 503 ] && [ "$(req "$A/healthz")" = 200 ]
verdict $? "S3 down: /readyz 503 on A and B, /healthz 200"
[ "$(job "$A" "{\"image_id\":\"$sha\",\"size\":\"preview\",\"bg\":\"#c0c0c0\"}")" = 202 ]
verdict $? "S3 down: a job is still queued (202)"
dj=$(field "['job_id']")
for _ in $(seq 200); do
	[ "$(metric "$W2" 'petcut_jobs_total{outcome="deferred"}')" -ge 1 ] && break
	sleep 0.1
done
[ "$(metric "$W2" 'petcut_jobs_total{outcome="deferred"}')" -ge 1 ] && [ "$(req "$A/v1/jobs/$dj")" = 200 ] &&
	[ "$(field "['status']")" != "done" ]
verdict $? "S3 down: the worker defers it"

section "the S3 server starts again, on its port"
s3_start "$S3PORT"
ok=0
for _ in $(seq 50); do
	[ "$(req "$A/readyz")" = 200 ] && [ "$(req "$B/readyz")" = 200 ] && { ok=1; break; }
	sleep 0.2
done
check "S3 back: /readyz 200 on A and B" [ $ok = 1 ]
check "S3 back: the deferred job ends done" wait_done "$B" "$dj"
check "the upload refused while S3 was down left no object" [ ! -e "$OBJ/img/$osha._S3rver_object" ]
check "the work refused on B stored no result" [ "$(objects res)" = $((res0 + 1)) ]
[ "$(upload "$B" "$other")" = 201 ] && cmp -s "$OBJ/img/$osha._S3rver_object" "$other" &&
	[ "$(rb "$A" "{\"image_id\":\"$sha\",\"size\":\"full\",\"bg\":\"#102030\"}")" = 200 ] &&
	[ "$(field "['cached']")" = False ]
verdict $? "S3 back: the same upload is 201, the same work 200"
check "no partial objects: each image holds the bytes its name says, each result is a whole PNG" \
	python3 - "$OBJ" <<'PY'
import hashlib, json, os, struct, sys
obj = sys.argv[1]
def objects(kind):
    d = os.path.join(obj, kind)
    return [(n.split('.')[0], open(os.path.join(d, n), 'rb').read()) for n in os.listdir(d) if n.endswith('._S3rver_object')]
imgs, res, meta = objects('img'), objects('res'), objects('resmeta')
assert len(imgs) >= 23 and len(res) >= 28, (len(imgs), len(res))
for key, b in imgs:
    assert hashlib.sha256(b).hexdigest() == key, key
for key, b in res:
    assert b[:8] == b'\x89PNG\r\n\x1a\n' and b[-12:] == struct.pack('>I', 0) + b'IEND\xaeB`\x82', key
for key, b in meta:
    json.loads(b)
PY
check "no lock left behind" [ -z "$(redis-cli -p "$RPORT" --scan --pattern 'petcut:lock:*')" ]
check "no entry dropped, no job pending" \
	[ "$(sum 'petcut_jobs_total{outcome="dropped"}' "$A" "$B" "$W2") $(redis-cli -p "$RPORT" xpending petcut:jobs petcut-workers | head -1)" = "0 0" ]

kill -TERM "$pid_A" "$pid_B" "$pid_W2"
wait "$pid_A"; ra=$?
wait "$pid_B"; rb=$?
wait "$pid_W2"; rw=$?
[ $ra = 0 ] && [ $rb = 0 ] && [ $rw = 0 ]
verdict $? "SIGTERM: A, B and the worker exit 0 ($ra $rb $rw)"
section "end"
check "no spooled bytes left in A's and B's DATA/tmp" [ -z "$(find "$tmp/data-A/tmp" "$tmp/data-B/tmp" -type f)" ]
if [ "$fails" -gt 0 ]; then
	echo "the logs end:"
	tail -n 5 "$tmp/log-A" "$tmp/log-B" "$tmp/log-W" "$tmp/log-W2"
fi
finish
