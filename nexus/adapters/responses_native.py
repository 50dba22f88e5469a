"""A Responses API answer from a server that speaks the API itself (OpenAI, vLLM,
llama-server, Ollama, LM Studio): passed on as it came, read for its usage and its
output, and mended where servers are known to fall short.

- A `response.completed` without `output[]` (servers that send only the status and
  usage) gets the items the stream finished, so a client that reads the final
  response finds its answer there.
- A function call whose arguments came only in `response.function_call_arguments.done`
  (no deltas) keeps them in the finished item.
- A stream with no usage is billed by its token-carrying events, never at $0.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.adapters.chat_to_responses import failure
from nexus.adapters.sse import complete_part, data_of
from nexus.core.types import Usage

Json = dict[str, Any]
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode
TOKEN_EVENTS = frozenset({"response.output_text.delta", "response.function_call_arguments.delta",
                          "response.reasoning_text.delta",
                          "response.reasoning_summary_text.delta", "response.refusal.delta"})
ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})


def usage_of(response: Json) -> Usage | None:
    """A response object's usage as the gateway counts it."""
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else 0
    prompt = int(usage.get("input_tokens") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=int(usage.get("output_tokens") or 0),
                 cache_read_tokens=min(int(cached or 0), prompt))


def reply_usage(body: bytes) -> tuple[Json | None, Usage | None]:
    """(the response object, its usage) of a whole answer; never raises."""
    try:
        response = _decode(body)
    except msgspec.DecodeError:
        return None, None
    return response, usage_of(response)


def terminal(kind: str, payload: Json) -> bytes:
    """An event re-encoded with "type" last, as the relay knows a stream's end by."""
    payload = {k: v for k, v in payload.items() if k != "type"}
    return b"event: " + kind.encode() + b"\ndata: " + _encode({**payload, "type": kind}) \
        + b"\n\n"


class NativeResponsesStream:
    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.events = 0
        self.response: Json | None = None
        self._buffer = b""
        self._ended = False
        self._sequence = -1
        self._shell: Json = {}
        self._items: dict[int, Json] = {}
        self._arguments: dict[str, str] = {}   # item id → arguments given by `.done`

    def feed(self, chunk: bytes) -> bytes:
        if self._ended:
            return b""
        complete, self._buffer = complete_part(self._buffer, chunk)
        if not complete:
            return b""
        out = []
        for raw in complete.split(b"\n\n"):
            if raw.strip():
                out.append(self._event(raw))
                if self.response is not None:  # the backend's last event: the rest is not
                    break
        return b"".join(out)

    def close(self) -> bytes:
        if self._ended or self._sequence < 0:
            return b""
        return self.failed("the backend ended its stream before finishing the response",
                           "backend_stream_interrupted")

    def failed(self, message: str, code: str) -> bytes:
        self._ended = True
        self._sequence += 1
        response = {**self._shell, "status": "failed", "output": self._output(),
                    "error": failure(message, code)}
        return terminal("response.failed", {"response": response,
                                            "sequence_number": self._sequence})

    def _event(self, raw: bytes) -> bytes:
        try:
            event = _decode(data_of(raw))
        except msgspec.DecodeError:
            return raw + b"\n\n"  # not ours to judge: passed on as it came
        kind = event.get("type")
        if isinstance(event.get("sequence_number"), int):
            self._sequence = event["sequence_number"]
        if kind in TOKEN_EVENTS:
            self.events += 1
        elif kind == "response.output_item.done" and isinstance(event.get("item"), dict):
            self._items[int(event.get("output_index") or 0)] = event["item"]
        elif kind == "response.function_call_arguments.done":
            self._arguments[str(event.get("item_id"))] = str(event.get("arguments") or "")
        elif kind in ("response.created", "response.in_progress") and \
                isinstance(event.get("response"), dict):
            self._shell = event["response"]
        elif kind in ENDS and isinstance(event.get("response"), dict):
            return self._end(str(kind), event)
        return raw + b"\n\n"

    def _end(self, kind: str, event: Json) -> bytes:
        self._ended = True
        response = event["response"]
        if not response.get("output"):
            response = {**response, "output": self._output()}
        self.response = response
        self.usage = usage_of(response)
        return terminal(kind, {**event, "response": response})

    def _output(self) -> list[Json]:
        items = []
        for index in sorted(self._items):
            item = self._items[index]
            arguments = self._arguments.get(str(item.get("id")))
            if item.get("type") == "function_call" and not item.get("arguments") and arguments:
                item = {**item, "arguments": arguments}
            items.append(item)
        return items
