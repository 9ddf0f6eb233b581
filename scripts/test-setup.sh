#!/bin/sh
# scripts/test-setup.sh - prepares the data petcut's tests need, once.
#
#   scripts/test-setup.sh [BUILD]
#   scripts/test-setup.sh BUILD quality
#
# Idempotent; everything is cached under BUILD (default build):
#   BUILD/testdata/photos/   real photos: public-domain images that Debian
#                            packages ship (python3-skimage's sample data) and
#                            a few sample photos from opencv-doc, taken with
#                            apt-get download + dpkg-deb, never installed
#   BUILD/ort/               ONNX Runtime for Node (onnxruntime-node, the
#                            version pinned in tests/ref/package.json),
#                            installed with npm --ignore-scripts: the reference
#                            runtime of the end-to-end tests and benchmarks
#   BUILD/testdata/ref/      input tensors and ONNX Runtime outputs for each
#                            photo and model, keyed by their SHA-256; filled by
#                            BUILD/tests/test_isnet_ort --prepare when that is
#                            built and the models are fetched
#   BUILD/web-tests/         playwright-core (the version pinned in
#                            tests/web/package.json), which drives Debian's
#                            Chromium in the browser tests (tests/web/)
#   BUILD/s3-tests/          s3rver (the version pinned in tests/s3/package.json),
#                            an S3-compatible server that the S3 storage tests
#                            start on loopback
#   BUILD/testdata/phone/    phone-sized variants of astronaut.png, made with
#                            the vips CLI, exiftool and heif-enc (see
#                            make_phone below for exactly what each holds)
#   BUILD/testdata/quality/  only with "quality", which does nothing else (the
#                            bench's quality part asks for it): subjects on
#                            plain backgrounds and cluttered backgrounds, from
#                            Debian packages' photos and wallpapers (quality_list)
#
# Nothing here is fatal: a step that fails says so, and the tests that need its
# data skip with a reason. Exits 0 unless BUILD cannot be created.

set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
cd "$ROOT" || exit 1
mkdir -p "$BUILD/testdata/photos" "$BUILD/testdata/ref" || exit 1
BUILD=$(cd "$BUILD" && pwd)
PHOTOS=$BUILD/testdata/photos
ORT=$BUILD/ort
QUALITY=$BUILD/testdata/quality

