#!/bin/bash
# test_tus_shared.sh - resumable uploads that any instance continues, with
# real servers on loopback (Ceph's radosgw for the bucket: it has every
# multipart call S3 has; redis-server for the records and locks) and three
# petcut instances, as behind a load balancer without affinity:
#   - an upload of a 12 MB photo made on A, cut at 40 %, resumed with HEAD
#     and PATCH on B, cut again, finished on C: the image's id is its
#     SHA-256, its object holds the bytes, and nothing else is left in the
#     bucket (no tail, no multipart upload);
#   - two PATCHes of one upload at once on A and B: one proceeds, the other
#     gets 423, and the bytes are never interleaved;
#   - A killed with SIGKILL in the middle of a PATCH: B continues from the
#     offset recorded (after A's lock expires) and the image is right;
#   - an upload abandoned past its expiry: its record, its index entry, its
#     tail and its multipart upload (ListMultipartUploads) are gone once an
#     instance sweeps.
#
#   tests/sh/test_tus_shared.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
. tests/sh/lib.sh
need curl python3 redis-server redis-cli
need_rgw

rgw_start
redis_start
unset PETCUT_LISTEN
export PETCUT_TUS_LOCK_MS=2000 PETCUT_TUS_SWEEP_MS=0
common=(--store s3://petcut/shop --s3-endpoint "http://127.0.0.1:$S3PORT" --redis "redis://127.0.0.1:$RPORT/0"
	--model none)
for n in A B C; do petcut_start "$n" serve --data "$tmp/data-$n" "${common[@]}"; done

