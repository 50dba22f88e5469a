"""What the stream relay hands the client's socket: the headers ride with the first event,
`[DONE]` ends the response in the same write, and nothing after `[DONE]` is sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from unittest import mock

import aiohttp
import pytest
from aiohttp.http_writer import StreamWriter
from aiohttp.test_utils import make_mocked_request

from nexus.adapters.openai import OpenAIStream
from nexus.backends.backend import Backend
from nexus.backends.recorder import OutcomeRecorder
from nexus.core.types import Usage
from nexus.proxy.stall import Exchange
from nexus.proxy.streaming import Relay
from tests.support.fleet_helpers import make_backend

EVENT = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


class RecordingTransport(asyncio.Transport):
    """A client's socket that keeps each write apart: one write is one send."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def writelines(self, chunks: object) -> None:
        self.writes.append(b"".join(chunks))  # type: ignore[arg-type]

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class Upstream:
    """Stands in for the backend's response: its body arrives in the given reads."""

    def __init__(self, reads: list[bytes], error: Exception | None = None) -> None:
        self.content = self
        self._reads, self._error = reads, error

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._reads:
            yield chunk
        if self._error is not None:
            raise self._error


async def relay(reads: list[bytes], error: Exception | None = None,
                bills: list[tuple[int, Usage, bool]] | None = None,
                ) -> tuple[list[bytes], Backend]:
    """Relay `reads`; `bills` gets (writes made so far, usage, estimated) per bill call."""
    transport = RecordingTransport()
    protocol = mock.Mock(transport=transport, _paused=False)
    writer = StreamWriter(protocol, asyncio.get_running_loop())
    request = make_mocked_request("POST", "/v1/chat/completions", writer=writer,
                                  protocol=protocol, transport=transport)
    backend = make_backend("gpu")

    async def bill(usage: Usage, estimated: bool) -> None:
        if bills is not None:
            bills.append((len(transport.writes), usage, estimated))

    relayed = Relay(Upstream(reads, error), request, {}, OpenAIStream(False),  # type: ignore[arg-type]
                    backend, OutcomeRecorder(), Exchange(None, 0.0), 7, bill)
    await relayed.run(0.0)
    return transport.writes, backend


def body_of(writes: list[bytes]) -> bytes:
    return b"".join(writes).partition(b"\r\n\r\n")[2]


async def test_a_stream_that_arrives_at_once_leaves_in_one_write() -> None:
    writes, _ = await relay([EVENT + DONE])
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(EVENT + DONE + b"\r\n0\r\n\r\n")  # the chunked body's end


async def test_headers_ride_with_the_first_event_and_done_ends_the_last_write() -> None:
    writes, _ = await relay([EVENT, EVENT, EVENT + DONE])
    assert len(writes) == 3
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(EVENT + b"\r\n")
    assert writes[2].endswith(DONE + b"\r\n0\r\n\r\n")


async def test_a_stream_without_done_is_ended_when_the_backend_ends_it() -> None:
    writes, _ = await relay([EVENT, EVENT])
    assert len(writes) == 3
    assert writes[-1] == b"0\r\n\r\n"


async def test_nothing_after_done_reaches_the_client() -> None:
    writes, backend = await relay([EVENT + DONE, b'data: {"late": true}\n\n'])
    assert b"late" not in b"".join(writes)
    assert backend.metrics.errors == 0


@pytest.mark.parametrize("reads", [[EVENT + DONE], [EVENT, DONE]])
async def test_a_backend_breaking_after_done_is_no_error(reads: list[bytes]) -> None:
    writes, backend = await relay(reads, aiohttp.ClientPayloadError("connection lost"))
    assert b"error" not in body_of(writes)
    assert body_of(writes).endswith(DONE + b"\r\n0\r\n\r\n")
    assert backend.health.failures == 0


async def test_a_backend_breaking_before_done_ends_the_stream_with_an_error_event() -> None:
    writes, backend = await relay([EVENT, EVENT], aiohttp.ClientPayloadError("connection lost"))
    body = body_of(writes)
    assert backend.health.failures == 1
    assert b"backend_stream_interrupted" in body
    assert b"[DONE]" not in body
    assert body.endswith(b"0\r\n\r\n")


async def test_the_cost_is_recorded_before_the_write_that_ends_the_stream() -> None:
    bills: list[tuple[int, Usage, bool]] = []
    writes, _ = await relay([EVENT, EVENT, DONE], bills=bills)
    assert len(writes) == 3
    assert bills == [(2, Usage(7, 2), True)]  # two writes out, the third carries [DONE]


async def test_a_stream_broken_after_the_first_byte_bills_every_relayed_event() -> None:
    bills: list[tuple[int, Usage, bool]] = []
    await relay([EVENT, EVENT, EVENT], error=aiohttp.ClientPayloadError("reset"), bills=bills)
    assert [usage for _, usage, _ in bills] == [Usage(7, 3)]  # not events - 1
