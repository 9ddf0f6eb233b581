#!/bin/bash
# test_tus.sh - resumable uploads (tus 1.0) on petcut serve, over real HTTP:
# the protocol's refusals (412, 409, 415, 413, 460) leave the offset as it
# was, a cut-off PATCH resumes from the server's offset, a partial upload
# survives a restart, a finished upload is the same image as a plain upload
# of the same bytes, termination and expiration.
#
#   tests/sh/test_tus.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
. tests/sh/lib.sh
need curl python3

# start DATA_DIR [SERVE OPTIONS]: a server on a free port; its URL in $A
start() {
	local data=$1
	shift
	serve_start --data "$data" "$@"
}
stop() {
	kill -TERM "$pid"
	wait "$pid"
	pid=
}

T='Tus-Resumable: 1.0.0'
OCT='Content-Type: application/offset+octet-stream'
# tus CURL-ARGS...: the status; headers in $tmp/h, body in $tmp/body
tus() { curl -s -D "$tmp/h" -o "$tmp/body" -w '%{http_code}' "$@"; }
hdr() { sed -n "s/^$1: *//Ip" "$tmp/h" | tr -d '\r'; }
code() { python3 -c "import json; print(json.load(open('$tmp/body'))['error']['code'])" 2>/dev/null; }
offset() { tus -I -H "$T" "$A$1" >/dev/null; hdr Upload-Offset; }

# a photo of ~700 KB: the sample and random bytes after it (still a JPEG)
head -c 700000 /dev/urandom >"$tmp/noise"
cat samples/chelsea.jpg "$tmp/noise" >"$tmp/photo.jpg"
size=$(stat -c %s "$tmp/photo.jpg")
half=$((size / 2))
sha=$(sha256sum "$tmp/photo.jpg" | cut -d' ' -f1)
head -c $half "$tmp/photo.jpg" >"$tmp/part1"
tail -c +$((half + 1)) "$tmp/photo.jpg" >"$tmp/part2"

start "$tmp/data" --max-upload-mb 1

{ [ "$(tus -X OPTIONS "$A/v1/uploads")" = 204 ] && [ "$(hdr Tus-Version)" = 1.0.0 ] &&
	hdr Tus-Extension | grep -q 'creation,checksum,termination,expiration' && [ "$(hdr Tus-Max-Size)" = 1048576 ] &&
	[ "$(hdr Tus-Checksum-Algorithm)" = sha256 ]; }; verdict $? "OPTIONS: 204 with Tus-Version, Tus-Extension (checksum...), Tus-Max-Size"
{ [ "$(tus -X OPTIONS -H 'Origin: http://shop.example' -H 'Access-Control-Request-Method: PATCH' \
		-H 'Access-Control-Request-Headers: tus-resumable,upload-offset,upload-checksum,content-type' "$A/v1/uploads/$(printf 'a%.0s' $(seq 32))")" = 204 ] &&
	[ "$(hdr Access-Control-Allow-Origin)" = '*' ] && hdr Access-Control-Allow-Methods | grep -q PATCH &&
	hdr Access-Control-Allow-Headers | grep -q 'Upload-Offset' && hdr Access-Control-Allow-Headers | grep -q 'Upload-Checksum'; }; verdict $? "a CORS preflight for a PATCH: 204 allowing any origin, PATCH and the tus headers"
{ [ "$(tus -X POST -H "Upload-Length: $size" "$A/v1/uploads")" = 412 ] && [ "$(hdr Tus-Version)" = 1.0.0 ] &&
	[ "$(code)" = unsupported_version ]; }; verdict $? "creation without Tus-Resumable: 412 with Tus-Version and a JSON error"
check "creation over Tus-Max-Size: 413" [ "$(tus -X POST -H "$T" -H 'Upload-Length: 2000000' "$A/v1/uploads")" = 413 ]
check "creation without Upload-Length: 400" [ "$(tus -X POST -H "$T" "$A/v1/uploads")" = 400 ]
check "creation with a malformed Upload-Length: 400" [ "$(tus -X POST -H "$T" -H 'Upload-Length: -5' "$A/v1/uploads")" = 400 ]
check "creation with malformed Upload-Metadata: 400" \
	[ "$(tus -X POST -H "$T" -H "Upload-Length: $size" -H 'Upload-Metadata: filename not*base64' "$A/v1/uploads")" = 400 ]
{ [ "$(tus -X POST -H "$T" -H "Upload-Length: $size" -H 'Upload-Metadata: filename cGhvdG8uanBn,filetype aW1hZ2UvanBlZw==' "$A/v1/uploads")" = 201 ] &&
	hdr Location | grep -Eq '^/v1/uploads/[0-9a-f]{32}$' && [ -n "$(hdr Upload-Expires)" ]; }; verdict $? "creation: 201 with a Location and Upload-Expires"
