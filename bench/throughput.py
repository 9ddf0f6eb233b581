#!/usr/bin/env python3
# throughput.py - full-size cut-outs per second from `petcut serve` with 4
# clients at once, for `make bench` (part "throughput").
#
#   bench/throughput.py OUT.md ROUNDS LABEL=PETCUT [LABEL=PETCUT ...] -- PHOTO.jpg...
#
# Each server binary gets ROUNDS rounds and the binaries take turns (A B A B
# ...). In a round a fresh `petcut serve` (its defaults, an empty data
# folder) takes every photo through POST /v1/images, answers one full-size
# cut-out of the first photo (its first: the plans and the quality guard's
# warm-up are not what is measured), then 4 clients ask at once for the
# full-size PNG cut-out ({"image_id": ID, "size": "full"}, Accept: image/png:
# the image itself in the answer) of each other
# photo; none was asked for before, so each is a whole cut-out: decode,
# network at 1024 x 1024, mask at the photo's size, PNG. The round's
# throughput is the cut-outs it answered divided by the wall time from the
# first request to the last answer. Every answer must be a 200 with a PNG.
# Writes a Markdown table and notes to OUT.md; the first binary is the one
# the others are compared with.
import json, os, re, statistics, subprocess, sys, tempfile, threading, time, urllib.request

out_md, rounds = sys.argv[1], int(sys.argv[2])
sep = sys.argv.index('--')
servers = [a.split('=', 1) for a in sys.argv[3:sep]]
photos = [open(f, 'rb').read() for f in sys.argv[sep + 1:]]
if len(photos) < 5 or not servers:
    sys.exit('throughput: usage: OUT.md ROUNDS LABEL=PETCUT... -- PHOTO.jpg (at least 5)')
CLIENTS = 4
tmp = tempfile.mkdtemp(prefix='petcut-throughput-')


def start(petcut):
    d = tempfile.mkdtemp(dir=tmp)
    p = subprocess.Popen([petcut, 'serve', '--listen', '127.0.0.1:0', '--data', d],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.match(r'listening on (http://\S+)', p.stdout.readline())
    if not m:
        p.kill()
        sys.exit('throughput: %s did not start' % petcut)
    return p, m.group(1)


def stop(p):
    p.terminate()
    if p.wait(timeout=120) != 0:
        sys.exit('throughput: the server exited with %d' % p.returncode)


def post(base, path, data, ctype, accept=None):
    req = urllib.request.Request(base + path, data=data, method='POST')
    req.add_header('Content-Type', ctype)
    if accept:
        req.add_header('Accept', accept)
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.status, r.read()


def cutout(base, image_id):
    status, body = post(base, '/v1/remove-background', json.dumps({'image_id': image_id, 'size': 'full'}).encode(),
                        'application/json', 'image/png')
    if status != 200 or not body.startswith(b'\x89PNG'):
        raise RuntimeError('not a PNG cut-out (HTTP %d)' % status)
    return len(body)


def one_round(petcut):
    """(cut-outs per second, latencies ms, PNG bytes) of one round."""
    p, base = start(petcut)
    try:
        ids = [json.loads(post(base, '/v1/images', ph, 'image/jpeg')[1])['id'] for ph in photos]
        cutout(base, ids[0])
        lock, lats, sizes, errors, work = threading.Lock(), [], [], [], iter(ids[1:])

        def client():
            while True:
                with lock:
                    i = next(work, None)
                if i is None:
                    return
                t = time.perf_counter()
                try:
                    n = cutout(base, i)
                except Exception as e:  # counted: a round with an error is not a figure
                    with lock:
                        errors.append(str(e))
                    continue
                with lock:
                    lats.append((time.perf_counter() - t) * 1000)
                    sizes.append(n)

        t0 = time.perf_counter()
        th = [threading.Thread(target=client) for _ in range(CLIENTS)]
        [t.start() for t in th]
        [t.join() for t in th]
        wall = time.perf_counter() - t0
    finally:
        stop(p)
    if errors:
        sys.exit('throughput: %s: %d failed requests (%s)' % (petcut, len(errors), errors[0]))
    return len(lats) / wall, lats, sizes


res = {label: [] for label, _ in servers}
for r in range(rounds):
    for label, petcut in servers:
        tput, lats, sizes = one_round(petcut)
        res[label].append((tput, statistics.median(lats), statistics.median(sizes)))
        print('  throughput round %d: %s %.3f cut-outs/s (median answer %.0f ms)' % (r + 1, label, tput,
              statistics.median(lats)), file=sys.stderr, flush=True)

base_label = servers[0][0]
base_t = statistics.median(t for t, _, _ in res[base_label])
with open(out_md, 'w') as f:
    f.write('| server | cut-outs/s (median) | rounds | median answer ms | median PNG MB | / %s |\n' % base_label)
    f.write('|---|---|---|---|---|---|\n')
    for label, _ in servers:
        t = statistics.median(x[0] for x in res[label])
        f.write('| %s | %.3f | %s | %.0f | %.1f | %.2f |\n' % (
            label, t, ' '.join('%.3f' % x[0] for x in res[label]), statistics.median(x[1] for x in res[label]),
            statistics.median(x[2] for x in res[label]) / 2**20, t / base_t))
    f.write('\n%d photos per round (%d timed, 4 clients at once, after one untimed cut-out); %d rounds, the servers '
            'taking turns; medians of the rounds.\n' % (len(photos), len(photos) - 1, rounds))
