"""Google's Gemini API ↔ OpenAI chat completions, both ways, streaming included.

`POST /v1beta/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse`
for a stream, with the key in the `x-goog-api-key` header (never in the URL, where a
log could keep it). The answer's parts become the chat message (text; `thought`
parts as `reasoning_content`; `functionCall` parts as tool calls), its finish reason
the chat one (SAFETY and the other blocks → `content_filter`), and `usageMetadata`
the usage: cached content tokens are cache reads, thinking tokens are output.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import msgspec

from nexus.adapters.anthropic_params import Adjustments
from nexus.adapters.base import UpstreamRequest
from nexus.adapters.chat_chunks import ChunkWriter
from nexus.adapters.chat_to_gemini import to_gemini_request
from nexus.adapters.sse import DONE, EventSplitter, data_of
from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers
from nexus.core.errors import BadRequest
from nexus.core.types import Endpoint, Usage

Json = dict[str, Any]
# Every finishReason google-genai lists: a block of any kind is a content filter; a
# model that ran out of room is a length stop; the rest (errors of the model's own
# making, or plain ends) are a stop, as the text so far is the answer.
FILTERED = ("SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
            "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR",
            "PUP_LIMITED_DISABLED")
STOPPED = ("STOP", "OTHER", "FINISH_REASON_UNSPECIFIED", "MALFORMED_FUNCTION_CALL",
           "IMAGE_OTHER", "NO_IMAGE", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS",
           "MISSING_THOUGHT_SIGNATURE", "MALFORMED_RESPONSE", "ESCALATION")
FINISH_REASONS = {**dict.fromkeys(FILTERED, "content_filter"), **dict.fromkeys(STOPPED, "stop"),
                  "MAX_TOKENS": "length", "CONTINUATION": "length"}
_encode = msgspec.json.Encoder().encode


def usage_from_gemini(metadata: Any) -> Usage | None:
    if not isinstance(metadata, dict):
        return None
    prompt = int(metadata.get("promptTokenCount") or 0)
    output = int(metadata.get("candidatesTokenCount") or 0) + \
        int(metadata.get("thoughtsTokenCount") or 0)  # thinking is billed as output
    cached = min(int(metadata.get("cachedContentTokenCount") or 0), prompt)
    return Usage(prompt, output, cache_read_tokens=cached)


def usage_to_openai(usage: Usage) -> Json:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens}}


class Reading:
    """One Gemini response (or stream chunk) read as chat: text, thinking, calls."""

    def __init__(self, response: Json, calls_before: int = 0) -> None:
        candidates = response.get("candidates") or []
        candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.calls: list[Json] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if part.get("functionCall"):
                call = part["functionCall"]
                self.calls.append({"index": calls_before + len(self.calls),
                                   "id": call.get("id") or
                                   f"call_{calls_before + len(self.calls)}",
                                   "type": "function",
                                   "function": {"name": call.get("name", ""),
                                                "arguments": _encode(call.get("args") or {})
                                                .decode()}})
            elif part.get("thought"):
                self.thinking.append(part.get("text", ""))
            elif "text" in part:
                self.text.append(part["text"])
        reason = candidate.get("finishReason")
        if not candidates and (response.get("promptFeedback") or {}).get("blockReason"):
            reason = "SAFETY"  # the prompt itself was blocked: no candidate at all
        self.finish: str | None = None
        if reason:
            self.finish = FINISH_REASONS.get(reason, "stop")
            if self.finish == "stop" and (self.calls or calls_before):
                self.finish = "tool_calls"
        self.usage = usage_from_gemini(response.get("usageMetadata"))


def to_chat_completion(response: Json, model: str) -> tuple[Json, Usage | None]:
    reading = Reading(response)
    message: Json = {"role": "assistant", "content": "".join(reading.text) or None}
    if reading.thinking:
        message["reasoning_content"] = "".join(reading.thinking)
    if reading.calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"}
                                 for c in reading.calls]
    completion: Json = {"id": f"chatcmpl-{response.get('responseId', '')}",
                        "object": "chat.completion", "created": int(time.time()),
                        "model": model,
                        "choices": [{"index": 0, "message": message, "logprobs": None,
                                     "finish_reason": reading.finish or "stop"}]}
    if reading.usage is not None:
        completion["usage"] = usage_to_openai(reading.usage)
    return completion, reading.usage


class GeminiStream(ChunkWriter):
    """Gemini's SSE chunks (each a whole GenerateContentResponse) → chat chunks. The
    stream has no end marker of its own: the chunk with the finish reason ends it."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._calls = 0
        self._started = False
        self._done = False
        self._finish: str | None = None
        self._splitter = EventSplitter()

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        for event in self._splitter.feed(chunk):
            if not self._done:
                out.extend(self._event(event))
        return b"".join(out)

    def close(self) -> bytes:
        """The stream ended: finish it if it said why it stopped."""
        if self._done or self._finish is None:
            return b""
        return b"".join(self._end())

    def _event(self, event: bytes) -> list[bytes]:
        try:
            response = msgspec.json.decode(data_of(event))
        except msgspec.DecodeError:
            return []
        if not isinstance(response, dict):
            return []
        if isinstance(response.get("error"), dict):
            error = response["error"]
            self._done = True
            return [self._error(str(error.get("message") or "upstream error"))]
        out = [] if self._started else [self._chunk({"role": "assistant", "content": ""})]
        self._started = True
        self._id = f"chatcmpl-{response.get('responseId', '')}"
        reading = Reading(response, self._calls)
        self._calls += len(reading.calls)
        self.usage = reading.usage or self.usage
        for thinking in reading.thinking:
            self.events += 1
            out.append(self._chunk({"reasoning_content": thinking}))
        for text in reading.text:
            self.events += 1
            out.append(self._chunk({"content": text}))
        if reading.calls:
            self.events += 1
            out.append(self._chunk({"tool_calls": reading.calls}))
        if reading.finish is not None:
            self._finish = "tool_calls" if reading.finish == "stop" and self._calls \
                else reading.finish
            out.extend(self._end())
        return out

    def _end(self) -> list[bytes]:
        self._done = True
        out = [self._chunk({}, self._finish)]
        if self.include_usage and self.usage is not None:
            out.append(self._usage_chunk(usage_to_openai(self.usage)))
        return [*out, DONE]


class GeminiAdapter:
    def forward_raw(self, backend: Backend, endpoint: Endpoint, body: bytes,
                    stream: bool) -> UpstreamRequest | None:
        return None  # an OpenAI body always needs translating

    def prepare(self, backend: Backend, endpoint: Endpoint, payload: Json,
                stream: bool) -> UpstreamRequest:
        if endpoint != "chat":
            raise BadRequest(f"The gemini backend {backend.name} serves chat only")
        adjustments = Adjustments()
        request = to_gemini_request(payload, adjustments)
        model = quote(str(payload.get("model", "")), safe="")
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return UpstreamRequest(
            url=f"{backend.base_url}/v1beta/models/{model}:{action}",
            headers={"Content-Type": "application/json", **request_headers(backend)},
            body=_encode(request), notes=adjustments.headers())

    def translate_body(self, body: bytes, model: str) -> tuple[bytes, Usage | None]:
        response = msgspec.json.decode(body)
        completion, usage = to_chat_completion(response, model)
        return _encode(completion), usage

    def stream_translator(self, model: str, include_usage: bool,
                          count_events: bool) -> GeminiStream:
        return GeminiStream(model, include_usage)
