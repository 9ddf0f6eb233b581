#!/bin/bash
# test_webhooks.sh - job callbacks as Standard Webhooks, with real servers on
# loopback (s3rver, redis-server) and a receiver that verifies each callback
# on its own (Python's hmac, hashlib, base64): a genuine callback verifies
# under either of the two secrets listed, the same with its body changed
# does not, nor does it 6 minutes later; a receiver that answers 500 twice
# gets it on the third try, the three with one webhook-id and timestamps at
# least the least pause apart; a callback pending while its worker is
# stopped (SIGTERM: exit 0) is delivered by the next worker; one never
# answered 2xx is given up after --webhook-retry-seconds; the metrics count
# all of this exactly; secret files that are not whsec_ + base64 of 24 to 64
# bytes stop the worker at start-up with one line; and the README's openssl
# block verifies a callback received here.
#
#   tests/sh/test_webhooks.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
. tests/sh/lib.sh
need curl python3 redis-server redis-cli openssl base64 od
need_s3rver
"$PETCUT" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }

s3_start
redis_start
unset PETCUT_LISTEN PETCUT_WEBHOOK_SECRET_FILE PETCUT_WEBHOOK_RETRY_SECONDS
common=(--store s3://petcut/hooks --s3-endpoint "http://127.0.0.1:$S3PORT" --redis "redis://127.0.0.1:$RPORT/0")

# two secrets, the old and the new, as while keys rotate; the receiver
# knows only the new one
old="whsec_$(openssl rand -base64 32)"
new="whsec_$(openssl rand -base64 24)"
printf '# old, then new\n%s\n\n%s\n' "$old" "$new" >"$tmp/secrets"

# ===== secrets refused at start-up =====
refused() { # refused FILE-CONTENT: the worker exits 1 with one line on stderr
	printf '%s\n' "$1" >"$tmp/bad"
	"$PETCUT" worker --data "$tmp/bad-data" "${common[@]}" --webhook-secret-file "$tmp/bad" >/dev/null 2>"$tmp/bad.err"
	local rc=$?
	[ $rc = 1 ] && [ "$(wc -l <"$tmp/bad.err")" = 1 ] && grep -q "$tmp/bad:1: a webhook secret is whsec_" "$tmp/bad.err"
}
check "a secret without whsec_: the worker stops at start-up, one line" refused "$(openssl rand -base64 32)"
check "16 bytes: too short" refused "whsec_$(openssl rand -base64 16)"
check "65 bytes: too long" refused "whsec_$(openssl rand -base64 65 | tr -d "\n")"
check "not base64" refused "whsec_not*base64*at*all*not*base64*at*all"
printf '# nothing\n\n' >"$tmp/empty"
"$PETCUT" worker --data "$tmp/bad-data" "${common[@]}" --webhook-secret-file "$tmp/empty" >/dev/null 2>"$tmp/bad.err"
[ $? = 1 ] && grep -q "holds no secret" "$tmp/bad.err"
verdict $? "a file with no secret: refused"
PETCUT_WEBHOOK_SECRET_FILE=$tmp/missing "$PETCUT" worker --data "$tmp/bad-data" "${common[@]}" >/dev/null 2>"$tmp/bad.err"
[ $? = 1 ] && grep -q "missing: No such file" "$tmp/bad.err"
verdict $? "PETCUT_WEBHOOK_SECRET_FILE naming no file: refused"

# ===== the receiver =====
# verify.py: the receiver's check, written apart from petcut from the
# Standard Webhooks rules: HMAC-SHA256 of ID.TIMESTAMP.BODY under the
# decoded secret, base64, one of the space-separated v1, entries; a
# timestamp within 5 minutes
cat >"$tmp/verify.py" <<'PY'
import base64, hashlib, hmac

def verify(secret, msg_id, ts, sigs, body, now):
    key = base64.b64decode(secret[len('whsec_'):])
    mac = base64.b64encode(hmac.new(key, f'{msg_id}.{ts}.'.encode() + body, hashlib.sha256).digest()).decode()
    if not any(s.startswith('v1,') and hmac.compare_digest(s[3:], mac) for s in sigs.split(' ')):
        return 'bad signature'
    if abs(now - int(ts)) > 300:
        return 'too old'
    return 'ok'
PY
# every POST becomes a line of $tmp/hooks: path, headers, body (base64),
# arrival time, and the receiver's verdict; /flaky answers 500 to the first
# two tries of each webhook-id, /later 500 until $tmp/later-ok exists,
# /down always 500, anything else 204
CBPORT=$(free_port)
python3 - "$CBPORT" "$tmp" "$new" <<'PY' &
import base64, collections, http.server, json, os, sys, time
sys.path.insert(0, sys.argv[2])
from verify import verify
tries = collections.Counter()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        h = {k: self.headers.get(k, '') for k in ('webhook-id', 'webhook-timestamp', 'webhook-signature')}
        now = time.time()
        verdict = verify(sys.argv[3], h['webhook-id'], h['webhook-timestamp'], h['webhook-signature'], body, now)
        tries[(self.path, h['webhook-id'])] += 1
        status = 204
        if self.path == '/flaky' and tries[(self.path, h['webhook-id'])] <= 2: status = 500
        if self.path == '/later' and not os.path.exists(sys.argv[2] + '/later-ok'): status = 500
        if self.path == '/down': status = 500
        with open(sys.argv[2] + '/hooks', 'a') as f:
            f.write(json.dumps({'path': self.path, 'headers': h, 'body': base64.b64encode(body).decode(),
                                'at': now, 'verdict': verdict, 'status': status}) + '\n')
        self.send_response(status); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)

