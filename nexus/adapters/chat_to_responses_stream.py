"""OpenAI chat chunks → the Responses API's event stream, as they arrive.

The sequence a Responses client (the openai SDK, Codex) expects, each event with its
`sequence_number`: `response.created` and `response.in_progress`; each output item
opened by `response.output_item.added`; text as `response.content_part.added`,
`response.output_text.delta`s, `.done` and `response.content_part.done`; reasoning as
`response.reasoning_text.delta`s and `.done`; a tool call as
`response.function_call_arguments.delta`s and `.done` (with the whole arguments, so a
client that reads only `.done` loses nothing); each item closed by
`response.output_item.done`; then `response.completed` (or `.incomplete`) carrying the
full `output[]` and the usage. Text and reasoning items close when the next item
opens; tool calls stay open until the end, since servers may interleave them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.adapters import chat_to_responses as r
from nexus.adapters.chat_chunks import ChatStreamReader, Chunk, Delta, ToolCall, decode_chunk
from nexus.core.types import Usage

Json = dict[str, Any]
_encode = msgspec.json.Encoder().encode
# Every event puts "type" last, so a stream's end is known by its last bytes.
TERMINAL = tuple(b'"type":"response.' + kind + b'"}\n\n'
                 for kind in (b"completed", b"incomplete", b"failed"))


def event(kind: str, sequence: int, payload: Json) -> bytes:
    return (b"event: " + kind.encode() + b"\ndata: "
            + _encode({**payload, "sequence_number": sequence, "type": kind}) + b"\n\n")


class _Item(msgspec.Struct):
    index: int          # its output_index
    body: Json          # the output item, as it will be when done
    text: list[str]     # text, reasoning or arguments, as it arrived


class ResponsesStream(ChatStreamReader):
    """Reads an OpenAI-compatible backend's stream and writes the Responses events; the
    finished response object is kept in `response` (to store it)."""

    def __init__(self, shell: Json, input_estimate: int) -> None:
        self.shell = shell
        self.input_estimate = input_estimate
        self.usage: Usage | None = None
        self.events = 0
        self.response: Json | None = None  # the finished response, once the stream ends
        super().__init__()
        self._sequence = 0
        self._started = False
        self._items: list[_Item] = []
        self._open: _Item | None = None        # the open text or reasoning item
        self._tools: dict[int, _Item] = {}     # chat tool-call index → its item
        self._reason: str | None = None

    def close(self) -> bytes:
        """The backend's stream ended without [DONE]: finish if it said why it stopped."""
        if self._ended or not self._started:
            return b""
        if self._reason is not None:
            return self._finish()
        return self.failed("the backend ended its stream before finishing the response",
                           "backend_stream_interrupted")

    def failed(self, message: str, code: str) -> bytes:
        """`response.failed`: the stream broke; what was produced is in its output."""
        self._ended = True
        response = {**self.shell, "status": "failed", "output": [i.body for i in self._items],
                    "error": r.failure(message, code)}
        return self._event("response.failed", {"response": response})

    # -- one chat chunk ------------------------------------------------------------------
    def _chunk(self, data: bytes, out: list[bytes]) -> None:
        try:
            chunk: Chunk = decode_chunk(data)
        except msgspec.DecodeError:
            return
        if not self._started:
            self._start(out)
        if chunk.error is not None:
            error: Any = chunk.error
            message = error.get("message") if isinstance(error, dict) else error
            out.append(self.failed(str(message or "the backend reported an error"),
                                   "server_error"))
            return
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in (chunk.choices or [])[:1]:
            if choice.delta is not None:
                self._delta(choice.delta, out)
            if choice.finish_reason is not None:
                self._reason = choice.finish_reason

    def _start(self, out: list[bytes]) -> None:
        self._started = True
        out.append(self._event("response.created", {"response": self.shell}))
        out.append(self._event("response.in_progress", {"response": self.shell}))

    def _delta(self, delta: Delta, out: list[bytes]) -> None:
        thinking = delta.reasoning_content or delta.reasoning
        if thinking:
            item = self._open_text("reasoning", out)
            self._add(item, thinking, "response.reasoning_text.delta",
                      {"content_index": 0}, out)
        if delta.content:
            item = self._open_text("message", out)
            self._add(item, delta.content, "response.output_text.delta",
                      {"content_index": 0, "logprobs": []}, out)
        for call in delta.tool_calls or []:
            self._tool(call, out)

    def _add(self, item: _Item, text: str, kind: str, extra: Json, out: list[bytes]) -> None:
        self.events += 1
        item.text.append(text)
        out.append(self._event(kind, {"item_id": item.body["id"], "output_index": item.index,
                                      **extra, "delta": text}))

    def _open_text(self, kind: str, out: list[bytes]) -> _Item:
        if self._open is not None and self._open.body["type"] == kind:
            return self._open
        self._close_open(out)
        if kind == "message":
            item = self._new(r.message_item(r.new_id("msg"), None, "in_progress"), out)
            out.append(self._event("response.content_part.added", {
                "item_id": item.body["id"], "output_index": item.index, "content_index": 0,
                "part": r.text_part("")}))
        else:
            item = self._new(r.reasoning_item(r.new_id("rs"), None), out)
        self._open = item
        return item

    def _tool(self, call: ToolCall, out: list[bytes]) -> None:
        function = call.function
        item = self._tools.get(call.index)
        if item is None:
            self._close_open(out)
            item = self._tools[call.index] = self._new(r.function_call_item(
                r.new_id("fc"), call.id or r.new_id("call"),
                (function.name if function else None) or "", "", "in_progress"), out)
        elif function is not None and function.name and not item.body["name"]:
            item.body["name"] = function.name  # a server that names the call late
        if function is not None and function.arguments:
            self._add(item, function.arguments, "response.function_call_arguments.delta",
                      {}, out)

    # -- items ---------------------------------------------------------------------------
    def _new(self, body: Json, out: list[bytes]) -> _Item:
        item = _Item(len(self._items), body, [])
        self._items.append(item)
        out.append(self._event("response.output_item.added",
                               {"output_index": item.index, "item": body}))
        return item

    def _close_open(self, out: list[bytes]) -> None:
        item, self._open = self._open, None
        if item is None:
            return
        text, where = "".join(item.text), {"item_id": item.body["id"],
                                           "output_index": item.index, "content_index": 0}
        if item.body["type"] == "message":
            part = r.text_part(text)
            item.body = r.message_item(item.body["id"], text, "completed")
            out.append(self._event("response.output_text.done",
                                   {**where, "text": text, "logprobs": []}))
            out.append(self._event("response.content_part.done", {**where, "part": part}))
        else:
            item.body = r.reasoning_item(item.body["id"], text)
            out.append(self._event("response.reasoning_text.done", {**where, "text": text}))
        self._item_done(item, out)

    def _close_tool(self, item: _Item, out: list[bytes]) -> None:
        arguments = "".join(item.text)
        item.body = {**item.body, "arguments": arguments, "status": "completed"}
        out.append(self._event("response.function_call_arguments.done", {
            "item_id": item.body["id"], "output_index": item.index,
            "name": item.body["name"], "arguments": arguments}))
        self._item_done(item, out)

    def _item_done(self, item: _Item, out: list[bytes]) -> None:
        out.append(self._event("response.output_item.done",
                               {"output_index": item.index, "item": item.body}))

    def _finish(self) -> bytes:
        out: list[bytes] = []
        if not self._started:
            self._start(out)
        self._close_open(out)
        for item in sorted(self._tools.values(), key=lambda i: i.index):
            self._close_tool(item, out)
        usage = self.usage or Usage(self.input_estimate, self.events)
        self.response = r.finished(self.shell, [i.body for i in self._items], self._reason,
                                   usage)
        kind = "response.completed" if self.response["status"] == "completed" \
            else "response.incomplete"
        out.append(self._event(kind, {"response": self.response}))
        self._ended = True
        return b"".join(out)

    def _event(self, kind: str, payload: Json) -> bytes:
        sequence, self._sequence = self._sequence, self._sequence + 1
        return event(kind, sequence, payload)
