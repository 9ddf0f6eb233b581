#!/bin/bash
# test_serve_s3.sh - petcut serve with its store in a bucket of a real
# S3-compatible server (s3rver on loopback, installed by scripts/test-setup.sh
# into BUILD/s3-tests), over real HTTP: uploads (plain and resumable) land in
# the bucket and only local state stays under --data; remove-background and
# the result come back through the bucket; with the S3 server stopped every
# route that needs the store answers 503 with Retry-After, /readyz is not
# ready, and nothing partial is stored; with it back, all is as before.
#
#   tests/sh/test_serve_s3.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
. tests/sh/lib.sh
need curl python3
need_s3rver

BUCKET=petcut
PREFIX=shop
OBJ=$tmp/s3/$BUCKET/$PREFIX # where s3rver keeps the objects, as NS/KEY._S3rver_object

S3_BUCKET=$BUCKET
s3_start
# short limits keep the down case quick
export PETCUT_S3_RETRIES=1 PETCUT_S3_CONNECT_TIMEOUT_MS=500 PETCUT_S3_TIMEOUT_MS=10000
# no memory tier: here every read must reach the bucket, so that its failures
# show (test_memory_tier.sh checks what the tier serves while it is down)
serve_start --data "$tmp/data" --store "s3://$BUCKET/$PREFIX" --s3-endpoint "http://127.0.0.1:$S3PORT" \
	--memory-cache-mb 0

# status CODE of a curl call; the body goes to $tmp/body, the headers to $tmp/headers
req() { curl -s -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "$@"; }
field() { python3 -c "import json,sys; print(json.load(open('$tmp/body'))$1)"; }
retry_after() { grep -qi '^Retry-After: [0-9]' "$tmp/headers"; }
rb() { req -H 'Content-Type: application/json' -d "$1" "$A/v1/remove-background"; }

check "readyz 200 with the bucket reachable" [ "$(req "$A/readyz")" = 200 ]
photo=samples/chelsea.jpg
sha=$(sha256sum "$photo" | cut -d' ' -f1)
[ "$(req -H 'Content-Type: image/jpeg' --data-binary @$photo "$A/v1/images")" = 201 ] && [ "$(field "['id']")" = "$sha" ]
verdict $? "upload: 201, the id is the SHA-256"
check "the photo is an object in the bucket under PREFIX/img/ID" cmp -s "$OBJ/img/$sha._S3rver_object" "$photo"
check "the same bytes again: 200 (found in the bucket)" \
	[ "$(req -H 'Content-Type: image/jpeg' --data-binary @$photo "$A/v1/images")" = 200 ]
[ "$(req "$A/v1/images/$sha")" = 200 ] && cmp -s "$tmp/body" "$photo"
verdict $? "GET the original from the bucket: the same bytes"
[ "$(req "$A/v1/images/$sha?max=128&format=jpeg")" = 200 ] &&
	[ "$(head -c 3 "$tmp/body" | od -An -tx1 | tr -d ' ')" = ffd8ff ]
verdict $? "a thumbnail, made from the bucket's copy"
check "--data holds only local state (uploads/, tmp/), no objects" \
	[ "$(cd "$tmp/data" && find . -mindepth 1 -maxdepth 1 | sort | tr '\n' ' ')" = "./tmp ./uploads " ]

# resumable upload: its partial state is a local file, the image an object
small=$tmp/small.png
python3 - "$small" <<'PY'
import struct, sys, zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
raw = b''.join(b'\0' + bytes((x * 7 + y * 3) % 256 for x in range(48) for _ in range(3)) for y in range(32))
open(sys.argv[1], 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 48, 32, 8, 2, 0, 0, 0))
                              + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