U=$(hdr Location)
{ [ "$(hdr Access-Control-Allow-Origin)" = '*' ] && hdr Access-Control-Expose-Headers | grep -q 'Location, Upload-Offset' &&
	hdr Access-Control-Expose-Headers | grep -q 'Petcut-Image-Id'; }; verdict $? "answers expose the tus headers to pages of other origins"
{ [ "$(tus -I -H "$T" "$A$U")" = 200 ] && [ "$(hdr Upload-Offset)" = 0 ] && [ "$(hdr Upload-Length)" = "$size" ] &&
	[ "$(hdr Upload-Metadata)" = 'filename cGhvdG8uanBn,filetype aW1hZ2UvanBlZw==' ] && [ "$(hdr Cache-Control)" = no-store ]; }; verdict $? "HEAD: offset 0, the length, the metadata, Cache-Control: no-store"
check "HEAD without Tus-Resumable: 412" [ "$(tus -I "$A$U")" = 412 ]
{ [ "$(tus -X PATCH -H "$OCT" -H 'Upload-Offset: 0' --data-binary @"$tmp/part1" "$A$U")" = 412 ] && [ "$(offset "$U")" = 0 ]; }; verdict $? "PATCH without Tus-Resumable: 412, offset still 0"
{ [ "$(tus -X PATCH -H "$T" -H 'Content-Type: application/octet-stream' -H 'Upload-Offset: 0' --data-binary @"$tmp/part1" "$A$U")" = 415 ] &&
	[ "$(code)" = unsupported_media_type ] && [ "$(offset "$U")" = 0 ]; }; verdict $? "PATCH with Content-Type application/octet-stream: 415, offset still 0"
{ [ "$(tus -X PATCH -H "$T" -H "$OCT" -H 'Upload-Offset: 100' --data-binary @"$tmp/part1" "$A$U")" = 409 ] &&
	[ "$(code)" = offset_mismatch ] && [ "$(offset "$U")" = 0 ]; }; verdict $? "PATCH at the wrong offset: 409, offset still 0"
{ [ "$(tus -X PATCH -H "$T" -H "$OCT" -H 'Upload-Offset: 0' -H "Upload-Checksum: sha256 $(b64sha "$tmp/part2")" --data-binary @"$tmp/part1" "$A$U")" = 460 ] &&
	[ "$(code)" = checksum_mismatch ] && [ "$(offset "$U")" = 0 ]; }; verdict $? "PATCH with a checksum that does not match: 460, offset still 0"
check "PATCH with an unsupported checksum algorithm: 400" \
	[ "$(tus -X PATCH -H "$T" -H "$OCT" -H 'Upload-Offset: 0' -H 'Upload-Checksum: md5 AAAAAAAAAAAAAAAAAAAAAA==' --data-binary @"$tmp/part1" "$A$U")" = 400 ]
{ [ "$(tus -X PATCH -H "$T" -H "$OCT" -H 'Upload-Offset: 0' -H "Upload-Checksum: sha256 $(b64sha "$tmp/part1")" --data-binary @"$tmp/part1" "$A$U")" = 204 ] &&
	[ "$(hdr Upload-Offset)" = $half ] && [ "$(offset "$U")" = $half ]; }; verdict $? "PATCH of the first half with its checksum: 204, Upload-Offset $half"
cat "$tmp/part2" "$tmp/part2" >"$tmp/toolong"
{ [ "$(tus -X PATCH -H "$T" -H "$OCT" -H "Upload-Offset: $half" --data-binary @"$tmp/toolong" "$A$U")" = 413 ] &&
	[ "$(offset "$U")" = $half ]; }; verdict $? "PATCH past Upload-Length: 413, offset still $half"

