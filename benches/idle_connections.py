#!/usr/bin/env python3
"""Memory of idle keep-alive connections: start a passgate release binary on
loopback, read its resident memory idle, open N TLS keep-alive connections
(each sends one request over HTTP/1.1, then stays open), read it again.

    cargo build --release
    python3 benches/idle_connections.py --bin target/release/passgate --connections 10000

Loopback only. Raises its own file-descriptor limit; run as a user allowed to.
"""

import argparse
import asyncio
import os
import resource
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

CONFIG = """
[server]
listen = "127.0.0.1:{port}"
tls_cert = "{dir}/cert.pem"
tls_key = "{dir}/key.pem"
dev_certificate = true
max_connections = {cap}
header_read_timeout = "600s"
idle_timeout = "600s"
[log]
access = false
[[routes]]
prefix = "/"
upstream = "http://127.0.0.1:{up}"
public = true
"""


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def upstream_server(port_box):
    async def handle(reader, writer):
        try:
            while True:
                data = await reader.readuntil(b"\r\n\r\n")
                if not data:
                    break
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
        except (Exception, asyncio.CancelledError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_box.append(server.sockets[0].getsockname()[1])
    return server


async def open_one(port, ctx, conns, sem):
    async with sem:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        writer.write(b"GET /x HTTP/1.1\r\nhost: localhost\r\n\r\n")
        await writer.drain()
        await reader.readuntil(b"ok")
        conns.append((reader, writer))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/passgate")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--port", type=int, default=18461)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.connections + 1000
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))

    port_box = []
    up = await upstream_server(port_box)
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "passgate.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(port=args.port, dir=tmp, cap=args.connections + 100, up=port_box[0]))
    proc = subprocess.Popen(
        ["bash", "-c", f"ulimit -n {want}; exec {args.bin} serve --config {cfg}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)
        idle = rss_mib(proc.pid)
        ctx = ssl.create_default_context(cafile=os.path.join(tmp, "cert.pem"))
        conns = []
        sem = asyncio.Semaphore(200)
        started = time.time()
        await asyncio.gather(*(open_one(args.port, ctx, conns, sem) for _ in range(args.connections)))
        opened = time.time() - started
        await asyncio.sleep(2)
        loaded = rss_mib(proc.pid)
        print(f"idle RSS: {idle:.1f} MiB")
        print(f"{len(conns)} idle keep-alive TLS connections (opened in {opened:.1f}s): RSS {loaded:.1f} MiB "
              f"({(loaded - idle) * 1024 / max(len(conns), 1):.1f} KiB per connection)")
        for _, w in conns:
            w.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        up.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
