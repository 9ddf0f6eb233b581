#!/bin/bash
# test_faults.sh - petcut serve under faults, over real HTTP:
#   1. SIGKILL during 50 concurrent uploads (raw and tus), then a restart on
#      the same data folder;
#   2. network faults between client and server (tests/tools/faultproxy.py:
#      cut after 10 000 bytes, RST midway, a 5 kB/s trickle);
#   3. the disk full (a small tmpfs as the data folder);
#   4. the storage made read-only (the tmpfs remounted ro);
#   5. the inference worker failing (a model that loads but cannot run);
#   6. SIGTERM under load (the drain, then its bound).
# Each case counts the objects lost (acknowledged but not readable with
# their SHA-256) and corrupted (a file under a real name that does not hash
# to it); both must be 0. Cases 3 and 4 need to mount a tmpfs (root): where
# that is refused they are skipped, and the output says why.
#
#   tests/sh/test_faults.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
. tests/sh/lib.sh
need curl python3

mnt=
faults_cleanup() {
	local rc=$?
	[ -n "$mnt" ] && umount "$mnt" 2>/dev/null
	lib_cleanup "$rc"
}
trap faults_cleanup EXIT

T='Tus-Resumable: 1.0.0'
summary=()

# serve [OPTIONS]: serve_start, never reading the address of the server before
serve() {
	: >"$tmp/out"
	serve_start "$@"
}

# status CODE of a curl call; the body goes to $tmp/body
req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
field() { python3 -c "import json,sys; print(json.load(open('$tmp/body'))$1)" 2>/dev/null; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$(now) - $1:.2f}')"; }

# photos DIR N MIN MAX: DIR/p1.jpg..pN.jpg, the sample photo followed by
# MIN..MAX bytes of noise (so each is distinct, and still an image)
photos() {
	mkdir -p "$1"
	python3 - "$@" <<'PY'
import os, sys
d, n, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
head = open('samples/chelsea.jpg', 'rb').read()
for i in range(1, n + 1):
    size = lo + (hi - lo) * (i - 1) // max(1, n - 1)
    open(f'{d}/p{i}.jpg', 'wb').write(head + os.urandom(size))
PY
}

# verify_store DATA: prints "OBJECTS CORRUPTED" for the content-addressed
# namespaces (img/, health/): each file must be NS/ab/cd/KEY with the
# SHA-256 KEY
verify_store() {
	python3 - "$1" <<'PY'
import hashlib, os, re, sys
root, n, bad = sys.argv[1], 0, 0
for ns in ('img', 'health'):
    base = os.path.join(root, ns)
    for dp, _, files in os.walk(base):
        for f in files:
            n += 1
            p = os.path.join(dp, f)
            rel = os.path.relpath(p, base).split(os.sep)
            good = re.fullmatch('[0-9a-f]{64}', f) and rel == [f[:2], f[2:4], f]
            if not good or hashlib.sha256(open(p, 'rb').read()).hexdigest() != f:
                bad += 1
                print('# corrupted:', p, file=sys.stderr)
print(n, bad)
PY
}

# temp_left DATA: temporary files of puts (tmp/put-*) and of upload infos
# (uploads/tmp-*)
temp_left() {
	{ ls "$1/tmp" 2>/dev/null | grep '^put-'; ls "$1/uploads" 2>/dev/null | grep '^tmp-'; } | wc -l
}

# readable ID FILE: the server answers image ID with FILE's bytes
readable() {
	[ "$(req "$A/v1/images/$1")" = 200 ] && [ "$(sha "$tmp/body")" = "$(sha "$2")" ]
}

# tus_create FILE: prints the new upload's path (/v1/uploads/ID)
tus_create() {
	curl -s -D - -o /dev/null -X POST -H "$T" -H "Upload-Length: $(stat -c %s "$1")" "$A/v1/uploads" |
		tr -d '\r' | sed -n 's/^[Ll]ocation: //p'
}

# tus_offset PATH: the server's Upload-Offset
tus_offset() {
	curl -s -I -H "$T" "$A$1" | tr -d '\r' | sed -n 's/^[Uu]pload-[Oo]ffset: //p'
}

