#!/bin/bash
# test_memcheck.sh - petcut serve under valgrind memcheck, over real HTTP:
#  1. the hostile inputs of hostile.py (every way in, every limit);
#  2. the removal routes on a store whose mask a native run made first
#     (cache hits, renders with effects, backgrounds and formats, thumbnails,
#     a tus upload, metrics), so no forward pass runs under valgrind (the
#     network's JIT kernels would take hours there; `make test SAN=1` checks
#     them under LeakSanitizer instead);
# libvips runs without its vector paths there (VIPS_NOVECTOR=1): valgrind
# does not take the AVX-512 code they choose on this CPU.
# Then SIGTERM. Passes when every request was answered as expected and
# valgrind reports no memory error and no definitely lost block with a frame
# in petcut's own code (libraries' own reports are counted, not failed).
#
#   tests/sh/test_memcheck.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
for c in curl python3 valgrind; do
	command -v $c >/dev/null || { echo "skip: $c is not installed (scripts/install-deps.sh installs it)"; exit 77; }
done
"$PETCUT" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }
if ldd "$PETCUT" 2>/dev/null | grep -q 'libasan\|libubsan'; then
	echo "skip: $PETCUT is a sanitizer build, which valgrind cannot run (the plain build's make test runs this)"
	exit 77
fi
. tests/sh/lib.sh

req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
# vg_start NAME [SERVE OPTIONS]: petcut serve under valgrind; URL in $A,
# valgrind's report in $tmp/vg.NAME (OpenMP's wait policy given, so that
# serve does not start itself again, which would leave valgrind)
vg_start() {
	launcher=(env VIPS_NOVECTOR=1 OMP_WAIT_POLICY=passive valgrind --leak-check=full --show-leak-kinds=definite
		--errors-for-leak-kinds=definite --num-callers=40 --log-file="$tmp/vg.$1")
	start_seconds=120
	shift
	serve_start "$@"
}
vg_stop() {
	local rc
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	check "$1: exits 0 under valgrind after SIGTERM ($rc)" [ $rc = 0 ]
}

# 1. hostile input
vg_start hostile --data "$tmp/h" --max-upload-mb 2 --allow-fetch-host 127.0.0.1 --allow-fetch-private yes \
	--precision fp32
python3 tests/sh/hostile.py "$A" "$tmp/h" samples/chelsea.jpg >"$tmp/hostile.out" 2>&1
verdict $? "hostile.py under valgrind: $(tail -2 "$tmp/hostile.out" | head -1)"
grep '^not ok' "$tmp/hostile.out"
vg_stop hostile

