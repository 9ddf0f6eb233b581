#!/bin/bash
# fuzz/run.sh - builds every fuzz target with libFuzzer (clang, ASan, UBSan)
# and runs each for a fixed time. New inputs go to build-fuzz/corpus/TARGET;
# the committed seeds in fuzz/corpus/TARGET are only read. A crash leaves its
# input in build-fuzz/ (crash-*): copy it into fuzz/corpus/TARGET so the replay
# in `make test` keeps it as a regression test.
#
#   fuzz/run.sh [SECONDS]     (make fuzz, default 120 s per target)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER=${1:-120}
if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
	echo "fuzz: installing clang and its runtime (libFuzzer)" >&2
	if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
	$sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev >/dev/null
fi
FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fopenmp=libgomp"
make --no-print-directory BUILD=build-fuzz CC=clang SANFLAGS="$FLAGS" OPT=-O1 build-fuzz/libpetcut.a >/dev/null
for src in fuzz/*_fuzzer.c; do
	t=$(basename "$src" _fuzzer.c)
	bin=build-fuzz/fuzz_$t
	clang -std=c11 -D_GNU_SOURCE -Isrc -Ibuild-fuzz/gen -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp=libgomp \
		-o "$bin" "$src" build-fuzz/libpetcut.a $(pkg-config --libs vips libprotobuf-c libcrypto jansson) -ldnnl -lgomp -lm -lpthread
	mkdir -p "build-fuzz/corpus/$t"
	dict=()
	[ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
	echo "fuzz: $t for ${SECONDS_PER}s" >&2
	(cd build-fuzz && "../$bin" -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -timeout=20 "${dict[@]/#-dict=/-dict=../}" \
		"corpus/$t" "../fuzz/corpus/$t")
done
