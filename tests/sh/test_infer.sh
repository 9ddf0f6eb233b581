#!/bin/sh
# tests/sh/test_infer.sh - petcut infer: runs a model on raw float32 tensors.
#
#   tests/sh/test_infer.sh BUILD
#
# 1. A MaxPool model from ONNX's node tests (Debian's libonnx-testdata): its
#    input and expected output are the raw_data at the end of the test's
#    input_0.pb / output_0.pb; MaxPool is exact, so petcut's output must be
#    byte-identical. --runs 3 must print "infer_ms <number>" and
#    "peak_rss_kb <number>" lines.
# 2. ISNet medium (when fetched) on a 1x3x64x64 tensor: the output file must
#    hold the first output, 1x1x64x64 float32; at 1x3x256x256, fp32 and bf16
#    (where the CPU runs it), no convolution may fall to oneDNN's reference
#    kernel (ref_convs 0), and --profile's lines account for the pass (their
#    times add up to most of infer_ms, their shares to 100 %).
#    --output to a named pipe writes through it and leaves it a pipe.
# 3. Bad input: a malformed --shape and a shape that does not match the input
#    file must each exit 2 with one line on stderr.
#
# Exit 0 passed, 1 failed, 77 when neither model is available.

set -u

BUILD=${1:-build}
PETCUT=$BUILD/petcut
NODE_TESTS=${PETCUT_ONNX_NODE_TESTS:-/usr/include/onnx/backend/test/data/node}
MODELS=${PETCUT_MODELS:-$HOME/.cache/petcut/models}

fails=0
ran=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
ok() { echo "ok: $*"; }

if [ ! -x "$PETCUT" ]; then
	echo "FAIL: $PETCUT not built"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/petcut-infer.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# tail_bytes FILE N OUT: the last N bytes of FILE (a TensorProto's raw_data).
tail_bytes() {
	tail -c "$2" "$1" >"$3"
}

# check_timings FILE: the stdout of a --runs run has the expected lines.
check_timings() {
	n_ms=$(grep -Ec '^infer_ms [0-9]+(\.[0-9]+)?$' "$1")
	n_rss=$(grep -Ec '^peak_rss_kb [0-9]+$' "$1")
	if [ "$n_ms" -ge 1 ] && [ "$n_rss" -ge 1 ]; then
		ok "--runs 3 printed $n_ms infer_ms line(s) and $n_rss peak_rss_kb line(s)"
	else
		fail "--runs 3 printed $n_ms 'infer_ms <number>' and $n_rss 'peak_rss_kb <number>' lines:"
		sed 's/^/    /' "$1"
	fi
}

# ===== 1. MaxPool node test: exact output =====

case_dir=$NODE_TESTS/test_maxpool_2d_default
if [ -f "$case_dir/model.onnx" ]; then
	ran=$((ran + 1))
	in_bytes=$((1 * 3 * 32 * 32 * 4))
	out_bytes=$((1 * 3 * 31 * 31 * 4))
	tail_bytes "$case_dir/test_data_set_0/input_0.pb" $in_bytes "$tmp/x.f32"
	tail_bytes "$case_dir/test_data_set_0/output_0.pb" $out_bytes "$tmp/want.f32"
	if "$PETCUT" infer "$case_dir/model.onnx" --input "$tmp/x.f32" --shape 1,3,32,32 \
		--output "$tmp/y.f32" --runs 3 --threads 1 >"$tmp/out" 2>"$tmp/err"; then
		size=$(wc -c <"$tmp/y.f32" 2>/dev/null || echo 0)
		if [ "$size" -ne $out_bytes ]; then
			fail "maxpool: output has $size bytes, expected $out_bytes (1x3x31x31 float32)"
		elif ! cmp -s "$tmp/y.f32" "$tmp/want.f32"; then
			fail "maxpool: output differs from the node test's expected output"
		else
			ok "maxpool 1x3x32x32 -> 1x3x31x31, identical to the expected output"
		fi
		check_timings "$tmp/out"
	else
		fail "petcut infer on $case_dir/model.onnx exited $?:"
		sed 's/^/    /' "$tmp/out" "$tmp/err"
	fi
	# an output that is not a regular file (a pipe here; /dev/null or
	# /dev/stdout alike) is written where it is, never replaced by a file
	mkfifo "$tmp/pipe"
	timeout 20 cat "$tmp/pipe" >"$tmp/piped" &
	reader=$!
	"$PETCUT" infer "$case_dir/model.onnx" --input "$tmp/x.f32" --shape 1,3,32,32 --output "$tmp/pipe" \
		>/dev/null 2>"$tmp/err"
	rc=$?
	wait $reader
	if [ $rc -eq 0 ] && [ -p "$tmp/pipe" ] && cmp -s "$tmp/piped" "$tmp/want.f32"; then
		ok "--output to a named pipe: the output went through it, and it is still a pipe"
	else
		fail "--output to a named pipe: exit $rc, still a pipe: $([ -p "$tmp/pipe" ] && echo yes || echo no), $(wc -c <"$tmp/piped") bytes through it"
		sed 's/^/    /' "$tmp/err"
	fi
