#!/bin/bash
# test_jobs.sh - asynchronous jobs with real servers on loopback (s3rver for
# the bucket, redis-server for the queue): petcut serve takes 20 jobs (202,
# an Idempotency-Key repeat is the same job), a petcut worker starts on them
# and is killed with SIGKILL in the middle of one, a second worker takes the
# rest and the killed one's job (XAUTOCLAIM after --claim-ms): all 20 end
# done, each result is in the bucket once, nothing is left pending; a job on
# a missing image ends failed with the reason. Then a worker whose claim time
# is shorter than a job: its idle consumers take over jobs their siblings are
# still doing, and each job still ends once (one outcome counted, one
# callback).
#
#   tests/sh/test_jobs.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
. tests/sh/lib.sh
need curl python3 redis-server redis-cli
need_s3rver
"$PETCUT" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }

s3_start
redis_start
unset PETCUT_LISTEN
common=(--store s3://petcut/shop --s3-endpoint "http://127.0.0.1:$S3PORT" --redis "redis://127.0.0.1:$RPORT/0")

# start CMD NAME [OPTIONS]: petcut CMD in the background, its URL in NAME
start() {
	local cmd=$1 name=$2
	shift 2
	petcut_start "$name" "$cmd" --data "$tmp/data-$name" "${common[@]}" "$@"
}
# a receiver of callbacks: each POST body becomes a line of $tmp/callbacks
CBPORT=$(free_port)
python3 - "$CBPORT" "$tmp/callbacks" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with open(sys.argv[2], 'ab') as f: f.write(body + b'\n')
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)
start serve A --callback-allow "127.0.0.1:$CBPORT"

req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
field() { python3 -c "import json,sys; print(json.load(open('$tmp/body'))$1)"; }
job() { req -H 'Content-Type: application/json' "$@" "$A/v1/jobs"; }

check "a job without a stored image: 400" [ "$(job -d '{"size":"preview"}')" = 400 ]
check "an unknown job: 404" [ "$(req "$A/v1/jobs/$(printf '0%.0s' $(seq 32))")" = 404 ]
check "a bad job id: 400" [ "$(req "$A/v1/jobs/nope")" = 400 ]
"$PETCUT" worker --data "$tmp/x" 2>/dev/null
check "petcut worker without --redis: refused (exit 2)" [ $? = 2 ]

# 20 photos, one job each, queued before any worker runs
ids=()
for i in $(seq 20); do
	{ cat samples/chelsea.jpg; printf 'job photo %d' "$i"; } >"$tmp/p$i.jpg"
	req -H 'Content-Type: image/jpeg' --data-binary @"$tmp/p$i.jpg" "$A/v1/images" >/dev/null
	ids+=("$(field "['id']")")
done
jobs=()
ok=1
for i in $(seq 20); do
	code=$(job -H "Idempotency-Key: order-$i" -d "{\"image_id\":\"${ids[$((i - 1))]}\",\"size\":\"preview\"}")
	[ "$code" = 202 ] && [ "$(field "['status']")" = queued ] || ok=0
	jobs+=("$(field "['job_id']")")
