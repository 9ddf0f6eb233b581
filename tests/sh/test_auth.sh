#!/bin/bash
# test_auth.sh - API keys over real HTTP: with --api-key-file, the /v1
# routes want one of the file's keys (X-Api-Key or Authorization: Bearer);
# without one, or with a wrong one, they answer 401 with a JSON error and
# store nothing; health, metrics and the web page stay open, and stored
# images stay readable by their (SHA-256) URL. Two keys in the file both
# work (rotation), and a file with a short key keeps the server from starting.
#
#   tests/sh/test_auth.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1

. tests/sh/lib.sh
need curl python3

OLD=old-key-0123456789abcdef
NEW=new-key-fedcba9876543210
printf '# keys of the shop, one a line\n%s\n\n%s\n' "$OLD" "$NEW" >"$tmp/keys"
printf 'short\n' >"$tmp/short"

"$PETCUT" serve --listen 127.0.0.1:0 --data "$tmp/bad" --api-key-file "$tmp/short" >/dev/null 2>"$tmp/err"
[ $? -ne 0 ] && grep -q "16 to 256" "$tmp/err"
verdict $? "a key file with a 5-character key: the server does not start ($(head -1 "$tmp/err"))"

serve_start --data "$tmp/data" --api-key-file "$tmp/keys"

req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
code() { python3 -c "import json; print(json.load(open('$tmp/body'))['error']['code'])" 2>/dev/null; }
photo=samples/chelsea.jpg
sha=$(sha256sum "$photo" | cut -d' ' -f1)
up() { req -H 'Content-Type: image/jpeg' --data-binary @"$photo" "$@" "$A/v1/images"; }

[ "$(up)" = 401 ] && [ "$(code)" = unauthorized ] && [ ! -e "$tmp/data/img" -o -z "$(ls -A "$tmp/data/img" 2>/dev/null)" ]
verdict $? "an upload without a key: 401 unauthorized, nothing stored"
[ "$(up -H "X-Api-Key: ${OLD}x")" = 401 ] && [ "$(up -H "X-Api-Key: ${OLD:0:20}")" = 401 ]
verdict $? "a wrong key, or the start of a right one: 401"
[ "$(up -H "Authorization: Basic $OLD")" = 401 ]
verdict $? "a key in another scheme than Bearer: 401"
[ "$(up -H "X-Api-Key: $OLD")" = 201 ] && python3 -c "import json; assert json.load(open('$tmp/body'))['id'] == '$sha'"
verdict $? "the old key in X-Api-Key: 201, stored under its SHA-256"
[ "$(up -H "Authorization: Bearer $NEW")" = 200 ]
verdict $? "the new key as a Bearer token: 200 (already stored)"
[ "$(req "$A/v1/images/$sha")" = 200 ] && cmp -s "$tmp/body" "$photo"
verdict $? "the stored image by its URL without a key: the same bytes"
[ "$(req -X DELETE "$A/v1/images/$sha")" = 401 ]
verdict $? "anything but GET on it without a key: 401"
[ "$(req -H 'Content-Type: application/json' -d "{\"image_id\":\"$sha\"}" "$A/v1/remove-background")" = 401 ]
verdict $? "remove-background without a key: 401"
[ "$(req -X POST -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 10' "$A/v1/uploads")" = 401 ]
verdict $? "a resumable upload without a key: 401"
[ "$(req "$A/healthz")" = 200 ] && [ "$(req "$A/metrics")" = 200 ] && [ "$(req "$A/")" = 200 ]
verdict $? "health, metrics and the web page need no key"
grep -q 'status="401"' "$tmp/body" 2>/dev/null || { req "$A/metrics" >/dev/null; grep -q 'status="401"' "$tmp/body"; }
verdict $? "the refusals are counted in /metrics"
! grep -q -- "$OLD\|$NEW" "$tmp/log"
verdict $? "no key appears in the server's log"

finish