say() { echo "test-setup: $*"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/petcut-setup.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# ===== Photos from Debian packages =====

# Each line: Debian package, path inside it, name under BUILD/testdata/photos.
# skimage's astronaut is public domain and chelsea (a cat) and coffee are CC0
# (their docstrings in skimage/data/_fetchers.py say so); opencv-doc's squirrel
# and baboon are the library's sample photos, used here only as test input.
# shellcheck disable=SC2317 # called through fetch_files
photo_list() {
	cat <<'EOF'
python3-skimage usr/lib/python3/dist-packages/skimage/data/chelsea.png chelsea.png
python3-skimage usr/lib/python3/dist-packages/skimage/data/coffee.png coffee.png
python3-skimage usr/lib/python3/dist-packages/skimage/data/astronaut.png astronaut.png
opencv-doc usr/share/doc/opencv-doc/examples/data/squirrel_cls.jpg squirrel.jpg
opencv-doc usr/share/doc/opencv-doc/examples/data/baboon.jpg baboon.jpg
EOF
}

# The quality bench's photos (bench/run.sh, part quality), in the same form:
# subjects that stand on a plain or evenly blurred background (a robin from
# opencv-doc's samples, a dahlia from scikit-learn's sample images, dandelion
# seeds from MATE's backgrounds, a bowl with a fig from Lomiri's wallpapers, a
# kite on the sky from Plasma's), and cluttered backgrounds to put them on
# (moss, a forest, a furnished room, a stream among rocks). All ship in
# Debian main under free licences (each package's copyright file: GPL-2+,
# CC-BY-4.0, CC-BY-2.0, BSD).
# shellcheck disable=SC2317 # called through fetch_files
quality_list() {
	cat <<'EOF'
opencv-doc usr/share/doc/opencv-doc/examples/hfs/data/000.jpg subjects/robin.jpg
python3-sklearn usr/lib/python3/dist-packages/sklearn/datasets/images/flower.jpg subjects/dahlia.jpg
mate-backgrounds usr/share/backgrounds/mate/nature/TwoWings.jpg subjects/dandelion.jpg
lomiri-wallpapers-16.04 usr/share/backgrounds/Picture_0B_by_freespace.jpg subjects/bowl.jpg
plasma-workspace-wallpapers usr/share/wallpapers/Kite/contents/images/2560x1600.jpg subjects/kite.jpg
plasma-workspace-wallpapers usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg backgrounds/moss.jpg
plasma-workspace-wallpapers usr/share/wallpapers/Path/contents/images/2560x1600.jpg backgrounds/forest.jpg
lomiri-wallpapers-16.04 usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg backgrounds/room.jpg
lomiri-wallpapers-16.04 usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg backgrounds/stream.jpg
EOF
}

# apt_download PKG: downloads PKG's .deb into $tmp/deb (once per run).
apt_updated=0
apt_download() {
	mkdir -p "$tmp/deb" && chmod 0755 "$tmp" "$tmp/deb"
	ls "$tmp/deb/$1"_*.deb >/dev/null 2>&1 && return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		say "apt-get not found; cannot fetch $1"
		return 1
	fi
	(cd "$tmp/deb" && apt-get download "$1") >"$tmp/apt.log" 2>&1 && return 0
	# A fresh machine may have no package lists yet.
	if [ $apt_updated -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
		apt_updated=1
		apt-get update >>"$tmp/apt.log" 2>&1 &&
			(cd "$tmp/deb" && apt-get download "$1") >>"$tmp/apt.log" 2>&1 && return 0
	fi
	say "apt-get download $1 failed:"
	sed 's/^/    /' "$tmp/apt.log" | tail -5
	return 1
}

# fetch_files LIST DIR WHAT: the files LIST (a function printing lines as
# photo_list does) names, from their packages into DIR (once).
fetch_files() {
	$1 | while read -r pkg src name; do
		[ -s "$2/$name" ] || echo "$pkg $src $name"
	done >"$tmp/missing"
	if [ ! -s "$tmp/missing" ]; then
		say "$3: $($1 | wc -l) cached in $2"
		return 0
	fi
	for pkg in $(cut -d' ' -f1 "$tmp/missing" | sort -u); do
		apt_download "$pkg" || continue
		deb=$(ls "$tmp/deb/$pkg"_*.deb | head -1)
		grep "^$pkg " "$tmp/missing" | while read -r _ src name; do
			rm -rf "$tmp/x" && mkdir -p "$tmp/x" "$(dirname "$2/$name")"
			if dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x" "./$src" 2>"$tmp/tar.log" &&
				[ -s "$tmp/x/$src" ]; then
				cp "$tmp/x/$src" "$2/$name.part" && mv "$2/$name.part" "$2/$name"
			else
				say "$src is not in $(basename "$deb")"
			fi
		done
		rm -f "$deb"
	done
	n=0
	for f in $($1 | cut -d' ' -f3); do
		[ -s "$2/$f" ] && n=$((n + 1))
	done
	say "$3: $n of $($1 | wc -l) in $2"
}

# ===== ONNX Runtime for Node =====

ort_version() {
	sed -n 's/.*"onnxruntime-node": *"\([^"]*\)".*/\1/p' tests/ref/package.json
}

ort_ready() {
	v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$ORT/node_modules/onnxruntime-node/package.json" 2>/dev/null |
		head -1)
	[ "$v" = "$(ort_version)" ] &&
		[ -f "$ORT/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/onnxruntime_binding.node" ] &&
		cmp -s tests/ref/package.json "$ORT/package.json"
}

install_ort() {
	if ort_ready; then
		say "onnxruntime-node $(ort_version): installed in $ORT"
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
		say "node/npm not found: ONNX Runtime not installed; the tests that compare with it will skip"
		return 1
	fi
	rm -rf "$ORT" && mkdir -p "$ORT" && cp tests/ref/package.json "$ORT/package.json"
	# --ignore-scripts: the package's install script downloads more binaries;
	# the CPU library for linux-x64 is inside the package itself.
	if (cd "$ORT" && npm install --ignore-scripts --no-audit --no-fund --no-package-lock \
		--loglevel=error) >"$tmp/npm.log" 2>&1 && ort_ready; then
		say "onnxruntime-node $(ort_version): installed in $ORT"
		return 0
	fi
	say "npm install onnxruntime-node failed; the tests that compare with it will skip:"
	sed 's/^/    /' "$tmp/npm.log" | head -6
	rm -rf "$ORT/node_modules"
	return 1
}

# ===== playwright-core, for the browser tests =====

WEBT=$BUILD/web-tests

web_version() {
	sed -n 's/.*"playwright-core": *"\([^"]*\)".*/\1/p' tests/web/package.json
}

web_ready() {
	v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$WEBT/node_modules/playwright-core/package.json" 2>/dev/null |
		head -1)
	[ "$v" = "$(web_version)" ] && cmp -s tests/web/package.json "$WEBT/package.json"
}

