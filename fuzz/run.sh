#!/bin/bash
# fuzz/run.sh - builds every fuzz target with libFuzzer (clang, ASan, UBSan)
# and runs each for a fixed time. New inputs go to build-fuzz/corpus/TARGET;
# the committed seeds in fuzz/corpus/TARGET are only read. A crash leaves its
# input in build-fuzz/ (crash-*): copy it into fuzz/corpus/TARGET so the replay
# in `make test` keeps it as a regression test.
#
#   fuzz/run.sh [SECONDS [TARGET...]]   (make fuzz: every target, 120 s each)
#
# TARGET is the NAME of fuzz/NAME_fuzzer.c; FUZZ_BUILD (default build-fuzz)
# is the build folder, at the repository root. Each target runs in one
# process and ends with libFuzzer's figures on stderr (stat::number_of_
# executed_units, or the crash it found).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-120}
[ $# -gt 0 ] && shift
B=${FUZZ_BUILD:-build-fuzz}
if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
	echo "fuzz: installing clang and its runtime (libFuzzer)" >&2
	if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
	$sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi
FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fopenmp=libgomp"
PKGS=$(make --no-print-directory -s print-PKGS)
make --no-print-directory BUILD="$B" CC=clang SANFLAGS="$FLAGS" OPT=-O1 "$B/libpetcut.a" >/dev/null
if [ $# -gt 0 ]; then
	srcs=()
	for t in "$@"; do srcs+=("fuzz/${t}_fuzzer.c"); done
else
	srcs=(fuzz/*_fuzzer.c)
fi
for src in "${srcs[@]}"; do
	t=$(basename "$src" _fuzzer.c)
	bin=$B/fuzz_$t
	clang -std=c11 -D_GNU_SOURCE -Isrc -I"$B/gen" $(pkg-config --cflags $PKGS) -g -O1 \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp=libgomp \
		-o "$bin" "$src" "$B/libpetcut.a" $(pkg-config --libs $PKGS) -ldnnl -lgomp -lm -lpthread
	mkdir -p "$B/corpus/$t"
	dict=()
	[ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
	echo "fuzz: $t for ${SECONDS_PER}s" >&2
	(cd "$B" && "../$bin" -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 "${dict[@]/#-dict=/-dict=../}" \
		"corpus/$t" "../fuzz/corpus/$t")
done
