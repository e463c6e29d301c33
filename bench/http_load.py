"""A cheap HTTP/1.1 load generator for the serving bench, run in its own process so that it
measures the server rather than the client: ``clients`` keep-alive connections over raw asyncio
streams (uvloop when installed), each sending its requests back to back for ``seconds``; every
request is prepared once as bytes, a response is read by its Content-Length. Loopback only.

    python bench/http_load.py --url http://127.0.0.1:PORT/tfaas/json --bodies bodies.txt \
        --clients 64 --seconds 4        # token in MLAAS4HEP_BENCH_TOKEN; prints one JSON line

``bodies.txt`` holds one request body per line (JSON, so without line breaks); client k sends
bodies k, k + clients, ... Printed: requests, errors (non-200 answers), requests/s, p50/p99
latency (ms) and this process's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
MAX_CLIENTS = 1024
MAX_SECONDS = 600.0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send one request, read its whole response; the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length is None:
        raise RuntimeError(f"a response without Content-Length: {head[:200]!r}")
    await reader.readexactly(length)
    return status


async def run(url: str, token: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK or not parts.port:
        raise SystemExit(f"only http://127.0.0.1:PORT/... (loopback) is accepted, got {url!r}")
    if not 1 <= clients <= MAX_CLIENTS or not 0 < seconds <= MAX_SECONDS:
        raise SystemExit(f"clients must be 1..{MAX_CLIENTS} and seconds in (0, {MAX_SECONDS}]")
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (f"POST {path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nConnection: keep-alive\r\n").encode()
    requests = [head + f"Content-Length: {len(b)}\r\n\r\n".encode() + b for b in bodies]
    connections = [await asyncio.open_connection(parts.hostname, parts.port) for _ in range(clients)]
    # one warm-up request per connection (the token is checked and remembered, the model loaded)
    await asyncio.gather(*(_exchange(r, w, requests[0]) for r, w in connections))

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    clock = time.perf_counter
    deadline = clock() + seconds

    async def client(k: int) -> None:
        reader, writer = connections[k]
        i = k
        n = len(requests)
        while True:
            start = clock()
            if start >= deadline:
                return
            status = await _exchange(reader, writer, requests[i % n])
            latencies.append(clock() - start)
            if status != 200:
                statuses[status] = statuses.get(status, 0) + 1
            i += clients

    cpu0 = cpu_seconds()
    begin = clock()
    tasks = [asyncio.ensure_future(client(k)) for k in range(clients)]
    done, pending = await asyncio.wait(tasks, timeout=seconds + 60)  # bounded even if the server hangs
    for task in pending:
        task.cancel()
    elapsed = clock() - begin
    cpu = cpu_seconds() - cpu0
    failures = [str(t.exception()) for t in done if t.exception() is not None]
    for _, writer in connections:
        writer.close()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] * 1e3 if latencies else float("nan")

    return {"requests": len(latencies), "errors": sum(statuses.values()), "statuses": statuses,
            "rows_s": len(latencies) / elapsed, "p50": pct(50), "p99": pct(99), "seconds": elapsed,
            "client_cpu_s": cpu, "hung": len(pending), "failures": failures[:3]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--bodies", required=True, help="a file with one request body per line")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    token = os.environ.get("MLAAS4HEP_BENCH_TOKEN", "")
    with open(args.bodies, "rb") as f:
        bodies = [line.rstrip(b"\n") for line in f if line.strip()]
    try:
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run
    print(json.dumps(run_loop(run(args.url, token, bodies, args.clients, args.seconds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
