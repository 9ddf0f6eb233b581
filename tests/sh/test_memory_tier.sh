#!/bin/bash
# test_memory_tier.sh - the store's memory tier in front of a bucket (a real
# s3rver on loopback), over real HTTP: a removal's result and figures are
# held once made, so repeats make no store read (the misses stay put) and
# answer the bucket's bytes; with the S3 server stopped, hot results and
# photos are still served from memory while anything cold is 503; the
# figures are in /metrics, the bytes held never pass the limit, and with a
# small limit the least recently used objects make room (evictions) while
# every answer keeps its right bytes; --memory-cache-mb 0 turns it off.
#
#   tests/sh/test_memory_tier.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
. tests/sh/lib.sh
need curl python3
need_s3rver
"$PETCUT" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }

BUCKET=petcut
OBJ=$tmp/s3/$BUCKET/shop
S3_BUCKET=$BUCKET
s3_start
export PETCUT_S3_RETRIES=1 PETCUT_S3_CONNECT_TIMEOUT_MS=500 PETCUT_S3_TIMEOUT_MS=10000
bucket=(--store "s3://$BUCKET/shop" --s3-endpoint "http://127.0.0.1:$S3PORT")
petcut_start A serve --data "$tmp/data-a" "${bucket[@]}"

req() { curl -s -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "$@"; }
field() { python3 -c "import json,sys; print(json.load(open('$tmp/body'))$1)"; }
rb() { req -H 'Content-Type: application/json' -d "$2" "$1/v1/remove-background"; }
hits() { metric "$1" 'petcut_memory_cache_reads_total{outcome="hit"}'; }
misses() { metric "$1" 'petcut_memory_cache_reads_total{outcome="miss"}'; }
held() { metric "$1" "petcut_memory_cache{what=\"$2\"}"; }

check "the tier is on by default in front of a bucket: 128 MB" [ "$(held "$A" max_bytes)" = 134217728 ]
photo=samples/chelsea.jpg
sha=$(sha256sum "$photo" | cut -d' ' -f1)
check "upload: 201" [ "$(req -H 'Content-Type: image/jpeg' --data-binary @$photo "$A/v1/images")" = 201 ]
body="{\"image_id\":\"$sha\",\"size\":\"preview\"}"
[ "$(rb "$A" "$body")" = 200 ] && [ "$(field "['cached']")" = False ]
verdict $? "a removal: 200, made now"
rid=$(field "['result_id']")
h0=$(hits "$A") m0=$(misses "$A")
ok=1
for _ in 1 2 3 4 5; do
	[ "$(rb "$A" "$body")" = 200 ] && [ "$(field "['cached']")" = True ] || ok=0
done
h1=$(hits "$A") m1=$(misses "$A")
check "five repeats: 200, cached" [ $ok = 1 ]
check "the repeats read nothing from the bucket: misses stay at $m0 ($m1), hits go up by 10 or more ($h0 -> $h1)" \
	python3 -c "assert $m1 == $m0 and $h1 >= $h0 + 10"
[ "$(req "$A/v1/results/$rid")" = 200 ] && cmp -s "$tmp/body" "$OBJ/res/$rid._S3rver_object" &&
	grep -qi '^Content-Type: image/png' "$tmp/headers" && grep -qi "^ETag: \"$rid\"" "$tmp/headers"
verdict $? "GET the result: the bucket's bytes, its type and ETag"
[ "$(req -H 'Accept: image/png' -H 'Content-Type: application/json' -d "$body" "$A/v1/remove-background")" = 200 ] &&
	cmp -s "$tmp/body" "$OBJ/res/$rid._S3rver_object"
verdict $? "the image answer of a repeat: the same bytes"
check "the bytes held are within the limit" python3 -c "assert 0 < $(held "$A" bytes) <= $(held "$A" max_bytes)"

