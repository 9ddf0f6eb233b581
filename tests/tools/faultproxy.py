#!/usr/bin/env python3
"""faultproxy.py - a TCP proxy that injects network faults, for petcut's
fault tests.

    tests/tools/faultproxy.py HOST:PORT MODE...

Listens on one free port of 127.0.0.1 per MODE, forwards every connection
to HOST:PORT, and prints "MODE PORT" for each, then "ready". Runs until
killed. What it does to the client's bytes (counted per connection, headers
included; the server's answers pass untouched):

  pass      forwards them
  cut:N     forwards N bytes, then closes both sides (FIN)
  rst:N     forwards N bytes, then resets both sides (SO_LINGER 0: RST)
  rate:BPS  forwards them at BPS bytes/s, in tenths of a second

Each fault is logged on stderr ("cut after N bytes").
"""
import asyncio
import socket
import struct
import sys


def reset(writer):
    sock = writer.get_extra_info('socket')
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    try:
        writer.write_eof()
    except (OSError, RuntimeError):
        pass


async def upstream(mode, arg, cr, sw, cw):
    sent = 0
    try:
        while True:
            data = await cr.read(65536)
            if not data:
                sw.write_eof()
                return
            if mode in ('cut', 'rst') and sent + len(data) >= arg:
                sw.write(data[:arg - sent])
                await sw.drain()
                await asyncio.sleep(0.05)  # let the bytes leave before the fault
                print(f'{mode} after {arg} bytes', file=sys.stderr, flush=True)
                if mode == 'cut':
                    sw.close()
                    cw.close()
                else:
                    reset(sw)
                    reset(cw)
                return
            if mode == 'rate':
                step = max(1, arg // 10)
                for i in range(0, len(data), step):
                    sw.write(data[i:i + step])
                    await sw.drain()
                    await asyncio.sleep(0.1)
            else:
                sw.write(data)
                await sw.drain()
            sent += len(data)
    except (ConnectionError, OSError):
        cw.close()


async def serve(target, mode, arg, cr, cw):
    try:
        sr, sw = await asyncio.open_connection(*target)
    except OSError:
        cw.close()
        return
    down = asyncio.ensure_future(pipe(sr, cw))
    await upstream(mode, arg, cr, sw, cw)
    if mode in ('cut', 'rst') and sw.is_closing():
        down.cancel()
    try:
        await down
    except asyncio.CancelledError:
        pass
    for w in (sw, cw):
        if not w.is_closing():
            w.close()


async def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    host, port = sys.argv[1].rsplit(':', 1)
    target = (host, int(port))
    servers = []
    for spec in sys.argv[2:]:
        mode, _, n = spec.partition(':')
        if mode not in ('pass', 'cut', 'rst', 'rate') or (mode != 'pass' and not n.isdigit()):
            sys.exit(f'faultproxy: bad mode {spec}')
        arg = int(n) if n else 0
        srv = await asyncio.start_server(
            lambda r, w, m=mode, a=arg: serve(target, m, a, r, w), '127.0.0.1', 0)
        servers.append(srv)
        print(spec, srv.sockets[0].getsockname()[1], flush=True)
    print('ready', flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == '__main__':
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
