#!/bin/bash
# tests/sh/test_container.sh - the container image, as an operator builds and
# runs it: the README's container block (models fetched into models/, podman
# build, podman run) in a clean clone of the repository's last commit, on a
# Debian 12 base made here with mmdebstrap (image registries are out of
# reach; the base is a build argument for exactly that). The image runs as a user
# that is not root, holds no compiler, has a HEALTHCHECK; run with a
# read-only root and a volume for the store, it answers /readyz, cuts a
# photo out over HTTP, and exits 0 when stopped. Its size is printed.
#
#   tests/sh/test_container.sh BUILD
#
# podman here: the runc runtime, cgroupfs, the vfs storage driver (in a
# folder of the test's own), host networking, lowered nofile/nproc limits.
# Exits 0 when every check passes, 77 (skip) without root or without podman,
# runc or mmdebstrap (scripts/install-deps.sh installs them), 1 otherwise.

set -u

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
. tests/sh/lib.sh

[ "$(id -u)" = 0 ] || { echo "skip: podman's storage and mmdebstrap here need root"; exit 77; }
for c in podman runc mmdebstrap git; do
	command -v $c >/dev/null 2>&1 || { echo "skip: $c is not installed (scripts/install-deps.sh)"; exit 77; }
done

pm() { command podman --root "$tmp/pm/root" --runroot "$tmp/pm/run" --storage-driver vfs --runtime runc \
	--cgroup-manager cgroupfs "$@"; }
# (no systemd here to run podman's health checks: HEALTHCHECK is checked in
# the image's configuration)
limits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --no-healthcheck)
cleanup() {
	local rc=$?
	pm rm -af >/dev/null 2>&1
	pm volume rm -af >/dev/null 2>&1
	pm rmi -af >/dev/null 2>&1
	rm -rf "$tmp/pm"
	lib_cleanup "$rc"
}
trap cleanup EXIT

# the base: Debian 12 from the archive, as debian:12-slim would be
start=$(date +%s)
mmdebstrap --variant=minbase --include=ca-certificates bookworm "$tmp/base.tar" >"$tmp/mmdebstrap.log" 2>&1 &&
	pm import "$tmp/base.tar" localhost/petcut-base:12 >/dev/null 2>&1
check "a Debian 12 base from mmdebstrap, imported ($(($(date +%s) - start)) s)" [ $? -eq 0 ]
rm -f "$tmp/base.tar"

# the README's block in a clean clone, its podman given this machine's
# settings (and the base above, and a free port for the server)
git clone -q "$ROOT" "$tmp/ctx" && mkdir -p "$tmp/ctx/build" && ln -s "$ROOT/$BUILD/petcut" "$tmp/ctx/build/petcut"
port=$(free_port)
export PM_DIR=$tmp/pm PM_PORT=$port
podman() {
	local sub=$1 common=(--root "$PM_DIR/root" --runroot "$PM_DIR/run" --storage-driver vfs --runtime runc
		--cgroup-manager cgroupfs) lim=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
	shift
	case $sub in
	build) command podman "${common[@]}" build --network host "${lim[@]}" --build-arg BASE=localhost/petcut-base:12 "$@" ;;
	run) command podman "${common[@]}" run --network host --no-healthcheck "${lim[@]}" -e "PETCUT_LISTEN=127.0.0.1:$PM_PORT" "$@" ;;
	*) command podman "${common[@]}" "$sub" "$@" ;;
	esac
}
start=$(date +%s)
readme_run container "$tmp/ctx"
rc=$?
check "the README's container block: exit 0 ($(($(date +%s) - start)) s; $(tail -1 "$tmp/block-container.log"))" [ $rc -eq 0 ]
[ $rc -eq 0 ] || { tail -20 "$tmp/block-container.log"; exit 1; }
size=$(pm image inspect --format '{{.Size}}' localhost/petcut)
echo "# image size: $size bytes ($((size / 1000000)) MB)"
check "the image has a HEALTHCHECK on /readyz" \
	grep -q readyz <<<"$(pm image inspect --format '{{json .Config.Healthcheck}}' localhost/petcut)"
inside=$(pm run --rm --network host "${limits[@]}" localhost/petcut \
	sh -c 'id -u; for c in cc gcc c++ g++ clang; do command -v $c; done; petcut --version' 2>"$tmp/inside.err")
echo "# inside: $(tr '\n' ' ' <<<"$inside")"
{ [ "$(head -1 <<<"$inside")" != 0 ] && [ "$(sed -n 2p <<<"$inside")" = "petcut $(tr -d ' \n' <VERSION) (commit $(git -C "$tmp/ctx" describe --always --dirty --abbrev=12 --exclude '*'))" ]; }
verdict $? "it runs as a user that is not root, with no compiler, petcut naming its commit"

# the container the block started: read-only root, the store in a volume
A=http://127.0.0.1:$port
ready=
for _ in $(seq 300); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$A/readyz")" = 200 ] && { ready=1; break; }
	sleep 0.2
done
check "read-only root and a store volume: /readyz 200" [ -n "$ready" ]
req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
{ [ "$(req -H 'Content-Type: image/jpeg' -H 'Accept: image/png' --data-binary @samples/chelsea.jpg \
	"$A/v1/remove-background?size=preview")" = 200 ] && [ "$(head -c 4 "$tmp/body" | tail -c 3)" = PNG ]; }
verdict $? "an upload cut out over HTTP: a PNG"
check "the store is in the volume" pm run --rm --network host "${limits[@]}" -v petcut-data:/d localhost/petcut \
	sh -c 'find /d -type f | grep -q .'
uid=$(pm exec petcut sh -c 'sed -n "s/^Uid:[[:space:]]*\([0-9]*\).*/\1/p" /proc/1/status')
check "the server's process runs as uid $uid, not root" [ -n "$uid" -a "$uid" != 0 ]
pm stop -t 30 petcut >/dev/null
check "podman stop: it exits 0" [ "$(pm inspect --format '{{.State.ExitCode}}' petcut)" = 0 ]

[ "$fails" = 0 ]
