#!/usr/bin/env python3
"""soak.py - mixed load on a petcut serve of its own, on loopback.

    soak.py PETCUT PHOTO.jpg [--connections 200] [--requests N | --minutes M]
            [--pool 64] [--max-growth-mb 50] [--report FILE.md]

Starts `petcut serve` on a free port of 127.0.0.1 with a fresh data folder,
then keeps --connections HTTP/1.1 keep-alive connections busy with a mix of
requests until --requests are done (or --minutes have passed):

    hit       POST /v1/remove-background, a result already made (cache hit)
    upload    POST /v1/images, a photo of the pool (new the first time)
    thumb     GET  /v1/images/ID?max=256
    preview   POST /v1/remove-background of a pool photo (inference the first time)
    render    POST /v1/remove-background with an effect or background (the mask reused)
    health    GET  /healthz

The pool is --pool variants of PHOTO (a distinct trailer each), so the store
and the number of inferences stay bounded however long it runs. Expected
answers are 200 and 201, and 429 for the removals (a full queue is a refusal
the client is told to retry); anything else, and any broken connection, is
an error. RSS is read from /proc every 2 s. Growth is the last reading minus
the one half way through the requests (with --requests) or a fifth of the way
into the time (with --minutes): by then every photo of the pool has had its
first preview, and the inference plans of every batch size and their arenas
are made, which is a one-time cost, not growth.

Prints per route: count, errors, 429s, p50 and p99 in ms; then requests,
errors, RSS before/after and growth. Exits 1 on any error or on growth over
--max-growth-mb.
"""
import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("petcut")
ap.add_argument("photo")
ap.add_argument("--connections", type=int, default=200)
ap.add_argument("--requests", type=int, default=10000)
ap.add_argument("--minutes", type=float, default=0)
ap.add_argument("--pool", type=int, default=64)
ap.add_argument("--max-growth-mb", type=float, default=50)
ap.add_argument("--report")
args = ap.parse_args()

photo = open(args.photo, "rb").read()
pool = [photo + b"pool photo %d" % i for i in range(args.pool)]
import hashlib  # noqa: E402

ids = [hashlib.sha256(p).hexdigest() for p in pool]
EFFECTS = [{"effect": "popart"}, {"effect": "sticker"}, {"bg": "#ffffff"}, {"bg": "#203040"}, {"effect": "shadow"}]
MIX = [("hit", 45), ("upload", 15), ("thumb", 12), ("preview", 10), ("render", 10), ("health", 8)]
ROUTES = [r for r, _ in MIX]
WEIGHTS = [w for _, w in MIX]

tmp = tempfile.mkdtemp(prefix="petcut-soak-")
server = subprocess.Popen([args.petcut, "serve", "--listen", "127.0.0.1:0", "--data", tmp + "/data",
                           "--per-ip-connections", str(args.connections + 16), "--threads", "4"],
                          stdout=subprocess.PIPE, stderr=open(tmp + "/log", "w"), text=True)
m = re.match(r"listening on http://([\d.]+):(\d+)", server.stdout.readline())
if not m:
    sys.exit("soak: the server did not start: " + open(tmp + "/log").read()[-500:])
HOST, PORT = m.group(1), int(m.group(2))


