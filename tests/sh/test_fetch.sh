#!/bin/bash
# test_fetch.sh - image_url (and a background image's URL: bg, remove.bg's
# bg_image_url) from other hosts over real HTTP. petcut serve
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
# a background image at another host's URL goes through the same fetch
sha=$(sha256sum samples/chelsea.jpg | cut -d' ' -f1)
curl -s -o /dev/null -H 'Content-Type: image/jpeg' --data-binary @samples/chelsea.jpg "$A/v1/images"
bg() { curl -s -o "$tmp/body" -w '%{http_code}' -H 'Content-Type: application/json' -d "{\"image_id\":\"$sha\",\"bg\":\"$1\"}" "$A/v1/remove-background"; }
: >"$tmp/www.log"
{ [ "$(bg "http://localhost:$W/cat.jpg")" = 400 ] && msg | grep -q "address" && [ ! -s "$tmp/www.log" ]; }
verdict $? "bg at a listed host on loopback: 400 at connect, no request made ($(msg))"
{ [ "$(bg "http://example.org/cat.jpg")" = 400 ] && msg | grep -q "not one this server fetches from"; }
verdict $? "bg at a host not listed: 400 ($(msg))"
{ [ "$(bg "ftp://localhost:$W/cat.jpg")" = 400 ] && msg | grep -q "bg is a colour"; }
verdict $? "bg that is neither a colour, an id nor an http(s) URL: 400 ($(msg))"
code=$(curl -s -o "$tmp/body" -w '%{http_code}' -F image_file=@samples/chelsea.jpg -F size=preview \
	-F "bg_image_url=http://localhost:$W/cat.jpg" "$A/v1.0/removebg")
{ [ "$code" = 400 ] && python3 -c "import json; t=json.load(open('$tmp/body'))['errors'][0]['title']; assert 'address' in t, t" &&
	[ ! -s "$tmp/www.log" ]; }
verdict $? "remove.bg's bg_image_url: the same fetch rules (400 at connect, no request made)"

[ "$(curl -s -o /dev/null -w '%{http_code}' "$A/healthz")" = 200 ]
verdict $? "the server still answers"

finish
