#!/usr/bin/env python3
"""Abusive clients beside the fleet's heartbeats (scripts/bench, the abuse run).

For SECONDS seconds, against the server at HOST:PORT:
  - STREAMS event streams (GET /v1/events) from the start of the history (Last-Event-ID: 0), each with its
    own API key (ota_abuse_<i>), each reading 1 KB a second through a 4 KiB receive buffer. A stream the
    server closes is resumed from the last id it delivered, as the portal does;
  - SCRAPERS clients scraping GET /metrics in a loop, each over its own keep-alive connection;
  - UPLOADS uploads of a UPLOAD_MIB MiB image each (multipart POST /v1/releases, model bench-model, versions
    9.0.<i>), each sent at 2 MB/s.
Meanwhile, until the last upload is answered, it samples the server's memory (/proc/PID/status) every 0.2 s. At the end it prints one line:

    ABUSE rss_peak_kib=... anon_peak_kib=... stream_bytes=... stream_events=... stream_closed=...
          stream_429=... scrapes=... scrape_errors=... uploads_ok=... uploads_refused=... uploads_failed=...

Usage: abuse.py HOST PORT SECONDS SERVER_PID [STREAMS SCRAPERS UPLOADS UPLOAD_MIB]   (20 50 20 64)
  OTA_METRICS_TOKEN, when set, is sent with each scrape.
"""
import asyncio
import os
import socket
import sys
import time

STREAM_READ = 1024  # bytes a stream reads each second
UPLOAD_RATE = 2_000_000  # bytes a second an upload sends
UPLOAD_CHUNK = 65536

stats = {k: 0 for k in ("stream_bytes", "stream_events", "stream_closed", "stream_429", "scrapes", "scrape_errors",
                        "uploads_ok", "uploads_refused", "uploads_failed")}
peak = {"rss": 0, "anon": 0}


def memory_kib(pid):
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("RssAnon", 0)


async def sample_memory(pid):
    while True:
        rss, anon = memory_kib(pid)
        peak["rss"], peak["anon"] = max(peak["rss"], rss), max(peak["anon"], anon)
        await asyncio.sleep(0.2)


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


async def open_small(host, port):
    """A connection whose receive buffer is 4 KiB, so a slow reader really is slow at the server's end."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    return await asyncio.open_connection(sock=sock, limit=STREAM_READ * 4)


async def stream(host, port, key, until):
    last_id = "0"
    while time.monotonic() < until:
        try:
            reader, writer = await open_small(host, port)
            writer.write(f"GET /v1/events HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
                         f"Accept: text/event-stream\r\nLast-Event-ID: {last_id}\r\n\r\n".encode())
            await writer.drain()
            status, headers = await read_head(reader)
            if status == 429:
                stats["stream_429"] += 1
                writer.close()
                await asyncio.sleep(int(headers.get(b"retry-after", b"1")))
                continue
            partial = b""
            while time.monotonic() < until:
                data = await reader.read(STREAM_READ)
                if not data:
                    stats["stream_closed"] += 1
                    break
                stats["stream_bytes"] += len(data)
                lines = (partial + data).split(b"\n")
                partial = lines.pop()
                for line in lines:
                    if line.startswith(b"id:"):
                        last_id = line[3:].strip().decode()
                        stats["stream_events"] += 1
                await asyncio.sleep(1)
            writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats["stream_closed"] += 1
            await asyncio.sleep(1)


async def scrape(host, port, until):
    token = os.environ.get("OTA_METRICS_TOKEN")
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET /metrics HTTP/1.1\r\nHost: bench\r\n{auth}\r\n".encode()
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            while time.monotonic() < until:
                writer.write(request)
                status, headers = await read_head(reader)
                await reader.readexactly(int(headers.get(b"content-length", b"0")))
                stats["scrapes" if status == 200 else "scrape_errors"] += 1
            writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError):
            stats["scrape_errors"] += 1
            await asyncio.sleep(0.1)


async def upload(host, port, n, image, admin_key):
    boundary = b"abuse-boundary-7d1f"
    head = (b"--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nbench-model\r\n"
            b"--%s\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n9.0.%d\r\n"
            b"--%s\r\nContent-Disposition: form-data; name=\"bin\"; filename=\"abuse.bin\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" % (boundary, boundary, n, boundary))
    tail = b"\r\n--%s--\r\n" % boundary
    body_length = len(head) + len(image) + len(tail)
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /v1/releases HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
                     b"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n"
                     % (admin_key.encode(), boundary, body_length) + head)
        start = time.monotonic()
        for offset in range(0, len(image), UPLOAD_CHUNK):
            writer.write(image[offset:offset + UPLOAD_CHUNK])
            await writer.drain()
            due = start + (offset + UPLOAD_CHUNK) / UPLOAD_RATE
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        writer.write(tail)
        await writer.drain()
        status, headers = await asyncio.wait_for(read_head(reader), 120)
        await reader.readexactly(int(headers.get(b"content-length", b"0")))
        writer.close()
        stats["uploads_ok" if status == 201 else "uploads_refused" if status in (429, 503) else "uploads_failed"] += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
        stats["uploads_failed"] += 1


async def main():
    host, port, seconds, pid = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    streams, scrapers, uploads, upload_mib = (int(a) for a in (sys.argv[5:9] + ["20", "50", "20", "64"][len(sys.argv[5:9]):]))
    admin_key = os.environ.get("ABUSE_ADMIN_KEY", "ota_bench_admin_key")
    until = time.monotonic() + seconds
    image = os.urandom(upload_mib << 20)
    sampler = asyncio.create_task(sample_memory(pid))
    await asyncio.gather(*(stream(host, port, f"ota_abuse_{i}", until) for i in range(1, streams + 1)),
                         *(scrape(host, port, until) for _ in range(scrapers)),
                         *(upload(host, port, n, image, admin_key) for n in range(1, uploads + 1)))
    sampler.cancel()
    print("ABUSE rss_peak_kib=%d anon_peak_kib=%d %s" % (peak["rss"], peak["anon"],
                                                        " ".join(f"{k}={v}" for k, v in stats.items())))


asyncio.run(main())