# tus_patch URL FILE OFFSET OUT [CURL OPTIONS]: PATCHes FILE from OFFSET to
# its end; the status goes to OUT.code, the headers to OUT.h
tus_patch() {
	local url=$1 f=$2 off=$3 out=$4
	shift 4
	tail -c +$((off + 1)) "$f" >"$out.body"
	curl -s -D "$out.h" -o /dev/null -w '%{http_code}\n' -X PATCH -H "$T" -H "Upload-Offset: $off" \
		-H 'Content-Type: application/offset+octet-stream' --data-binary @"$out.body" "$@" "$url" >"$out.code" 2>/dev/null
	rm -f "$out.body"
}

# image_id OUT: the Petcut-Image-Id a PATCH answered (OUT.h)
image_id() {
	tr -d '\r' <"$1.h" 2>/dev/null | sed -n 's/^[Pp]etcut-[Ii]mage-[Ii]d: //p'
}

# tus_resume PATH FILE: asks where the upload is (HEAD) and sends the rest
# directly (waiting out a 423 while the server still ends a cut PATCH);
# prints "STATUS IMAGE_ID"
tus_resume() {
	local off code out=$tmp/resume
	for _ in $(seq 50); do
		off=$(tus_offset "$1")
		[ -n "$off" ] || { echo "no-upload -"; return; }
		tus_patch "$A$1" "$2" "$off" "$out"
		code=$(cat "$out.code")
		[ "$code" != 423 ] && break
		sleep 0.2
	done
	echo "$code $(image_id "$out")"
}

