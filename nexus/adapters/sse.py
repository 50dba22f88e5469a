"""Server-sent events: split a byte stream into events and frame them again."""

from __future__ import annotations

from typing import Any

import msgspec

DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


def complete_part(buffer: bytes, chunk: bytes) -> tuple[bytes, bytes]:
    """(the whole events, the unfinished rest) of what has arrived, CRLF made LF."""
    data = buffer + chunk if buffer else chunk
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if data.endswith(b"\n\n"):  # the usual chunk: whole events
        return data, b""
    last = data.rfind(b"\n\n")
    return (b"", data) if last == -1 else (data[:last + 2], data[last + 2:])


class EventSplitter:
    """Buffers chunks and returns complete events (without their blank-line terminator)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        complete, self._buffer = complete_part(self._buffer, chunk)
        return [event for event in complete.split(b"\n\n") if event.strip()]


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


def data_of(event: bytes) -> bytes:
    """The data field of one event (multi-line data joined with newlines)."""
    if event.startswith(b"data: ") and b"\n" not in event:  # the usual one-line event
        return event[6:]
    lines = [line[5:].removeprefix(b" ") for line in event.split(b"\n")
             if line.startswith(b"data:")]
    return b"\n".join(lines)


def error_event(message: str, code: str = "stream_error") -> bytes:
    return frame({"error": {"message": message, "type": "api_error", "code": code,
                            "param": None}})