# A PATCH cut off mid-body: python sends the headers and some bytes, then
# closes. cutoff URL OFFSET BYTES_SENT [CHECKSUM_FILE]
cutoff() {
	python3 - "$A" "$1" "$2" "$3" "$tmp/part2" "${4:-}" <<'PY'
import base64, hashlib, socket, sys, time, urllib.parse
base, path, offset, sent, part, ck = sys.argv[1:7]
u = urllib.parse.urlparse(base)
body = open(part, 'rb').read()
s = socket.create_connection((u.hostname, u.port))
head = (f'PATCH {path} HTTP/1.1\r\nHost: {u.netloc}\r\nTus-Resumable: 1.0.0\r\n'
        f'Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {len(body)}\r\n')
if ck:
    head += 'Upload-Checksum: sha256 ' + base64.b64encode(hashlib.sha256(open(ck, 'rb').read()).digest()).decode() + '\r\n'
s.sendall((head + '\r\n').encode())
s.sendall(body[:int(sent)])
time.sleep(0.5)
s.close()
PY
}
cutoff "$U" $half 100000 "$tmp/part2"
sleep 0.5
check "a PATCH with a checksum cut off after 100000 bytes: dropped, offset still $half" [ "$(offset "$U")" = $half ]
cutoff "$U" $half 100000
sleep 0.5
got=$(offset "$U")
{ [ "$got" -gt $half ] && [ "$got" -le $((half + 100000)) ]; }; verdict $? "a PATCH without a checksum cut off after 100000 bytes: kept (offset $got, from $half)"

# a partial upload survives a restart
stop
start "$tmp/data" --max-upload-mb 1
check "after a restart: HEAD says the same offset ($got)" [ "$(offset "$U")" = "$got" ]
tail -c +$((got + 1)) "$tmp/photo.jpg" >"$tmp/rest"
{ [ "$(tus -X PATCH -H "$T" -H "$OCT" -H "Upload-Offset: $got" -H "Upload-Checksum: sha256 $(b64sha "$tmp/rest")" --data-binary @"$tmp/rest" "$A$U")" = 204 ] &&
	[ "$(hdr Upload-Offset)" = "$size" ] && [ "$(hdr Petcut-Image-Id)" = "$sha" ] && [ "$(hdr Petcut-Image-Url)" = "/v1/images/$sha" ]; }; verdict $? "PATCH of the rest: 204, Upload-Offset $size, Petcut-Image-Id = the SHA-256 of the bytes"
{ curl -sf -o "$tmp/back" "$A/v1/images/$sha" && cmp -s "$tmp/back" "$tmp/photo.jpg"; }; verdict $? "the stored image has the same bytes"
{ [ "$(tus -H 'Content-Type: image/jpeg' --data-binary @"$tmp/photo.jpg" "$A/v1/images")" = 200 ] &&
	python3 -c "import json; assert json.load(open('$tmp/body'))['id'] == '$sha'"; }; verdict $? "a plain upload of the same bytes: the same id, already stored (200)"
{ [ "$(tus -I -H "$T" "$A$U")" = 200 ] && [ "$(hdr Upload-Offset)" = "$size" ] && [ "$(hdr Petcut-Image-Id)" = "$sha" ]; }; verdict $? "HEAD after the end: offset = length, and the image id"
check "a PATCH after the end: 409" \
	[ "$(tus -X PATCH -H "$T" -H "$OCT" -H 'Upload-Offset: 0' --data-binary @"$tmp/part1" "$A$U")" = 409 ]
check "no partial data is kept once finished" [ ! -e "$tmp/data/uploads/${U##*/}.data" ]

# one PATCH at a time per upload
tus -X POST -H "$T" -H "Upload-Length: $size" "$A/v1/uploads" >/dev/null
V=$(hdr Location)
python3 - "$A" "$V" "$tmp/part1" <<'PY' &
import socket, sys, time, urllib.parse
base, path, part = sys.argv[1:4]
u = urllib.parse.urlparse(base)
body = open(part, 'rb').read()
s = socket.create_connection((u.hostname, u.port))
s.sendall((f'PATCH {path} HTTP/1.1\r\nHost: {u.netloc}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\n'
           f'Upload-Offset: 0\r\nContent-Length: {len(body)}\r\n\r\n').encode())
