#!/usr/bin/env python3
"""hostile.py - hostile and oversized input against a running petcut serve.

    hostile.py URL DATA_DIR PHOTO.jpg

The server runs with --max-upload-mb 2 --allow-fetch-host 127.0.0.1
--allow-fetch-private yes. Every input here is refused with the status the
API documents and a JSON error that names no file path and no version, on
every way in (raw, multipart, base64, image_url, tus, the remove.bg form);
pixels are refused from the header (a photo claiming 30000x30000 is 30 kB);
ids that are not 64 lowercase hex are 400 before they touch the store. At the
end the server still answers, and everything under the store's real names
hashes to its name.

Prints one "ok - ..." or "not ok - ..." line per check, then
"bad inputs tried: N, crashes: 0"; exits 1 if a check failed.
"""
import base64
import hashlib
import http.client
import http.server
import json
import os
import re
import socket
import struct
import sys
import threading
import urllib.parse
import zlib

URL, DATA, PHOTO = sys.argv[1], sys.argv[2], sys.argv[3]
HOST, PORT = urllib.parse.urlsplit(URL).hostname, urllib.parse.urlsplit(URL).port
fails = 0
tried = 0
bodies = []  # every error body, checked for paths and versions at the end


def check(ok, what):
    global fails
    print(("ok - " if ok else "not ok - ") + what)
    if not ok:
        fails += 1


def request(method, path, body=None, headers=None, timeout=60):
    """One request on a new connection: (status, headers dict, body bytes)."""
    c = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    except (ConnectionError, socket.timeout, http.client.HTTPException) as e:
        return 0, {}, str(e).encode()
    finally:
        c.close()


def refused(what, want, method, path, body=None, headers=None, code=None):
    """Sends one bad input; checks the status (one of want) and the JSON error."""
    global tried
    tried += 1
    st, _, data = request(method, path, body, headers)
    err = {}
    try:
        err = json.loads(data).get("error") or (json.loads(data).get("errors") or [{}])[0]
    except (ValueError, AttributeError):
        pass
    bodies.append((what, data))
    want = want if isinstance(want, tuple) else (want,)
    good = st in want and isinstance(err, dict) and bool(err.get("code") or err.get("title"))
    if code and good:
        good = err.get("code") == code
    check(good, "%s: %d %s" % (what, st, (err.get("code") or err.get("title") or data[:80]) if err else data[:80]))


# ===== inputs =====
def png(width, height):
    """A grey PNG of the given size, all zeros (a few kB however large)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    z = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def png_header_bomb(width, height):
    """A PNG whose header claims width x height, with 1 kB of data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b""))


