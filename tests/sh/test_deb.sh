#!/bin/bash
# tests/sh/test_deb.sh - the Debian package, as an operator gets it: the
# README's package block (build dependencies, `dpkg-buildpackage -us -uc
# -b`, apt-get install of the .deb, the models fetched into
# /var/lib/petcut/models) in a clean clone of the repository's last commit;
# lintian finds no errors; the package made its user and put its units in
# place without enabling them; the installed petcut names the commit it was
# built from; and `petcut serve` from the package answers /readyz and cuts a
# photo out over HTTP. The package is purged and /var/lib/petcut removed at
# the end, whatever happened.
#
#   tests/sh/test_deb.sh BUILD
#
# Exits 0 when every check passes, 77 (skip) without root (dpkg needs it),
# without the packaging tools (scripts/install-deps.sh installs them), or
# when petcut is installed here already from elsewhere; 1 otherwise.

set -u

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
. tests/sh/lib.sh

[ "$(id -u)" = 0 ] || { echo "skip: installing a package needs root"; exit 77; }
for c in dpkg-buildpackage dh lintian git; do
	command -v $c >/dev/null 2>&1 || { echo "skip: $c is not installed (scripts/install-deps.sh)"; exit 77; }
done
if dpkg-query -W -f='${Status}' petcut 2>/dev/null | grep -q installed || [ -e /usr/bin/petcut ]; then
	echo "skip: petcut is installed on this machine already (not this test's to replace)"
	exit 77
fi

if [ -e /var/lib/petcut ]; then
	echo "skip: /var/lib/petcut is there already (not this test's to replace)"
	exit 77
fi
purge() {
	dpkg --purge petcut >/dev/null 2>&1
	rm -rf /var/lib/petcut
}
trap 'rc=$?; purge; lib_cleanup $rc' EXIT

# the README's block in a clean clone: build, install, fetch the models
git clone -q "$ROOT" "$tmp/src/petcut" || exit 1
commit=$(git -C "$tmp/src/petcut" describe --always --dirty --abbrev=12 --exclude '*')
start=$(date +%s)
readme_run package "$tmp/src/petcut"
rc=$?
deb=$(ls "$tmp"/src/petcut_*_*.deb 2>/dev/null | head -1)
check "the README's package block: exit 0, a .deb built and installed ($(($(date +%s) - start)) s; $(tail -1 "$tmp/block-package.log"))" \
	[ $rc -eq 0 -a -n "$deb" ]
[ -n "$deb" ] || { tail -20 "$tmp/block-package.log"; exit 1; }
echo "# $(basename "$deb"): $(stat -c %s "$deb") bytes"
lintian --fail-on error "$deb" >"$tmp/lintian" 2>&1
rc=$?
echo "# lintian: $(grep -c '^E:' "$tmp/lintian") errors, $(grep -c '^W:' "$tmp/lintian") warnings"
grep '^[EW]:' "$tmp/lintian" | sed 's/^/#   /'
check "lintian: no errors" [ $rc -eq 0 -a "$(grep -c '^E:' "$tmp/lintian")" = 0 ]
check "the package made the service's user" id petcut
{ [ -f /lib/systemd/system/petcut.service ] && [ -f /lib/systemd/system/petcut-worker.service ] &&
	[ ! -e /etc/systemd/system/multi-user.target.wants/petcut.service ] &&
	[ ! -e /etc/systemd/system/multi-user.target.wants/petcut-worker.service ]; }
verdict $? "both units installed, neither enabled"
out=$(/usr/bin/petcut --version)
check "the installed petcut --version names the commit built ('$out')" [ "$out" = "petcut $(tr -d ' \n' <VERSION) (commit $commit)" ]
check "man petcut-remove is there" [ -f /usr/share/man/man1/petcut-remove.1.gz ]

# the service from the package, on the models the block fetched
check "the models in /var/lib/petcut/models" [ -s /var/lib/petcut/models/isnet-medium.onnx ]
mkdir -p "$tmp/home"
PETCUT=/usr/bin/petcut
PETCUT_MODELS=/var/lib/petcut/models HOME=$tmp/home serve_start --data "$tmp/data"
req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }
check "the packaged serve answers /readyz" [ "$(req "$A/readyz")" = 200 ]
{ [ "$(req -H 'Content-Type: image/jpeg' -H 'Accept: image/png' --data-binary @samples/chelsea.jpg \
	"$A/v1/remove-background?size=preview")" = 200 ] && [ "$(head -c 4 "$tmp/body" | tail -c 3)" = PNG ] &&
	[ "$(vipsheader -f bands "$tmp/body")" = 4 ]; }
verdict $? "and cuts a photo out over HTTP: a PNG with alpha"
lib_stop "$pid"

purge
check "dpkg --purge: petcut gone" [ ! -e /usr/bin/petcut -a ! -e /lib/systemd/system/petcut.service ]
[ "$fails" = 0 ]