petcut_start A serve --data "$tmp/data-A" "${common[@]}" --callback-allow "127.0.0.1:$CBPORT"
petcut_start W1 worker --data "$tmp/data-W1" "${common[@]}" --consumers 1 --webhook-secret-file "$tmp/secrets" \
	--webhook-retry-seconds 60

req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
field() { python3 -c "import json,sys; print(json.load(open('$tmp/body'))$1)"; }
# hooks PATH: the callbacks received on PATH so far, one JSON a line
hooks() { [ -f "$tmp/hooks" ] && grep -F "\"path\": \"$1\"" "$tmp/hooks"; }
# wait_hooks PATH N: waits up to 30 s for N callbacks on PATH
wait_hooks() {
	for _ in $(seq 300); do
		[ "$(hooks "$1" | wc -l)" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
req -H 'Content-Type: image/jpeg' --data-binary @samples/chelsea.jpg "$A/v1/images" >/dev/null
img=$(field "['id']")
# job PATH: queues a preview job calling back to PATH; its id in $jid
job() {
	req -H 'Content-Type: application/json' \
		-d "{\"image_id\":\"$img\",\"size\":\"preview\",\"callback_url\":\"http://127.0.0.1:$CBPORT$1\"}" \
		"$A/v1/jobs" >/dev/null
	jid=$(field "['job_id']")
}

# ===== a genuine callback =====
job /ok
ok_job=$jid
wait_hooks /ok 1
check "a callback arrives once the job is done" [ "$(hooks /ok | wc -l)" = 1 ]
hooks /ok >"$tmp/ok.json"
check "its headers: webhook-id msg_ and the job's id, a timestamp of now, two v1 signatures" python3 - "$tmp/ok.json" "$ok_job" <<'PY'
import json, sys, time
h = json.loads(open(sys.argv[1]).readline())['headers']
sigs = h['webhook-signature'].split(' ')
assert h['webhook-id'] == 'msg_' + sys.argv[2], h
assert abs(int(h['webhook-timestamp']) - time.time()) < 60, h
assert len(sigs) == 2 and all(s.startswith('v1,') and len(s) == 47 for s in sigs), h
PY
check "the receiver verifies it with the new secret alone" python3 -c "
import json; d = json.loads(open('$tmp/ok.json').readline()); assert d['verdict'] == 'ok', d"
check "... and with the old one alone" python3 - "$tmp" "$old" <<'PY'
import base64, json, sys, time
sys.path.insert(0, sys.argv[1])
from verify import verify
d = json.loads(open(sys.argv[1] + '/ok.json').readline()); h = d['headers']
assert verify(sys.argv[2], h['webhook-id'], h['webhook-timestamp'], h['webhook-signature'],
              base64.b64decode(d['body']), time.time()) == 'ok'
PY
check "its body is the job, done, with its result" python3 -c "
import base64, json; d = json.loads(open('$tmp/ok.json').readline()); j = json.loads(base64.b64decode(d['body']))
assert j['job_id'] == '$ok_job' and j['status'] == 'done' and j['result_url'].startswith('/v1/results/'), j"
check "the same callback with its body changed: bad signature" python3 - "$tmp" "$new" <<'PY'
import base64, json, sys, time
sys.path.insert(0, sys.argv[1])
from verify import verify
d = json.loads(open(sys.argv[1] + '/ok.json').readline()); h = d['headers']
body = base64.b64decode(d['body']).replace(b'"done"', b'"fail"')
assert b'"fail"' in body
r = verify(sys.argv[2], h['webhook-id'], h['webhook-timestamp'], h['webhook-signature'], body, time.time())
assert r == 'bad signature', r
PY
check "the same callback 6 minutes later: too old (its signature still good)" python3 - "$tmp" "$new" <<'PY'
import base64, json, sys
sys.path.insert(0, sys.argv[1])
from verify import verify
d = json.loads(open(sys.argv[1] + '/ok.json').readline()); h = d['headers']
r = verify(sys.argv[2], h['webhook-id'], h['webhook-timestamp'], h['webhook-signature'], base64.b64decode(d['body']),
           int(h['webhook-timestamp']) + 360)
assert r == 'too old', r
PY

# ===== the README's openssl block on that callback =====
mkdir -p "$tmp/readme"
python3 -c "import base64, json; open('$tmp/readme/body.json', 'wb').write(base64.b64decode(json.loads(open('$tmp/ok.json').readline())['body']))"
eval "$(python3 -c "
import json, shlex; h = json.loads(open('$tmp/ok.json').readline())['headers']
print('export WEBHOOK_ID=%s WEBHOOK_TIMESTAMP=%s WEBHOOK_SIGNATURE=%s' % tuple(shlex.quote(h[k]) for k in
      ('webhook-id', 'webhook-timestamp', 'webhook-signature')))")"
export WEBHOOK_SECRET=$new
readme_run webhook-verify "$tmp/readme"
rc=$?
[ $rc = 0 ] && grep -qx "verified msg_$ok_job" "$tmp/block-webhook-verify.log"
verdict $? "the README's block verifies the callback with the new secret (exit $rc: $(tail -1 "$tmp/block-webhook-verify.log"))"
WEBHOOK_SECRET=$old readme_run webhook-verify "$tmp/readme"
verdict $? "... and with the old one"
printf ' ' >>"$tmp/readme/body.json"
readme_run webhook-verify "$tmp/readme"
rc=$?
[ $rc != 0 ] && grep -q "bad signature" "$tmp/block-webhook-verify.log"
verdict $? "... and refuses it with a byte added to the body (exit $rc)"
head -c -1 "$tmp/readme/body.json" >"$tmp/readme/b" && mv "$tmp/readme/b" "$tmp/readme/body.json"
WEBHOOK_TIMESTAMP=$((WEBHOOK_TIMESTAMP - 600)) readme_run webhook-verify "$tmp/readme"
rc=$?
[ $rc != 0 ] && grep -q "bad signature" "$tmp/block-webhook-verify.log"
verdict $? "... or with its timestamp moved back 10 minutes (exit $rc)"
# a callback of 10 minutes ago, genuinely signed then (by this test, with
# the secret): a replay
then=$((WEBHOOK_TIMESTAMP - 600))
WEBHOOK_TIMESTAMP=$then WEBHOOK_SIGNATURE="v1,$(python3 -c "
import base64, hashlib, hmac, sys
key = base64.b64decode(sys.argv[1][6:])
print(base64.b64encode(hmac.new(key, b'%s.%s.' % (sys.argv[2].encode(), sys.argv[3].encode()) + open(sys.argv[4], 'rb').read(),
                                hashlib.sha256).digest()).decode())" "$new" "$WEBHOOK_ID" "$then" "$tmp/readme/body.json")" \
	readme_run webhook-verify "$tmp/readme"
rc=$?
[ $rc != 0 ] && grep -q "timestamp too old" "$tmp/block-webhook-verify.log"
verdict $? "... and refuses a replay signed 10 minutes ago (exit $rc: $(tail -1 "$tmp/block-webhook-verify.log"))"
unset WEBHOOK_ID WEBHOOK_TIMESTAMP WEBHOOK_SIGNATURE WEBHOOK_SECRET

# ===== 500 twice, then 2xx =====
job /flaky
flaky_job=$jid
wait_hooks /flaky 3
sleep 1 # the third try is counted once its answer is back
check "a receiver answering 500 twice gets the callback on the third try" python3 - "$tmp/hooks" "$flaky_job" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1]) if '"/flaky"' in l]
assert [d['status'] for d in got] == [500, 500, 204], [d['status'] for d in got]
assert {d['headers']['webhook-id'] for d in got} == {'msg_' + sys.argv[2]}, got
assert all(d['verdict'] == 'ok' for d in got), [d['verdict'] for d in got]
PY
check "the three tries: one webhook-id, timestamps increasing, pauses of 1 to 2 s and 1 to 4 s" python3 - "$tmp/hooks" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1]) if '"/flaky"' in l]
ts = [int(d['headers']['webhook-timestamp']) for d in got]
at = [d['at'] for d in got]
gaps = [at[1] - at[0], at[2] - at[1]]
# full jitter between 1 s and 2^tries s; the delivery thread looks every 0.2 s
assert ts[0] < ts[1] < ts[2], ts
assert 1.0 <= gaps[0] <= 2.0 + 0.6 and 1.0 <= gaps[1] <= 4.0 + 0.6, gaps
print('# pauses: %.2f s, %.2f s; timestamps %s' % (gaps[0], gaps[1], ts))
PY
check "counted on W1: 2 tries 2xx, 2 tries 5xx, 2 delivered, none given up" [ \
	"$(metric "$W1" 'petcut_webhook_attempts_total{outcome="2xx"}') $(metric "$W1" 'petcut_webhook_attempts_total{outcome="5xx"}') $(metric "$W1" 'petcut_webhook_deliveries_total{outcome="delivered"}') $(metric "$W1" 'petcut_webhook_deliveries_total{outcome="given_up"}')" = "2 2 2 0" ]
