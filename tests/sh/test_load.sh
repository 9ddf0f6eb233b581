#!/bin/bash
# test_load.sh - load held: 200 keep-alive connections on loopback mixing
# cache hits, uploads, thumbnails, previews, renders and health checks for
# 10 000 requests (tests/load/soak.py); no error apart from 429 refusals of
# removals, and RSS growth under 50 MB once warm. `make soak` runs the same
# mix for 30 minutes.
#
#   tests/sh/test_load.sh BUILD
set -u
BUILD=${1:-build}
cd "$(dirname "$0")/../.." || exit 1
command -v python3 >/dev/null || { echo "skip: python3 is not installed"; exit 77; }
"$BUILD/petcut" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }
exec python3 tests/load/soak.py "$BUILD/petcut" samples/chelsea.jpg --connections 200 --requests 10000 \
	--max-growth-mb 50