def jpeg_claiming(jpeg, width, height):
    """The JPEG with its frame header (SOF) saying width x height."""
    b = bytearray(jpeg)
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            raise ValueError("no SOF")
        m, n = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if m in (0xC0, 0xC1, 0xC2):
            b[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(b)
        i += 2 + n
    raise ValueError("no SOF")


def multipart(field, name, data, ctype="image/jpeg"):
    bnd = "petcutboundary7d1f"
    body = ("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
            "Content-Type: %s\r\n\r\n" % (bnd, field, name, ctype)).encode() + data + \
        ("\r\n--%s--\r\n" % bnd).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=" + bnd}


def form(fields):
    bnd = "petcutboundary9a2c"
    body = b"".join(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n" % (bnd, k)).encode() +
                    v.encode() + b"\r\n" for k, v in fields.items()) + ("--%s--\r\n" % bnd).encode()
    return body, {"Content-Type": "multipart/form-data; boundary=" + bnd}


photo = open(PHOTO, "rb").read()
bomb_jpg = jpeg_claiming(photo, 30000, 30000)      # 900 MP claimed in a normal-sized file
bomb_png = png_header_bomb(60000, 60000)          # 3.6 GP claimed in 1 kB
big_png = png(8000, 7000)                          # 56 MP for real, over the 50 MP default
big_bytes = photo + os.urandom(3 << 20)            # a JPEG of 3 MB, over --max-upload-mb 2
check(len(bomb_jpg) < 200000 and len(bomb_png) < 2000 and len(big_png) < 200000,
      "inputs: JPEG claiming 30000x30000 in %d B, PNG claiming 60000x60000 in %d B, real 8000x7000 PNG in %d B"
      % (len(bomb_jpg), len(bomb_png), len(big_png)))


# a web server on loopback for image_url (the server runs with --allow-fetch-private yes)
class Files(http.server.BaseHTTPRequestHandler):
    files = {"/bomb.jpg": bomb_jpg, "/big.png": big_png, "/big.jpg": big_bytes, "/text": b"hello, not an image"}

    def do_GET(self):
        data = self.files.get(self.path)
        if self.path == "/chunked":  # no Content-Length: the limit must hold while reading
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(48):
                self.wfile.write(b"10000\r\n" + b"\xff" * 0x10000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
            return
        self.send_response(200 if data else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def log_message(self, *a):
        pass


class Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # petcut hangs up on bodies over its limit: expected


files = Quiet(("127.0.0.1", 0), Files)
threading.Thread(target=files.serve_forever, daemon=True).start()
FILES = "http://127.0.0.1:%d" % files.server_address[1]

JSON = {"Content-Type": "application/json"}
RM = "/v1/remove-background"

# ===== pixels, on every way in =====
for name, img in (("JPEG claiming 30000x30000", bomb_jpg), ("PNG claiming 60000x60000", bomb_png),
                  ("real 8000x7000 PNG", big_png)):
    refused("raw upload, " + name, 413, "POST", "/v1/images", img, {"Content-Type": "image/jpeg"}, "too_large")
    refused("multipart upload, " + name, 413, "POST", "/v1/images", *multipart("file", "x.jpg", img))
    refused("base64 in JSON, " + name, 413, "POST", RM,
            json.dumps({"image": base64.b64encode(img).decode()}), JSON, "too_large")
    refused("remove.bg image_file_b64, " + name, 413, "POST", "/v1.0/removebg",
            *form({"image_file_b64": base64.b64encode(img).decode()}))
    refused("remove.bg image_file, " + name, 413, "POST", "/v1.0/removebg", *multipart("image_file", "x.jpg", img))
for path in ("/bomb.jpg", "/big.png"):
    refused("image_url " + path, 413, "POST", RM, json.dumps({"image_url": FILES + path}), JSON, "too_large")
    refused("remove.bg image_url " + path, 413, "POST", "/v1.0/removebg", *form({"image_url": FILES + path}))


def tus_upload(data):
    """A tus upload of data in one PATCH: the PATCH's status and body."""
    st, h, _ = request("POST", "/v1/uploads", None, {"Tus-Resumable": "1.0.0", "Upload-Length": str(len(data))})
    if st != 201:
        return st, b"creation failed"
    loc = urllib.parse.urlsplit(h.get("location", "")).path
    st, _, body = request("PATCH", loc, data, {"Tus-Resumable": "1.0.0", "Upload-Offset": "0",
                                               "Content-Type": "application/offset+octet-stream"})
    return st, body


for name, img in (("JPEG claiming 30000x30000", bomb_jpg), ("real 8000x7000 PNG", big_png)):
    tried += 1
    st, body = tus_upload(img)
    bodies.append(("tus " + name, body))
    check(st == 413 and b"too_large" in body, "tus upload, %s: %d %s" % (name, st, body[:80]))

# ===== bytes, on every way in (--max-upload-mb 2) =====
refused("raw upload of 3 MB", 413, "POST", "/v1/images", big_bytes, {"Content-Type": "image/jpeg"})
refused("multipart upload of 3 MB", 413, "POST", "/v1/images", *multipart("file", "x.jpg", big_bytes))
refused("base64 JSON of 3 MB", 413, "POST", RM, json.dumps({"image": base64.b64encode(big_bytes).decode()}), JSON)
refused("remove.bg image_file of 3 MB", 413, "POST", "/v1.0/removebg", *multipart("image_file", "x.jpg", big_bytes))
refused("image_url of 3 MB (Content-Length)", 413, "POST", RM, json.dumps({"image_url": FILES + "/big.jpg"}), JSON)
refused("image_url of 3 MB (chunked, no length)", 413, "POST", RM, json.dumps({"image_url": FILES + "/chunked"}), JSON)
refused("tus Upload-Length of 3 MB", 413, "POST", "/v1/uploads", None,
        {"Tus-Resumable": "1.0.0", "Upload-Length": str(3 << 20)})
refused("image_url that is not an image", 415, "POST", RM, json.dumps({"image_url": FILES + "/text"}), JSON)
refused("image_url redirecting to itself", (400, 422), "POST", RM, json.dumps({"image_url": FILES + "/loop"}), JSON)
refused("image_url of a host not listed", 400, "POST", RM, json.dumps({"image_url": "http://localhost:1/x.jpg"}), JSON)
refused("image_url file://", 400, "POST", RM, json.dumps({"image_url": "file:///etc/passwd"}), JSON)

# ===== ids =====
hexid = hashlib.sha256(b"x").hexdigest()
bad_ids = ["..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2Fetc%2Fpasswd", "/etc/passwd", hexid[:63], hexid + "0",
           hexid.upper(), hexid[:63] + "%00", hexid + "%00", "%00", "a" * 4000, hexid[:62] + "/.", "..", "."]
for route in ("/v1/images/", "/v1/results/"):
    for bad in bad_ids:
        refused("GET %s%s" % (route, bad[:40]), (400, 404), "GET", route + bad)
for bad in ("../../etc/passwd", hexid.upper(), hexid[:63], hexid + "\u0000", "", "/" + hexid, "a" * 100000):
    refused("image_id %r" % bad[:40], 400, "POST", RM, json.dumps({"image_id": bad}), JSON)
for bad in ("..%2F..%2Fetc", "0" * 33, "%00", "x" * 3000):
    refused("tus DELETE /v1/uploads/%s" % bad[:30], (400, 404), "DELETE", "/v1/uploads/" + bad, None,
            {"Tus-Resumable": "1.0.0"})
    refused("GET /v1/jobs/%s" % bad[:30], (400, 404), "GET", "/v1/jobs/" + bad)

# ===== JSON bodies =====
for what, body in (("not JSON", b"{image_id"), ("empty body", b""), ("an array", b"[1,2]"),
                   ("nested 100000 deep", b"[" * 100000 + b"]" * 100000), ("a string", b'"x"'),
                   ("unknown field", json.dumps({"image_id": hexid, "evil": 1}).encode()),
                   ("wrong type", json.dumps({"image_id": 5}).encode()),
                   ("NUL in a string", b'{"image_id":"ab\\u0000cd"}'),
                   ("two images", json.dumps({"image_id": hexid, "image": "AAAA"}).encode()),
                   ("bad size", json.dumps({"image_id": hexid, "size": "x" * 10000}).encode()),
                   ("huge number", b'{"image_id":"' + hexid.encode() + b'","quality":1e999999}'),
                   ("invalid UTF-8", b'{"image_id":"\xff\xfe"}'),
                   ("bad base64", json.dumps({"image": "!!!!"}).encode()),
                   ("base64 of no image", json.dumps({"image": base64.b64encode(b"hello world!").decode()}).encode())):
    refused("remove-background with " + what, (400, 415), "POST", RM, body, JSON)
refused("batch of 1000", (400, 413), "POST", "/v1/remove-background/batch",
        json.dumps({"items": [{"image_id": hexid}] * 1000}), JSON)

# ===== uploads that are not images =====
for what, body in (("text", b"hello"), ("an ELF", open("/bin/true", "rb").read()[:65536]),
                   ("a JPEG header only", photo[:600]),
                   ("SVG", b'<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>'),
                   ("empty", b"")):
    refused("raw upload of " + what, (400, 415, 422), "POST", "/v1/images", body, {"Content-Type": "image/jpeg"})
# a JPEG cut short keeps its header: stored as sent, then refused when decoded
truncated = photo[:len(photo) // 3]
st, _, body = request("POST", "/v1/images", truncated, {"Content-Type": "image/jpeg"})
cut_id = json.loads(body).get("id", "") if st == 201 else ""
refused("remove-background of a JPEG cut to a third (upload %d)" % st, 422, "POST", RM,
        json.dumps({"image_id": cut_id}), JSON, "undecodable")
# digests of an upload: exactly the SHA-256's base64, else 400 before anything is stored
canon = base64.b64encode(hashlib.sha256(photo).digest()).decode()
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
for what, h in (("Content-Digest without its '='", {"Content-Digest": "sha-256=:%s:" % canon[:-1]}),
                ("Content-Digest with stray bits (the same 32 bytes)",
                 {"Content-Digest": "sha-256=:%s:" % (canon[:42] + B64[B64.index(canon[42]) + 1] + "=")}),
                ("Content-Digest with 'A' for its '=' (the same 32 bytes)",
                 {"Content-Digest": "sha-256=:%s:" % (canon[:43] + "A")}),
                ("Content-Digest of 45 characters", {"Content-Digest": "sha-256=:%s=:" % canon}),
                ("Upload-Checksum not base64", {"Upload-Checksum": "sha256 " + "!" * 44}),
                ("Content-Digest of other bytes", {"Content-Digest": "sha-256=:%s:" %
                 base64.b64encode(hashlib.sha256(b"other").digest()).decode()})):
    refused("upload with " + what, 400, "POST", "/v1/images", photo, dict(h, **{"Content-Type": "image/jpeg"}))
refused("multipart without a file", 400, "POST", "/v1/images", *form({"note": "x"}))
refused("multipart with a broken boundary", (400, 415), "POST", "/v1/images", b"--x\r\nbroken",
        {"Content-Type": "multipart/form-data; boundary=y"})

# ===== tus headers =====
T = {"Tus-Resumable": "1.0.0"}
for what, h in (("no Upload-Length", {}), ("negative length", {"Upload-Length": "-1"}),
                ("length not a number", {"Upload-Length": "12abc"}),
                ("length 2^64", {"Upload-Length": "18446744073709551616"}),
                ("metadata not base64", {"Upload-Length": "10", "Upload-Metadata": "filename !!!"}),
                ("metadata of 100 kB", {"Upload-Length": "10", "Upload-Metadata": "a " + "QUFB" * 25000}),
                ("wrong version", {"Upload-Length": "10", "Tus-Resumable": "0.2"})):
    refused("tus creation, " + what, (400, 412, 413, 431), "POST", "/v1/uploads", None, dict(T, **h))

# ===== error bodies say nothing about the machine =====
path_re = re.compile(rb"(?<![A-Za-z0-9:])/(?!v1[./])[A-Za-z0-9._-]+/[A-Za-z0-9._/-]+")
version_re = re.compile(rb"\b\d+\.\d+\.\d+\b")
def leaky(b):
    b = b.replace(b"Tus-Resumable: 1.0.0", b"")  # the protocol's version, which a client must send
    return path_re.search(b) or version_re.search(b) or b"Traceback" in b or b".c:" in b


leaks = [(w, b) for w, b in bodies if leaky(b)]
check(not leaks, "%d error bodies: no file path, version or trace in any%s" %
      (len(bodies), "" if not leaks else ": " + "; ".join("%s: %s" % (w, b[:120]) for w, b in leaks[:3])))

# ===== still serving, nothing stored that should not be =====
st, _, _ = request("GET", "/healthz")
alive = st == 200
check(alive, "after %d bad inputs the server answers /healthz (%d)" % (tried, st))
st, _, body = request("POST", "/v1/images", photo, {"Content-Type": "image/jpeg"})
good = hashlib.sha256(photo).hexdigest()
check(st in (200, 201) and json.loads(body).get("id") == good, "a good upload still works (%d)" % st)
stored = wrong = 0
for ns in ("img", "res"):
    for root, _, names in os.walk(os.path.join(DATA, ns)):
        for n in names:
            stored += 1
            if ns == "img" and hashlib.sha256(open(os.path.join(root, n), "rb").read()).hexdigest() != n:
                wrong += 1
imgs = sorted(n for _, _, names in os.walk(os.path.join(DATA, "img")) for n in names)
check(wrong == 0 and imgs == sorted([good, cut_id]) and stored == 2,
      "the store holds %d images (the good one and the cut one) and %d objects in all, %d under a wrong name"
      % (len(imgs), stored, wrong))
files.shutdown()
print("bad inputs tried: %d, server crashes: %d" % (tried, 0 if alive else 1))
sys.exit(1 if fails else 0)
