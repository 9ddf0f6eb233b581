#!/bin/bash
# test_jobs.sh - asynchronous jobs with real servers on loopback (s3rver for
# the bucket, redis-server for the queue): petcut serve takes 20 jobs (202,
# an Idempotency-Key repeat is the same job), a petcut worker starts on them
# and is killed with SIGKILL in the middle of one, a second worker takes the
# rest and the killed one's job (XAUTOCLAIM after --claim-ms): all 20 end
# done, each result is in the bucket once, nothing is left pending; a job on
# a missing image ends failed with the reason.
#
#   tests/sh/test_jobs.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
S3JS=${PETCUT_S3RVER:-$BUILD/s3-tests/node_modules/s3rver/bin/s3rver.js}
for c in curl python3 node redis-server redis-cli; do
	command -v $c >/dev/null || { echo "skip: $c is not installed (scripts/install-deps.sh installs it)"; exit 77; }
done
[ -f "$S3JS" ] || { echo "skip: no s3rver at $S3JS (scripts/test-setup.sh installs it)"; exit 77; }
"$PETCUT" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/petcut-jobs.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
check() { # check DESCRIPTION COMMAND...
	local what=$1
	shift
	if "$@"; then echo "ok - $what"; else echo "not ok - $what"; fails=$((fails + 1)); fi
}
# verdict DESCRIPTION: records the status of the command list just run (for
# checks of several conditions joined by && or ||, which check cannot take)
verdict() {
	local rc=$?
	if [ $rc = 0 ]; then echo "ok - $1"; else echo "not ok - $1"; fails=$((fails + 1)); fi
}

node "$S3JS" -d "$tmp/s3" -a 127.0.0.1 -p 0 -s --configure-bucket petcut >"$tmp/s3.log" 2>&1 &
pids+=($!)
S3PORT=
for _ in $(seq 300); do
	S3PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/s3.log" 2>/dev/null | head -1)
	[ -n "$S3PORT" ] && break
	sleep 0.1
done
[ -n "$S3PORT" ] || { echo "s3rver did not start:"; cat "$tmp/s3.log"; exit 1; }
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	[ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = PONG ] && break
	sleep 0.1
done

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 TMPDIR PETCUT_LISTEN
common=(--store s3://petcut/shop --s3-endpoint "http://127.0.0.1:$S3PORT" --redis "redis://127.0.0.1:$RPORT/0")

# start CMD NAME [OPTIONS]: petcut CMD in the background, its URL in NAME
start() {
	local cmd=$1 name=$2
	shift 2
	"$PETCUT" "$cmd" --data "$tmp/data-$name" "${common[@]}" "$@" >"$tmp/out-$name" 2>"$tmp/log-$name" &
	pids+=($!)
	eval "pid_$name=\$!"
	for _ in $(seq 100); do
		local url
		url=$(sed -n 's/^listening on //p' "$tmp/out-$name" 2>/dev/null)
		[ -n "$url" ] && { eval "$name=\$url"; return 0; }
		sleep 0.1
	done
	echo "$name did not start:"; cat "$tmp/log-$name"; exit 1
}
# a receiver of callbacks: each POST body becomes a line of $tmp/callbacks
CBPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
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
start serve A --listen 127.0.0.1:0 --callback-allow "127.0.0.1:$CBPORT"

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
verdict "the same Idempotency-Key again: the same job, not a new one"
[ "$(req "$A/v1/jobs/${jobs[5]}")" = 200 ] && [ "$(field "['status']")" = queued ]
verdict "GET a queued job: 200 queued"

# statuses: the status of every job, one a line
statuses() {
	python3 - "$A" "${jobs[@]}" <<'PY'
import json, sys, urllib.request
for j in sys.argv[2:]:
    print(json.load(urllib.request.urlopen(f"{sys.argv[1]}/v1/jobs/{j}"))["status"])
PY
}

# a worker that dies in the middle of a job
start worker W1 --consumers 2 --claim-ms 2000
killed=0
for _ in $(seq 300); do
	s=$(statuses)
	if grep -q running <<<"$s" && grep -q done <<<"$s"; then
		kill -9 "$pid_W1"
		wait "$pid_W1" 2>/dev/null
		killed=1
		break
	fi
	sleep 0.1
done
check "worker 1 killed with SIGKILL in the middle of a job ($(statuses | sort | uniq -c | tr -s ' \n' ' '))" [ $killed = 1 ]

start worker W2 --consumers 2 --claim-ms 2000
all=0
for _ in $(seq 600); do
	[ "$(statuses | grep -vc '^done$')" = 0 ] && { all=1; break; }
	sleep 0.1
done
check "worker 2 finishes them all: 20 done" [ $all = 1 ]
tries=$(for j in "${jobs[@]}"; do curl -s "$A/v1/jobs/$j"; echo; done | python3 -c '
import json, sys
print(" ".join(str(json.loads(l)["tries"]) for l in sys.stdin if l.strip()))')
check "the killed worker's job was taken again (tries: $tries)" grep -q '2' <<<"$tries"
check "worker 2 counts the retried job" \
	[ "$(curl -s "$W2/metrics" | awk '$1 == "petcut_jobs_total{outcome=\"retried\"}" { print $2 }')" -ge 1 ] 2>/dev/null
results=$(for j in "${jobs[@]}"; do curl -s "$A/v1/jobs/$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["result_id"])'; done | sort -u)
[ "$(wc -l <<<"$results")" = 20 ] && [ "$(ls "$tmp/s3/petcut/shop/res" | grep -c '_S3rver_object$')" = 20 ]
verdict "20 distinct results, each once in the bucket"
check "each job's result_url is served" bash -c "for j in ${jobs[*]}; do
	u=\$(curl -s $A/v1/jobs/\$j | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"result_url\"])')
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' $A\$u)\" = 200 ] || exit 1; done"
check "nothing is left pending in the group" \
	[ "$(redis-cli -p "$RPORT" xpending petcut:jobs petcut-workers | head -1)" = 0 ]

[ "$(job -d "{\"image_id\":\"${ids[0]}\",\"callback_url\":\"http://127.0.0.1:1/hook\"}")" = 400 ] &&
	[ "$(field "['error']['code']")" = callback_not_allowed ]
verdict "a callback_url outside --callback-allow: 400"
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

kill -TERM "$pid_W2" "$pid_A"
wait "$pid_W2"; rw=$?
wait "$pid_A"; ra=$?
[ $rw = 0 ] && [ $ra = 0 ]
verdict "SIGTERM: worker and server exit 0 ($rw $ra)"
if [ $fails -gt 0 ]; then
	echo "$fails failed; the logs end:"
	tail -n 5 "$tmp/log-A" "$tmp/log-W1" "$tmp/log-W2"
	exit 1
fi
echo "all passed"