# prefix_ok DATA PATH FILE: the upload's bytes on disk so far are FILE's first ones
prefix_ok() {
	local part=$1/uploads/${2##*/}.data
	[ -f "$part" ] && cmp -s "$part" <(head -c "$(stat -c %s "$part")" "$3")
}

# a tiny model that runs (a stand-in for ISNet, so no download is needed),
# and one that loads but cannot run at petcut's sizes
python3 tests/tools/make_model.py "$tmp/ok.onnx" ok || exit 1
python3 tests/tools/make_model.py "$tmp/fixed320.onnx" fixed320 || exit 1

###########################################################################
echo "# 1. SIGKILL during 50 concurrent uploads (40 raw, 10 tus: every fifth)"
c1=$tmp/c1
photos "$c1" 50 100000 600000
serve --data "$tmp/d1" --model "$tmp/ok.onnx"
cpids=()
raw=$(seq 1 50 | grep -v '[05]$')
for i in $raw; do
	# four source addresses: the server allows 32 connections per address
	curl -s --interface "127.0.0.$((i % 4 + 1))" --limit-rate 150k -o "$c1/r$i.json" -w '%{http_code}\n' \
		-H 'Content-Type: image/jpeg' --data-binary @"$c1/p$i.jpg" "$A/v1/images" >"$c1/code$i" 2>/dev/null &
	cpids+=($!)
done
for i in $(seq 5 5 50); do
	loc=$(tus_create "$c1/p$i.jpg")
	echo "$loc" >"$c1/loc$i"
	tus_patch "$A$loc" "$c1/p$i.jpg" 0 "$c1/t$i" --interface "127.0.0.$((i % 4 + 1))" --limit-rate 150k &
	cpids+=($!)
done
# four more tus uploads with Upload-Checksum: their first 60 000 bytes in a
# verified PATCH, the rest in a slow one that the kill cuts
photos "$c1/ck" 4 300000 400000
for i in 1 2 3 4; do
	f=$c1/ck/p$i.jpg
	loc=$(tus_create "$f")
	echo "$loc" >"$c1/ck/loc$i"
	head -c 60000 "$f" >"$c1/ck/head$i"
	tail -c +60001 "$f" >"$c1/ck/rest$i"
	curl -s -o /dev/null -w '%{http_code}\n' -X PATCH -H "$T" -H 'Upload-Offset: 0' -H "Upload-Checksum: sha256 $(b64sha "$c1/ck/head$i")" \
		-H 'Content-Type: application/offset+octet-stream' --data-binary @"$c1/ck/head$i" "$A$loc" >"$c1/ck/headcode$i"
	curl -s -o /dev/null -w '%{http_code}\n' -X PATCH -H "$T" -H 'Upload-Offset: 60000' -H "Upload-Checksum: sha256 $(b64sha "$c1/ck/rest$i")" \
		-H 'Content-Type: application/offset+octet-stream' --limit-rate 20k --data-binary @"$c1/ck/rest$i" "$A$loc" \
		>"$c1/ck/restcode$i" 2>/dev/null &
	cpids+=($!)
done
# the kill comes once a dozen are acknowledged, with most still in flight
for _ in $(seq 100); do
	[ "$(cat "$c1"/code* "$c1"/t*.code 2>/dev/null | grep -c '^20[014]$')" -ge 12 ] && break
	sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null
killed_tmp=$(temp_left "$tmp/d1")
wait "${cpids[@]}"
acked=0 acked_tus=0 lost=0
for i in $raw; do
	code=$(cat "$c1/code$i")
	if [ "$code" = 201 ] || [ "$code" = 200 ]; then
		acked=$((acked + 1))
		echo "$i $(python3 -c "import json; print(json.load(open('$c1/r$i.json'))['id'])")" >>"$c1/acked"
	fi
done
for i in $(seq 5 5 50); do
	id=$(image_id "$c1/t$i")
	if [ "$(cat "$c1/t$i.code")" = 204 ] && [ -n "$id" ]; then
		acked_tus=$((acked_tus + 1))
		echo "$i $id" >>"$c1/acked"
	fi
done
inflight=$((50 - acked - acked_tus))
{ [ $((acked + acked_tus)) -ge 1 ] && [ "$inflight" -ge 10 ]; }
verdict $? "the kill hit uploads in flight: $((acked + acked_tus)) acknowledged before it, $inflight not"
check "the kill left temporary files of puts in flight ($killed_tmp)" [ "$killed_tmp" -ge 1 ]
serve --data "$tmp/d1" --model "$tmp/ok.onnx"
check "restart on the same folder: no temporary file left (was $killed_tmp)" [ "$(temp_left "$tmp/d1")" = 0 ]
check "... and the server said it removed them" grep -q 'removed .* temporary file' "$tmp/log"
read -r objects corrupted < <(verify_store "$tmp/d1")
check "every file under a real name hashes to its name ($objects objects, $corrupted corrupted)" [ "$corrupted" = 0 ]
while read -r i id; do
	{ [ "$id" = "$(sha "$c1/p$i.jpg")" ] && readable "$id" "$c1/p$i.jpg"; } || lost=$((lost + 1))
done <"$c1/acked"
check "every acknowledged upload is readable with its SHA-256 ($((acked + acked_tus)) acknowledged, $lost lost)" [ "$lost" = 0 ]
resumed=0 unfinished=0 badpart=0
for i in $(seq 5 5 50); do
	grep -q "^$i " "$c1/acked" && continue
	unfinished=$((unfinished + 1))
	loc=$(cat "$c1/loc$i")
	prefix_ok "$tmp/d1" "$loc" "$c1/p$i.jpg" || badpart=$((badpart + 1))
	read -r code id < <(tus_resume "$loc" "$c1/p$i.jpg")
	[ "$code" = 204 ] && [ "$id" = "$(sha "$c1/p$i.jpg")" ] && readable "$id" "$c1/p$i.jpg" && resumed=$((resumed + 1))
done
{ [ "$resumed" = "$unfinished" ] && [ "$badpart" = 0 ]; }
verdict $? "the tus uploads cut by the kill kept a prefix of their file ($badpart not), resume after the restart and complete with their SHA-256 ($resumed of $unfinished)"
# the checksummed ones: what the cut PATCH wrote was never verified, so the
# restart dropped it; the upload stands at the verified 60 000 bytes
ck_at=0 ck_done=0 ck_cut=0
for i in 1 2 3 4; do
	loc=$(cat "$c1/ck/loc$i")
	[ "$(cat "$c1/ck/headcode$i")" = 204 ] || continue
	[ "$(cat "$c1/ck/restcode$i")" = 204 ] && continue
	ck_cut=$((ck_cut + 1))
	[ "$(tus_offset "$loc")" = 60000 ] && [ ! -e "$tmp/d1/uploads/${loc##*/}.verify" ] && ck_at=$((ck_at + 1))
	read -r code id < <(tus_resume "$loc" "$c1/ck/p$i.jpg")
	[ "$code" = 204 ] && [ "$id" = "$(sha "$c1/ck/p$i.jpg")" ] && ck_done=$((ck_done + 1))
done
{ [ "$ck_cut" = 4 ] && [ "$ck_at" = 4 ] && [ "$ck_done" = 4 ]; }
verdict $? "4 checksummed PATCHes cut by the kill: after the restart the uploads stand at their verified 60000 bytes ($ck_at of $ck_cut) and resume to their SHA-256 ($ck_done)"
corrupted=$((corrupted + badpart))
summary+=("1 SIGKILL: 50 uploads, $((acked + acked_tus)) acknowledged ($acked raw, $acked_tus tus), $inflight in flight, $killed_tmp temp files removed at restart, $resumed/$unfinished tus resumed from their offset; $objects objects checked; lost $lost, corrupted $corrupted")
kill -TERM "$pid"
wait "$pid"

###########################################################################
echo "# 2. network faults through a proxy (cut after 10 000 bytes, RST midway, 5 kB/s trickle)"
c2=$tmp/c2
photos "$c2" 6 200000 300000
serve --data "$tmp/d2" --model "$tmp/ok.onnx"
python3 tests/tools/faultproxy.py "${A#http://}" pass cut:10000 rst:60000 rate:5000 >"$tmp/proxy.out" 2>"$tmp/proxy.log" &
proxy=$!
pids+=("$proxy")
for _ in $(seq 50); do grep -q '^ready' "$tmp/proxy.out" && break; sleep 0.1; done
port() { sed -n "s/^$1 //p" "$tmp/proxy.out"; }
P_PASS=http://127.0.0.1:$(port pass) P_CUT=http://127.0.0.1:$(port cut:10000)
P_RST=http://127.0.0.1:$(port rst:60000) P_SLOW=http://127.0.0.1:$(port rate:5000)
lost=0
# the trickle: a tus PATCH at 5 kB/s, in the background
slow=$(tus_create "$c2/p1.jpg")
t0=$(now)
tus_patch "$P_SLOW$slow" "$c2/p1.jpg" 0 "$tmp/slow" &
spid=$!
sleep 1
# meanwhile, the others: cut and reset uploads, and normal service
code=$(req -H 'Content-Type: image/jpeg' --data-binary @"$c2/p2.jpg" "$P_CUT/v1/images")
check "a raw upload cut after 10 000 bytes gets no success ($code)" [ "${code:0:1}" != 2 ]
code=$(req -H 'Content-Type: image/jpeg' --data-binary @"$c2/p3.jpg" "$P_RST/v1/images")
check "a raw upload reset midway gets no success ($code)" [ "${code:0:1}" != 2 ]
grep -q '^cut after' "$tmp/proxy.log" && grep -q '^rst after' "$tmp/proxy.log"
verdict $? "the proxy did cut and reset them"
resume=$(tus_create "$c2/p4.jpg")
tus_patch "$P_CUT$resume" "$c2/p4.jpg" 0 "$tmp/t4"
sleep 0.3
off1=$(tus_offset "$resume")
{ [ -n "$off1" ] && [ "$off1" -gt 0 ] && [ "$off1" -lt 10000 ] && prefix_ok "$tmp/d2" "$resume" "$c2/p4.jpg"; }
verdict $? "a tus PATCH cut after 10 000 bytes: HEAD says $off1 bytes are kept, and they are the file's"
tus_patch "$P_RST$resume" "$c2/p4.jpg" "$off1" "$tmp/t4b"
sleep 0.3
off2=$(tus_offset "$resume")
{ [ -n "$off2" ] && [ "$off2" -ge "$off1" ] && prefix_ok "$tmp/d2" "$resume" "$c2/p4.jpg"; }
verdict $? "then a PATCH reset midway: HEAD says $off2, a prefix of the file"
ms=$(curl -s -o /dev/null -w '%{time_total}' "$A/healthz")
still=$(kill -0 $spid 2>/dev/null && echo yes || echo no)
check "the trickle still going ($still), /healthz answers in ${ms}s" python3 -c "assert '$still' == 'yes' and $ms < 0.5"
code=$(req -H 'Content-Type: image/jpeg' --data-binary @"$c2/p5.jpg" "$P_PASS/v1/images")
{ [ "$code" = 201 ] && readable "$(sha "$c2/p5.jpg")" "$c2/p5.jpg"; }
verdict $? "... and another client's upload is stored meanwhile ($code)"
read -r code id < <(tus_resume "$resume" "$c2/p4.jpg")
{ [ "$code" = 204 ] && [ "$id" = "$(sha "$c2/p4.jpg")" ] && readable "$id" "$c2/p4.jpg"; }
verdict $? "the tus upload resumes from HEAD's offset and completes with its SHA-256 ($code)"
[ "$code" = 204 ] || lost=$((lost + 1))
wait $spid
slow_s=$(elapsed "$t0")
off3=$(tus_offset "$slow")
{ [ "${off3:-0}" -gt 0 ] && [ "$off3" -lt "$(stat -c %s "$c2/p1.jpg")" ] && prefix_ok "$tmp/d2" "$slow" "$c2/p1.jpg"; }
verdict $? "the trickle was cut by the server after ${slow_s}s, its $off3 bytes kept"
read -r code id < <(tus_resume "$slow" "$c2/p1.jpg")
{ [ "$code" = 204 ] && [ "$id" = "$(sha "$c2/p1.jpg")" ] && readable "$id" "$c2/p1.jpg"; }
verdict $? "... and it resumes at full speed to its SHA-256 ($code)"
[ "$code" = 204 ] || lost=$((lost + 1))
partial=0
for i in 2 3; do
	[ "$(req "$A/v1/images/$(sha "$c2/p$i.jpg")")" = 404 ] || partial=$((partial + 1))
done
check "the cut and reset raw uploads stored nothing ($partial found)" [ "$partial" = 0 ]
check "no temporary file left" [ "$(temp_left "$tmp/d2")" = 0 ]
read -r objects corrupted < <(verify_store "$tmp/d2")
check "every file under a real name hashes to its name ($objects objects, $corrupted corrupted)" [ "$corrupted" = 0 ]
kill "$proxy"
wait "$proxy" 2>/dev/null
summary+=("2 network: raw cut at 10 000 B and RST at 60 000 B stored nothing, tus cut ($off1 B kept) + RST ($off2 B) resumed, 5 kB/s trickle cut after ${slow_s}s ($off3 B kept) resumed, /healthz ${ms}s meanwhile; lost $lost, corrupted $corrupted")
kill -TERM "$pid"
wait "$pid"

###########################################################################
echo "# 3. disk full, 4. storage read-only (a tmpfs as the data folder)"
mnt=$tmp/mnt
mkdir -p "$mnt"
if ! why=$(mount -t tmpfs -o size=16m petcut-faults "$mnt" 2>&1); then
	mnt=
	echo "# SKIPPED cases 3 (disk full) and 4 (read-only): cannot mount a tmpfs: ${why:-not permitted}"
	summary+=("3 disk full: skipped (cannot mount a tmpfs: ${why:-not permitted})")
	summary+=("4 read-only: skipped (cannot mount a tmpfs)")
else
	c3=$tmp/c3
	photos "$c3" 8 300000 300000
	head -c 3000000 /dev/urandom | cat samples/chelsea.jpg - >"$c3/big.jpg"
	serve --data "$mnt" --model "$tmp/ok.onnx"
	lost=0
	check "a photo stored on the small disk: 201" [ "$(req -H 'Content-Type: image/jpeg' --data-binary @samples/chelsea.jpg "$A/v1/images")" = 201 ]
	echo "$(sha samples/chelsea.jpg) samples/chelsea.jpg" >"$c3/acked"
	# fill it up to about 1.5 MB free
	free_kb=$(df -k --output=avail "$mnt" | tail -1)
	head -c $(((free_kb - 1500) * 1024)) /dev/zero >"$mnt/filler"
	code=$(req -H 'Content-Type: image/jpeg' --data-binary @"$c3/big.jpg" "$A/v1/images")
	{ [ "$code" = 507 ] && [ "$(field "['error']['code']")" = insufficient_storage ]; }
	verdict $? "a 3 MB upload with 1.5 MB free: 507 with a JSON error ($code $(field "['error']['code']"))"
	check "... nothing stored under its name" [ "$(req "$A/v1/images/$(sha "$c3/big.jpg")")" = 404 ]
	n201=0 n507=0 nother=0
	for i in $(seq 1 8); do
		code=$(req -H 'Content-Type: image/jpeg' --data-binary @"$c3/p$i.jpg" "$A/v1/images")
		case $code in
		201) n201=$((n201 + 1)); echo "$(sha "$c3/p$i.jpg") $c3/p$i.jpg" >>"$c3/acked" ;;
		507) n507=$((n507 + 1)) ;;
		*) nother=$((nother + 1)) ;;
		esac
	done
	{ [ "$n201" -ge 1 ] && [ "$n507" -ge 1 ] && [ "$nother" = 0 ]; }
	verdict $? "8 uploads of 300 kB filling the rest: $n201 stored, $n507 refused with 507, $nother other"
	loc=$(tus_create "$c3/big.jpg")
	tus_patch "$A$loc" "$c3/big.jpg" 0 "$tmp/t3"
	code=$(cat "$tmp/t3.code")
	off=$(tus_offset "$loc")
	{ [ "$code" = 507 ] && [ "$off" = 0 ]; }
	verdict $? "a tus PATCH of 3 MB on the full disk: $code, the offset stays ${off:-?}"
	check "no temporary file left" [ "$(temp_left "$mnt")" = 0 ]
	read -r objects corrupted < <(verify_store "$mnt")
	check "every file under a real name hashes to its name ($objects objects, $corrupted corrupted)" [ "$corrupted" = 0 ]
	code=$(req "$A/readyz")
	echo "# /readyz with the disk full: $code $(cat "$tmp/body")"
	rm "$mnt/filler"
	check "space freed: the 3 MB upload is stored (201)" \
		[ "$(req -H 'Content-Type: image/jpeg' --data-binary @"$c3/big.jpg" "$A/v1/images")" = 201 ]
	echo "$(sha "$c3/big.jpg") $c3/big.jpg" >>"$c3/acked"
	read -r code id < <(tus_resume "$loc" "$c3/big.jpg")
	{ [ "$code" = 204 ] && [ "$id" = "$(sha "$c3/big.jpg")" ]; }
	verdict $? "... the refused tus upload completes ($code, the same image)"
	check "... /readyz 200" [ "$(req "$A/readyz")" = 200 ]
	while read -r id f; do readable "$id" "$f" || lost=$((lost + 1)); done <"$c3/acked"
	read -r objects corrupted < <(verify_store "$mnt")
	{ [ "$lost" = 0 ] && [ "$corrupted" = 0 ]; }
	verdict $? "every acknowledged upload readable ($(wc -l <"$c3/acked"), $lost lost), $objects objects, $corrupted corrupted"
	summary+=("3 disk full (16 MB tmpfs, filled to 1.5 MB free): 3 MB upload 507, 8 x 300 kB: $n201 stored / $n507 507, tus PATCH 507 offset kept, all stored after space freed; lost $lost, corrupted $corrupted")

	# 4: read-only
	if ! why=$(mount -o remount,ro "$mnt" 2>&1); then
		echo "# SKIPPED case 4 (read-only): cannot remount the tmpfs read-only: $why"
		summary+=("4 read-only: skipped (cannot remount read-only: $why)")
	else
		code=$(req -H 'Content-Type: image/jpeg' --data-binary @"$c3/p8.jpg" "$A/v1/images")
		{ [ "$code" = 503 ] && [ "$(field "['error']['code']")" = storage_unavailable ]; }
		verdict $? "storage read-only: upload 503 storage_unavailable ($code)"
		check "... tus creation 503" [ "$(req -X POST -H "$T" -H 'Upload-Length: 100' "$A/v1/uploads")" = 503 ]
		check "... /readyz 503" [ "$(req "$A/readyz")" = 503 ]
		check "... /healthz 200" [ "$(req "$A/healthz")" = 200 ]
		check "... stored images are still served" readable "$(sha samples/chelsea.jpg)" samples/chelsea.jpg
		mount -o remount,rw "$mnt"
		check "writable again: /readyz 200" [ "$(req "$A/readyz")" = 200 ]
		code=$(req -H 'Content-Type: image/jpeg' --data-binary @"$c3/p8.jpg" "$A/v1/images")
		{ [ "${code:0:1}" = 2 ] && readable "$(sha "$c3/p8.jpg")" "$c3/p8.jpg"; }
		verdict $? "... uploads stored again ($code)"
		read -r objects corrupted < <(verify_store "$mnt")
		{ [ "$corrupted" = 0 ] && [ "$(temp_left "$mnt")" = 0 ]; }
		verdict $? "$objects objects, $corrupted corrupted; no temporary file left"
		summary+=("4 read-only (tmpfs remounted ro): upload 503, tus 503, /readyz 503, /healthz 200, reads served; rw again: ready, uploads stored; lost 0, corrupted $corrupted")
	fi
	kill -TERM "$pid"
	wait "$pid"
	umount "$mnt"
	mnt=