T='Tus-Resumable: 1.0.0'
req() { curl -s -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' "$@"; }
hdr() { sed -n "s/^$1: *\\([^\\r]*\\).*/\\1/Ip" "$tmp/headers"; }
create() { # create URL FILE: the upload's path in $up
	req -X POST -H "$T" -H "Upload-Length: $(stat -c %s "$2")" "$1/v1/uploads" >/dev/null
	up=$(hdr Location)
}
offset() { req -I -H "$T" "$1$up" >/dev/null && hdr Upload-Offset; }
# settled URL: the offset on URL once the instance that saw a PATCH cut has
# stored what came and let the upload's lock (petcut:tus:lock:ID) go
settled() {
	for _ in $(seq 300); do
		[ "$(redis-cli -p "$RPORT" exists "petcut:tus:lock:${up##*/}")" = 0 ] && break
		sleep 0.1
	done
	offset "$1"
}

# a 2000x2000 PNG of noise, stored (12 MB): more than two parts of 5 MiB
photo=$tmp/photo.png
python3 - "$photo" <<'PY'
import os, struct, sys, zlib
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
raw = b''.join(b'\0' + os.urandom(2000 * 3) for _ in range(2000))
open(sys.argv[1], 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 2000, 2000, 8, 2, 0, 0, 0))
                              + chunk(b'IDAT', zlib.compress(raw, 0)) + chunk(b'IEND', b''))
PY
size=$(stat -c %s "$photo")
sha=$(sha256sum "$photo" | cut -d' ' -f1)

# patch.py URL OFFSET FILE END [RATE]: a PATCH of FILE's bytes OFFSET.. (all
# of them announced in Content-Length) that sends only up to END and then
# cuts the connection (END = size: a whole PATCH, whose status and headers
# it prints); RATE, bytes a second, sends slowly
cat >"$tmp/patch.py" <<'PY'
import socket, sys, time, urllib.parse
url, off, path, end = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0
data = open(path, 'rb').read()
u = urllib.parse.urlsplit(url)
s = socket.create_connection((u.hostname, u.port))
s.sendall(('PATCH %s HTTP/1.1\r\nHost: %s\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: %d\r\n'
           'Content-Type: application/offset+octet-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n'
           % (u.path, u.netloc, off, len(data) - off)).encode())
step = 1 << 16
for i in range(off, end, step):
    try:
        s.sendall(data[i:min(end, i + step)])
    except OSError:
        break
    if rate:
        time.sleep(step / rate)
if end < len(data):
    time.sleep(0.3)
    s.close()
    sys.exit(0)
s.settimeout(60)
out = b''
while True:
    try:
        b = s.recv(65536)
    except OSError:
        break
    if not b:
        break
    out += b
print(out.decode('latin-1').split('\r\n\r\n')[0].replace('\r', ''))
PY
patch() { python3 "$tmp/patch.py" "$@"; }

# ===== A → B → C =====
create "$A" "$photo"
check "creation on A: 201 and a Location" [ -n "$up" ]
cut1=$((size * 40 / 100))
patch "$A$up" 0 "$photo" $cut1
o1=$(settled "$B")
check "cut at 40 % on A: HEAD on B says $o1 of $cut1 sent are kept" python3 -c "assert 0 < ${o1:-0} <= $cut1"
cut2=$((size * 70 / 100))
patch "$B$up" "$o1" "$photo" $cut2
o2=$(settled "$C")
check "resumed on B and cut at 70 %: HEAD on C says $o2 (of $cut2 sent)" python3 -c "assert $o1 < ${o2:-0} <= $cut2"
out=$(patch "$C$up" "$o2" "$photo" "$size")
grep -q '^HTTP/1.1 204' <<<"$out" && grep -qi "^Petcut-Image-Id: $sha" <<<"$out"
verdict $? "finished on C: 204, the image id is the SHA-256 of the whole photo"
[ "$(s3_keys shop/img/)" = "shop/img/$sha" ] && s3api -o "$tmp/got" "/petcut/shop/img/$sha" && cmp -s "$tmp/got" "$photo"
verdict $? "the image is one object in the bucket, holding the photo's bytes"
check "no tail or multipart upload is left in the bucket" [ -z "$(s3_keys shop/tus)$(s3_uploads)" ]
check "HEAD on A after the end: offset = length, and the image id" \
	bash -c "[ \"\$(curl -s -I -H '$T' '$A$up' | tr -d '\\r' | sed -n 's/^Petcut-Image-Id: //Ip')\" = $sha ]"

# ===== two PATCHes at once =====
create "$A" "$photo"
patch "$A$up" 0 "$photo" "$size" 4000000 >"$tmp/slow.out" &
slow=$!
sleep 1
out=$(patch "$B$up" 0 "$photo" "$size")
grep -q '^HTTP/1.1 423' <<<"$out"
verdict $? "a second PATCH on B while A's is in flight: 423 Locked"
wait $slow
grep -q '^HTTP/1.1 204' "$tmp/slow.out" && grep -qi "^Petcut-Image-Id: $sha" "$tmp/slow.out"
verdict $? "A's PATCH ends 204 with the right image: the bytes were not interleaved"

# ===== A dies in a PATCH =====
create "$B" "$photo"
patch "$A$up" 0 "$photo" "$size" 3000000 >/dev/null 2>&1 &
slow=$!
for _ in $(seq 100); do [ "$(offset "$B")" -ge 5242880 ] 2>/dev/null && break; sleep 0.1; done
sleep 0.5
lib_kill "$pid_A"
wait $slow 2>/dev/null
o=$(offset "$B")
check "A killed with SIGKILL mid-PATCH: B says $o bytes are kept (at least a part)" python3 -c "assert ${o:-0} >= 5242880"
ok=0
for _ in $(seq 50); do
	out=$(patch "$B$up" "$o" "$photo" "$size")
	grep -q '^HTTP/1.1 423' <<<"$out" || { ok=1; break; }
	sleep 0.2
done
[ $ok = 1 ] && grep -q '^HTTP/1.1 204' <<<"$out" && grep -qi "^Petcut-Image-Id: $sha" <<<"$out"
verdict $? "B continues from the recorded offset once A's lock expires: 204, the right image"

# ===== expiry =====
export PETCUT_UPLOAD_EXPIRE_S=2
petcut_start D serve --data "$tmp/data-d" "${common[@]}"
unset PETCUT_UPLOAD_EXPIRE_S
six=$((6 * 1048576))
create "$D" "$photo"
id=${up##*/}
patch "$D$up" 0 "$photo" $six
o=$(settled "$D")
check "6 MiB sent to D and cut: $o kept (a part and a tail)" python3 -c "assert 5242880 < ${o:-0} <= $six"
[ "$(redis-cli -p "$RPORT" exists "petcut:tus:$id")" = 1 ] && [ -n "$(s3_keys shop/tustail/)" ] &&
	[ "$(s3_uploads | grep -c '^shop/tus/')" = 1 ]
verdict $? "its record, its tail and its multipart upload ($(s3_uploads | tr '\n' ' ')) exist"
sleep 3
create "$D" "$photo" # a creation sweeps
[ "$(redis-cli -p "$RPORT" exists "petcut:tus:$id")" = 0 ] && [ -z "$(redis-cli -p "$RPORT" zscore petcut:tus:expiry "$id")" ] &&
	[ -z "$(redis-cli -p "$RPORT" --scan --pattern "*$id*")" ]
verdict $? "past its expiry: its record and index entry are gone, no key in Redis names it"
check "and its tail" [ -z "$(s3_keys shop/tus)" ]
check "and its multipart upload: ListMultipartUploads lists none" [ -z "$(s3_uploads)" ]

for n in B C D; do eval "lib_stop \$pid_$n"; done
finish