done
check "20 jobs: 202 queued" [ $ok = 1 ]
[ "$(job -H 'Idempotency-Key: order-1' -d "{\"image_id\":\"${ids[0]}\",\"size\":\"preview\"}")" = 202 ] &&
	[ "$(field "['job_id']")" = "${jobs[0]}" ] && [ "$(redis-cli -p "$RPORT" xlen petcut:jobs)" = 20 ]
verdict $? "the same Idempotency-Key again: the same job, not a new one"
[ "$(req "$A/v1/jobs/${jobs[5]}")" = 200 ] && [ "$(field "['status']")" = queued ]
verdict $? "GET a queued job: 200 queued"

# statuses: the status of every job, one a line
statuses() {
	python3 - "$A" "${jobs[@]}" <<'PY'
import json, sys, urllib.request
for j in sys.argv[2:]:
    print(json.load(urllib.request.urlopen(f"{sys.argv[1]}/v1/jobs/{j}"))["status"])
PY
}

# a worker that dies in the middle of a job
# a claim time longer than a job (a full-size pass takes about 3 s on 2
# cores without AVX-512), so that only the killed worker's job is taken again
start worker W1 --consumers 2 --claim-ms 6000
killed=0
for _ in $(seq 300); do
	s=$(statuses)
	if grep -q running <<<"$s" && grep -q done <<<"$s"; then
		kill -9 "$pid_W1"
		wait "$pid_W1" 2>/dev/null
		lib_forget "$pid_W1"
		killed=1
		break
	fi
	sleep 0.1
done
check "worker 1 killed with SIGKILL in the middle of a job ($(statuses | sort | uniq -c | tr -s ' \n' ' '))" [ $killed = 1 ]

start worker W2 --consumers 2 --claim-ms 6000
all=0
for _ in $(seq 1200); do
	[ "$(statuses | grep -vc '^done$')" = 0 ] && { all=1; break; }
	sleep 0.1
done
check "worker 2 finishes them all: 20 done" [ $all = 1 ]
tries=$(for j in "${jobs[@]}"; do curl -s "$A/v1/jobs/$j"; echo; done | python3 -c '
import json, sys
print(" ".join(str(json.loads(l)["tries"]) for l in sys.stdin if l.strip()))')
check "the killed worker's job was taken again (tries: $tries)" grep -Eq '(^| )([2-9]|[1-9][0-9]+)( |$)' <<<"$tries"
check "worker 2 counts the retried job" [ "$(metric "$W2" 'petcut_jobs_total{outcome="retried"}')" -ge 1 ]
results=$(for j in "${jobs[@]}"; do curl -s "$A/v1/jobs/$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["result_id"])'; done | sort -u)
[ "$(wc -l <<<"$results")" = 20 ] && [ "$(ls "$tmp/s3/petcut/shop/res" | grep -c '_S3rver_object$')" = 20 ]
verdict $? "20 distinct results, each once in the bucket"
check "each job's result_url is served" bash -c "for j in ${jobs[*]}; do
	u=\$(curl -s $A/v1/jobs/\$j | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"result_url\"])')
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' $A\$u)\" = 200 ] || exit 1; done"
check "nothing is left pending in the group" \
	[ "$(redis-cli -p "$RPORT" xpending petcut:jobs petcut-workers | head -1)" = 0 ]

[ "$(job -d "{\"image_id\":\"${ids[0]}\",\"callback_url\":\"http://127.0.0.1:1/hook\"}")" = 400 ] &&
	[ "$(field "['error']['code']")" = callback_not_allowed ]
verdict $? "a callback_url outside --callback-allow: 400"
check "a job with an allowed callback_url: 202" \
	[ "$(job -d "{\"image_id\":\"${ids[0]}\",\"bg\":\"white\",\"callback_url\":\"http://127.0.0.1:$CBPORT/hook\"}")" = 202 ]
cj=$(field "['job_id']")
for _ in $(seq 100); do
	grep -q "$cj" "$tmp/callbacks" 2>/dev/null && break
	sleep 0.1
done
check "its callback is POSTed once it is done, with the result" python3 - "$tmp/callbacks" "$cj" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
mine = [j for j in got if j['job_id'] == sys.argv[2]]
assert len(mine) == 1 and mine[0]['status'] == 'done' and mine[0]['result_url'].startswith('/v1/results/'), got
PY

check "a job on an image not stored: failed, 404 not_found" \
	[ "$(job -d "{\"image_id\":\"$(printf '1%.0s' $(seq 64))\"}")" = 202 ]
fj=$(field "['job_id']")
for _ in $(seq 100); do
	[ "$(req "$A/v1/jobs/$fj")" = 200 ] && [ "$(field "['status']")" = failed ] && break
	sleep 0.1
done
check "... with the reason" [ "$(field "['status']") $(field "['error']['code']")" = "failed not_found" ]

# a group portrait as a job: the same body as the route's
check "a group portrait as a job (images): 202" \
	[ "$(job -d "{\"images\":[\"${ids[0]}\",\"${ids[1]}\"],\"size\":\"preview\",\"canvas\":\"600x300\"}")" = 202 ]
gj=$(field "['job_id']")
for _ in $(seq 300); do
	[ "$(req "$A/v1/jobs/$gj")" = 200 ] && [ "$(field "['status']")" = done -o "$(field "['status']")" = failed ] && break
	sleep 0.1
done
check "... done: a 600x300 result with each pet's box" python3 -c "
import json; j = json.load(open('$tmp/body')); r = j['result']
assert j['status'] == 'done' and (r['width'], r['height']) == (600, 300) and len(r['subjects']) == 2, j"

check "worker 2 dropped no entry" [ "$(metric "$W2" 'petcut_jobs_total{outcome="dropped"}')" = 0 ]
kill -TERM "$pid_W2"
wait "$pid_W2"; rw=$?
lib_forget "$pid_W2"

# ===== a worker whose claim time is shorter than a job =====
# XAUTOCLAIM sees only how long ago an entry was handed out, so an idle
# consumer takes over a job its sibling is still doing; the first outcome
# must stand alone (recorded, counted and called back once)
start worker W3 --consumers 3 --claim-ms 50
jobs=()
for i in $(seq 6); do
	job -d "{\"image_id\":\"${ids[$i]}\",\"size\":\"full\",\"callback_url\":\"http://127.0.0.1:$CBPORT/hook\"}" >/dev/null
	jobs+=("$(field "['job_id']")")
done
all=0
for _ in $(seq 600); do
	[ "$(statuses | grep -vc '^done$')" = 0 ] && { all=1; break; }
	sleep 0.1
done
sleep 2 # a consumer that took a job over ends it within its lock wait
check "6 full-size jobs on 3 consumers with a 50 ms claim time: all done" [ $all = 1 ]
taken=$(metric "$W3" 'petcut_jobs_total{outcome="retried"}')
check "jobs were taken over while their consumer was at them (retried: $taken)" [ "$taken" -ge 1 ]
check "each outcome counted once (done: $(metric "$W3" 'petcut_jobs_total{outcome="done"}'))" \
	[ "$(metric "$W3" 'petcut_jobs_total{outcome="done"}')" = 6 ]
check "one callback for each job" python3 - "$tmp/callbacks" "${jobs[@]}" <<'PY'
import collections, json, sys
got = collections.Counter(json.loads(l)['job_id'] for l in open(sys.argv[1]) if l.strip())
assert all(got[j] == 1 for j in sys.argv[2:]), [got[j] for j in sys.argv[2:]]
PY
check "nothing is left pending, nothing dropped" \
	[ "$(redis-cli -p "$RPORT" xpending petcut:jobs petcut-workers | head -1) $(metric "$W3" 'petcut_jobs_total{outcome="dropped"}')" = "0 0" ]

kill -TERM "$pid_W3" "$pid_A"
wait "$pid_W3"; rw3=$?
wait "$pid_A"; ra=$?
[ $rw = 0 ] && [ $rw3 = 0 ] && [ $ra = 0 ]
verdict $? "SIGTERM: workers and server exit 0 ($rw $rw3 $ra)"
if [ $fails -gt 0 ]; then
	echo "the logs end:"
	tail -n 5 "$tmp/log-A" "$tmp/log-W1" "$tmp/log-W2" "$tmp/log-W3"
fi
finish