check "... and as petcut_jobs_total callback_sent 2, callback_failed 0" [ \
	"$(metric "$W1" 'petcut_jobs_total{outcome="callback_sent"}') $(metric "$W1" 'petcut_jobs_total{outcome="callback_failed"}')" = "2 0" ]
check "nothing is left in the delivery queue" [ "$(redis-cli -p "$RPORT" zcard petcut:hooks) $(redis-cli -p "$RPORT" hlen petcut:hooks:items)" = "0 0" ]

# ===== a callback pending while its worker stops =====
job /later
later_job=$jid
wait_hooks /later 1
kill -TERM "$pid_W1"
wait "$pid_W1"
rw1=$?
lib_forget "$pid_W1"
check "worker 1 stopped with SIGTERM while a callback waits for its next try: exit 0 ($rw1)" [ $rw1 = 0 ]
check "the callback is still queued on Redis" [ "$(redis-cli -p "$RPORT" zcard petcut:hooks)" = 1 ]
touch "$tmp/later-ok"
petcut_start W2 worker --data "$tmp/data-W2" "${common[@]}" --consumers 1 --webhook-secret-file "$tmp/secrets" \
	--webhook-retry-seconds 3
for _ in $(seq 300); do
	hooks /later | grep -q '"status": 204' && break
	sleep 0.1
