#!/usr/bin/env python3
"""Hold N idle HTTP/2 connections over TLS to one server and print its resident
memory (summed over the given process ids) before and after.

Each connection negotiates h2 by ALPN, sends the preface and one GET, reads the
whole answer, then stays open without a stream. Loopback only.

    python3 benches/idle_h2.py https://127.0.0.1:18447/plain/items 4000 PID [PID...]

Needs the `h2` package from PyPI.
"""

import asyncio
import resource
import ssl
import sys
import time
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


async def open_one(host, port, path, ctx, held):
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
    if writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
        raise RuntimeError("the server did not choose h2")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    conn.send_headers(
        stream,
        [(":method", "GET"), (":scheme", "https"), (":authority", host), (":path", path)],
        end_stream=True,
    )
    writer.write(conn.data_to_send())
    await writer.drain()
    status = None
    while True:
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("closed before the answer")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status")
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                writer.write(conn.data_to_send())
                await writer.drain()
                if status != b"200":
                    raise RuntimeError(f"status {status!r}")
                held.append((reader, writer))
                return
        writer.write(conn.data_to_send())
        await writer.drain()


async def main():
    url, n, pids = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
    u = urlsplit(url)
    if u.hostname not in ("127.0.0.1", "localhost"):
        sys.exit("idle_h2.py: loopback only")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])

    before = rss_kib(pids)
    held, sem = [], asyncio.Semaphore(200)

    async def limited():
        async with sem:
            await open_one(u.hostname, u.port, u.path or "/", ctx, held)

    started = time.time()
    results = await asyncio.gather(*(limited() for _ in range(n)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception)]
    opened = time.time() - started
    await asyncio.sleep(2)
    after = rss_kib(pids)
    per = (after - before) / max(len(held), 1)
    print(
        f"held={len(held)} errors={len(errors)} rss_before={before / 1024:.1f}MiB "
        f"rss_after={after / 1024:.1f}MiB per_conn={per:.1f}KiB open_s={opened:.1f}"
        + (f" first_error={errors[0]!r}" if errors else "")
    )
    for _, w in held:
        w.close()


asyncio.run(main())