fi

###########################################################################
echo "# 5. inference worker failure (a model that loads, and fails at every run)"
c5=$tmp/c5
photos "$c5" 6 1000 6000
# batches of up to 4 gathered for 300 ms: 3 previews and 3 full sizes at
# once make one pass of one size while the other size waits in the queue
serve --data "$tmp/d5" --model "$tmp/fixed320.onnx" --max-batch 4 --max-delay-ms 300
check "the model loads: /readyz 200" [ "$(req "$A/readyz")" = 200 ]
for i in $(seq 6); do req -H 'Content-Type: image/jpeg' --data-binary @"$c5/p$i.jpg" "$A/v1/images" >/dev/null; done
t0=$(now)
cpids=()
for i in $(seq 6); do
	size=preview
	[ "$i" -gt 3 ] && size=full
	curl -s -o "$c5/b$i" -w '%{http_code} %{time_total}\n' -d "{\"image_id\":\"$(sha "$c5/p$i.jpg")\",\"size\":\"$size\"}" \
		"$A/v1/remove-background" >"$c5/r$i" &
	cpids+=($!)
done
wait "${cpids[@]}"
all_s=$(elapsed "$t0")
n503=$(cat "$c5"/r* | grep -c '^503 ')
codes=$(cat "$c5"/b* | python3 -c "import json,sys; print(' '.join(sorted({json.loads(l)['error']['code'] for l in sys.stdin.read().replace('}{','}\n{').splitlines()})))")
{ [ "$n503" = 6 ] && [ "$codes" = model_unavailable ] && python3 -c "assert $all_s < 3"; }
verdict $? "6 removals at once (3 preview, 3 full), the forward pass failing: $n503 answered 503 ($codes), all within ${all_s}s"
code=$(req "$A/readyz")
check "/readyz 503 after the failure ($code $(field "['error']['code']"))" [ "$code" = 503 ]
check "/healthz 200" [ "$(req "$A/healthz")" = 200 ]
req "$A/metrics" >/dev/null
fp=$(sed -n 's/^petcut_inference{what="failed_passes"} //p' "$tmp/body")
rf=$(sed -n 's/^petcut_inference{what="rejected_failing"} //p' "$tmp/body")
fl=$(sed -n 's/^petcut_inference{what="failed"} //p' "$tmp/body")
{ [ "${fp:-0}" = 1 ] && [ "${fl:-0}" -gt 3 ] && [ $((${fl:-0} + ${rf:-0})) = 6 ]; }
verdict $? "/metrics: one failed pass ($fp); the requests waiting behind it failed with it, not in passes of their own ($fl failed, $rf refused in the pause after)"
t1=$(now)
code=$(req -d "{\"image_id\":\"$(sha "$c5/p1.jpg")\"}" "$A/v1/remove-background")
check "a request during the pause: 503 at once ($(elapsed "$t1")s)" [ "$code" = 503 ]
sleep 2.2
check "after the pause: /readyz 200 again (the next request tries the model)" [ "$(req "$A/readyz")" = 200 ]
code=$(req -d "{\"image_id\":\"$(sha "$c5/p2.jpg")\"}" "$A/v1/remove-background")
{ [ "$code" = 503 ] && [ "$(req "$A/readyz")" = 503 ]; }
verdict $? "... which fails again: 503, /readyz 503"
kill -TERM "$pid"
wait "$pid"
serve --data "$tmp/d5" --model "$tmp/ok.onnx"
code=$(req -d "{\"image_id\":\"$(sha "$c5/p1.jpg")\",\"size\":\"preview\"}" "$A/v1/remove-background")
check "control: the same data with a model that runs: 200 ($code)" [ "$code" = 200 ]
kill -TERM "$pid"
wait "$pid"
summary+=("5 inference failure (a model exported for 320x320 only): 6 concurrent removals all 503 model_unavailable within ${all_s}s: $fp failed pass, $fl requests failed with it (those waiting included), $rf refused in the 2 s pause; /readyz 503, /healthz 200, ready again after the pause")

