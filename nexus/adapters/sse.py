"""Server-sent events: split a byte stream into events and frame them again."""

from __future__ import annotations

from typing import Any

import msgspec

DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


class EventSplitter:
    """Buffers chunks and returns complete events (without their blank-line terminator)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        *events, self._buffer = data.split(b"\n\n")
        return [event for event in events if event.strip()]


def split_events(complete: bytes) -> list[bytes]:
    """Events of a buffer that ends on an event boundary."""
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


def field_of(event: bytes, name: bytes) -> bytes | None:
    prefix = name + b":"
    for line in event.split(b"\n"):
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def error_event(message: str, code: str = "stream_error") -> bytes:
    return frame({"error": {"message": message, "type": "api_error", "code": code,
                            "param": None}})
