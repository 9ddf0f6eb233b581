#!/bin/bash
# bench/run.sh - petcut's inference benchmark, side by side with ONNX Runtime.
#
#   bench/run.sh [BUILD]      (make bench runs it after the set-up)
#
# infer: ISNet medium at 1024x1024 (petcut fp32, bf16, int8), small at
# 1024x1024, and medium at petcut's preview size 512x512, with `petcut infer
# --runs N` against ONNX Runtime (bench/ort_bench.js, onnxruntime-node
# installed under BUILD/ort by scripts/test-setup.sh: the mask output only,
# the same thread count, sequential, graph optimisation all) on the same
# model file and input. ONNX Runtime runs two graphs of a model that holds
# fp16: the exported one (which it computes in fp16 between the Casts) and a
# true fp32 copy made here by bench/onnx_fp32.c (cached in BUILD/bench, never
# committed; its mask is checked against the exported graph's on a test
# photo); the ratio is against the faster of the two. Runtimes alternate
# within each round (petcut fp32, ORT exported, petcut bf16, ORT fp32 copy,
# petcut int8); each invocation warms up once and reports the median of N
# runs; the report gives the median over rounds with the min-max of all runs,
# load time (cold start: parse + passes), first run (plan + weight reorders +
# run), peak RSS, and the ratio petcut / ONNX Runtime, then the sentences
# that quote them; then PETCUT_BENCH_FRESH (default 30) fresh processes each
# time their first pass (with the weights file) against their own 5 warm
# passes, and where a pass's time goes at each precision (petcut infer
# --profile). petcut int8 (static) has no ONNX Runtime counterpart on
# the same model: it is compared with the same model's fp32 and says so;
# small (dynamic int8) is compared like for like. The report goes to stdout
# and into BENCHMARKS.md between its bench markers. Every section records the
# commit measured (+dirty when tracked files differ from it).
#
# Then the other parts, each written into BENCHMARKS.md between its own
# markers:
#  - fg: the subject's own colours at its soft edge on composites of real
#    photos over strongly coloured backgrounds (bench/fg_quality.c);
#  - refine: mask refinement quality (bench/refine_quality.c, built here from
#    BUILD/libpetcut.a): the network's mask brought to the photo's size with
#    IMG_REFINE_NONE and IMG_REFINE_GUIDED on the test photos, against the
#    network's own 1024 mask; and both timed on a 12 MP photo.
#  - e2e: `petcut remove` on a 4032x3024 JPEG to a PNG cut-out (made once from
#    a test photo by bench/big_photo.c, cached in BUILD/bench), wall time and
#    peak RSS from /usr/bin/time, per-stage times where `petcut remove
#    --timings` exists; interleaved with @imgly/background-removal-node
#    (bench/imgly_bench.js; installed into BUILD/imgly from bench/package.json
#    with npm --ignore-scripts): one Node process makes its cold call first,
#    then each round runs petcut (default options), the same at an older
#    commit (PETCUT_BENCH_BASE, as the throughput part's), one warm call of
#    the peer, and petcut's variants (fp32, int8, guided); medians of the
#    rounds.
#    Without node, npm or the package, petcut runs alone and the report says
#    why.
#  - print: the same photo laid out as a print (8 x 10 in at 300 dpi, a
#    shadow and a white background) against the plain cut-out, interleaved,
#    medians of PETCUT_BENCH_PRINT_RUNS (default 5) each;
#  - quality: fine edges, a known alpha recovered in clutter: subjects on
#    plain backgrounds (Debian packages' photos, fetched by
#    `scripts/test-setup.sh BUILD quality`) cut out by petcut give alpha0 and
#    F0; each is composited on cluttered backgrounds B (I = alpha0 F0 +
#    (1 - alpha0) B, so I's alpha is known exactly); `petcut remove --mask`
#    and `petcut remove --bg B'` on each composite, for each refinement of
#    PETCUT_BENCH_REFINES, are compared with alpha0 and with alpha0 F0 +
#    (1 - alpha0) B' (bench/matte_quality.c): alpha error over the image and
#    in the band 0.05 < alpha0 < 0.95, gradient error and colour error there;
#    the worst edge as a picture (bench/quality.png); and each refinement's
#    time and peak RSS on the 12 MP JPEG. alpha0 is the same network's, on
#    the plain photo: the part measures recovery in clutter, not absolute
#    matting quality, and says so. A refinement the CLI refuses fails it (once
#    the other parts have run);
#  - phone: pick to preview in a real browser on an emulated phone
#    (bench/phone.mjs: headless Chromium through playwright-core from
#    BUILD/web-tests, 390x844 at 3x, Chrome DevTools' network profiles none,
#    Fast 3G and Slow 3G), for the demo page and two older flows, on 12 MP
#    JPEGs made once with vips (cached in BUILD/bench/phone-photos), each flow
#    and profile with its own fresh `petcut serve` behind a byte-counting
#    proxy: P50/P95 pick to preview (and to full size), bytes up and down;
#    raw figures in BUILD/bench/phone.json. A (profile, flow) where every run
#    failed, or a server that does not exit 0 on SIGTERM, fails the bench
#    once the other parts have run.
#  - throughput: full-size cut-outs per second from `petcut serve` with 4
#    clients at once, each asking for photos never seen (the phone part's
#    12 MP JPEGs), against the server of an older commit
#    (PETCUT_BENCH_BASE, default 0fb75d0: the last before the work on speed,
#    round two), built in BUILD/bench/base; the two servers take turns, 3
#    rounds each (bench/throughput.py).
#
# Environment: PETCUT_BENCH_RUNS (default 5), PETCUT_BENCH_ROUNDS (default 3),
# PETCUT_BENCH_THREADS (default: all online CPUs), PETCUT_BENCH_PARTS (default
# includes load, the service under wrk and Python clients;
# "infer refine e2e": the parts to run), PETCUT_BENCH_E2E_RUNS (default 5:
# rounds of petcut remove, and warm runs of the peer), PETCUT_BENCH_PHONE_PHOTOS
# (default 10: photos per flow and profile of the phone part),
# PETCUT_BENCH_REFINES (default "none guided matting": the quality part's
# refinements), PETCUT_BENCH_QUALITY_TRUTH (default guided: the refinement of
# its ground truth), PETCUT_BENCH_QUALITY_RUNS (default 5: its cost rounds).

set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
cd "$ROOT"
PETCUT=$BUILD/petcut
RUNS=${PETCUT_BENCH_RUNS:-5}
ROUNDS=${PETCUT_BENCH_ROUNDS:-3}
PRINT_RUNS=${PETCUT_BENCH_PRINT_RUNS:-5}
THREADS=${PETCUT_BENCH_THREADS:-$(nproc)}
ORT_DIR=$BUILD/ort
OUT=$BUILD/bench
PARTS=${PETCUT_BENCH_PARTS:-infer batch refine fg quality e2e print load phone throughput}
E2E_RUNS=${PETCUT_BENCH_E2E_RUNS:-5}
mkdir -p "$OUT"
# the commit measured, recorded in each section; "+dirty" when tracked files
# other than what the bench itself writes differ from it
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no -- . ':!BENCHMARKS.md' ':!bench/inference.png' ':!bench/quality.png' 2>/dev/null)" ] &&
	COMMIT="$COMMIT+dirty"

# part NAME: whether NAME is among the parts to run.
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

# update_section NAME FILE: replaces what BENCHMARKS.md holds between
# <!-- NAME:begin --> and <!-- NAME:end --> with FILE.
update_section() {
	[ -f BENCHMARKS.md ] && grep -q "<!-- $1:begin -->" BENCHMARKS.md || return 0
	awk -v rep="$2" -v b="<!-- $1:begin -->" -v e="<!-- $1:end -->" '
	index($0, b) { print; while ((getline l < rep) > 0) print l; skip = 1; next }
	index($0, e) { skip = 0 }
	!skip { print }' BENCHMARKS.md >"$OUT/BENCHMARKS.md" && mv "$OUT/BENCHMARKS.md" BENCHMARKS.md
	echo "bench: BENCHMARKS.md ($1) updated" >&2
}

medium=$("$PETCUT" model path medium)
small=$("$PETCUT" model path small)

