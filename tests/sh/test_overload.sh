#!/bin/bash
# test_overload.sh - overload refused exactly, and batching changes nothing:
#  - with the inference queue bounded at Q=3 and its requests held (the
#    worker waits 4 s for a batch to fill), Q + k = 8 different photos at once
#    get exactly k = 5 refusals, each at once with 429, Retry-After and the
#    JSON error "overloaded"; the Q others are done (none times out), and
#    /metrics counts exactly k rejections for the reason queue_full;
#  - the masks of those Q photos, computed in one forward pass, equal the
#    masks of the same photos computed one per pass by a second server
#    (max abs difference under 0.02, mean under 0.001).
#
#   tests/sh/test_overload.sh BUILD
set -u
BUILD=${1:-build}
PETCUT=$BUILD/petcut
cd "$(dirname "$0")/../.." || exit 1
for c in curl python3; do
	command -v $c >/dev/null || { echo "skip: $c is not installed (scripts/install-deps.sh installs it)"; exit 77; }
done
"$PETCUT" model path medium >/dev/null 2>&1 || { echo "skip: no model (petcut model fetch)"; exit 77; }
. tests/sh/lib.sh

Q=3
K=5
req() { curl -s -o "$tmp/body" -w '%{http_code}' "$@"; }

ids=()
for i in $(seq $((Q + K))); do
	{ cat samples/chelsea.jpg; printf 'photo %d' "$i"; } >"$tmp/p$i.jpg"
	ids+=("$(sha256sum "$tmp/p$i.jpg" | cut -d' ' -f1)")
done

serve_start --data "$tmp/d1" --max-queue $Q --max-batch 8 --max-delay-ms 4000
for i in $(seq $((Q + K))); do
	req -H 'Content-Type: image/jpeg' --data-binary @"$tmp/p$i.jpg" "$A/v1/images" >/dev/null
done
# all at once; each line: id code seconds
printf '%s\n' "${ids[@]}" | xargs -P $((Q + K)) -I{} curl -s -D "$tmp/h.{}" -o "$tmp/b.{}" \
	-w '{} %{http_code} %{time_total}\n' -d '{"image_id":"{}","size":"preview"}' "$A/v1/remove-background" \
	>"$tmp/codes"
n429=$(awk '$2 == 429' "$tmp/codes" | wc -l)
n200=$(awk '$2 == 200' "$tmp/codes" | wc -l)
slow429=$(awk '$2 == 429 && $3 > 1.0' "$tmp/codes" | wc -l)
cat "$tmp/codes"
{ [ "$n429" = $K ] && [ "$n200" = $Q ]; }; verdict $? "Q=$Q queued + k=$K more: exactly $n429 refused with 429, $n200 done, nothing else"
check "every refusal at once (over 1 s: $slow429)" [ "$slow429" = 0 ]
bad=0
for id in $(awk '$2 == 429 {print $1}' "$tmp/codes"); do
	grep -qi '^Retry-After: 1' "$tmp/h.$id" && grep -q '"code":"overloaded"' "$tmp/b.$id" || bad=$((bad + 1))
done
check "each 429 carries Retry-After and the JSON error 'overloaded' ($bad without)" [ $bad = 0 ]
req "$A/metrics" >/dev/null
check "/metrics: exactly $K rejections for a full queue" grep -q "^petcut_inference{what=\"rejected_queue_full\"} $K\$" "$tmp/body"
check "/metrics: the $Q ran in one forward pass" grep -q "^petcut_inference_batches_by_size{size=\"$Q\"} 1\$" "$tmp/body"
kill -TERM "$pid" && wait "$pid"

# the same photos one per pass, on a second server
serve_start --data "$tmp/d2" --max-batch 1 --max-delay-ms 0
done_ids=$(awk '$2 == 200 {print $1}' "$tmp/codes")
for id in $done_ids; do
	i=$(printf '%s\n' "${ids[@]}" | grep -n "$id" | cut -d: -f1)
	req -H 'Content-Type: image/jpeg' --data-binary @"$tmp/p$i.jpg" "$A/v1/images" >/dev/null
	[ "$(req -d "{\"image_id\":\"$id\",\"size\":\"preview\"}" "$A/v1/remove-background")" = 200 ] || echo "alone: $id failed"
done
req "$A/metrics" >/dev/null
check "the second server ran them one per pass" grep -q "^petcut_inference_batches_by_size{size=\"1\"} $Q\$" "$tmp/body"
kill -TERM "$pid" && wait "$pid"
python3 - "$tmp/d1/mask" "$tmp/d2/mask" <<'PY'
import array, os, sys
def masks(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            a = array.array("f")
            a.frombytes(open(os.path.join(d, n), "rb").read())
            out[n] = a
    return out
a, b = masks(sys.argv[1]), masks(sys.argv[2])
common = sorted(set(a) & set(b))
worst = mean = 0.0
for k in common:
    d = [abs(x - y) for x, y in zip(a[k], b[k])]
    worst = max(worst, max(d))
    mean = max(mean, sum(d) / len(d))
ok = len(common) == 3 and all(len(a[k]) == len(b[k]) == 512 * 512 for k in common) and worst < 0.02 and mean < 1e-3
print(("ok" if ok else "not ok") + " - %d masks batched vs alone: max abs difference %.5f, mean %.6f" % (len(common), worst, mean))
sys.exit(0 if ok else 1)
PY
[ $? = 0 ] || fails=$((fails + 1))
finish