done
check "worker 2 delivers it, with the same webhook-id, verified" python3 - "$tmp/hooks" "$later_job" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1]) if '"/later"' in l]
assert [d['status'] for d in got][-1] == 204 and got[0]['status'] == 500, [d['status'] for d in got]
assert {d['headers']['webhook-id'] for d in got} == {'msg_' + sys.argv[2]}, got
assert all(d['verdict'] == 'ok' for d in got), got
PY
check "counted as delivered on worker 2" \
	[ "$(metric "$W2" 'petcut_webhook_deliveries_total{outcome="delivered"}')" = 1 ]

# ===== given up =====
job /down
for _ in $(seq 300); do
	[ "$(metric "$W2" 'petcut_webhook_deliveries_total{outcome="given_up"}')" = 1 ] && break
	sleep 0.1
done
n_down=$(hooks /down | wc -l)
check "a receiver that always answers 500: given up after --webhook-retry-seconds 3 ($n_down tries)" \
	[ "$(metric "$W2" 'petcut_webhook_deliveries_total{outcome="given_up"}') $(metric "$W2" 'petcut_jobs_total{outcome="callback_failed"}')" = "1 1" ]
check "... after 2 to 4 tries, each counted 5xx" test "$n_down" -ge 2 -a "$n_down" -le 4 -a \
	"$(metric "$W2" 'petcut_webhook_attempts_total{outcome="5xx"}')" = "$n_down"
check "... said in the log" grep -q "callback of job .* is given up after $n_down tries (the last: 5xx)" "$tmp/log-W2"
sleep 2
check "... and never tried again, nothing left queued" [ "$(hooks /down | wc -l) $(redis-cli -p "$RPORT" zcard petcut:hooks)" = "$n_down 0" ]

# ===== no secret file: unsigned =====
kill -TERM "$pid_W2"
wait "$pid_W2"
rw2=$?
lib_forget "$pid_W2"
petcut_start W3 worker --data "$tmp/data-W3" "${common[@]}" --consumers 1
job /plain
wait_hooks /plain 1
check "without --webhook-secret-file: webhook-id and webhook-timestamp, no signature" python3 -c "
import json; h = [json.loads(l) for l in open('$tmp/hooks') if '\"/plain\"' in l][0]['headers']
assert h['webhook-id'] == 'msg_$jid' and h['webhook-timestamp'] and not h['webhook-signature'], h"

kill -TERM "$pid_W3" "$pid_A"
wait "$pid_W3"; rw3=$?
wait "$pid_A"; ra=$?
lib_forget "$pid_W3"
lib_forget "$pid_A"
[ $rw2 = 0 ] && [ $rw3 = 0 ] && [ $ra = 0 ]
verdict $? "SIGTERM: workers and server exit 0 ($rw2 $rw3 $ra)"
if [ $fails -gt 0 ]; then
	echo "the logs end:"
	tail -n 5 "$tmp/log-A" "$tmp/log-W1" "$tmp/log-W2" "$tmp/log-W3" 2>/dev/null
fi
finish