# field FILE KEY: the value printed on the line "KEY value".
field() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# median FILE: the median of the numbers in FILE, one a line.
median() { sort -n "$1" | awk '{ a[NR] = $1 } END { if (NR) print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# prec_ok P: whether petcut runs precision P on this CPU (it says so on
# stderr if not). int8 is calibrated first, on the test photos.
prec_ok() { ! "$PETCUT" infer "$medium" --shape 1,3,64,64 --precision "$1" 2>&1 >/dev/null | grep -q .; }
bf16_ok() { prec_ok bf16; }
int8_state=
int8_ok() {
	if [ -z "$int8_state" ]; then
		int8_state=no
		"$PETCUT" model calibrate --images "$BUILD/testdata/photos" >&2 && prec_ok int8 && int8_state=yes
	fi
	[ "$int8_state" = yes ]
}

# build_tool NAME: compiles bench/NAME.c against BUILD/libpetcut.a with the
# Makefile's packages; prints the binary's path.
build_tool() {
	local pkgs bin=$OUT/$1
	pkgs=$(sed -n 's/^PKGS *= *//p' Makefile)
	if [ ! -x "$bin" ] || [ "bench/$1.c" -nt "$bin" ] || [ "$BUILD/libpetcut.a" -nt "$bin" ]; then
		# shellcheck disable=SC2046,SC2086
		${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wno-unused-parameter -Isrc -I"$BUILD/gen" -fopenmp \
			$(pkg-config --cflags $pkgs) -o "$bin" "bench/$1.c" "$BUILD/libpetcut.a" \
			$(pkg-config --libs $pkgs) -ldnnl -lgomp -lm -lpthread >&2 || return 1
	fi
	echo "$bin"
}

if part infer; then
have_ort=1
if ! [ -d "$ORT_DIR/node_modules/onnxruntime-node" ] || ! command -v node >/dev/null; then
	echo "bench: ONNX Runtime is not installed under $ORT_DIR (scripts/test-setup.sh does it); petcut alone" >&2
	have_ort=0
fi
ort_version=$(node -p "require('./$ORT_DIR/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || echo n/a)

# fp32_copy MODEL: makes (once) OUT/NAME-fp32.onnx, the model with no fp16
# in it (bench/onnx_fp32.c), and prints its path; prints nothing when the
# model has no fp16 to convert or the copy cannot be made.
fp32_copy() {
	local tool copy
	copy=$OUT/$(basename "$1" .onnx)-fp32.onnx
	if [ ! -e "$copy" ] || [ ! -s "$copy.counts" ] || [ "$1" -nt "$copy" ] || [ bench/onnx_fp32.c -nt "$copy" ]; then
		tool=$(build_tool onnx_fp32) && "$tool" "$1" "$copy.part" >"$copy.counts" && mv "$copy.part" "$copy" ||
			{ rm -f "$copy" "$copy.part"; echo "bench: no fp32 copy of $1" >&2; return 0; }
	fi
	if grep -q '^initializers 0 constants 0 casts 0 types 0$' "$copy.counts"; then
		: >"$copy" # nothing to convert: no copy, but remember that
	else
		echo "$copy"
	fi
}

# photo_tensor: ISNet's input for chelsea (1 x 3 x 1024 x 1024, v / 255 - 0.5,
# planar RGB, resized without keeping the aspect) in OUT/chelsea.f32, made
# once with vips; prints its path, or nothing without vips.
photo_tensor() {
	local t=$OUT/chelsea.f32 src=$BUILD/testdata/photos/chelsea.png b
	[ -s "$t" ] && { echo "$t"; return 0; }
	[ -s "$src" ] || src=samples/chelsea.jpg
	command -v vips >/dev/null || return 0
	vips thumbnail "$src" "$OUT/pt.v" 1024 --height 1024 --size force &&
		vips linear "$OUT/pt.v" "$OUT/ptl.v" 0.00392156862745098 " -0.5" &&
		for b in 0 1 2; do
			vips extract_band "$OUT/ptl.v" "$OUT/pt$b.v" "$b" && vips rawsave "$OUT/pt$b.v" "$OUT/pt$b.raw" || break
		done && cat "$OUT/pt0.raw" "$OUT/pt1.raw" "$OUT/pt2.raw" >"$t.part" && mv "$t.part" "$t" && echo "$t"
	rm -f "$OUT"/pt*.v "$OUT"/pt?.raw "$t.part"
}

# mask_diff A B: the largest and mean |difference| of two float32 masks, and
# the IoU of the two at 0.5.
mask_diff() {
	node -e '
	const fs = require("fs");
	const rd = (f) => { const b = fs.readFileSync(f); return new Float32Array(b.buffer, b.byteOffset, b.length / 4); };
	const a = rd(process.argv[1]), b = rd(process.argv[2]);
	let mx = 0, s = 0, i2 = 0, u = 0;
	for (let i = 0; i < a.length; i++) {
		const d = Math.abs(a[i] - b[i]); if (d > mx) mx = d; s += d;
		const x = a[i] >= 0.5, y = b[i] >= 0.5; i2 += x && y; u += x || y;
	}
	console.log(`largest |difference| ${mx.toExponential(1)}, mean ${(s / a.length).toExponential(1)}, IoU at 0.5 ${(i2 / u).toFixed(4)}`);' "$1" "$2"
}

# pc NAME MODEL SHAPE ROUND [PETCUT-ARGS...]: one round of `petcut infer`;
# appends "petcut NAME load first median min max rss" to OUT/raw.
pc() {
	local name=$1 model=$2 shape=$3 r=$4 f
	shift 4
	f=$OUT/$name.petcut.$r
	"$PETCUT" infer "$model" --shape "$shape" --runs "$RUNS" --threads "$THREADS" "$@" >"$f"
	echo "petcut $name $(field "$f" load_ms) $(field "$f" first_ms) $(field "$f" infer_ms) $(field "$f" min_ms) $(field "$f" max_ms) $(field "$f" peak_rss_kb)" >>"$OUT/raw"
	echo "  $name round $r: petcut $(field "$f" infer_ms) ms" >&2
}

# ort TOOL NAME MODEL SHAPE ROUND: one round of ONNX Runtime (bench/ort_bench.js:
# the mask output only, THREADS intra-op threads, sequential, all graph
# optimisations); TOOL is "ort" for the exported graph, "ort32" for its fp32 copy.
ort() {
	local tool=$1 name=$2 model=$3 shape=$4 r=$5 f
	[ $have_ort = 1 ] && [ -n "$model" ] || return 0
	f=$OUT/$name.$tool.$r
	PETCUT_ORT_DIR=$ORT_DIR PETCUT_ORT_THREADS=$THREADS node bench/ort_bench.js "$model" "$shape" "$RUNS" >"$f"
	echo "$tool $name $(field "$f" load_ms) $(field "$f" first_ms) $(field "$f" infer_ms) $(field "$f" min_ms) $(field "$f" max_ms) $(field "$f" peak_rss_kb)" >>"$OUT/raw"
	echo "  $name round $r: onnxruntime ($tool) $(field "$f" infer_ms) ms" >&2
}

: >"$OUT/raw"
echo "bench: $ROUNDS rounds x $RUNS runs, $THREADS threads" >&2
bf16=0
if bf16_ok; then bf16=1; else echo "bench: bf16 does not run here; its cases are skipped" >&2; fi
int8=0
if int8_ok; then int8=1; else
	echo "bench: int8 does not run here (no AVX512_VNNI or no photos to calibrate on); its cases are skipped" >&2
fi
medium32=
small32=
check=
if [ $have_ort = 1 ]; then
	medium32=$(fp32_copy "$medium")
	small32=$(fp32_copy "$small")
	# the copy must compute the same mask as the exported graph
	x=$(photo_tensor)
	if [ -n "$medium32" ] && [ -n "$x" ] &&
		PETCUT_ORT_DIR=$ORT_DIR node tests/ref/ort_run.js "$medium" "$x" 1,3,1024,1024 "$OUT/mask.ort" >/dev/null &&
		PETCUT_ORT_DIR=$ORT_DIR node tests/ref/ort_run.js "$medium32" "$x" 1,3,1024,1024 "$OUT/mask.ort32" >/dev/null; then
		check=$(mask_diff "$OUT/mask.ort" "$OUT/mask.ort32")
		echo "bench: fp32 copy against the exported graph on chelsea: $check" >&2
	fi
fi
# The reordered weights' file (README: PETCUT_WEIGHT_CACHE) starts empty:
# round 1's first runs make it, the later rounds' start from it.
export PETCUT_WEIGHT_CACHE=$OUT/weights
rm -rf "$PETCUT_WEIGHT_CACHE"
# Each round alternates the runtimes: petcut fp32, ONNX Runtime (exported),
# petcut bf16, ONNX Runtime (fp32 copy), petcut int8.
for r in $(seq "$ROUNDS"); do
	pc medium-1024 "$medium" 1,3,1024,1024 "$r" --precision fp32
	ort ort medium-1024 "$medium" 1,3,1024,1024 "$r"
	[ $bf16 = 1 ] && pc medium-1024-bf16 "$medium" 1,3,1024,1024 "$r" --precision bf16
	ort ort32 medium-1024 "$medium32" 1,3,1024,1024 "$r"
	[ $int8 = 1 ] && pc medium-1024-int8 "$medium" 1,3,1024,1024 "$r" --precision int8
done
for r in $(seq "$ROUNDS"); do
	pc small-1024 "$small" 1,3,1024,1024 "$r"
	ort ort small-1024 "$small" 1,3,1024,1024 "$r"
	ort ort32 small-1024 "$small32" 1,3,1024,1024 "$r"
done
# ONNX Runtime cannot run the exported graph at 512 (its upsampling sizes are frozen at 1024)
for r in $(seq "$ROUNDS"); do
	pc medium-512 "$medium" 1,3,512,512 "$r" --precision fp32
	[ $bf16 = 1 ] && pc medium-512-bf16 "$medium" 1,3,512,512 "$r" --precision bf16
	[ $int8 = 1 ] && pc medium-512-int8 "$medium" 1,3,512,512 "$r" --precision int8
done

# A fresh process: the first run with and without the weights file, and
# `petcut serve` (default options) from start to /readyz, with and without
# it, interleaved.
fresh=medium-1024
[ $bf16 = 1 ] && fresh=medium-1024-bf16
cold_first=$(field "$OUT/$fresh.petcut.1" first_ms)
# with the file (round 1 wrote it): FRESH fresh processes, each timing its
# first pass (plan included) and then FRESH_WARM warm ones, so that each
# first run is set against warm passes of the same moment on this shared
# machine (whose noise moves one process's ratio by 0.2 either way: hence
# many processes)
FRESH=${PETCUT_BENCH_FRESH:-30}
FRESH_WARM=5
fresh_prec=fp32
[ $bf16 = 1 ] && fresh_prec=bf16
echo "bench: $FRESH fresh processes, first run against warm ($fresh_prec)" >&2
: >"$OUT/fresh.runs"
for r in $(seq "$FRESH"); do
	f=$OUT/fresh.$r
	"$PETCUT" infer "$medium" --shape 1,3,1024,1024 --runs $FRESH_WARM --threads "$THREADS" --precision $fresh_prec >"$f" &&
		echo "$(field "$f" first_ms) $(field "$f" infer_ms) $(field "$f" weights_file_read)" >>"$OUT/fresh.runs"
done
warm_first=$(awk '{ print $1 }' "$OUT/fresh.runs" >"$OUT/fresh.col" && median "$OUT/fresh.col")
fresh_warm=$(awk '{ print $2 }' "$OUT/fresh.runs" >"$OUT/fresh.col" && median "$OUT/fresh.col")
fresh_ratio=$(awk '$2 > 0 { printf "%.3f\n", $1 / $2 }' "$OUT/fresh.runs" >"$OUT/fresh.col" && median "$OUT/fresh.col")
fresh_on_record=$(awk -v m="$FRESH" '$3 == 0 { n++ } END { n += 0; print n == m ? "each took it on its check record" : n " of the " m " took it on its check record, the others read it through" }' "$OUT/fresh.runs")
echo "bench: serve start to /readyz, with and without the weights file" >&2
python3 bench/readyz.py "$PETCUT" "$OUT/readyz-data" "file=-" "none=PETCUT_WEIGHT_CACHE:off" --rounds "$RUNS" \
	>"$OUT/readyz" || : >"$OUT/readyz"

# where a pass's time goes: petcut infer --profile at 1024 per precision
echo "bench: where a 1024x1024 pass's time goes (petcut infer --profile)" >&2
: >"$OUT/profile"
for prec in fp32 bf16 int8; do
	[ $prec = bf16 ] && [ $bf16 != 1 ] && continue
	[ $prec = int8 ] && [ $int8 != 1 ] && continue
	f=$OUT/profile.$prec
	"$PETCUT" infer "$medium" --shape 1,3,1024,1024 --runs "$RUNS" --threads "$THREADS" --precision $prec --profile >"$f" &&
		awk -v p=$prec '$1 == "profile" { k = $6; for (i = 7; i <= NF; i++) k = k " " $i; tot += $2
				row = row sep sprintf("%s %.1f ms (%s%s)", k, $2, $3, $5 > 0 ? ", " $5 " GFLOP/s" : ""); sep = "; " }
			END { printf "- %s, the steps %.0f ms a pass: %s.\n", p, tot, row }' "$f" >>"$OUT/profile"
done

# summary TOOL CASE: "median min max load first rss": the median of the
# per-round medians; min/max over all runs; medians of load and first run;
# the largest RSS
summary() {
	awk -v tool="$1" -v c="$2" '
	$1 == tool && $2 == c { n++; load[n] = $3; first[n] = $4; med[n] = $5; if (n == 1 || $6 < mn) mn = $6; if ($7 > mx) mx = $7; if ($8 > rss) rss = $8 }
	function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	END { if (n) printf "%.0f %.0f %.0f %.0f %.0f %.0f\n", median(med, n), mn, mx, median(load, n), median(first, n), rss / 1024 }' "$OUT/raw"
}

# faster CASE: "TOOL median" of the faster ONNX Runtime graph for CASE
faster() {
	local o o32
	o=$(summary ort "$1" | cut -d' ' -f1)
	o32=$(summary ort32 "$1" | cut -d' ' -f1)
	if [ -n "$o32" ] && { [ -z "$o" ] || [ "$o32" -lt "$o" ]; }; then echo "ort32 $o32"; elif [ -n "$o" ]; then echo "ort $o"; fi
}

# ratio A B: A / B to two decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
dnnl=$(dpkg-query -W -f '${Version}' libdnnl2 2>/dev/null || echo '?')
ortl="ONNX Runtime $ort_version"
ortw="mask output only, $THREADS threads, sequential, graph optimisation all"
{
	echo "Measured $(date -u +%Y-%m-%d) on $cpu, $(nproc) cores, $THREADS threads; commit $COMMIT; oneDNN $dnnl; $ortl (onnxruntime-node)."
	echo "Command: \`PETCUT_BENCH_PARTS=infer make bench\` ($ROUNDS rounds x $RUNS runs after one warm-up; in each round petcut and ONNX Runtime alternate: petcut fp32, ONNX Runtime on the exported graph, petcut bf16, ONNX Runtime on the fp32 copy, petcut int8)."
	echo "Every figure is a median (of the per-round medians); min-max over all runs. The ratio's denominator is the faster of the two ONNX Runtime graphs of the same model and size (**bold**)."
	echo
	echo "| case | runtime | median ms | min-max ms | load ms | first run ms | peak RSS MB | petcut / ONNX Runtime |"
	echo "|---|---|---|---|---|---|---|---|"
	for c in medium-1024 small-1024; do
		model=${c%-1024}
		fa=$(faster "$c")
		fm=${fa#* }
		for p in fp32 bf16 int8; do
			case $c/$p in
			medium-1024/fp32) k="medium-1024"; label="petcut fp32 (the fp16 weights promoted)" ;;
			medium-1024/bf16) k="medium-1024-bf16"; label="petcut bf16" ;;
			medium-1024/int8) k="medium-1024-int8"; label="petcut int8 (static, calibrated; ONNX Runtime has no int8 of this model: against its fp32)" ;;
			small-1024/fp32) k="small-1024"; label="petcut (the shipped dynamic int8 graph: like for like)" ;;
			*) continue ;;
			esac
			s=$(summary petcut "$k")
			[ -n "$s" ] || continue
			set -- $s
			echo "| $model 1024x1024 | $label | $1 | $2-$3 | $4 | $5 | $6 | $([ -n "$fa" ] && ratio "$1" "$fm" || echo n/a) |"
		done
		for t in ort ort32; do
			s=$(summary $t "$c")
			[ -n "$s" ] || continue
			set -- $s
			if [ $t = ort ] && [ $model = medium ]; then
				label="$ortl, exported graph (fp16 weights, computes in fp16 between Casts), $ortw"
			elif [ $t = ort ]; then
				label="$ortl, exported graph, $ortw"
			else
				label="$ortl, true fp32 copy (bench/onnx_fp32.c), $ortw"
			fi
			m=$1
			[ "${fa%% *}" = $t ] && m="**$1**"
			echo "| $model 1024x1024 | $label | $m | $2-$3 | $4 | $5 | $6 | |"
		done
	done
	for c in medium-512 medium-512-bf16 medium-512-int8; do
		s=$(summary petcut $c)
		[ -n "$s" ] || continue
		set -- $s
		p=${c#medium-512}
		p=${p#-}
		echo "| medium 512x512 | petcut ${p:-fp32} | $1 | $2-$3 | $4 | $5 | $6 | n/a |"
	done
	echo
	fa=$(faster medium-1024)
	if [ -n "$fa" ]; then
		fm=${fa#* }
		line="ISNet medium at 1024x1024 against the faster ONNX Runtime graph ($([ "${fa%% *}" = ort32 ] && echo 'the true fp32 copy' || echo 'the exported graph'), $fm ms):"
		for p in fp32 bf16 int8; do
			k=medium-1024-$p
			[ $p = fp32 ] && k="medium-1024"
			s=$(summary petcut $k | cut -d' ' -f1)
			[ -n "$s" ] && line="$line petcut $p $s ms, $(ratio "$s" "$fm") x;"
		done
		echo "${line%;}."
		o=$(summary ort medium-1024 | cut -d' ' -f1)
		o32=$(summary ort32 medium-1024 | cut -d' ' -f1)
		[ -n "$o" ] && [ -n "$o32" ] &&
			echo "ONNX Runtime on the true fp32 copy takes $(ratio "$o32" "$o") x its time on the exported graph ($o32 against $o ms)."
	fi
	echo "ONNX Runtime cannot run the exported graph at 512x512 (its upsampling sizes are frozen at 1024): the preview rows have no ratio."
	[ -n "$check" ] && echo "The fp32 copy computes the same mask as the exported graph (ONNX Runtime, chelsea at 1024x1024): $check."
	fa=$(faster small-1024)
	s=$(summary petcut small-1024 | cut -d' ' -f1)
	[ -n "$fa" ] && [ -n "$s" ] &&
		echo "Like for like on the shipped dynamic-int8 \`small\` model: petcut $s ms against ONNX Runtime ${fa#* } ms, $(ratio "$s" "${fa#* }") x."
	s=$(summary petcut medium-512-bf16 | cut -d' ' -f1)
	[ -n "$s" ] && echo "The preview (512x512) at bf16 takes $s ms$(s8=$(summary petcut medium-512-int8 | cut -d' ' -f1); [ -n "$s8" ] && echo ", $s8 ms at int8")."
	s=$(summary petcut "$fresh" | cut -d' ' -f1)
	[ -n "$warm_first" ] && [ -n "$fresh_ratio" ] &&
		echo "A fresh process's first run (\`petcut infer --runs $FRESH_WARM\`, 1024 $fresh_prec, the plan built in it), with the reordered weights' file an earlier process wrote ($fresh_on_record): median $warm_first ms over $FRESH fresh processes, each $(printf %.2f "$fresh_ratio") x its own warm passes (the median of each process's first run over its warm median; the warm medians' median $fresh_warm ms); $cold_first ms without the file (round 1 of the table, which writes it)."
	set -- $(awk '$1 == "file" { print $2 }' "$OUT/readyz") $(awk '$1 == "none" { print $2 }' "$OUT/readyz")
	[ $# = 2 ] &&
		echo "\`petcut serve\` (default options: the preview size's plan made before it is ready, the full size's by its worker after) from start to /readyz, median of $RUNS starts each, interleaved: $1 ms with the weights file, $2 ms without (PETCUT_WEIGHT_CACHE=off)."
	if [ -s "$OUT/profile" ]; then
		echo
		echo "Where a pass's time goes (ISNet medium at 1024x1024, \`petcut infer --runs $RUNS --profile\`, each step timed, means of the runs: the kinds of step, time per pass, share, and a convolution's arithmetic rate counted as a direct convolution's):"
		cat "$OUT/profile"
	fi
} >"$OUT/report.md"
cat "$OUT/report.md"

update_section bench "$OUT/report.md"
fi # part infer

# ===== Batches: time per image by batch size, input size and precision =====

if part batch; then
	precs=fp32
	bf16_ok && precs="$precs bf16"
	int8_ok && precs="$precs int8"
	echo "bench: batches of 1-4 at 512 and 1024 ($precs), $RUNS runs each" >&2
	: >"$OUT/batch.raw"
	for prec in $precs; do
		for side in 512 1024; do
			for n in 1 2 3 4; do
				f=$OUT/batch.$prec.$side.$n
				"$PETCUT" infer "$medium" --shape "$n,3,$side,$side" --runs "$RUNS" --threads "$THREADS" \
					--precision "$prec" >"$f"
				echo "$prec $side $n $(field "$f" infer_ms) $(field "$f" min_ms) $(field "$f" max_ms) $(field "$f" peak_rss_kb)" >>"$OUT/batch.raw"
				echo "  $prec ${side}x$side batch $n: $(field "$f" infer_ms) ms" >&2
			done
		done
	done
	{
		echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores, $THREADS threads; commit $COMMIT;"
		echo "ISNet medium; \`petcut infer --shape N,3,S,S --runs $RUNS\` (median after one warm-up); command: \`make bench\`."
		echo
		echo "| precision | input | batch | ms per pass (min-max) | ms per image | images/s | peak RSS MB |"
		echo "|---|---|---|---|---|---|---|"
		awk '{ printf "| %s | %sx%s | %d | %.0f (%.0f-%.0f) | %.0f | %.2f | %d |\n", $1, $2, $2, $3, $4, $5, $6, $4 / $3, 1000 * $3 / $4, $7 / 1024 }' "$OUT/batch.raw"
		if command -v gnuplot >/dev/null; then
			awk '{ print $4 / $3 > "'"$OUT"'/batch." $1 "." $2 ".dat" }' "$OUT/batch.raw"
			plot=""
			for prec in $precs; do
				for side in 512 1024; do
					awk '{ print NR, $1 }' "$OUT/batch.$prec.$side.dat" >"$OUT/batch.$prec.$side.xy"
					plot="$plot${plot:+, }'$OUT/batch.$prec.$side.xy' with linespoints title '$prec ${side}x$side'"
				done
			done
			gnuplot -e "set terminal pngcairo size 800,500; set output 'bench/inference.png';
				set title 'ISNet medium on $(nproc) cores: time per image'; set xlabel 'batch size';
				set ylabel 'ms per image'; set xtics 1; set yrange [0:*]; set key outside right;
				plot $plot" 2>&1 | sed 's/^/    gnuplot: /' >&2 || true
			[ -s bench/inference.png ] && echo && echo "![time per image](bench/inference.png)"
		else
			echo
			echo "(no chart: gnuplot is not installed; scripts/install-deps.sh installs it)"
		fi
	} >"$OUT/batch.md"
	cat "$OUT/batch.md"
	update_section bench-batch "$OUT/batch.md"
fi

# ===== The phone-sized photo (built here: bench/big_photo.c) =====

# The phone-sized photo: a cat, 4032 x 3024, JPEG.
BIG=$OUT/photo-4032x3024.jpg
big_photo() {
	local tool src=$BUILD/testdata/photos/chelsea.png
	[ -s "$BIG" ] && return 0
	[ -s "$src" ] || src=samples/chelsea.jpg
	tool=$(build_tool big_photo) && "$tool" "$src" "$BIG.part" 4032 3024 && mv "$BIG.part" "$BIG"
}

# ===== Mask refinement quality =====

if part refine; then
	echo "bench: mask refinement quality" >&2
	photos=$(ls "$BUILD"/testdata/photos/*.png "$BUILD"/testdata/photos/*.jpg 2>/dev/null)
	if tool=$(build_tool refine_quality) && big_photo; then
		{
			echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; commit $COMMIT;"
			echo "model medium; command: \`make bench\` (bench/refine_quality.c). Differences in 1/255 units."
			echo
			# shellcheck disable=SC2086
			"$tool" "$medium" $photos samples/chelsea.jpg --time "$BIG"
		} >"$OUT/refine.md" && cat "$OUT/refine.md" && update_section bench-refine "$OUT/refine.md"
	else
		echo "bench: refine_quality could not be built; skipped" >&2
	fi
fi

# ===== The subject's own colours at its edge =====

if part fg; then
	echo "bench: foreground colours at the edge" >&2
	photos=$(ls "$BUILD"/testdata/photos/*.png "$BUILD"/testdata/photos/*.jpg 2>/dev/null)
	if tool=$(build_tool fg_quality); then
		{
			echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; commit $COMMIT;"
			echo "model medium; command: \`PETCUT_BENCH_PARTS=fg make bench\` (bench/fg_quality.c). Differences in 1/255 units."
			echo
			# shellcheck disable=SC2086
			"$tool" "$medium" $photos samples/chelsea.jpg
		} >"$OUT/fg.md" && cat "$OUT/fg.md" && update_section bench-fg "$OUT/fg.md"
	else
		echo "bench: fg_quality could not be built; skipped" >&2
	fi
fi

# ===== End to end: petcut remove against @imgly/background-removal-node =====

IMGLY=$BUILD/imgly
imgly_ready() {
	local v
	v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
		"$IMGLY/node_modules/@imgly/background-removal-node/package.json" 2>/dev/null | head -1)
	[ "$v" = "$(sed -n 's/.*"@imgly\/background-removal-node": *"\([^"]*\)".*/\1/p' bench/package.json)" ] &&
		cmp -s bench/package.json "$IMGLY/package.json"
}

# Installs the peer once; says why not and returns 1 if it cannot.
install_imgly() {
	imgly_ready && return 0
	if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
		echo "bench: node/npm not found; @imgly/background-removal-node not installed" >&2
		return 1
	fi
	rm -rf "$IMGLY" && mkdir -p "$IMGLY" && cp bench/package.json "$IMGLY/package.json"
	# --ignore-scripts: the install scripts download binaries; the pinned
	# sharp (0.33) takes its libvips from npm packages instead
	if (cd "$IMGLY" && npm install --ignore-scripts --no-audit --no-fund --no-package-lock \
		--loglevel=error) >"$OUT/imgly-npm.log" 2>&1 && imgly_ready; then
		return 0
	fi
	echo "bench: npm install of @imgly/background-removal-node failed:" >&2
	head -6 "$OUT/imgly-npm.log" | sed 's/^/    /' >&2
	return 1
}

# The commit the e2e and throughput parts measure against, in the same
# rounds (PETCUT_BENCH_BASE, default 0fb75d0: the last before the work on
# speed, round two, when a 12 MP cut-out took 1.1 s).
BASE_REV=${PETCUT_BENCH_BASE:-0fb75d0}

# base_petcut: builds petcut at BASE_REV in OUT/base once (a git worktree)
# and prints its path; fails where this clone lacks the commit.
base_petcut() {
	local dir=$OUT/base
	git cat-file -e "$BASE_REV^{commit}" 2>/dev/null || return 1
	if [ "$(cat "$dir.rev" 2>/dev/null)" != "$(git rev-parse "$BASE_REV")" ] || ! [ -x "$dir/build/petcut" ]; then
		echo "bench: building petcut at $BASE_REV in $dir" >&2
		git worktree remove --force "$dir" 2>/dev/null || rm -rf "$dir"
		git worktree prune
		git worktree add --detach "$dir" "$BASE_REV" >&2 || return 1
		make -C "$dir" -j"$(nproc)" build/petcut >&2 || return 1
		git rev-parse "$BASE_REV" >"$dir.rev"
	fi
	echo "$dir/build/petcut"
}

# stage NAME FILE: the number that follows the stage's name in petcut's
# --timings output (e.g. "decode 123 ms", "decode=123", "decode: 123ms").
stage() {
	awk -v s="$1" '{ for (i = 1; i <= NF; i++) { f = $i; sub(/[:=,]+$/, "", f); v = ""
		if (f == s && i < NF) v = $(i + 1); else if (index($i, s "=") == 1) v = substr($i, length(s) + 2)
		sub(/[^0-9.].*$/, "", v); if (v != "") { print v; exit } } }' "$2"
}

# remove_once TAG ROUND [ARGS...]: one `petcut remove BIG OUT.png ARGS` for
# round ROUND; appends its wall ms, peak RSS and stage times to OUT/e2e.TAG.*.
remove_once() {
	local tag=$1 r=$2 s f timer timings="" bin=${REMOVE_BIN:-$PETCUT}
	shift 2
	"$bin" remove --help 2>&1 | grep -q -- '--timings' && timings=--timings
	f=$OUT/e2e.$tag.$r
	rm -f "$OUT/e2e-$tag.png"
	if [ -x /usr/bin/time ]; then
		timer="/usr/bin/time -v -o $f.time"
	else
		# no GNU time (Debian package "time"): wall time only
		timer=""
		date +%s.%N >"$f.start"
	fi
	if ! $timer "$bin" remove "$BIG" "$OUT/e2e-$tag.png" $timings "$@" 2>"$f.err" >/dev/null; then
		echo "bench: petcut remove $* failed:" >&2
		tail -3 "$f.err" | sed 's/^/    /' >&2
		return 0
	fi
	if [ -n "$timer" ]; then
		awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0
			for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.0f\n", s * 1000 }' "$f.time" >>"$OUT/e2e.$tag.ms"
		awk -F': ' '/Maximum resident set size/ { print $2 }' "$f.time" >>"$OUT/e2e.$tag.rss"
	else
		awk -v now="$(date +%s.%N)" '{ printf "%.0f\n", (now - $1) * 1000 }' "$f.start" >>"$OUT/e2e.$tag.ms"
	fi
	if [ -n "$timings" ]; then
		for s in decode resize infer refine compose encode total; do
			stage "$s" "$f.err" >>"$OUT/e2e.$tag.stage.$s"
		done
	fi
	echo "  e2e round $r: petcut $* $(tail -1 "$OUT/e2e.$tag.ms") ms" >&2
}

# remove_summary TAG: leaves in OUT/e2e.TAG the lines "ms N" (median wall),
# "runs LIST", "rss_kb N" (the largest), "bytes N" (the PNG) and "stages TEXT"
# (median of each stage).
remove_summary() {
	local tag=$1 s v stages=""
	if [ -s "$OUT/e2e.$tag.stage.total" ]; then
		for s in decode resize infer refine compose encode total; do
			v=$(median "$OUT/e2e.$tag.stage.$s")
			stages="$stages${stages:+, }$s ${v:-?}"
		done
		v=$(sed -n 's/^timing: \(mask uncertainty .*\)/\1/p' "$OUT/e2e.$tag.$E2E_RUNS.err" 2>/dev/null)
		[ -n "$v" ] && stages="$stages; $v"
	fi
	{
		echo "ms $(median "$OUT/e2e.$tag.ms")"
		echo "runs $(paste -sd' ' "$OUT/e2e.$tag.ms")"
		echo "rss_kb $(sort -n "$OUT/e2e.$tag.rss" | tail -1)"
		echo "bytes $(stat -c %s "$OUT/e2e-$tag.png" 2>/dev/null || echo 0)"
		echo "stages $stages"
	} >"$OUT/e2e.$tag"
}

# The peer runs in one Node process for the whole part (bench/imgly_bench.js
# driven through two FIFOs): its cold call first, then one warm run per
# round, between petcut's runs of that round.
imgly_pid=
imgly_start() {
	local k v
	rm -f "$OUT/e2e-imgly.png" "$OUT/e2e.imgly" "$OUT/imgly.in" "$OUT/imgly.out"
	mkfifo "$OUT/imgly.in" "$OUT/imgly.out" || return 1
	node bench/imgly_bench.js "$IMGLY" "$BIG" "$OUT/e2e-imgly.png" - <"$OUT/imgly.in" >"$OUT/imgly.out" \
		2>"$OUT/e2e.imgly.err" &
	imgly_pid=$!
	exec {imgly_w}>"$OUT/imgly.in" {imgly_r}<"$OUT/imgly.out"
	# the cold call: the model's load and the session's making
	if read -r -t 600 k v <&"$imgly_r" && [ "$k" = first_ms ]; then
		echo "  e2e: @imgly/background-removal-node cold call $v ms" >&2
		return 0
	fi
	imgly_failed
	return 1
}
imgly_failed() {
	echo "bench: @imgly/background-removal-node failed:" >&2
	tail -5 "$OUT/e2e.imgly.err" | sed 's/^/    /' >&2
	have_imgly=0
}
# imgly_once ROUND: one warm run
imgly_once() {
	local k v
	[ $have_imgly = 1 ] || return 0
	echo run >&"$imgly_w" || { imgly_failed; return 0; }
	if read -r -t 600 k v <&"$imgly_r" && [ "$k" = run_ms ]; then
		echo "  e2e round $1: @imgly/background-removal-node $v ms" >&2
	else
		imgly_failed
	fi
}
# imgly_finish: ends its stdin and collects its summary in OUT/e2e.imgly
imgly_finish() {
	[ -n "$imgly_pid" ] || return 0
	[ $have_imgly = 1 ] || kill "$imgly_pid" 2>/dev/null || true
	exec {imgly_w}>&-
	cat <&"$imgly_r" >"$OUT/e2e.imgly"
	exec {imgly_r}<&-
	if ! wait "$imgly_pid" && [ $have_imgly = 1 ]; then
		imgly_failed
	fi
	rm -f "$OUT/imgly.in" "$OUT/imgly.out"
}

if part e2e; then
	echo "bench: end to end, 4032x3024 JPEG to PNG cut-out" >&2
	if ! big_photo; then
		echo "bench: could not make the 12 MP photo; end-to-end part skipped" >&2
	else
		base_bin=$(base_petcut) || base_bin=
		load0=$(cut -d' ' -f1 /proc/loadavg)
		tags="petcut fp32"
		int8_ok && tags="$tags int8"
		tags="$tags guided"
		[ -n "$base_bin" ] && tags="$tags base"
		for t in $tags; do
			: >"$OUT/e2e.$t.ms"
			: >"$OUT/e2e.$t.rss"
			rm -f "$OUT/e2e.$t.stage".*
		done
		have_imgly=0
		install_imgly && have_imgly=1 && { imgly_start || true; }
		# each round: petcut (default options), the peer, then petcut's variants
		for r in $(seq "$E2E_RUNS"); do
			remove_once petcut "$r"
			[ -n "$base_bin" ] && REMOVE_BIN=$base_bin remove_once base "$r"
			imgly_once "$r"
			remove_once fp32 "$r" --precision fp32
			case " $tags " in *" int8 "*) remove_once int8 "$r" --precision int8 ;; esac
			remove_once guided "$r" --refine guided
		done
		imgly_finish
		for t in $tags; do remove_summary "$t"; done
		load1=$(cut -d' ' -f1 /proc/loadavg)
		i_ms=$(field "$OUT/e2e.imgly" median_ms 2>/dev/null || true)
		i_rss=$(field "$OUT/e2e.imgly" peak_rss_kb 2>/dev/null || true)
		{
			echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; commit $COMMIT;"
			echo "photo: 4032x3024 JPEG (bench/big_photo.c from chelsea.png); model medium; $E2E_RUNS rounds, in each: petcut remove (default options), the same at $BASE_REV, the peer (warm, in one Node process whose cold first call came before the rounds), petcut's variants; medians of the rounds; command: \`PETCUT_BENCH_PARTS=e2e make bench\`;"
			echo "load average (1 min) $load0 before the runs, $load1 after (other work on the machine slows both tools)."
			echo
			echo "| tool | median wall ms | runs ms | peak RSS MB | output bytes | time / peer's warm median | RSS / peer |"
			echo "|---|---|---|---|---|---|---|"
			for t in $tags; do
				case $t in
				petcut) label="petcut remove (default options: bf16, --refine none), a fresh process" ;;
				base) label="the same at $BASE_REV (before the work on speed, round two)" ;;
				fp32 | int8) label="petcut remove --precision $t, a fresh process" ;;
				*) label="petcut remove --refine $t, a fresh process" ;;
				esac
				ms=$(field "$OUT/e2e.$t" ms)
				rss=$(field "$OUT/e2e.$t" rss_kb)
				rss=${rss:-0}
				if [ $have_imgly = 1 ] && [ -n "$ms" ] && [ -n "$i_ms" ]; then
					rt=$(awk -v a="$ms" -v b="$i_ms" 'BEGIN { printf "%.2f", a / b }')
					rr=$(awk -v a="$rss" -v b="$i_rss" 'BEGIN { printf "%.2f", a / b }')
				else
					rt=n/a
					rr=n/a
				fi
				echo "| $label | ${ms:-failed} | $(sed -n 's/^runs //p' "$OUT/e2e.$t") | $((rss / 1024)) | $(field "$OUT/e2e.$t" bytes) | $rt | $rr |"
			done
			if [ $have_imgly = 1 ] && [ -n "$i_ms" ]; then
				echo "| @imgly/background-removal-node $(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$IMGLY/node_modules/@imgly/background-removal-node/package.json" | head -1), warm (its cold first call, model load included: $(field "$OUT/e2e.imgly" first_ms) ms) | $i_ms | $(sed -n 's/^imgly_bench: run [0-9]*: \([0-9]*\) ms$/\1/p' "$OUT/e2e.imgly.err" | paste -sd' ') | $((i_rss / 1024)) | $(field "$OUT/e2e.imgly" out_bytes) | | |"
			else
				echo "| @imgly/background-removal-node | not run (see the bench's messages) | | | | | |"
			fi
			echo
			for t in $tags; do
				st=$(sed -n 's/^stages //p' "$OUT/e2e.$t")
				case $t in
				petcut) label="petcut remove" ;;
				base) label="petcut remove at $BASE_REV" ;;
				fp32 | int8) label="petcut remove --precision $t" ;;
				*) label="petcut remove --refine $t" ;;
				esac
				if [ -n "$st" ]; then
					echo "- \`$label\`, stages (median ms, from \`--timings\`): $st."
				fi
			done
			ms=$(field "$OUT/e2e.petcut" ms)
			b_ms=$(field "$OUT/e2e.base" ms 2>/dev/null || true)
			if [ -n "$ms" ] && [ -n "$b_ms" ]; then
				echo
				echo "In the same rounds petcut at $BASE_REV took $b_ms ms: petcut now takes $(awk -v a="$ms" -v b="$b_ms" 'BEGIN { printf "%.2f", a / b }') x that time."
			fi
			if [ $have_imgly = 1 ] && [ -n "$ms" ] && [ -n "$i_ms" ]; then
				echo
				echo "A 12 MP cut-out with the default options takes petcut $ms ms from a fresh process (model load and first pass included) against $i_ms ms for the peer's warm call ($(awk -v a="$ms" -v b="$i_ms" 'BEGIN { printf "%.2f", a / b }') x), at $(($(field "$OUT/e2e.petcut" rss_kb) / 1024)) MB against $((i_rss / 1024)) MB."
			fi
		} >"$OUT/e2e.md"
		cat "$OUT/e2e.md"
		update_section bench-e2e "$OUT/e2e.md"
	fi
