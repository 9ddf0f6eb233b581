#!/bin/bash
# test_hostile.sh - hostile input over real HTTP (tests/sh/hostile.py: pixel
# and byte limits on every way in, ids, JSON, tus headers, error bodies, the
# store afterwards), then the connection limits and CORS origins:
#  - a client address holding --per-ip-connections connections gets no more,
#    and gets them again once it lets some go;
#  - a connection idle past --idle-timeout-s is closed, kept alive or new;
#  - with --cors-origins, a listed origin is named in Access-Control-Allow-
#    Origin, another gets none and its preflight a 403; a bad list stops
#    start-up; without it, any origin ("*").
#
#   tests/sh/test_hostile.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
for c in curl python3; do
	command -v $c >/dev/null || { echo "skip: $c is not installed (scripts/install-deps.sh installs it)"; exit 77; }
done
. tests/sh/lib.sh

# ===== hostile input =====
serve_start --data "$tmp/data" --max-upload-mb 2 --allow-fetch-host 127.0.0.1 --allow-fetch-private yes \
	--idle-timeout-s 2 --per-ip-connections 8
python3 tests/sh/hostile.py "$A" "$tmp/data" samples/chelsea.jpg
verdict $? "hostile.py: every bad input refused as documented"
check "no crash or sanitizer report in the log" bash -c "! grep -qiE 'AddressSanitizer|runtime error|LeakSanitizer|segmentation' '$tmp/log'"

# ===== connections =====
python3 - "$A" <<'PY'
import socket, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
addr = (u.hostname, u.port)
fails = 0
def check(ok, what):
    global fails
    print(("ok - " if ok else "not ok - ") + what)
    fails += not ok
def get(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    try:
        return s.recv(4096)
    except OSError:
        return b""
held = [socket.create_connection(addr) for _ in range(8)]
time.sleep(0.2)
extra = socket.create_connection(addr)
answer = get(extra)
check(not answer.startswith(b"HTTP/1.1 200"), "a 9th connection from one address gets no answer (limit 8): %r" % answer[:20])
extra.close()
for s in held[:4]:
    s.close()
time.sleep(0.3)
s = socket.create_connection(addr)
check(get(s).startswith(b"HTTP/1.1 200"), "with 4 let go, a new connection is served")
s.close()
for s in held[4:]:
    s.close()
time.sleep(0.2)
# idle: a kept-alive connection and a silent new one are closed after 2 s
keep = socket.create_connection(addr)
first = get(keep)
silent = socket.create_connection(addr)
t0 = time.time()
keep.settimeout(10)
silent.settimeout(10)
try:
    closed = keep.recv(4096) == b""
except OSError:
    closed = True
t1 = time.time() - t0
try:
    silent_closed = silent.recv(1) == b""
except OSError:
    silent_closed = True
t2 = time.time() - t0
check(first.startswith(b"HTTP/1.1 200") and closed and 1.5 < t1 < 5,
      "a kept-alive connection idle for 2 s is closed (after %.1f s)" % t1)
check(silent_closed and t2 < 5, "a connection that sends nothing is closed (after %.1f s)" % t2)
sys.exit(1 if fails else 0)
PY
verdict $? "connection limits"
kill -TERM "$pid" && wait "$pid"
pid=

# ===== CORS =====
code=$(timeout 10 "$PETCUT" serve --listen 127.0.0.1:0 --data "$tmp/d2" --cors-origins 'https://shop.example/path' 2>"$tmp/err" </dev/null)
rc=$?
{ [ $rc != 0 ] && grep -q "cors-origins" "$tmp/err"; }; verdict $? "a bad --cors-origins stops start-up ($rc: $(head -c 100 "$tmp/err"))"
serve_start --data "$tmp/d2" --cors-origins https://shop.example,http://localhost:3000
h() { curl -s -D - -o "$tmp/cbody" "$@" | tr -d '\r'; }
hdr=$(h -H 'Origin: https://shop.example' "$A/healthz")
{ grep -qx 'Access-Control-Allow-Origin: https://shop.example' <<<"$hdr" && grep -qx 'Vary: Origin' <<<"$hdr"; }
verdict $? "a listed origin is named in Access-Control-Allow-Origin, with Vary: Origin"
hdr=$(h -H 'Origin: http://localhost:3000' -X OPTIONS -H 'Access-Control-Request-Method: POST' "$A/v1/images")
{ grep -q '^HTTP/1.1 204' <<<"$hdr" && grep -qx 'Access-Control-Allow-Origin: http://localhost:3000' <<<"$hdr"; }
verdict $? "the second listed origin's preflight: 204"
hdr=$(h -H 'Origin: https://evil.example' "$A/healthz")
{ grep -q '^HTTP/1.1 200' <<<"$hdr" && ! grep -qi '^Access-Control-Allow-Origin' <<<"$hdr"; }
verdict $? "another origin: answered, but without Access-Control-Allow-Origin"
hdr=$(h -H 'Origin: https://shop.example.evil.example' -X OPTIONS -H 'Access-Control-Request-Method: POST' "$A/v1/images")
{ grep -q '^HTTP/1.1 403' <<<"$hdr" && grep -q '"origin_not_allowed"' "$tmp/cbody" && ! grep -qi '^Access-Control-Allow' <<<"$hdr"; }
verdict $? "another origin's preflight: 403 origin_not_allowed"
kill -TERM "$pid" && wait "$pid"
pid=
serve_start --data "$tmp/d3"
hdr=$(h -H 'Origin: https://anyone.example' "$A/healthz")
grep -qx 'Access-Control-Allow-Origin: \*' <<<"$hdr"
verdict $? "without --cors-origins: any origin (*)"
kill -TERM "$pid" && wait "$pid"
finish