else
	echo "note: $case_dir not found (libonnx-testdata); MaxPool part not run"
fi

# ===== 2. ISNet medium: output size =====

model=$MODELS/isnet-medium.onnx
if [ -f "$model" ]; then
	ran=$((ran + 1))
	head -c $((1 * 3 * 64 * 64 * 4)) /dev/zero >"$tmp/z.f32"
	if "$PETCUT" infer "$model" --input "$tmp/z.f32" --shape 1,3,64,64 --output "$tmp/m.f32" \
		--runs 3 >"$tmp/out" 2>"$tmp/err"; then
		size=$(wc -c <"$tmp/m.f32" 2>/dev/null || echo 0)
		if [ "$size" -eq $((1 * 1 * 64 * 64 * 4)) ]; then
			ok "isnet-medium 1x3x64x64: first output 1x1x64x64 float32 ($size bytes)"
		else
			fail "isnet-medium 1x3x64x64: output has $size bytes, expected $((64 * 64 * 4))"
		fi
		check_timings "$tmp/out"
	else
		fail "petcut infer on $model at 1x3x64x64 exited $?:"
		sed 's/^/    /' "$tmp/out" "$tmp/err"
	fi
	# every convolution gets one of oneDNN's fast kernels, whatever this
	# CPU's vector width (its reference kernel is some hundred times slower)
	for prec in fp32 bf16; do
		if "$PETCUT" infer "$model" --shape 1,3,256,256 --runs 2 --precision $prec --profile >"$tmp/out" 2>"$tmp/err"; then
			n=$(sed -n 's/^ref_convs \([0-9]*\)$/\1/p' "$tmp/out")
			if [ "$n" = 0 ]; then
				ok "isnet-medium 1x3x256x256 $prec: no convolution on oneDNN's reference kernel"
			else
				fail "isnet-medium 1x3x256x256 $prec: ref_convs '${n:-missing}', expected 0"
			fi
			# the profile accounts for the pass: its kinds' times add up to
			# most of infer_ms and never more, their shares to 100 %, and
			# the 3x3 convolutions are there with their GFLOP/s
			if awk '$1 == "infer_ms" { inf = $2 }
				$1 == "profile" { n++; ms += $2; share += $3; if ($2 < 0 || $4 < 1) bad = 1
					if ($6 == "Conv" && $7 == "3x3") { conv = 1; if ($5 <= 0) bad = 1 } }
				END { exit !(n >= 3 && conv && !bad && share > 99 && share < 101 && ms <= inf && ms >= 0.8 * inf) }' "$tmp/out"; then
				ok "isnet-medium 1x3x256x256 $prec --profile: $(grep -c '^profile' "$tmp/out") kinds of step, their times within infer_ms"
			else
				fail "isnet-medium 1x3x256x256 $prec --profile: the profile does not account for the pass:"
				grep -E '^(infer_ms|profile)' "$tmp/out" | sed 's/^/    /'
			fi
		elif [ $prec = bf16 ] && grep -q 'bf16' "$tmp/err"; then
			echo "note: bf16 does not run on this CPU: $(cat "$tmp/err")"
		else
			fail "petcut infer --precision $prec on $model exited $?:"
			sed 's/^/    /' "$tmp/out" "$tmp/err"
		fi
	done
else
	echo "note: $model not fetched (petcut model fetch); ISNet part not run"
fi

if [ $ran -eq 0 ]; then
	echo "SKIP: neither the ONNX node tests nor the ISNet medium model is available"
	exit 77
fi

# ===== 3. Bad input: exit 2, one line on stderr =====

if [ -f "$case_dir/model.onnx" ]; then
	bad_model=$case_dir/model.onnx
	bad_input=$tmp/x.f32
	good_shape=1,3,32,32
else
	bad_model=$model
	bad_input=$tmp/z.f32
	good_shape=1,3,64,64
fi
for shape in 1,3,x,32 1,3,,32 -1,3,32,32 1,3,16,16; do
	"$PETCUT" infer "$bad_model" --input "$bad_input" --shape "$shape" --output "$tmp/bad.f32" \
		>"$tmp/out" 2>"$tmp/err"
	rc=$?
	lines=$(wc -l <"$tmp/err")
	if [ $rc -eq 2 ] && [ "$lines" -eq 1 ]; then
		ok "--shape $shape (input is $good_shape): exit 2, stderr: $(cat "$tmp/err")"
	else
		fail "--shape $shape (input is $good_shape): exit $rc with $lines stderr line(s), expected exit 2 and one line:"
		sed 's/^/    /' "$tmp/err"
	fi
done

[ $fails -eq 0 ] || exit 1
exit 0