# 2. removal routes, the mask made natively first (fp32: what valgrind's CPU runs)
photo=samples/chelsea.jpg
sha=$(sha256sum "$photo" | cut -d' ' -f1)
launcher=()
start_seconds=60
serve_start --data "$tmp/r" --precision fp32
req -H 'Content-Type: image/jpeg' --data-binary @"$photo" "$A/v1/images" >/dev/null
check "native run: the preview is made" [ "$(req -d "{\"image_id\":\"$sha\"}" "$A/v1/remove-background")" = 200 ]
kill -TERM "$pid" && wait "$pid"

vg_start routes --data "$tmp/r" --precision fp32
n=0
bad=0
expect() { # expect CODE CURL-ARGS...: one request, counted
	local want=$1
	shift
	local got
	got=$(req "$@")
	n=$((n + 1))
	[ "$got" = "$want" ] || { bad=$((bad + 1)); echo "  $* -> $got (want $want): $(head -c 200 "$tmp/body")"; }
}
expect 200 -d "{\"image_id\":\"$sha\"}" "$A/v1/remove-background"
for body in '"effect":"popart"' '"effect":"sticker"' '"effect":"shadow"' '"bg":"#203040"' '"format":"webp"' \
	'"format":"jpeg","bg":"#ffffff"' '"crop":true,"margin":"10%"' '"mask":true' '"refine":"guided"' \
	'"effect":"sticker","outline":4' '"fit":"300x300","crop":true' \
	'"canvas":"300x200","scale":"80%","bg":"#ffffff","effect":"shadow"' '"canvas":"2x1in","dpi":400,"position":"0% 100%"' \
	'"shadow":"hard","shadow_angle":-30,"bg":"#ffffff","canvas":"300x300"' '"shadow":"floating","shadow_opacity":30' \
	'"roi":"10% 0% 90% 80%"'; do
	expect 200 -d "{\"image_id\":\"$sha\",$body}" "$A/v1/remove-background"
done
expect 200 -d "{\"items\":[{\"image_id\":\"$sha\"},{\"image_id\":\"$sha\",\"effect\":\"popart\"}]}" \
	"$A/v1/remove-background/batch"
expect 200 -d "{\"images\":[\"$sha\",\"$sha\",\"$sha\"],\"overlap\":\"20%\",\"heights\":\"100%,70%\",\"bg\":\"#ffffff\",\"shadow\":\"soft\"}" \
	"$A/v1/remove-background"
expect 200 -F "image_url=$A/v1/images/$sha" -F size=preview "$A/v1.0/removebg"
expect 200 "$A/v1/images/$sha?max=128"
expect 200 "$A/v1/images/$sha?max=64&format=png"
expect 200 "$A/v1/images/$sha"
expect 400 -d '{"image_id":"nope"}' "$A/v1/remove-background"
expect 200 "$A/metrics"
expect 200 "$A/readyz"
expect 200 "$A/openapi.json"
expect 200 "$A/"
loc=$(curl -s -D - -o /dev/null -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $(stat -c %s "$photo")" \
	"$A/v1/uploads" | tr -d '\r' | sed -n 's/^Location: //Ip')
n=$((n + 1))
code=$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \
	-H 'Content-Type: application/offset+octet-stream' --data-binary @"$photo" "${loc/#\//$A/}")
[ "$code" = 204 ] || { bad=$((bad + 1)); echo "  tus PATCH -> $code"; }
check "$n requests under valgrind, each answered as expected ($bad not)" [ $bad = 0 ]
vg_stop routes

# the reports: errors and definite leaks with a frame in petcut's sources
srcs=$(cd src && ls */*.c | xargs -n1 basename | tr '\n' ' ')
python3 - "$srcs" "$tmp"/vg.* <<'PY'
import re, sys
ours = set(sys.argv[1].split())
fails = 0
for path in sys.argv[2:]:
    text = open(path).read()
    pid = re.search(r"^==(\d+)==", text, re.M).group(1)
    body = [l[len(pid) + 4:] for l in text.splitlines() if l.startswith("==%s== " % pid)]
    records, cur = [], []
    for l in body:
        if not l.strip():
            if cur:
                records.append(cur)
            cur = []
        else:
            cur.append(l)
    if cur:
        records.append(cur)
    errors = [r for r in records if re.match(r"(Invalid|Conditional|Use of uninit|Syscall param|Mismatched|Source and destination|Argument)", r[0])]
    leaks = [r for r in records if "definitely lost in loss record" in r[0]]
    def petcut(r):
        return any(re.search(r"\((%s):\d+\)" % "|".join(map(re.escape, ours)), l) for l in r)
    ours_err = [r for r in errors if petcut(r)]
    ours_leak = [r for r in leaks if petcut(r)]
    lost = re.search(r"definitely lost: ([\d,]+) bytes in ([\d,]+) blocks", text)
    summary = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    name = path.rsplit(".", 1)[1]
    ok = not ours_err and not ours_leak and summary is not None
    print("%s - valgrind, %s: %d memory errors (%d in petcut's code), definitely lost %s bytes in %s blocks "
          "(%d records with a petcut frame)" % ("ok" if ok else "not ok", name, len(errors), len(ours_err),
          lost.group(1) if lost else "?", lost.group(2) if lost else "?", len(ours_leak)))
    for r in (ours_err + ours_leak)[:5]:
        print("    " + "\n    ".join(r[:14]))
    fails += not ok
sys.exit(1 if fails else 0)
PY
[ $? = 0 ] || fails=$((fails + 1))
finish
