"""A small HTTP/1.1 load generator on raw asyncio sockets (keep-alive), run as its own
process so the server under test does not share its event loop.

httpx spends more CPU per request than the servers being measured; on a 2-core machine
that would cap the result, so this writes requests and parses responses by hand.

Usage: python loadgen.py URL_PATH_TEMPLATE HOST PORT MODE SECONDS [RATE] [HEADER...]
MODE: "closed" (max throughput with N connections) or "open" (fixed rate, latency from
the scheduled send time, so a stall is not hidden by coordinated omission).
Prints one JSON line: {"ok": n, "errors": n, "seconds": s, "rps": r, "p50_ms", "p99_ms",
"p999_ms"}.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field

# Update ids unique to this run: the ingest stores each update under its id and JetStream
# drops a repeat within its duplicate window (2 min), so a run that restarted at 1 measured
# the duplicate path (nothing stored, nothing to normalize) after the first run.
# LOADGEN_FIRST_ID pins the first id (a reader that maps update i to its due time, on a
# fresh stream).
COUNTER = itertools.count(
    int(os.environ.get("LOADGEN_FIRST_ID") or int.from_bytes(os.urandom(4), "big") * 1_000_000 + 1)
)


def _request(path: str, host: str, headers: list[str]) -> bytes:
    n = next(COUNTER)
    body = json.dumps({"update_id": n, "message": {
        "message_id": n, "date": 1763640000, "text": f"load {n}",
        "from": {"id": 1000 + n % 500, "is_bot": False, "first_name": "Load"},
        "chat": {"id": 1000 + n % 500, "type": "private"}}}).encode()  # fmt: skip
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *headers]  # fmt: skip
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


@dataclass
class _Tally:
    """The answers of a run: 200s, other statuses, and each request's latency."""

    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    def add(self, status: int, since: float) -> None:
        """One answer with ``status``, its latency counted from ``since`` (perf_counter)."""
        self.latencies.append(time.perf_counter() - since)
        if status == 200:
            self.ok += 1
        else:
            self.errors += 1


async def closed_loop(host: str, port: int, path: str, seconds: float, conns: int,
                      headers: list[str]) -> dict[str, float]:  # fmt: skip
    tally = _Tally()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            writer.write(_request(path, host, headers))
            tally.add(await _read_response(reader), start)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    return _summary(tally, time.perf_counter() - started)


async def open_loop(host: str, port: int, path: str, seconds: float, rate: float,
                    headers: list[str], conns: int = 64) -> dict[str, float]:  # fmt: skip
    tally = _Tally()
    queue: asyncio.Queue[float] = asyncio.Queue()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while True:
            scheduled = await queue.get()
            if scheduled < 0:
                break
            writer.write(_request(path, host, headers))
            tally.add(await _read_response(reader), scheduled)
        writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(conns)]
    # LOADGEN_START_AT (unix time) lets another process know when request i was due:
    # start_at + i / rate, on the wall clock both share.
    start_at = float(os.environ.get("LOADGEN_START_AT", "0"))
    if start_at:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    start = time.perf_counter()
    total = int(seconds * rate)
    for i in range(total):
        at = start + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(at)
    for _ in workers:
        queue.put_nowait(-1)
    await asyncio.gather(*workers)
    return _summary(tally, time.perf_counter() - start)


def _summary(tally: _Tally, elapsed: float) -> dict[str, float]:
    latencies = sorted(tally.latencies)

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0
        )

    return {"ok": tally.ok, "errors": tally.errors, "seconds": elapsed, "rps": tally.ok / elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999)}  # fmt: skip


def main() -> None:
    path, host, port, mode, seconds = sys.argv[1:6]
    rest = sys.argv[6:]
    if mode == "closed":
        conns = int(rest[0])
        result = asyncio.run(closed_loop(host, int(port), path, float(seconds), conns, rest[1:]))
    else:
        rate = float(rest[0])
        result = asyncio.run(open_loop(host, int(port), path, float(seconds), rate, rest[1:]))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    main()
