#!/usr/bin/env bash
# install-deps.sh - installs the Debian 12 packages that petcut needs to build
# and test, and only those that are missing.
#
# It asks dpkg once for every package, so that a machine that already has
# everything pays a fraction of a second and sees no output; the package index
# is refreshed only when something really has to be installed. Node.js and npm
# (used to fetch the model weights and to drive Chromium, which runs the
# browser tests of web/) are skipped when both commands are
# already on PATH, whichever way they were installed. redis-server is for the
# tests of several instances sharing one Redis (petcut links hiredis, the client);
# Ceph's monitor, OSD and S3 gateway (radosgw) for the test of uploads assembled
# in a bucket by several instances (a server with every multipart call).
set -euo pipefail

pkgs=(
	build-essential pkg-config
	libdnnl-dev libvips-dev
	protobuf-c-compiler libprotobuf-c-dev
	libonnx-dev libonnx-testdata
	libssl-dev libjansson-dev libmicrohttpd-dev libcurl4-openssl-dev libhiredis-dev zlib1g-dev libdeflate-dev libisal-dev curl time wrk
	redis-server ceph-mon ceph-osd radosgw
	libvips-tools libheif-examples icc-profiles-free libimage-exiftool-perl
	chromium gnuplot-nox valgrind
	help2man systemd debhelper lintian
	podman runc mmdebstrap uidmap
)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	pkgs+=(nodejs npm)
fi

# One line per known package: "NAME XY" where Y is 'i' when it is installed.
# Unknown packages print nothing (and make dpkg-query fail, hence the "|| true").
declare -A installed=()
while read -r name status; do
	[[ ${status:1:1} == i ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null || true)

missing=()
for p in "${pkgs[@]}"; do
	[[ -n ${installed[$p]:-} ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

sudo=()
if ((EUID != 0)); then
	command -v sudo >/dev/null 2>&1 || {
		echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
		exit 1
	}
	sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
