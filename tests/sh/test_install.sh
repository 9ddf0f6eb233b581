#!/bin/bash
# tests/sh/test_install.sh - petcut installed as a user installs it:
# `make install PREFIX=...` puts the binary, a man page per command, the two
# systemd units and the bash completion in place, and `make uninstall` takes
# every one away again; the installed petcut says its version and commit;
# each man page names every option its command's --help does (they are made
# from it); `systemd-analyze verify` takes both units and `systemd-analyze
# security --offline=yes` rates each 2.5 or lower; the completion completes
# commands and options; `petcut serve` without a model refuses to start
# with one line saying how to fetch it; and the README's install block runs
# as pasted (as root: it writes /usr/local and /var/lib/petcut, which the
# test removes again).
#
#   tests/sh/test_install.sh BUILD
#
# Exits 0 when every check passes, 77 (skip) when help2man or systemd-analyze
# is missing (scripts/install-deps.sh installs both), 1 otherwise.

set -u

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
. tests/sh/lib.sh

command -v help2man >/dev/null 2>&1 || { echo "skip: help2man is not installed (it makes the man pages)"; exit 77; }
command -v systemd-analyze >/dev/null 2>&1 || { echo "skip: systemd-analyze is not installed (package systemd)"; exit 77; }

P=$tmp/prefix
make --no-print-directory BUILD="$BUILD" PREFIX="$P" install >"$tmp/make.log" 2>&1
check "make install PREFIX=...: exit 0" [ $? -eq 0 ]
cmds=$("$BUILD/petcut" --help | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p')
want="bin/petcut lib/systemd/system/petcut-worker.service lib/systemd/system/petcut.service share/bash-completion/completions/petcut share/man/man1/petcut.1"
for c in $cmds; do want="$want share/man/man1/petcut-$c.1"; done
got=$(cd "$P" && find . -type f | sed 's|^\./||' | sort | tr '\n' ' ')
want=$(echo "$want" | tr ' ' '\n' | sort | tr '\n' ' ')
check "the binary, a man page for petcut and each of its commands, two units, the completion ($got)" [ "$got" = "$want" ]

# the version and the commit it was built from
commit=$(git describe --always --dirty --abbrev=12 --exclude '*' 2>/dev/null || echo unknown)
out=$("$P/bin/petcut" --version)
check "installed petcut --version: '$out'" [ "$out" = "petcut $(tr -d ' \n' <VERSION) (commit $commit)" ]

# the man pages say what --help says: every option of each command
missing=""
for c in "" $cmds; do
	page=$P/share/man/man1/petcut${c:+-$c}.1
	text=$(sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' "$page")
	for flag in $("$BUILD/petcut" $c --help 2>&1 | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
		grep -q -- "$flag" <<<"$text" || missing="$missing ${c:-petcut}:$flag"
	done
done
check "each man page names every option of its command's --help (missing:$missing)" [ -z "$missing" ]
nostatus=""
for c in $cmds; do
	grep -qi 'exit status' "$P/share/man/man1/petcut-$c.1" || nostatus="$nostatus $c"
done
check "every command's page documents its exit status (not:$nostatus)" [ -z "$nostatus" ]

# the units: valid, and hardened
for u in petcut petcut-worker; do
	unit=$P/lib/systemd/system/$u.service
	grep -q "^ExecStart=$P/bin/petcut " "$unit"
	verdict $? "$u.service starts the installed binary"
	MANPATH=$P/share/man systemd-analyze verify "$unit" >"$tmp/verify" 2>&1
	check "systemd-analyze verify $u.service: nothing to say ($(tr '\n' ' ' <"$tmp/verify"))" [ $? -eq 0 -a ! -s "$tmp/verify" ]
	level=$(systemd-analyze security --offline=yes "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	echo "# $u.service: exposure $level"
	python3 -c "import sys; assert float(sys.argv[1]) <= 2.5" "${level:-99}" 2>/dev/null
	verdict $? "systemd-analyze security --offline=yes rates $u.service 2.5 or lower (${level:-?})"
done

# the completion: commands, then a command's options
compgen_of() { # compgen_of WORD...: what completing the last word offers
	( PATH=$P/bin:$PATH
	. "$P/share/bash-completion/completions/petcut"
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	_petcut
	echo "${COMPREPLY[*]}" )
}
check "completion: 'petcut rem' offers remove and remove-dir ($(compgen_of petcut rem))" [ "$(compgen_of petcut rem)" = "remove remove-dir" ]
check "completion: 'petcut remove --shadow-o' offers its two options ($(compgen_of petcut remove --shadow-o))" \
	[ "$(compgen_of petcut remove --shadow-o)" = "--shadow-offset --shadow-opacity" ]

# without a model, serve does not start, and says how to get one
mkdir -p "$tmp/empty" "$tmp/home"
PETCUT_MODELS=$tmp/empty HOME=$tmp/home timeout 60 "$P/bin/petcut" serve --listen 127.0.0.1:0 --data "$tmp/data" \
	>"$tmp/serve.out" 2>"$tmp/serve.err"
rc=$?
{ [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$(grep -c '' "$tmp/serve.err")" = 1 ] && grep -q 'petcut model fetch' "$tmp/serve.err" &&
	! grep -q listening "$tmp/serve.out"; }
verdict $? "serve without a model: exit $rc before listening, one line saying how to fetch it ($(cat "$tmp/serve.err"))"

make --no-print-directory BUILD="$BUILD" PREFIX="$P" uninstall >>"$tmp/make.log" 2>&1
check "make uninstall: exit 0, and no file left ($(cd "$P" && find . -type f | tr '\n' ' '))" \
	[ $? -eq 0 -a -z "$(find "$P" -type f)" ]

# the README's block as pasted: make install (to /usr/local), the models
# into /var/lib/petcut/models; then all of it taken away again
if [ "$(id -u)" != 0 ]; then
	echo "skip: the README's install block writes /usr/local and /var/lib: it needs root"
	exit 77
fi
if [ -e /usr/local/bin/petcut ] || [ -e /var/lib/petcut ]; then
	echo "skip: /usr/local/bin/petcut or /var/lib/petcut is there already (not this test's to replace)"
	exit 77
fi
undo() {
	make --no-print-directory uninstall >/dev/null 2>&1
	rm -rf /var/lib/petcut
}
trap 'rc=$?; undo; lib_cleanup $rc' EXIT
readme_run install "$ROOT"
rc=$?
{ [ $rc -eq 0 ] && [ "$(/usr/local/bin/petcut --version)" = "$out" ] && [ -f /usr/local/lib/systemd/system/petcut.service ] &&
	[ -s /var/lib/petcut/models/isnet-medium.onnx ] && grep -q 'systemctl enable --now petcut: not run' "$tmp/block-install.log"; }
verdict $? "the README's install block: exit $rc, petcut in /usr/local, its unit, the models in /var/lib/petcut/models ($(tail -1 "$tmp/block-install.log"))"
undo
check "make uninstall: /usr/local/bin/petcut gone" [ ! -e /usr/local/bin/petcut -a ! -e /usr/local/lib/systemd/system/petcut.service ]

[ "$fails" = 0 ]
