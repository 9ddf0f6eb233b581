#!/usr/bin/env python3
"""Time from starting `petcut serve` to its first 200 on /readyz.

    readyz.py PETCUT DATA_DIR LABEL=NAME:VALUE[,NAME:VALUE...] ... [--rounds N]

Each LABEL names a set of environment variables to set (comma separated;
"-" for none). In each round every set is started once, in
order (A B A B ...), on a free port with its own data folder, polled every
5 ms, then stopped with SIGTERM (its exit status must be 0). Prints one
line per set: LABEL, the median and every time in ms.
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request


def start_once(petcut, data, env):
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    log = open(os.path.join(data, "serve.log"), "w+")
    t0 = time.monotonic()
    # the log to a file: a pipe nobody reads would stop the server once full
    p = subprocess.Popen([petcut, "serve", "--listen", "127.0.0.1:0", "--data", data],
                         env=env, stdout=log, stderr=subprocess.STDOUT)
    url = None
    while url is None:
        log.seek(0)
        for line in log:
            if line.startswith("listening on "):
                url = line.split()[2].rstrip("/") + "/readyz"
        if url is None and p.poll() is not None:
            raise SystemExit("readyz.py: petcut serve ended before listening")
        time.sleep(0.002)
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if p.poll() is not None:
            raise SystemExit("readyz.py: petcut serve exited before it was ready")
        time.sleep(0.005)
    ms = (time.monotonic() - t0) * 1000
    p.send_signal(signal.SIGTERM)
    status = p.wait(timeout=60)
    log.close()
    if status != 0:
        raise SystemExit(f"readyz.py: petcut serve exited with {p.returncode}")
    return ms


def main():
    args = sys.argv[1:]
    rounds = 5
    if "--rounds" in args:
        i = args.index("--rounds")
        rounds = int(args[i + 1])
        del args[i:i + 2]
    petcut, data, sets = args[0], args[1], args[2:]
    envs = []
    for s in sets:
        label, _, spec = s.partition("=")
        env = dict(os.environ)
        for kv in spec.split(","):
            if kv and kv != "-":
                k, _, v = kv.partition(":")
                env[k] = v
        envs.append((label, env))
    times = {label: [] for label, _ in envs}
    for _ in range(rounds):
        for label, env in envs:
            times[label].append(start_once(petcut, data, env))
    for label, _ in envs:
        t = times[label]
        print(label, round(statistics.median(t)), " ".join(str(round(x)) for x in t))


if __name__ == "__main__":
    main()
