#!/bin/bash
# tests/sh/test_convert.sh - `petcut convert` end to end on the phone-sized
# photos that scripts/test-setup.sh makes: HEIC and an EXIF-turned JPEG to
# WebP, JPEG and PNG thumbnails (size, upright, no GPS, sRGB), and refusal of
# bad input and bad usage (exit 2, one line on stderr, no output file).
#
#   tests/sh/test_convert.sh BUILD
#
# Exits 0 when every check passes, 77 (skip) when the binary, the vips CLI
# (libvips-tools) or the test data are missing, 1 otherwise.

set -u

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
PETCUT=$BUILD/petcut
PHONE=${PETCUT_TESTDATA:-$BUILD/testdata}/phone

skip() {
	echo "skip: $*"
	exit 77
}

[ -x "$PETCUT" ] || skip "$PETCUT is not built"
command -v vips >/dev/null 2>&1 && command -v vipsheader >/dev/null 2>&1 ||
	skip "the vips CLI (libvips-tools) is needed to read the outputs"
for f in upright.jpg o6.jpg upright.heic adobergb.jpg; do
	[ -s "$PHONE/$f" ] || skip "$PHONE/$f is missing (scripts/test-setup.sh $BUILD makes it)"
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/petcut-test-convert.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

failures=0
check() { # check DESCRIPTION CONDITION...: runs the condition, prints ok / not ok.
	local what=$1
	shift
	if "$@"; then
		echo "ok - $what"
	else
		echo "not ok - $what"
		failures=$((failures + 1))
	fi
}

# size FILE: "WxH" of an image.
size() {
	echo "$(vipsheader -f width "$1")x$(vipsheader -f height "$1")"
}

# diff_to_ref FILE: mean absolute difference (0..255) between FILE and the
# upright original scaled to FILE's size.
diff_to_ref() {
	local w h
	w=$(vipsheader -f width "$1") h=$(vipsheader -f height "$1")
	vips thumbnail "$PHONE/upright.jpg" "$tmp/ref.v" "$w" --height "$h" --size force &&
		vips subtract "$1" "$tmp/ref.v" "$tmp/d.v" && vips abs "$tmp/d.v" "$tmp/a.v" && vips avg "$tmp/a.v"
}

# no_profile FILE: FILE has no ICC profile.
no_profile() {
	! vipsheader -f icc-profile-data "$1" >/dev/null 2>&1
}

# below VALUE LIMIT: VALUE < LIMIT (decimals).
below() {
	awk -v v="$1" -v l="$2" 'BEGIN { exit !(v != "" && v + 0 < l + 0) }'
}

# ===== Thumbnails =====

"$PETCUT" convert "$PHONE/upright.heic" "$tmp/heic.webp" --max 512 2>"$tmp/err"
rc=$?
check "HEIC -> WebP exits 0 ($(head -1 "$tmp/err"))" [ $rc -eq 0 ]
check "it is a WebP" [ "$(vipsheader -f vips-loader "$tmp/heic.webp" 2>/dev/null)" = webpload ]
s=$(size "$tmp/heic.webp" 2>/dev/null)
check "at most 512 px, upright: $s (want 384x512)" [ "$s" = 384x512 ]
d=$(diff_to_ref "$tmp/heic.webp" 2>/dev/null)
check "the same picture as the upright original: mean abs diff $d (< 6)" below "$d" 6

"$PETCUT" convert "$PHONE/o6.jpg" "$tmp/o6.webp" 2>"$tmp/err"
rc=$?
s=$(size "$tmp/o6.webp" 2>/dev/null)
check "EXIF-6 JPEG (4032x3024 stored) -> WebP at the default --max 512: $s upright (want 384x512)" \
	[ $rc:$s = 0:384x512 ]
d=$(diff_to_ref "$tmp/o6.webp" 2>/dev/null)
check "turned the right way: mean abs diff $d (< 6)" below "$d" 6
if command -v exiftool >/dev/null 2>&1; then
	gps=$(exiftool -s -s -s -GPSLatitude -Make "$tmp/o6.webp" 2>/dev/null)
	check "no GPS position nor camera tags in the thumbnail ('$gps')" [ -z "$gps" ]
fi

"$PETCUT" convert "$PHONE/adobergb.jpg" "$tmp/adobe.jpg" --max 256 --quality 85 2>"$tmp/err"
rc=$?
s=$(size "$tmp/adobe.jpg" 2>/dev/null)
check "Adobe RGB JPEG -> JPEG --max 256: $s (want 192x256)" [ $rc:$s = 0:192x256 ]
check "no profile left (sRGB, untagged)" no_profile "$tmp/adobe.jpg"
d=$(diff_to_ref "$tmp/adobe.jpg" 2>/dev/null)
check "colours converted to sRGB: mean abs diff $d from the sRGB original (< 4)" below "$d" 4

"$PETCUT" convert "$PHONE/upright.jpg" "$tmp/big.png" --max=9000 --format png 2>"$tmp/err"
s=$(size "$tmp/big.png" 2>/dev/null)
check "never enlarged: --max 9000 keeps 3024x4032 ($s)" [ "$s" = 3024x4032 ]

# ===== Refusals =====

# refused NAME CMD...: the command exits 2 with one line on stderr, and
# leaves no file in $tmp/out.
mkdir -p "$tmp/out"
refused() {
	local what=$1 rc lines
	shift
	"$@" 2>"$tmp/err"
	rc=$?
	lines=$(wc -l <"$tmp/err")
	check "$what: exit $rc (want 2), $lines line ('$(head -1 "$tmp/err")'), no output" \
		[ "$rc:$lines:$(ls -A "$tmp/out")" = "2:1:" ]
}

printf 'not a picture\n' >"$tmp/notes.heic"
head -c 100000 "$PHONE/upright.heic" >"$tmp/cut.heic"
: >"$tmp/empty.jpg"
refused "text file" "$PETCUT" convert "$tmp/notes.heic" "$tmp/out/a.webp"
refused "truncated HEIC" "$PETCUT" convert "$tmp/cut.heic" "$tmp/out/b.webp"
refused "empty file" "$PETCUT" convert "$tmp/empty.jpg" "$tmp/out/c.png"
refused "missing file" "$PETCUT" convert "$tmp/absent.jpg" "$tmp/out/d.webp"
refused "bad --max" "$PETCUT" convert "$PHONE/o6.jpg" "$tmp/out/e.webp" --max 0
refused "unknown format" "$PETCUT" convert "$PHONE/o6.jpg" "$tmp/out/f.gif"
refused "--quality for PNG" "$PETCUT" convert "$PHONE/o6.jpg" "$tmp/out/g.png" --quality 50
"$PETCUT" convert "$tmp/cut.heic" "$tmp/out/h.webp" 2>"$tmp/err"
check "the message names the input: 'petcut: IN: reason'" grep -q "^petcut: $tmp/cut.heic: truncated" "$tmp/err"

if [ $failures -gt 0 ]; then
	echo "# $failures check(s) failed"
	exit 1
fi
exit 0
