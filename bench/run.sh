#!/bin/bash
# bench/run.sh - petcut's inference benchmark, side by side with ONNX Runtime.
#
#   bench/run.sh [BUILD]      (make bench runs it after the set-up)
#
# For each case (ISNet medium and small at 1024x1024, petcut's preview size
# 512x512), runs `petcut infer --runs N` and ONNX Runtime (bench/ort_bench.js,
# onnxruntime-node installed under BUILD/ort by scripts/test-setup.sh) on the
# same model file, the same input and the same thread count, alternating the
# two for several rounds. Each invocation warms up once and reports the median
# of N runs; the report gives the median over rounds with the min-max of all
# runs, load time (cold start: parse + passes), first run (plan + weight
# reorders + run), peak RSS, and the ratio petcut / ONNX Runtime. The report
# goes to stdout and into BENCHMARKS.md between its bench markers.
#
# Environment: PETCUT_BENCH_RUNS (default 5), PETCUT_BENCH_ROUNDS (default 3),
# PETCUT_BENCH_THREADS (default: all online CPUs).

set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-build}
cd "$ROOT"
PETCUT=$BUILD/petcut
RUNS=${PETCUT_BENCH_RUNS:-5}
ROUNDS=${PETCUT_BENCH_ROUNDS:-3}
THREADS=${PETCUT_BENCH_THREADS:-$(nproc)}
ORT_DIR=$BUILD/ort
OUT=$BUILD/bench
mkdir -p "$OUT"

medium=$("$PETCUT" model path medium)
small=$("$PETCUT" model path small)
have_ort=1
if ! [ -d "$ORT_DIR/node_modules/onnxruntime-node" ] || ! command -v node >/dev/null; then
	echo "bench: ONNX Runtime is not installed under $ORT_DIR (scripts/test-setup.sh does it); petcut alone" >&2
	have_ort=0
fi

# field FILE KEY: the value printed on the line "KEY value".
field() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# run_case NAME MODEL SHAPE: appends "tool case load first median min max rss" lines.
run_case() {
	local name=$1 model=$2 shape=$3 r f
	for r in $(seq "$ROUNDS"); do
		f=$OUT/$name.petcut.$r
		"$PETCUT" infer "$model" --shape "$shape" --runs "$RUNS" --threads "$THREADS" >"$f"
		echo "petcut $name $(field "$f" load_ms) $(field "$f" first_ms) $(field "$f" infer_ms) $(field "$f" min_ms) $(field "$f" max_ms) $(field "$f" peak_rss_kb)" >>"$OUT/raw"
		echo "  $name round $r: petcut $(field "$f" infer_ms) ms" >&2
		if [ $have_ort = 1 ] && [ "${4:-}" != petcut-only ]; then
			f=$OUT/$name.ort.$r
			PETCUT_ORT_DIR=$ORT_DIR PETCUT_ORT_THREADS=$THREADS node bench/ort_bench.js "$model" "$shape" "$RUNS" >"$f"
			echo "ort $name $(field "$f" load_ms) $(field "$f" first_ms) $(field "$f" infer_ms) $(field "$f" min_ms) $(field "$f" max_ms) $(field "$f" peak_rss_kb)" >>"$OUT/raw"
			echo "  $name round $r: onnxruntime $(field "$f" infer_ms) ms" >&2
		fi
	done
}

: >"$OUT/raw"
echo "bench: $ROUNDS rounds x $RUNS runs, $THREADS threads" >&2
run_case medium-1024 "$medium" 1,3,1024,1024
run_case small-1024 "$small" 1,3,1024,1024
# ONNX Runtime cannot run the exported graph at 512 (its upsampling sizes are frozen at 1024)
run_case medium-512 "$medium" 1,3,512,512 petcut-only

# summary: median of the per-round medians; min/max over all runs
summary() {
	awk -v tool="$1" -v c="$2" '
	$1 == tool && $2 == c { n++; load[n] = $3; first[n] = $4; med[n] = $5; if (n == 1 || $6 < mn) mn = $6; if ($7 > mx) mx = $7; if ($8 > rss) rss = $8 }
	function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
	END { if (n) printf "%.0f %.0f %.0f %.0f %.0f %.0f\n", median(med, n), mn, mx, median(load, n), median(first, n), rss / 1024 }' "$OUT/raw"
}

cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
dnnl=$(dpkg-query -W -f '${Version}' libdnnl2 2>/dev/null || echo '?')
{
	echo "Measured $(date -u +%Y-%m-%d) on $cpu, $(nproc) cores, $THREADS threads; oneDNN $dnnl; ONNX Runtime $(node -p "require('./$ORT_DIR/node_modules/onnxruntime-node/package.json').version" 2>/dev/null || echo n/a) (onnxruntime-node)."
	echo "Command: \`make bench\` ($ROUNDS rounds x $RUNS runs after one warm-up, the two runtimes alternating)."
	echo
	echo "| case | runtime | median ms | min-max ms | load ms | first run ms | peak RSS MB | petcut / ORT |"
	echo "|---|---|---|---|---|---|---|---|"
	for c in medium-1024 small-1024 medium-512; do
		p=$(summary petcut $c)
		o=$(summary ort $c)
		[ -n "$p" ] || continue
		set -- $p
		pm=$1
		if [ -n "$o" ]; then
			ratio=$(echo "$o" | awk -v p="$pm" '{ printf "%.2f", p / $1 }')
		else
			ratio="n/a"
		fi
		echo "| $c | petcut | $1 | $2-$3 | $4 | $5 | $6 | $ratio |"
		if [ -n "$o" ]; then
			set -- $o
			echo "| $c | ONNX Runtime | $1 | $2-$3 | $4 | $5 | $6 | |"
		fi
	done
} >"$OUT/report.md"
cat "$OUT/report.md"

# Update BENCHMARKS.md between the markers.
if [ -f BENCHMARKS.md ] && grep -q '<!-- bench:begin -->' BENCHMARKS.md; then
	awk -v rep="$OUT/report.md" '
	/<!-- bench:begin -->/ { print; while ((getline l < rep) > 0) print l; skip = 1; next }
	/<!-- bench:end -->/ { skip = 0 }
	!skip { print }' BENCHMARKS.md >"$OUT/BENCHMARKS.md" && mv "$OUT/BENCHMARKS.md" BENCHMARKS.md
	echo "bench: BENCHMARKS.md updated" >&2
fi