# ===== the bucket goes away: what is hot is still served =====
s3_stop
[ "$(req "$A/v1/results/$rid")" = 200 ] && cmp -s "$tmp/body" "$OBJ/res/$rid._S3rver_object"
verdict $? "S3 down: the hot result is served from memory, the same bytes"
[ "$(rb "$A" "$body")" = 200 ] && [ "$(field "['cached']")" = True ]
verdict $? "S3 down: the repeated removal answers from memory"
[ "$(req "$A/v1/images/$sha")" = 200 ] && cmp -s "$tmp/body" "$photo"
verdict $? "S3 down: the photo uploaded here is served from memory"
cold=$(printf '%064d' 7)
check "S3 down: an object never held is 503 (not a stale or made-up answer)" \
	[ "$(req "$A/v1/results/$cold")" = 503 ]
s3_start "$S3PORT"
lib_stop "$pid_A"

# ===== a small tier: the least recently used make room =====
petcut_start B serve --data "$tmp/data-b" "${bucket[@]}" --memory-cache-mb 1 --model none
check "--memory-cache-mb 1: the limit is 1 MB" [ "$(held "$B" max_bytes)" = 1048576 ]
python3 - "$tmp/pngs" <<'PY'
import os, struct, sys, zlib
os.makedirs(sys.argv[1])
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
for i in range(40):
    # 30 KB of noise each, so that 40 of them are more than 1 MB
    raw = b''.join(b'\0' + os.urandom(100 * 3) for _ in range(100))
    open(os.path.join(sys.argv[1], '%02d.png' % i), 'wb').write(
        b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 100, 100, 8, 2, 0, 0, 0))
        + chunk(b'IDAT', zlib.compress(raw, 0)) + chunk(b'IEND', b''))
raw = b''.join(b'\0' + os.urandom(300 * 3) for _ in range(300))  # 270 KB
open(os.path.join(sys.argv[1], 'big.png.keep'), 'wb').write(
    b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 300, 300, 8, 2, 0, 0, 0))
    + chunk(b'IDAT', zlib.compress(raw, 0)) + chunk(b'IEND', b''))
PY
ok=1
for f in "$tmp"/pngs/*.png; do
	[ "$(req -H 'Content-Type: image/png' --data-binary @"$f" "$B/v1/images")" = 201 ] || ok=0
done
check "40 uploads of 30 KB: 201" [ $ok = 1 ]
bad=0
for round in 1 2; do
	for f in "$tmp"/pngs/*.png; do
		id=$(sha256sum "$f" | cut -d' ' -f1)
		[ "$(req "$B/v1/images/$id")" = 200 ] && cmp -s "$tmp/body" "$f" || bad=$((bad + 1))
	done
done
check "every photo read back twice has its own bytes ($bad wrong)" [ $bad = 0 ]
check "the bytes held stay within 1 MB ($(held "$B" bytes))" python3 -c "assert 0 < $(held "$B" bytes) <= 1048576"
ev=$(metric "$B" petcut_memory_cache_evictions_total)
check "objects were evicted to make room ($ev)" python3 -c "assert $ev > 0"
check "fewer objects held than were read ($(held "$B" objects))" python3 -c "assert 0 < $(held "$B" objects) < 40"
bigf=$tmp/pngs/big.png.keep
big=$(sha256sum "$bigf" | cut -d' ' -f1)
n0=$(held "$B" objects)
[ "$(req -H 'Content-Type: image/png' --data-binary @"$bigf" "$B/v1/images")" = 201 ] &&
	[ "$(req "$B/v1/images/$big")" = 200 ] && cmp -s "$tmp/body" "$bigf" && [ "$(held "$B" objects)" = "$n0" ]
verdict $? "a photo over a sixteenth of the limit is served from the bucket and not held"
lib_stop "$pid_B"

# ===== off =====
petcut_start C serve --data "$tmp/data-c" "${bucket[@]}" --memory-cache-mb 0 --model none
[ "$(req "$C/v1/images/$big")" = 200 ] && cmp -s "$tmp/body" "$bigf" &&
	! curl -s "$C/metrics" | grep -q '^petcut_memory_cache'
verdict $? "--memory-cache-mb 0: no tier, no figures, the bucket's bytes"
lib_stop "$pid_C"
finish
