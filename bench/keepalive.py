#!/usr/bin/env python3
"""Server memory with many open keep-alive connections, as a fleet holds them (scripts/bench).

Opens CONNECTIONS connections to the server, sends one heartbeat on each (at most CONCURRENCY at a
time, each from a different device without an assignment), keeps them all open and idle, and prints
the server's VmRSS and VmHWM in KiB (from /proc/PID/status) as one line:

    KEEPALIVE connections=10000 rss_kib=... hwm_kib=... failed=0

Usage: keepalive.py HOST PORT CONNECTIONS CONCURRENCY IDS_FILE EVERY SERVER_PID
  IDS_FILE  one device id a line, line i = device i (written by scripts/bench); device i's token is
            otd_bench_<i>; devices with i % EVERY == 0 have an assignment and are skipped. A fleet with
            fewer devices than connections is cycled through (a device may hold several connections).
"""
import asyncio
import sys

BODY = b'{"firmware_version":"1.0.0"}'


def memory_kib(pid):
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def plain_devices(count, every, fleet):
    i = 0
    while count > 0:
        i = i % fleet + 1
        if i % every != 0:
            yield i
            count -= 1


async def heartbeat_and_hold(host, port, device, device_id, gate, held):
    async with gate:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"POST /v1/devices/%s/heartbeat HTTP/1.1\r\nHost: bench\r\n"
                     b"Authorization: Bearer otd_bench_%d\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (device_id.encode(), device, len(BODY), BODY))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
        await reader.readexactly(length)
        held.append(writer)
        return b" 200 " in lines[0]


async def main():
    host, port, connections, concurrency, ids_file, every, pid = sys.argv[1:8]
    connections, concurrency, every = int(connections), int(concurrency), int(every)
    with open(ids_file) as f:
        ids = f.read().split()
    if len(ids) < every:
        sys.exit("keepalive.py: the fleet has no device without an assignment")
    gate, held = asyncio.Semaphore(concurrency), []
    results = await asyncio.gather(*(heartbeat_and_hold(host, int(port), i, ids[i - 1], gate, held)
                                     for i in plain_devices(connections, every, len(ids))), return_exceptions=True)
    failed = sum(1 for r in results if r is not True)
    await asyncio.sleep(1)  # let the server settle with every connection idle
    rss, hwm = memory_kib(pid)
    print(f"KEEPALIVE connections={len(held)} rss_kib={rss} hwm_kib={hwm} failed={failed}")
    for writer in held:
        writer.close()


asyncio.run(main())
