"""The parts of an OpenAI chat stream chunk that the translators read."""

from __future__ import annotations

from typing import Any

import msgspec

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