###########################################################################
echo "# 6. SIGTERM under load"
c6=$tmp/c6
photos "$c6" 24 250000 350000
serve --data "$tmp/d6" --model "$tmp/ok.onnx"
cpids=()
for i in $(seq 1 20); do
	curl -s --interface "127.0.0.$((i % 4 + 1))" --limit-rate 150k -o "$c6/r$i.json" -w '%{http_code}\n' \
		-H 'Content-Type: image/jpeg' --data-binary @"$c6/p$i.jpg" "$A/v1/images" >"$c6/code$i" 2>/dev/null &
	cpids+=($!)
done
for i in $(seq 21 24); do
	loc=$(tus_create "$c6/p$i.jpg")
	tus_patch "$A$loc" "$c6/p$i.jpg" 0 "$c6/t$i" --limit-rate 150k &
	cpids+=($!)
done
sleep 0.7
t0=$(now)
kill -TERM "$pid"
sleep 0.2
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$A/healthz")
rc=$?
check "after SIGTERM a new connection is refused at once (curl exit $rc, HTTP $code)" [ "$rc" = 7 ]
wait "${cpids[@]}"
wait "$pid"
src=$?
stop_s=$(elapsed "$t0")
ok=0 lost=0
for i in $(seq 1 20); do
	[ "$(cat "$c6/code$i")" = 201 ] && ok=$((ok + 1))
