"""Many concurrent SSE streams through one replica: errors, overlap and peak RSS.

Starts the mock backend streaming slowly (CHUNKS content chunks, one every
CHUNK_DELAY seconds) and a Nexus replica, then opens --streams streaming chat
requests at once and reads each to its end. A stream counts as an error unless
it answers 200, relays every content chunk in order and ends with [DONE].
Prints how many streams were open at the same moment at the peak, errors, the
time to first byte and to the end, and the replica's peak RSS.

    python benchmarks/streams_bench.py [--streams 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time

import aiohttp
from gateway_bench import free_port, nexus_config, peak_rss_mb, start

CHUNKS = 20
CHUNK_DELAY = 0.25  # a stream lasts about five seconds: long enough for all to overlap
BODY = {"model": "mock-model", "stream": True,
        "messages": [{"role": "user", "content": "hello there"}]}


class Tally:
    def __init__(self) -> None:
        self.open = self.peak_open = self.errors = 0
        self.first_byte: list[float] = []
        self.whole: list[float] = []
        self.first_error = ""

    def failed(self, why: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or why


async def one_stream(session: aiohttp.ClientSession, url: str, tally: Tally) -> None:
    started = time.monotonic()
    try:
        async with session.post(url + "/v1/chat/completions", json=BODY) as response:
            if response.status != 200:
                tally.failed(f"status {response.status}: {await response.text()}")
                return
            tally.open += 1
            tally.peak_open = max(tally.peak_open, tally.open)
            try:
                events = await read_events(response, started, tally)
            finally:
                tally.open -= 1
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.failed(repr(exc))
        return
    contents = [e for e in events[:-1] if json.loads(e)["choices"][0]["delta"].get("content")]
    if events[-1:] != ["[DONE]"] or len(contents) != CHUNKS:
        tally.failed(f"incomplete stream: {len(contents)} chunks, last {events[-1:]}")
        return
    tally.whole.append(time.monotonic() - started)


async def read_events(response: aiohttp.ClientResponse, started: float,
                      tally: Tally) -> list[str]:
    events: list[str] = []
    async for line in response.content:
        if line.startswith(b"data: "):
            if not events:
                tally.first_byte.append(time.monotonic() - started)
            events.append(line[6:].strip().decode())
    return events


async def drive(url: str, streams: int) -> Tally:
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one_stream(session, url, tally) for _ in range(streams)))
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * args.streams:  # client, gateway and mock each hold one socket a stream
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * args.streams + 256), hard))
    mock_port, nexus_port = free_port(), free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    config = nexus_config(nexus_port, mock_url, max_concurrent=2 * args.streams)
    mock = start([sys.executable, "tests/support/mock_backend.py", "--port", str(mock_port),
                  "--chunks", str(CHUNKS), "--chunk-delay", str(CHUNK_DELAY),
                  "--reply", " ".join(f"word{i}" for i in range(CHUNKS))],
                 mock_url + "/v1/models")
    nexus = start([sys.executable, "-m", "nexus", "serve"],
                  f"http://127.0.0.1:{nexus_port}/health",
                  env={**os.environ, "NEXUS_CONFIG": config})
    try:
        began = time.monotonic()
        tally = asyncio.run(drive(f"http://127.0.0.1:{nexus_port}", args.streams))
        took = time.monotonic() - began
        print(f"streams {args.streams}, open at once at the peak {tally.peak_open}, "
              f"errors {tally.errors}, all done in {took:.1f} s")
        if tally.first_error:
            print(f"  first error: {tally.first_error}")
        if tally.first_byte:
            print(f"  first event p50 {statistics.median(tally.first_byte) * 1000:.0f} ms, "
                  f"max {max(tally.first_byte) * 1000:.0f} ms")
        if tally.whole:
            print(f"  whole stream p50 {statistics.median(tally.whole):.2f} s, "
                  f"max {max(tally.whole):.2f} s (the mock alone takes "
                  f"{CHUNKS * CHUNK_DELAY:.2f} s)")
        print(f"  nexus peak RSS {peak_rss_mb(nexus.pid):.1f} MB")
    finally:
        for process in (mock, nexus):
            process.terminate()
            process.wait(10)
        os.unlink(config)


if __name__ == "__main__":
    main()
