#!/bin/sh
# scripts/man.sh PETCUT OUTDIR - writes the man pages petcut(1) and
# petcut-COMMAND(1), one for each command `petcut --help` lists, from the
# --help texts themselves (help2man), so that the pages cannot say other than
# the program. The date is the last commit's (or SOURCE_DATE_EPOCH's), so the
# same source makes the same pages.
set -eu
petcut=$1
out=$2
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(tr -d ' \n' <"$root/VERSION")
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
	export SOURCE_DATE_EPOCH
fi
mkdir -p "$out"
page() { # page NAME DESCRIPTION COMMAND...
	name=$1 desc=$2
	shift 2
	# the page's own name in its title and NAME line (petcut-remove, not "petcut remove")
	help2man --no-info --no-discard-stderr --section=1 --version-string="$version" --name="$desc" "$*" |
		sed -e "s/^\.TH [^\"]*\"1\"/.TH $(echo "$name" | tr a-z A-Z) \"1\"/" \
			-e "/^\.SH NAME/{n;s/^petcut \([a-z][a-z-]*\) \\\\-/petcut\\\\-\1 \\\\-/;}" >"$out/$name.1.tmp"
	mv "$out/$name.1.tmp" "$out/$name.1"
}
page petcut "background removal for pet portraits: CLI and HTTP service" "$petcut"
"$petcut" --help | sed -n 's/^  \([a-z][a-z-]*\)  *\(.*\)$/\1 \2/p' | while read -r cmd desc; do
	page "petcut-$cmd" "$desc" "$petcut" "$cmd"
done