install_web() {
	if web_ready; then
		say "playwright-core $(web_version): installed in $WEBT"
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1; then
		say "npm not found: playwright-core not installed; the browser tests will skip"
		return 1
	fi
	rm -rf "$WEBT" && mkdir -p "$WEBT" && cp tests/web/package.json "$WEBT/package.json"
	# --ignore-scripts: no browser download; the tests drive Debian's chromium
	if (cd "$WEBT" && npm install --ignore-scripts --no-audit --no-fund --no-package-lock \
		--loglevel=error) >"$tmp/npm-web.log" 2>&1 && web_ready; then
		say "playwright-core $(web_version): installed in $WEBT"
		return 0
	fi
	say "npm install playwright-core failed; the browser tests will skip:"
	sed 's/^/    /' "$tmp/npm-web.log" | head -6
	rm -rf "$WEBT/node_modules"
	return 1
}

# ===== s3rver, for the S3 storage tests =====

S3T=$BUILD/s3-tests

s3rver_version() {
	sed -n 's/.*"s3rver": *"\([^"]*\)".*/\1/p' tests/s3/package.json
}

s3rver_ready() {
	v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$S3T/node_modules/s3rver/package.json" 2>/dev/null |
		head -1)
	[ "$v" = "$(s3rver_version)" ] && cmp -s tests/s3/package.json "$S3T/package.json"
}

install_s3rver() {
	if s3rver_ready; then
		say "s3rver $(s3rver_version): installed in $S3T"
		return 0
	fi
	if ! command -v npm >/dev/null 2>&1; then
		say "npm not found: s3rver not installed; the S3 storage tests will skip"
		return 1
	fi
	rm -rf "$S3T" && mkdir -p "$S3T" && cp tests/s3/package.json "$S3T/package.json"
	# --ignore-scripts: s3rver is plain JavaScript, nothing to build
	if (cd "$S3T" && npm install --ignore-scripts --no-audit --no-fund --no-package-lock \
		--loglevel=error) >"$tmp/npm-s3.log" 2>&1 && s3rver_ready; then
		say "s3rver $(s3rver_version): installed in $S3T"
		return 0
	fi
	say "npm install s3rver failed; the S3 storage tests will skip:"
	sed 's/^/    /' "$tmp/npm-s3.log" | head -6
	rm -rf "$S3T/node_modules"
	return 1
}

# ===== Reference outputs =====

models_dir() {
	if [ -n "${PETCUT_MODELS:-}" ]; then echo "$PETCUT_MODELS"; else echo "$HOME/.cache/petcut/models"; fi
}

prepare_refs() {
	t=$BUILD/tests/test_isnet_ort
	if [ ! -x "$t" ]; then
		say "references: $t not built yet; the test computes them on its first run"
		return 0
	fi
	if [ ! -f "$(models_dir)/isnet-medium.onnx" ]; then
		say "references: no models in $(models_dir) (run petcut model fetch); skipped"
		return 0
	fi
	"$t" --prepare || say "references: $t --prepare failed (the test will say why)"
}

# ===== Phone-sized variants =====

# From astronaut.png (512x512), its middle 384x512 scaled by 7.875:
#   upright.jpg     3024x4032 portrait, as seen; no orientation tag; the
#                   reference the others are compared with
#   o6.jpg          the same picture as a phone stores it: pixels 4032x3024
#                   (upright turned a quarter anticlockwise), EXIF orientation
#                   6 ("turn 90 degrees clockwise to view"), plus GPS
#                   position and camera make tags
#   upright.heic    upright.jpg as HEIC (heif-enc, quality 80) with the same
#                   EXIF tags: 3024x4032. heif-enc 1.15 drops the EXIF
#                   orientation and writes no irot box, and HEIF readers
#                   ignore EXIF orientation, so the HEIC is encoded upright,
#                   which is how an iPhone's decodes once its irot is applied
#   adobergb.jpg    upright.jpg converted into Adobe RGB (1998) (icc-profiles-
#                   free's compatibleWithAdobeRGB1998.icc) with that profile
#                   embedded: the same colours, other numbers
PHONE=$BUILD/testdata/phone
ADOBE_ICC=/usr/share/color/icc/compatibleWithAdobeRGB1998.icc

