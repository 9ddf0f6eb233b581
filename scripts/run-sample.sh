#!/usr/bin/env bash
# run-sample.sh - what `make run` ends with: cuts the bundled sample photo
# out with a built petcut, says where the result went, then runs the HTTP
# service on the default address until Ctrl-C (PETCUT_RUN_SERVE=0 skips it).
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

[ "${PETCUT_RUN_SERVE:-1}" = 0 ] && exit 0
cat <<TXT
starting the service (Ctrl-C stops it); try, from another terminal:
  curl -s --data-binary @$in -H 'Content-Type: image/jpeg' http://${PETCUT_LISTEN:-127.0.0.1:8080}/v1/images
  curl -s -d '{"image_id":"ID","size":"preview"}' http://${PETCUT_LISTEN:-127.0.0.1:8080}/v1/remove-background
TXT
exec "$petcut" serve
