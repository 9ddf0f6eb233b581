#!/usr/bin/env bash
# run-sample.sh - cuts the bundled sample photo out with a built petcut and
# says where the result went; this is what `make run` ends with.
#
# usage: scripts/run-sample.sh PATH_TO_PETCUT
set -euo pipefail

petcut=${1:?usage: scripts/run-sample.sh PATH_TO_PETCUT}
# A path to the binary is taken relative to where we were called from.
if [[ $petcut == */* ]]; then
	petcut=$(cd "$(dirname "$petcut")" && pwd)/$(basename "$petcut")
fi
cd "$(dirname "$0")/.."

photo=chelsea
in=samples/$photo.jpg
out=petcut-out/$photo-cutout.png

mkdir -p petcut-out
"$petcut" remove "$in" "$out"
echo "cut-out of $in written to $PWD/$out"