make_phone() {
	src=$PHOTOS/astronaut.png
	want="upright.jpg o6.jpg upright.heic adobergb.jpg"
	missing=0
	for f in $want; do [ -s "$PHONE/$f" ] || missing=1; done
	if [ $missing -eq 0 ]; then
		say "phone variants: cached in $PHONE"
		return 0
	fi
	for tool in vips exiftool heif-enc; do
		if ! command -v $tool >/dev/null 2>&1; then
			say "phone variants: $tool not found (scripts/install-deps.sh installs it); the tests that need them will skip"
			return 1
		fi
	done
	if [ ! -s "$src" ]; then
		say "phone variants: $src missing; skipped"
		return 1
	fi
	mkdir -p "$PHONE" || return 1
	w=$tmp/phone && mkdir -p "$w" || return 1
	gps="-GPSLatitude=48.8584 -GPSLatitudeRef=N -GPSLongitude=2.2945 -GPSLongitudeRef=E -Make=PetcutPhone"
	# shellcheck disable=SC2086
	if vips crop "$src" "$w/mid.v" 64 0 384 512 &&
		vips resize "$w/mid.v" "$w/up.v" 7.875 &&
		vips copy "$w/up.v" "$w/upright.jpg[Q=92,strip]" &&
		vips rot "$w/up.v" "$w/stored.v" d270 &&
		vips copy "$w/stored.v" "$w/o6.jpg[Q=92,strip]" &&
		exiftool -q -overwrite_original -n -Orientation=6 $gps "$w/o6.jpg" &&
		cp "$w/upright.jpg" "$w/tagged.jpg" &&
		exiftool -q -overwrite_original $gps "$w/tagged.jpg" &&
		heif-enc -q 80 "$w/tagged.jpg" -o "$w/upright.heic" >"$tmp/heif.log" 2>&1 &&
		vips icc_transform "$w/upright.jpg" "$w/adobergb.jpg[Q=92]" "$ADOBE_ICC" \
			--input-profile srgb --embedded; then
		for f in $want; do
			cp "$w/$f" "$PHONE/$f.part" && mv "$PHONE/$f.part" "$PHONE/$f"
		done
		say "phone variants: made in $PHONE"
		return 0
	fi
	say "phone variants: could not be made; the tests that need them will skip"
	[ -s "$tmp/heif.log" ] && sed 's/^/    /' "$tmp/heif.log" | tail -3
	return 1
}

# A photo the network is unsure about, for the quality guard's tests:
#   hard/ghost.png  chelsea.png and baboon.jpg (cropped to 451x300) averaged,
#                   a double exposure with no clear subject
HARD=$BUILD/testdata/hard
make_hard() {
	if [ -s "$HARD/ghost.png" ]; then
		say "hard case: cached in $HARD"
		return 0
	fi
	if ! command -v vips >/dev/null 2>&1 || [ ! -s "$PHOTOS/chelsea.png" ] || [ ! -s "$PHOTOS/baboon.jpg" ]; then
		say "hard case: vips or the photos missing; the tests that need it will skip"
		return 1
	fi
	mkdir -p "$HARD" || return 1
	w=$tmp/hard && mkdir -p "$w" || return 1
	if vips thumbnail "$PHOTOS/baboon.jpg" "$w/b.v" 451 --height 300 --crop centre &&
		vips add "$w/b.v" "$PHOTOS/chelsea.png" "$w/sum.v" &&
		vips linear "$w/sum.v" "$w/ghost.png" 0.5 0 --uchar &&
		cp "$w/ghost.png" "$HARD/ghost.png.part" && mv "$HARD/ghost.png.part" "$HARD/ghost.png"; then
		say "hard case: made in $HARD"
		return 0
	fi
	say "hard case: could not be made; the tests that need it will skip"
	return 1
}

if [ "${2:-}" = quality ]; then
	fetch_files quality_list "$QUALITY" "quality bench photos"
	exit 0
fi
fetch_files photo_list "$PHOTOS" photos
make_phone
make_hard
install_web
install_s3rver
install_ort && prepare_refs
exit 0