PY
ssha=$(sha256sum "$small" | cut -d' ' -f1)
T='Tus-Resumable: 1.0.0'
code=$(req -X POST -H "$T" -H "Upload-Length: $(stat -c %s "$small")" "$A/v1/uploads")
loc=$(sed -n 's/^Location: *\([^\r]*\).*/\1/Ip' "$tmp/headers")
[ "$code" = 201 ] && [ -n "$(ls "$tmp/data/uploads")" ]
verdict $? "tus creation: 201, its state under DATA/uploads"
code=$(req -X PATCH -H "$T" -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' \
	--data-binary @"$small" "$A$loc")
[ "$code" = 204 ] && grep -qi "^Petcut-Image-Id: $ssha" "$tmp/headers" && cmp -s "$OBJ/img/$ssha._S3rver_object" "$small"
verdict $? "tus: the last PATCH makes the image an object in the bucket"

model_ok=1
[ "$(req "$A/readyz")" = 200 ] && [ -n "$(ls "${PETCUT_MODELS:-$HOME/.cache/petcut/models}"/isnet-medium.onnx 2>/dev/null)" ] ||
	{ model_ok=0; echo "# skipped remove-background checks: no model (petcut model fetch)"; }
if [ $model_ok = 1 ]; then
	[ "$(rb "{\"image_id\":\"$sha\",\"size\":\"preview\"}")" = 200 ] &&
		[ "$(field "['cached']")" = False ]
	verdict $? "remove-background by id: 200"
	rid=$(field "['result_id']")
	[ -s "$OBJ/res/$rid._S3rver_object" ] && [ -s "$OBJ/resmeta/$rid._S3rver_object" ]
	verdict $? "the result and its figures are objects in the bucket"
	[ "$(req "$A/v1/results/$rid")" = 200 ] &&
		cmp -s "$tmp/body" "$OBJ/res/$rid._S3rver_object" && python3 - "$tmp/body" <<'PY'
import struct, sys
b = open(sys.argv[1], 'rb').read()
assert b[:8] == b'\x89PNG\r\n\x1a\n' and struct.unpack('>IIBB', b[16:26]) == (451, 300, 8, 6)
PY
	verdict $? "GET the result: a PNG with alpha, the bucket's bytes"
	[ "$(rb "{\"image_id\":\"$sha\",\"size\":\"preview\"}")" = 200 ] &&
		[ "$(field "['cached']")" = True ]
	verdict $? "the same request again: cached"
fi

# ===== the S3 server stops =====
s3_stop
other=$tmp/other.jpg
{ cat "$photo"; printf 'another photo'; } >"$other"
osha=$(sha256sum "$other" | cut -d' ' -f1)
t0=$(date +%s.%N)
code=$(req -H 'Content-Type: image/jpeg' --data-binary @"$other" "$A/v1/images")
t1=$(date +%s.%N)
[ "$code" = 503 ] && [ "$(field "['error']['code']")" = storage_unavailable ] && retry_after &&
	python3 -c "assert $t1 - $t0 < 5"
verdict $? "S3 down: upload 503 storage_unavailable with Retry-After, within 5 s"
[ "$(req "$A/readyz")" = 503 ] && retry_after
verdict $? "S3 down: readyz 503 with Retry-After"
[ "$(req "$A/v1/images/$sha")" = 503 ] && retry_after
verdict $? "S3 down: GET an image 503 with Retry-After"
if [ $model_ok = 1 ]; then
	[ "$(rb "{\"image_id\":\"$sha\",\"size\":\"full\"}")" = 503 ] && retry_after
	verdict $? "S3 down: remove-background 503 with Retry-After"
	[ "$(req "$A/v1/results/$rid")" = 503 ] && retry_after
	verdict $? "S3 down: GET a result 503"
fi
check "S3 down: healthz still 200 (the process is fine)" [ "$(req "$A/healthz")" = 200 ]

# ===== and comes back on the same port =====
s3_start "$S3PORT"
ok=0
for _ in $(seq 50); do
	[ "$(req "$A/readyz")" = 200 ] && { ok=1; break; }
	sleep 0.2
done
check "S3 back: readyz 200 again" [ $ok = 1 ]
check "the upload refused while S3 was down left no object" [ ! -e "$OBJ/img/$osha._S3rver_object" ]
[ "$(req -H 'Content-Type: image/jpeg' --data-binary @"$other" "$A/v1/images")" = 201 ] &&
	cmp -s "$OBJ/img/$osha._S3rver_object" "$other"
verdict $? "S3 back: the same upload is 201"
if [ $model_ok = 1 ]; then
	check "S3 back: remove-background (full) 200" [ "$(rb "{\"image_id\":\"$sha\",\"size\":\"full\"}")" = 200 ]
	check "S3 back: the earlier result is served" [ "$(req "$A/v1/results/$rid")" = 200 ]
fi
check "no partial objects: every image object holds the bytes its name says" python3 - "$OBJ/img" <<'PY'
import hashlib, os, sys
names = [n for n in os.listdir(sys.argv[1]) if n.endswith('._S3rver_object')]
assert len(names) >= 3, names
for n in names:
    key = n.split('.')[0]
    assert hashlib.sha256(open(os.path.join(sys.argv[1], n), 'rb').read()).hexdigest() == key, n
PY

kill -TERM "$pid"
wait "$pid"
rc=$?
lib_forget "$pid"
check "SIGTERM: exits 0 ($rc)" [ $rc = 0 ]
check "no spooled bytes are left in DATA/tmp" [ -z "$(ls -A "$tmp/data/tmp")" ]
if [ "$fails" -gt 0 ]; then
	echo "the server's log ends:"
	tail -20 "$tmp/log"
fi
finish