done
for i in $(seq 21 24); do
	[ "$(cat "$c6/t$i.code")" = 204 ] && [ "$(image_id "$c6/t$i")" = "$(sha "$c6/p$i.jpg")" ] && ok=$((ok + 1))
done
check "the 24 uploads in flight all finished ($ok acknowledged)" [ "$ok" = 24 ]
# answered while draining, the tus PATCHes tell their clients to reconnect (elsewhere)
closes=0
for i in $(seq 21 24); do
	tr -d '\r' <"$c6/t$i.h" | grep -qi '^connection: close$' && closes=$((closes + 1))
done
check "the 4 tus PATCHes answered while draining carry Connection: close ($closes)" [ "$closes" = 4 ]
check "the server exited 0 ($src) ${stop_s}s after SIGTERM" [ "$src" = 0 ]
serve --data "$tmp/d6" --model "$tmp/ok.onnx" --drain-seconds 2
for i in $(seq 1 24); do readable "$(sha "$c6/p$i.jpg")" "$c6/p$i.jpg" || lost=$((lost + 1)); done
read -r objects corrupted < <(verify_store "$tmp/d6")
{ [ "$lost" = 0 ] && [ "$corrupted" = 0 ]; }
verdict $? "after a restart all 24 are readable ($lost lost), $objects objects, $corrupted corrupted"
# the drain's bound: an upload at 20 kB/s would take a minute
head -c 1200000 /dev/urandom | cat samples/chelsea.jpg - >"$c6/slow.jpg"
curl -s -o /dev/null -w '%{http_code}' --limit-rate 20k -H 'Content-Type: image/jpeg' \
	--data-binary @"$c6/slow.jpg" "$A/v1/images" >"$c6/slow.code" 2>/dev/null &
cpid=$!
sleep 1
t0=$(now)
kill -TERM "$pid"
wait "$pid"
src=$?
bound_s=$(elapsed "$t0")
wait $cpid
{ [ "$src" = 0 ] && python3 -c "assert 1.8 < $bound_s < 5"; }
verdict $? "--drain-seconds 2 with a 1 min upload in flight: exit $src after ${bound_s}s"
slow=$(sha "$c6/slow.jpg")
{ [ "$(cat "$c6/slow.code")" != 201 ] && [ ! -e "$tmp/d6/img/${slow:0:2}/${slow:2:2}/$slow" ] && [ "$(temp_left "$tmp/d6")" = 0 ]; }
verdict $? "... the cut upload got no success ($(cat "$c6/slow.code")) and stored nothing, no temporary file left"
summary+=("6 SIGTERM: 24 uploads in flight all acknowledged, new connection refused, exit 0 after ${stop_s}s; --drain-seconds 2 bounds a 1 min upload (exit 0 after ${bound_s}s, nothing stored); lost $lost, corrupted $corrupted")

echo "# figures:"
printf '#   %s\n' "${summary[@]}"
finish