fi

# ===== A print: the 12 MP photo laid out on 8 x 10 in at 300 dpi =====

# wall ms of one `petcut remove BIG OUT ARGS...` (empty when it failed)
time_remove() {
	local out=$1 t0 t1
	shift
	t0=$(date +%s%N)
	"$PETCUT" remove "$BIG" "$out" "$@" >/dev/null 2>"$OUT/print.err" || { tail -3 "$OUT/print.err" >&2; return 0; }
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

if part print; then
	echo "bench: a print render against the plain cut-out, 12 MP" >&2
	if ! big_photo; then
		echo "bench: could not make the 12 MP photo; print part skipped" >&2
	else
		PRINT_ARGS="--canvas 8x10in --dpi 300 --scale 85% --effect shadow --bg white"
		: >"$OUT/print.plain" && : >"$OUT/print.print"
		load0=$(cut -d' ' -f1 /proc/loadavg)
		for r in $(seq "$PRINT_RUNS"); do # interleaved: plain, print, plain, ...
			time_remove "$OUT/print-plain.png" >>"$OUT/print.plain"
			# shellcheck disable=SC2086
			time_remove "$OUT/print-print.png" $PRINT_ARGS >>"$OUT/print.print"
		done
		p_ms=$(median "$OUT/print.plain")
		q_ms=$(median "$OUT/print.print")
		load1=$(cut -d' ' -f1 /proc/loadavg)
		{
			echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; commit $COMMIT;"
			echo "photo: 4032x3024 JPEG (bench/big_photo.c); $PRINT_RUNS runs each, interleaved; command: \`PETCUT_BENCH_PARTS=print make bench\`;"
			echo "load average (1 min) $load0 before the runs, $load1 after."
			echo
			echo "| render | median wall ms | runs ms | output |"
			echo "|---|---|---|---|"
			echo "| \`petcut remove photo.jpg out.png\` (the plain cut-out) | $p_ms | $(paste -sd' ' "$OUT/print.plain") | $(vipsheader "$OUT/print-plain.png" 2>/dev/null | cut -d: -f2- | cut -d, -f1) |"
			echo "| \`petcut remove photo.jpg out.png $PRINT_ARGS\` | $q_ms | $(paste -sd' ' "$OUT/print.print") | $(vipsheader "$OUT/print-print.png" 2>/dev/null | cut -d: -f2- | cut -d, -f1), $(vipsheader -f xres "$OUT/print-print.png" 2>/dev/null | awk '{ printf "%.0f dpi", $1 * 25.4 }') |"
			echo
			if [ -n "$p_ms" ] && [ -n "$q_ms" ]; then
				echo "The print takes $(awk -v a="$q_ms" -v b="$p_ms" 'BEGIN { printf "%.2f", a / b }') x the plain cut-out's time (medians; the target is at most 1.5 x)."
			fi
		} >"$OUT/print.md"
		cat "$OUT/print.md"
		update_section bench-print "$OUT/print.md"
	fi
fi

# ===== Fine edges: a known alpha recovered in clutter =====

# The refinements measured (PETCUT_BENCH_REFINES; one the CLI refuses fails
# the part), the one that makes the ground truth, and the cost's rounds.
QUALITY_REFINES=${PETCUT_BENCH_REFINES:-none guided matting}
QUALITY_TRUTH=${PETCUT_BENCH_QUALITY_TRUTH:-guided}
QUALITY_RUNS=${PETCUT_BENCH_QUALITY_RUNS:-5}
QUALITY_STRIP=bench/quality.png
quality_rc=0

# quality_fail MESSAGE [FILE]: says why the part failed, with FILE's tail
# (petcut's own message), and returns 1.
quality_fail() {
	echo "bench: quality: $1" >&2
	if [ -n "${2:-}" ] && [ -s "$2" ]; then tail -3 "$2" | sed 's/^/    /' >&2; fi
	return 1
}

# quality_remove DIR REFINE: petcut's alpha of DIR/comp.png and the
# composite on DIR/bg2.png (B', the composite's size: drawn as it is), with
# REFINE and the default edges (clean, since a background is drawn).
quality_remove() {
	if ! "$PETCUT" remove "$1/comp.png" "$1/mask-$2.png" --mask --refine "$2" 2>"$1/err" >/dev/null ||
		! "$PETCUT" remove "$1/comp.png" "$1/out-$2.png" --refine "$2" --bg "$1/bg2.png" 2>"$1/err" >/dev/null; then
		quality_fail "petcut remove --refine $2 failed on $1/comp.png" "$1/err"
	fi
}

# quality_keep DIR: keeps DIR's images if it is the composite with the
# largest band error (summed over the refinements) so far, among all
# (keep_any) or among those where every refinement found the subject, IoU
# at 0.5 with alpha0 at least 0.9 (keep_found); drops those it replaces.
keep_any=
keep_found=
best_any=-1
best_found=-1
quality_keep() {
	local score found old1="" old2=""
	score=$(awk '{ s += $3 } END { print s + 0 }' "$1/figures")
	found=$(awk '$8 < 0.9 { f = 1 } END { print f ? 0 : 1 }' "$1/figures")
	if [ "$found" = 1 ] && awk -v a="$score" -v b="$best_found" 'BEGIN { exit !(a > b) }'; then
		old1=$keep_found
		keep_found=$1
		best_found=$score
	fi
	if awk -v a="$score" -v b="$best_any" 'BEGIN { exit !(a > b) }'; then
		old2=$keep_any
		keep_any=$1
		best_any=$score
	fi
	for d in "$old1" "$old2" "$1"; do
		if [ -n "$d" ] && [ "$d" != "$keep_found" ] && [ "$d" != "$keep_any" ]; then rm -f "$d"/*.png; fi
	done
}

# quality_measure: the ground truths, the composites, petcut's answers and
# their figures (OUT/quality.tsv), the strip and the cost (OUT/quality.cost.*).
quality_measure() {
	local tool q=$OUT/quality src=$BUILD/testdata/quality s b name bname d size r i n worst
	local -a subjects bgs
	scripts/test-setup.sh "$BUILD" quality >&2
	mapfile -t subjects < <(ls "$src"/subjects/* 2>/dev/null)
	mapfile -t bgs < <(ls "$src"/backgrounds/* 2>/dev/null)
	[ ${#subjects[@]} -ge 1 ] && [ ${#bgs[@]} -ge 2 ] ||
		quality_fail "no photos in $src (scripts/test-setup.sh $BUILD quality fetches them)" || return 1
	tool=$(build_tool matte_quality) || quality_fail "bench/matte_quality.c could not be built" || return 1
	rm -rf "$q" && mkdir -p "$q" || return 1
	: >"$OUT/quality.tsv"
	for s in "${subjects[@]}"; do
		name=$(basename "${s%.*}")
		mkdir -p "$q/$name"
		# the ground truth: petcut's cut-out of the photo on its plain
		# background, its alpha (alpha0) and its colours with the
		# subject's own estimated at the edge (F0)
		"$tool" photo "$s" "$q/$name/photo.png" &&
			"$PETCUT" remove "$q/$name/photo.png" "$q/$name/cut.png" --refine "$QUALITY_TRUTH" --edges clean \
				2>"$q/$name/err" >/dev/null ||
			quality_fail "no ground truth for $s" "$q/$name/err" || return 1
		n=${#bgs[@]}
		for i in $(seq 0 $((n - 1))); do
			b=${bgs[$i]}
			bname=$(basename "${b%.*}")
			d=$q/$name-$bname
			mkdir -p "$d"
			# B' is the next background of the list
			size=$("$tool" compose "$q/$name/cut.png" "$b" "${bgs[$(((i + 1) % n))]}" "$d") ||
				quality_fail "no composite of $name on $bname" || return 1
			for r in $QUALITY_REFINES; do
				quality_remove "$d" "$r" || return 1
			done
			# shellcheck disable=SC2086
			"$tool" measure "$q/$name/cut.png" "$d" $QUALITY_REFINES >"$d/figures" ||
				quality_fail "no figures for $d" || return 1
			sed "s/^/$name $bname $size /" "$d/figures" >>"$OUT/quality.tsv"
			echo "  quality: $name on $bname ($size): $(awk '{ printf "%s%s band |diff| %.1f", (NR > 1 ? ", " : ""), $1, $3 }' "$d/figures")" >&2
			quality_keep "$d"
		done
	done
	# the strip: the composite with the largest band error among those
	# where every refinement found the subject, else among all
	worst=${keep_found:-$keep_any}
	name=$(basename "$worst")
	# shellcheck disable=SC2086
	"$tool" strip "$QUALITY_STRIP" "$q/${name%%-*}/cut.png" "$worst" 256 $QUALITY_REFINES >"$q/window" ||
		quality_fail "no strip" || return 1
	echo "$name $([ -n "$keep_found" ] && echo found || echo any) $(cat "$q/window")" >"$q/strip"

	# the cost: petcut remove on the 12 MP JPEG, a fresh process each run,
	# the refinements in turn within each round
	big_photo || quality_fail "could not make the 12 MP photo" || return 1
	for r in $QUALITY_REFINES; do
		: >"$OUT/quality.cost.$r.ms"
		: >"$OUT/quality.cost.$r.rss"
	done
	for i in $(seq "$QUALITY_RUNS"); do
		for r in $QUALITY_REFINES; do
			"$tool" time "$q/time" "$PETCUT" remove "$BIG" "$q/cost.png" --refine "$r" 2>"$q/err" >/dev/null ||
				quality_fail "petcut remove --refine $r failed on $BIG" "$q/err" || return 1
			field "$q/time" ms >>"$OUT/quality.cost.$r.ms"
			field "$q/time" rss_kb >>"$OUT/quality.cost.$r.rss"
			echo "  quality cost round $i: --refine $r $(field "$q/time" ms) ms" >&2
		done
	done
	rm -f "$q/cost.png"
}

# quality_report: the section, from OUT/quality.tsv and OUT/quality.cost.*;
# the per-composite detail into OUT/quality-detail.md.
quality_report() {
	local r all=" none guided matting " ms rss nc ns nb
	for r in $QUALITY_REFINES; do
		case $all in *" $r "*) ;; *) all="$all$r " ;; esac
	done
	nc=$(awk '!seen[$1 $2]++' "$OUT/quality.tsv" | wc -l)
	ns=$(cut -d' ' -f1 "$OUT/quality.tsv" | sort -u | wc -l)
	nb=$(cut -d' ' -f2 "$OUT/quality.tsv" | sort -u | wc -l)
	echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; commit $COMMIT;"
	echo "model medium, default precision; command: \`PETCUT_BENCH_PARTS=quality PETCUT_BENCH_REFINES=\"$QUALITY_REFINES\" bench/run.sh build\` (bench/matte_quality.c);"
	echo "$nc composites: $ns subjects on a plain background x $nb cluttered backgrounds (scripts/test-setup.sh, quality_list), each at the subject photo's size."
	echo
	echo "The known alpha is not a hand-made matte: alpha0 is petcut's own (the same network, \`petcut remove PHOTO --refine $QUALITY_TRUTH --edges clean\`) on the subject's photo with its plain background, so these figures say how well petcut recovers a known alpha in clutter, not how good its mattes are in absolute terms."
	echo
	echo "| refinement | mean \\|alpha - alpha0\\| | in the band | gradient error in the band | colour error on B', band | whole image | found | 12 MP: ms (min-max) | peak RSS MB |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for r in $all; do
		case " $QUALITY_REFINES " in
		*" $r "*)
			ms=$(median "$OUT/quality.cost.$r.ms")
			rss=$(median "$OUT/quality.cost.$r.rss")
			ms="$ms ($(sort -n "$OUT/quality.cost.$r.ms" | head -1)-$(sort -n "$OUT/quality.cost.$r.ms" | tail -1))"
			awk -v r="$r" -v ms="$ms" -v rss="$rss" '$4 == r { n++; for (i = 5; i <= 9; i++) s[i] += $i; f += $11 >= 0.9 }
				END { printf "| `--refine %s` | %.2f | %.2f | %.2f | %.2f | %.2f | %d of %d | %s | %.0f |\n", r,
					s[5] / n, s[6] / n, s[7] / n, s[8] / n, s[9] / n, f, n, ms, rss / 1024 }' "$OUT/quality.tsv"
			;;
		*) echo "| \`--refine $r\` | to be filled by the run | | | | | | | |" ;;
		esac
	done
	echo
	echo "Alpha and colour differences in 1/255 units, means over the $nc composites; the band: 0.05 < alpha0 < 0.95;" \
		"gradient error: the mean over the band of \\| \\|grad alpha\\| - \\|grad alpha0\\| \\|, gradients by first derivatives of a Gaussian of sigma 1.4 px (alphamatting.com's filter; its gradient error sums the squares instead);" \
		"colour error: petcut's composite on a new background B' (\`--bg\` the next background of the list, at the composite's size) against alpha0 F0 + (1 - alpha0) B', mean over R, G and B;" \
		"found: the composites where the IoU of alpha and alpha0 at 0.5 is at least 0.9 (below it the network took part of the clutter for the subject, or lost part of the subject, and the whole-image figures are mostly that)."
	echo "Cost: \`petcut remove\` of the 12 MP JPEG (bench/big_photo.c) to a PNG cut-out, a fresh process each run, the refinements in turn in each of $QUALITY_RUNS rounds; medians of wall time and of the child's peak RSS (wait4)."
	echo
	echo "| subject | size | refinement | band \\|alpha - alpha0\\| | band gradient error | band colour error |"
	echo "|---|---|---|---|---|---|"
	awk '{ k = $1 " " $3 " " $4; if (!(k in n)) order[++m] = k; n[k]++; a[k] += $6; g[k] += $7; c[k] += $8 }
		END { for (i = 1; i <= m; i++) { k = order[i]; split(k, p, " ")
			printf "| %s | %s | `%s` | %.2f | %.2f | %.2f |\n", p[1], p[2], p[3], a[k] / n[k], g[k] / n[k], c[k] / n[k] } }' \
		"$OUT/quality.tsv"
	echo
	echo "Each subject's row is the mean over its $nb backgrounds; every composite's figures are in build/bench/quality-detail.md."
	local base=${QUALITY_REFINES%% *}
	for r in ${QUALITY_REFINES#"$base"}; do
		awk -v b="$base" -v r="$r" -v bms="$(median "$OUT/quality.cost.$base.ms")" -v rms="$(median "$OUT/quality.cost.$r.ms")" \
			-v brss="$(median "$OUT/quality.cost.$base.rss")" -v rrss="$(median "$OUT/quality.cost.$r.rss")" '
			$4 == b { nb++; ab += $6; gb += $7; cb += $8 } $4 == r { nr++; ar += $6; gr += $7; cr += $8 }
			function pct(x, y) { return y ? sprintf("%+.0f %%", 100 * (x / y - 1)) : "n/a" }
			END { ab /= nb; gb /= nb; cb /= nb; ar /= nr; gr /= nr; cr /= nr
				printf "Against `--refine %s`, `--refine %s` changes the band alpha error by %s (%.2f against %.2f), the band gradient error by %s, the band colour error on B'"'"' by %s, for %+d ms and %+.0f MB of peak RSS on the 12 MP photo.\n",
					b, r, pct(ar, ab), ar, ab, pct(gr, gb), pct(cr, cb), rms - bms, (rrss - brss) / 1024 }' "$OUT/quality.tsv"
	done
	local comp among x y size
	read -r comp among _ x y size <"$OUT/quality/strip"
	if [ "$among" = found ]; then
		among="among those where every refinement found the subject"
	else
		among="(no composite had every refinement find the subject)"
	fi
	echo
	echo "![the worst edge under each refinement]($QUALITY_STRIP)"
	echo
	echo "The strip: the composite with the largest band error $among, $comp; its $size x $size px window with the largest band error (at $x,$y): the ground truth on B' and each refinement's composite on B' above, alpha0 and each refinement's alpha below."
}

# quality_detail: every composite's figures, OUT/quality-detail.md.
quality_detail() {
	echo "| subject | background | size | refinement | mean \\|alpha - alpha0\\| | band | band gradient error | band colour error | colour error | band px | IoU at 0.5 |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|"
	awk '{ printf "| %s | %s | %s | `%s` | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %.4f |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' \
		"$OUT/quality.tsv"
}

if part quality; then
	echo "bench: fine edges, a known alpha recovered in clutter (--refine $QUALITY_REFINES)" >&2
	load0=$(cut -d' ' -f1 /proc/loadavg)
	t0=$(date +%s)
	if quality_measure; then
		quality_report >"$OUT/quality.md"
		echo "The part took $(($(date +%s) - t0)) s; load average (1 min) $load0 before, $(cut -d' ' -f1 /proc/loadavg) after." >>"$OUT/quality.md"
		quality_detail >"$OUT/quality-detail.md"
		cat "$OUT/quality.md"
		echo "bench: per-composite figures in $OUT/quality-detail.md" >&2
		update_section bench-quality "$OUT/quality.md"
	else
		quality_rc=1
	fi
fi

# ===== The service under load (loopback) =====

if part load; then
	if ! command -v wrk >/dev/null || ! command -v vips >/dev/null || ! command -v python3 >/dev/null; then
		echo "bench: load part needs wrk, vips (libvips-tools) and python3; skipped" >&2
	else
		# a ~2.5 MB JPEG of noise (phones' JPEGs after the browser's shrink are about that)
		up=$OUT/upload-2.5mb.jpg
		if [ ! -s "$up" ]; then
			for b in 1 2 3; do vips gaussnoise "$OUT/n$b.v" 1240 920 --mean 128 --sigma 60; done
			vips bandjoin "$OUT/n1.v $OUT/n2.v $OUT/n3.v" "$OUT/n.v" && vips cast "$OUT/n.v" "$OUT/nu.v" uchar &&
				vips copy "$OUT/nu.v" "$up[Q=95]"
			rm -f "$OUT"/n*.v
		fi
		{
			echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; commit $COMMIT;"
			echo "command: \`make bench\` (bench/load.py: wrk for hits and uploads, Python clients for misses); all on 127.0.0.1."
			echo
			python3 bench/load.py "$PETCUT" "$up" "$OUT/load.table"
		} >"$OUT/load.md"
		cat "$OUT/load.md"
		update_section bench-load "$OUT/load.md"
	fi
fi

# ===== Phone network: pick to preview in a real browser =====

if part phone; then
	if ! command -v node >/dev/null || ! command -v vips >/dev/null ||
		! [ -d "$BUILD/web-tests/node_modules/playwright-core" ] || ! [ -x "${PETCUT_CHROMIUM:-/usr/bin/chromium}" ]; then
		echo "bench: phone part needs node, vips, chromium and playwright-core in $BUILD/web-tests (scripts/test-setup.sh); skipped" >&2
	else
		echo "bench: phone network, pick to preview in Chromium (${PETCUT_BENCH_PHONE_PHOTOS:-10} photos x 3 flows x 3 profiles)" >&2
		phone_rc=0
		node bench/phone.mjs "$BUILD" >"$OUT/phone.md" || phone_rc=$?
		if [ -s "$OUT/phone.md" ]; then
			cat "$OUT/phone.md"
			update_section phone "$OUT/phone.md"
		fi
		if [ $phone_rc != 0 ]; then
			echo "bench: phone part failed (exit $phone_rc; see above and $OUT/phone.json)" >&2
			exit "$phone_rc"
		fi
	fi
fi

# ===== Throughput: full-size cut-outs with 4 clients, against an older commit =====

if part throughput; then
	if ! command -v node >/dev/null || ! command -v vips >/dev/null || ! command -v python3 >/dev/null ||
		! base_petcut >/dev/null; then
		echo "bench: throughput part needs node, vips, python3 and commit $BASE_REV in this clone; skipped" >&2
	else
		PETCUT_BENCH_PHONE_PHOTOS_ONLY=1 PETCUT_BENCH_PHONE_PHOTOS=9 node bench/phone.mjs "$BUILD" >&2
		base_dir=$OUT/base
		echo "bench: throughput, 4 clients, full-size cut-outs (3 rounds per server)" >&2
		python3 bench/throughput.py "$OUT/throughput.table" 3 "$BASE_REV=$base_dir/build/petcut" "$COMMIT=$PETCUT" -- \
			"$OUT"/phone-photos/photo-0[1-9].jpg
		{
			echo "Measured $(date -u +%Y-%m-%d) on $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores; commit $COMMIT against $BASE_REV;"
			echo "command: \`PETCUT_BENCH_PARTS=throughput make bench\` (bench/throughput.py); all on 127.0.0.1, the clients on the same cores as the server."
			echo
			cat "$OUT/throughput.table"
		} >"$OUT/throughput.md"
		cat "$OUT/throughput.md"
		update_section bench-throughput "$OUT/throughput.md"
	fi
fi

# a part that failed fails the bench, once the other parts have run
if [ "$quality_rc" != 0 ]; then
	echo "bench: quality part failed (see above)" >&2
	exit "$quality_rc"
fi