def rss_mb():
    for line in open("/proc/%d/status" % server.pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Conn:
    def __init__(self):
        self.r = self.w = None

    async def request(self, method, path, body=b"", ctype="application/json"):
        """One request on the kept-alive connection: (status, body)."""
        if self.w is None:
            self.r, self.w = await asyncio.open_connection(HOST, PORT)
        head = "%s %s HTTP/1.1\r\nHost: petcut\r\nContent-Length: %d\r\n" % (method, path, len(body))
        if body:
            head += "Content-Type: %s\r\n" % ctype
        self.w.write(head.encode() + b"\r\n" + body)
        await self.w.drain()
        status_line = await self.r.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        status = int(status_line.split()[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
            elif k == "connection" and "close" in v.lower():
                close = True
        if chunked:
            data = b""
            while True:
                n = int((await self.r.readline()).strip(), 16)
                data += await self.r.readexactly(n + 2)
                if n == 0:
                    break
        else:
            data = await self.r.readexactly(length)
        if close:
            self.close()
        return status, data

    def close(self):
        if self.w:
            self.w.close()
        self.r = self.w = None


stats = {r: {"lat": [], "errors": 0, "r429": 0, "n": 0} for r in ROUTES}
errors_seen = []
done = 0
stop_at = time.time() + args.minutes * 60 if args.minutes else None
rss_samples = []
rss_half = None


def body_for(route, i):
    if route == "hit":
        return json.dumps({"image_id": ids[0], "size": "preview"}).encode()
    if route == "preview":
        return json.dumps({"image_id": ids[i], "size": "preview"}).encode()
    extra = dict(EFFECTS[i % len(EFFECTS)])
    extra.update({"image_id": ids[i], "size": "preview"})
    return json.dumps(extra).encode()


uploaded = set()


async def one(conn, route):
    i = random.randrange(args.pool)
    if route in ("preview", "render", "thumb") and i not in uploaded:
        route_used = "upload"  # a photo must be up before it is used
    else:
        route_used = route
    t0 = time.perf_counter()
    if route_used == "upload":
        st, data = await conn.request("POST", "/v1/images", pool[i], "image/jpeg")
        if st in (200, 201):
            uploaded.add(i)
    elif route_used == "thumb":
        st, data = await conn.request("GET", "/v1/images/%s?max=256" % ids[i])
    elif route_used == "health":
        st, data = await conn.request("GET", "/healthz")
    else:
        st, data = await conn.request("POST", "/v1/remove-background", body_for(route_used, i))
    ms = (time.perf_counter() - t0) * 1000
    s = stats[route_used]
    s["n"] += 1
    if st == 429 and route_used in ("hit", "preview", "render"):
        s["r429"] += 1
    elif st in (200, 201):
        s["lat"].append(ms)
    else:
        s["errors"] += 1
        if len(errors_seen) < 10:
            errors_seen.append("%s %d %s" % (route_used, st, data[:120]))


async def client():
    global done, rss_half
    conn = Conn()
    while (stop_at and time.time() < stop_at) or (not stop_at and done < args.requests):
        done += 1
        if done == args.requests // 2 and not stop_at:
            rss_half = rss_mb()
        route = random.choices(ROUTES, WEIGHTS)[0]
        try:
            await one(conn, route)
        except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError) as e:
            stats[route]["n"] += 1
            stats[route]["errors"] += 1
            if len(errors_seen) < 10:
                errors_seen.append("%s: %r" % (route, e))
            conn.close()
    conn.close()


async def sampler():
    while True:
        rss_samples.append((time.time(), rss_mb()))
        await asyncio.sleep(2)


async def warm():
    """One pass over the pool: every photo up, previewed and rendered."""
    conn = Conn()
    for i in range(args.pool):
        st, _ = await conn.request("POST", "/v1/images", pool[i], "image/jpeg")
        uploaded.add(i)
    await conn.request("POST", "/v1/remove-background", body_for("hit", 0))
    conn.close()


async def main():
    await warm()
    base = rss_mb()
    t0 = time.time()
    s = asyncio.ensure_future(sampler())
    await asyncio.gather(*(client() for _ in range(args.connections)))
    s.cancel()
    return base, time.time() - t0


rss_start = rss_mb()
base, secs = asyncio.run(main())
rss_end = rss_mb()
# the steady state starts once the one-time costs are paid (see above)
steady = [r for t, r in rss_samples if t >= rss_samples[0][0] + secs / 5] if rss_samples else []
ref = rss_half if rss_half is not None else steady[0] if steady else base
growth = rss_end - ref
server.terminate()
rc = server.wait(timeout=60)

total = sum(s["n"] for s in stats.values())
errors = sum(s["errors"] for s in stats.values())
lines = ["| route | requests | errors | 429 | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
for r in ROUTES:
    s = stats[r]
    lat = sorted(s["lat"])
    p = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan"))
    lines.append("| %s | %d | %d | %d | %.1f | %.1f |" % (r, s["n"], s["errors"], s["r429"], p(0.5), p(0.99)))
summary = ("%d requests on %d connections in %.0f s (%.0f/s), %d errors, %d refused with 429; "
           "RSS %.0f MB at start, %.0f MB warm, %.0f MB in the steady state, %.0f MB at the end: growth %.1f MB "
           "(bound %.0f); "
           "server exit %d" % (total, args.connections, secs, total / secs, errors,
                               sum(s["r429"] for s in stats.values()), rss_start, base, ref, rss_end, growth,
                               args.max_growth_mb, rc))
print("\n".join(lines))
print(summary)
for e in errors_seen:
    print("error:", e)
if args.report:
    with open(args.report, "w") as f:
        f.write("\n".join(lines) + "\n\n" + summary + "\n")
ok = errors == 0 and growth < args.max_growth_mb and rc == 0 and total >= (0 if stop_at else args.requests)
print(("ok" if ok else "not ok") + " - load held: %d errors, RSS growth %.1f MB" % (errors, growth))
sys.exit(0 if ok else 1)
