#!/bin/bash
# test_fetch.sh - image_url from other hosts over real HTTP. petcut serve
# --allow-fetch-host lists the host names image_url may name; any other
# host, scheme or form is 400, and a listed name that resolves to a
# loopback, private or IPv4-in-IPv6 address is refused when the connection
# is made: a real HTTP server on loopback, holding the photo, sees no request
# at all. (Every address this test machine can reach is private, so a
# successful outside fetch cannot be shown here; the address rules are
# tested one by one in tests/unit/test_fetch.c.)
#
#   tests/sh/test_fetch.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1

. tests/sh/lib.sh
need curl python3

# a plain HTTP server on loopback holding the photo, logging every request
mkdir -p "$tmp/www" && cp samples/chelsea.jpg "$tmp/www/cat.jpg"
python3 - "$tmp/www" "$tmp/www.port" "$tmp/www.log" <<'PY' &
import http.server, os, sys
root, port_file, log = sys.argv[1:4]
os.chdir(root)
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        open(log, 'a').write((fmt % args) + '\n')
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
open(port_file, 'w').write(str(s.server_address[1]))
s.serve_forever()
PY
pids+=($!)
disown
for _ in $(seq 100); do [ -s "$tmp/www.port" ] && break; sleep 0.1; done
W=$(cat "$tmp/www.port" 2>/dev/null)
[ -n "$W" ] || { echo "the loopback HTTP server did not start"; exit 1; }
: >"$tmp/www.log"
curl -s -o /dev/null "http://127.0.0.1:$W/cat.jpg" && [ -s "$tmp/www.log" ]
verdict $? "the loopback server answers curl (so the refusals below are petcut's)"
: >"$tmp/www.log"

serve_start --data "$tmp/data" --allow-fetch-host "localhost,127.0.0.1,[::ffff:127.0.0.1],photos.invalid"

rb() { curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' -d "{\"image_url\":\"$1\"}" "$A/v1/remove-background"; }
msg() { python3 -c "import json; e=json.load(open('$tmp/body'))['error']; print(e['code'], '-', e['message'])" 2>/dev/null; }

for u in "http://localhost:$W/cat.jpg" "http://127.0.0.1:$W/cat.jpg" "http://[::ffff:127.0.0.1]:$W/cat.jpg"; do
	[ "$(rb "$u")" = 400 ] && msg | grep -q "address"
	verdict $? "$u (a listed host on loopback): 400 at connect ($(msg))"
done
[ ! -s "$tmp/www.log" ]
verdict $? "the loopback server saw no request from petcut ($(wc -l <"$tmp/www.log") lines)"
[ "$(rb "http://example.org/cat.jpg")" = 400 ] && msg | grep -q "not one this server fetches from"
verdict $? "a host not listed: 400 ($(msg))"
[ "$(rb "file:///etc/passwd")" = 400 ] && [ "$(rb "ftp://localhost:$W/cat.jpg")" = 400 ] && msg | grep -q "http or https"
verdict $? "file: and ftp: URLs: 400 ($(msg))"
[ "$(rb "http://photos.invalid/cat.jpg")" = 422 ]
verdict $? "a listed name that does not resolve: 422 ($(msg))"
[ "$(rb "not a url")" = 400 ]
verdict $? "not a URL: 400 ($(msg))"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$A/healthz")" = 200 ]
verdict $? "the server still answers"

finish
