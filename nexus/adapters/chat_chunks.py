"""OpenAI chat stream chunks: the parts the translators read (ChatStreamReader, for
translators from chat), and how translators to chat write them (ChunkWriter)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from nexus.adapters.sse import complete_part, data_of, frame
from nexus.core.types import Usage


class Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class ToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: Function | None = None


class Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(msgspec.Struct):
    delta: Delta | None = None
    finish_reason: str | None = None
    stop_reason: Any = None  # vLLM: the stop sequence that ended the text


class Chunk(msgspec.Struct):
    id: str | None = None
    choices: list[Choice] | None = None
    usage: Usage | None = None
    error: Any = None


decode_chunk = msgspec.json.Decoder(Chunk).decode


class ChatStreamReader:
    """Reads a chat stream one complete event at a time: `_chunk` takes each chunk's
    data, `_finish` the `[DONE]`; nothing after the end is read."""

    def __init__(self) -> None:
        self._buffer = b""
        self._ended = False

    def feed(self, chunk: bytes) -> bytes:
        if self._ended:
            return b""
        complete, self._buffer = complete_part(self._buffer, chunk)
        out: list[bytes] = []
        for raw in complete.split(b"\n\n") if complete else ():
            data = data_of(raw) if raw else b""
            if data == b"[DONE]":
                out.append(self._finish())
                break
            if data:
                self._chunk(data, out)
        return b"".join(out)

    def _chunk(self, data: bytes, out: list[bytes]) -> None:
        raise NotImplementedError

    def _finish(self) -> bytes:
        raise NotImplementedError


class ChunkWriter:
    """Writes chat chunks for a backend whose own stream is another API's."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.events = 0
        self._id = "chatcmpl-"
        self._created = int(time.time())

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return frame({"id": self._id, "object": "chat.completion.chunk",
                      "created": self._created, "model": self.model,
                      "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                   "finish_reason": finish}]})

    def _usage_chunk(self, usage: dict[str, Any]) -> bytes:
        return frame({"id": self._id, "object": "chat.completion.chunk",
                      "created": self._created, "model": self.model, "choices": [],
                      "usage": usage})

    @staticmethod
    def _error(message: str) -> bytes:
        return frame({"error": {"message": message, "type": "api_error",
                                "code": "backend_error", "param": None}})