s.sendall(body[:1000])
time.sleep(1.5)
s.close()
PY
slow=$!
sleep 0.5
check "a second PATCH while one is in flight: 423" \
	[ "$(tus -X PATCH -H "$T" -H "$OCT" -H 'Upload-Offset: 0' --data-binary @"$tmp/part1" "$A$V")" = 423 ]
check "DELETE while a PATCH is in flight: 423" [ "$(tus -X DELETE -H "$T" "$A$V")" = 423 ]
wait $slow
sleep 0.3
{ [ "$(tus -X DELETE -H "$T" "$A$V")" = 204 ] && [ "$(tus -I -H "$T" "$A$V")" = 404 ] &&
	[ -z "$(ls "$tmp/data/uploads" | grep "${V##*/}")" ]; }; verdict $? "termination: DELETE 204, then HEAD 404 and no files left"
check "an upload id that is not one: 400" [ "$(tus -I -H "$T" "$A/v1/uploads/NOT-AN-ID")" = 400 ]
check "an unknown upload: 404" [ "$(tus -X PATCH -H "$T" -H "$OCT" -H 'Upload-Offset: 0' -d x "$A/v1/uploads/$(printf 'a%.0s' $(seq 32))")" = 404 ]
check "GET on an upload: 405" [ "$(tus -H "$T" "$A$U")" = 405 ]

# bytes that are not an image: refused at the end, nothing stored
printf 'this is not a photo at all\n' >"$tmp/text"
tus -X POST -H "$T" -H "Upload-Length: $(stat -c %s "$tmp/text")" "$A/v1/uploads" >/dev/null
W=$(hdr Location)
{ [ "$(tus -X PATCH -H "$T" -H "$OCT" -H 'Upload-Offset: 0' --data-binary @"$tmp/text" "$A$W")" = 415 ] &&
	[ "$(code)" = not_an_image ] && [ "$(tus -I -H "$T" "$A$W")" = 404 ] &&
	[ "$(tus "$A/v1/images/$(sha256sum "$tmp/text" | cut -d' ' -f1)")" = 404 ]; }; verdict $? "a finished upload that is not an image: 415 with a JSON error, the upload gone"
req_metrics=$(curl -s "$A/metrics")
check "metrics count tus requests by route" grep -q 'petcut_http_requests_total{route="/v1/uploads/{id}",method="PATCH",status="204"}' <<<"$req_metrics"
stop

# expiration: uploads idle longer than PETCUT_UPLOAD_EXPIRE_S are gone
PETCUT_UPLOAD_EXPIRE_S=1 start "$tmp/data4"
tus -X POST -H "$T" -H "Upload-Length: $size" "$A/v1/uploads" >/dev/null
X=$(hdr Location)
check "a fresh upload: HEAD 200" [ "$(tus -I -H "$T" "$A$X")" = 200 ]
sleep 2.2
{ [ "$(tus -I -H "$T" "$A$X")" = 410 ] && [ -z "$(ls "$tmp/data4/uploads")" ]; }; verdict $? "idle past its expiry: 410, and its files removed"
tus -X POST -H "$T" -H "Upload-Length: $size" "$A/v1/uploads" >/dev/null
Y=$(hdr Location)
stop
sleep 2.2
PETCUT_UPLOAD_EXPIRE_S=1 start "$tmp/data4"
left=$(ls "$tmp/data4/uploads")
check "expired uploads are swept at start-up (left: ${left:-none})" [ -z "$left" ]
stop

# the upload folder unusable (a file in its place): 503 with Retry-After, and back once it returns
start "$tmp/data3"
mv "$tmp/data3/uploads" "$tmp/uploads.saved" && touch "$tmp/data3/uploads"
{ [ "$(tus -X POST -H "$T" -H 'Upload-Length: 10' "$A/v1/uploads")" = 503 ] && [ -n "$(hdr Retry-After)" ]; }
verdict $? "the upload folder unusable: creation 503 with Retry-After ($(hdr Retry-After))"
rm -f "$tmp/data3/uploads" && mv "$tmp/uploads.saved" "$tmp/data3/uploads"
[ "$(tus -X POST -H "$T" -H 'Upload-Length: 10' "$A/v1/uploads")" = 201 ]
verdict $? "the folder back: creation 201"
stop

finish
