"""OpenAI chat chunks → Anthropic's Messages event stream, as they arrive.

The full sequence a Messages client expects: `message_start` (with the role) and a
`ping`; each content block opened by `content_block_start`, fed by `text_delta`,
`thinking_delta` or `input_json_delta` (tool arguments, passed on fragment by
fragment), closed by `content_block_stop`; then `message_delta` with the stop
reason and usage, and `message_stop`. Blocks follow one another: a new one closes
the one before, and every block is closed before `message_stop`.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from nexus.adapters import anthropic_map as m
from nexus.adapters.chat_chunks import ChatStreamReader, Delta, Function, ToolCall, decode_chunk
from nexus.adapters.chat_to_messages import message_id, stop_of
from nexus.core.types import Usage

log = logging.getLogger(__name__)
Json = dict[str, Any]
_encode = msgspec.json.Encoder().encode
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
PING = b'event: ping\ndata: {"type":"ping"}\n\n'




def event(name: str, payload: Json) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(payload) + b"\n\n"


def error_event(message: str, kind: str = "api_error") -> bytes:
    return event("error", {"type": "error", "error": {"type": kind, "message": message}})


def _delta_event(index: int, kind: bytes, field: bytes, value: str) -> bytes:
    """A content_block_delta, written out: the one event of every token."""
    return (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(index).encode() + b',"delta":{"type":"' + kind + b'","' + field + b'":'
            + _encode(value) + b"}}\n\n")


class MessagesStream(ChatStreamReader):
    """Reads an OpenAI-compatible backend's stream (its usage too, which the backend is
    asked to send) and writes Anthropic's events."""

    def __init__(self, model: str, input_estimate: int, stop_sequences: list[str]) -> None:
        self.model = model
        self.input_estimate = input_estimate
        self.stop_sequences = stop_sequences
        super().__init__()
        self.usage: Usage | None = None
        self.events = 0  # content deltas: about a token each, should usage never come
        self._started = False
        self._open: int | None = None    # the index of the open block
        self._open_kind = ""             # "text", "thinking" or "tool_use"
        self._blocks = 0
        self._tools: dict[int, int] = {}  # OpenAI tool-call index → block index
        self._reason: tuple[str, str | None] | None = None

    def close(self) -> bytes:
        """The backend's stream ended without [DONE]: finish if it said why it stopped."""
        if self._ended or not self._started:
            return b""
        if self._reason is not None:
            return self._finish()
        self._ended = True
        return error_event("the backend ended its stream before finishing the message")

    # -- one OpenAI chunk ----------------------------------------------------------------
    def _chunk(self, data: bytes, out: list[bytes]) -> None:
        try:
            chunk = decode_chunk(data)
        except msgspec.DecodeError:
            return
        if chunk.error is not None:
            self._ended = True
            error: Any = chunk.error
            message: object = error.get("message") if isinstance(error, dict) else error
            out.append(error_event(str(message or "the backend reported an error")))
            return
        if not self._started:
            out.extend(self._start(chunk.id))
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in (chunk.choices or [])[:1]:
            if choice.delta is not None:
                self._delta(choice.delta, out)
            if choice.finish_reason is not None:
                self._reason = stop_of({"finish_reason": choice.finish_reason,
                                        "stop_reason": choice.stop_reason},
                                       self.stop_sequences)
                out.extend(self._close_block())

    def _start(self, chunk_id: str | None) -> list[bytes]:
        self._started = True
        message: Json = {"id": message_id(chunk_id), "type": "message", "role": "assistant",
                   "model": self.model, "content": [], "stop_reason": None,
                   "stop_sequence": None,
                   "usage": {"input_tokens": self.input_estimate, "output_tokens": 0}}
        return [event("message_start", {"type": "message_start", "message": message}), PING]

    def _delta(self, delta: Delta, out: list[bytes]) -> None:
        thinking = delta.reasoning_content or delta.reasoning
        if thinking:
            self._text_like("thinking", b"thinking_delta", thinking, out)
        if delta.content:
            self._text_like("text", b"text_delta", delta.content, out)
        for call in delta.tool_calls or []:
            out.extend(self._tool(call))

    def _text_like(self, kind: str, delta_kind: bytes, value: str, out: list[bytes]) -> None:
        if self._open is None or self._open_kind != kind:
            block: Json = {"type": kind, kind: ""}
            if kind == "thinking":
                block["signature"] = ""
            out.extend(self._open_block(kind, block))
        self.events += 1
        assert self._open is not None
        out.append(_delta_event(self._open, delta_kind, kind.encode(), value))

    def _tool(self, call: ToolCall) -> list[bytes]:
        out: list[bytes] = []
        block = self._tools.get(call.index)
        function = call.function or Function()
        if block is None:
            tool_id = call.id or f"toolu_{self._blocks}"
            out.extend(self._open_block("tool_use", {"type": "tool_use", "id": tool_id,
                                                     "name": function.name or "",
                                                     "input": {}}))
            self._tools[call.index] = self._blocks - 1
        elif block != self._open:  # servers stream calls one after another; this one ended
            log.warning("dropped arguments of tool call %d: its block was closed", call.index)
            return out
        if function.arguments:
            self.events += 1
            out.append(_delta_event(self._blocks - 1 if block is None else block,
                                    b"input_json_delta", b"partial_json", function.arguments))
        return out

    # -- blocks --------------------------------------------------------------------------
    def _open_block(self, kind: str, block: Json) -> list[bytes]:
        out = self._close_block()
        self._open, self._open_kind = self._blocks, kind
        self._blocks += 1
        out.append(event("content_block_start", {"type": "content_block_start",
                                                 "index": self._open,
                                                 "content_block": block}))
        return out

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _finish(self) -> bytes:
        out = [] if self._started else self._start(None)
        out.extend(self._close_block())
        reason, sequence = self._reason or ("end_turn", None)
        usage = self.usage or Usage(self.input_estimate, self.events)
        out.append(event("message_delta", {"type": "message_delta",
                                           "delta": {"stop_reason": reason,
                                                     "stop_sequence": sequence},
                                           "usage": m.usage_to_anthropic(usage)}))
        out.append(MESSAGE_STOP)
        self._ended = True
        return b"".join(out)
