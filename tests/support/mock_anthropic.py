"""The Anthropic Messages API as the mock backend serves it, held to the real API's rules.

Every request body is validated against the `anthropic` SDK's own request types
(pydantic over `MessageCreateParams*`, unknown fields forbidden); the known 400s of
the real API are refused too: empty text blocks, whitespace-only stop sequences,
and sampling parameters the model does not take. Answers and stream events are
built from the SDK's response models.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from typing import Any

import anthropic.types as sdk_types
from anthropic.types import (
    Message,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)
from anthropic.types.message_create_params import (
    MessageCreateParamsNonStreaming,
    MessageCreateParamsStreaming,
)
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

SAMPLING = ("temperature", "top_p", "top_k")
# What the real API takes per model (the SDK's current API version has no sampling
# parameters; older models keep theirs). Unlisted models take none.
MODEL_SAMPLING: dict[str, tuple[set[str], bool]] = {  # model -> (accepted, exclusive t/p)
    "claude-3-5-haiku-20241022": ({"temperature", "top_p", "top_k"}, False),
    "claude-3-7-sonnet-20250219": ({"temperature", "top_p", "top_k"}, False),
    "claude-sonnet-4-5-20250929": ({"temperature", "top_p", "top_k"}, True),
    "claude-opus-4-1-20250805": ({"temperature", "top_p", "top_k"}, True),
}


def _forbid_unknown_fields() -> None:
    """Give every request TypedDict of the SDK `extra="forbid"` (pydantic's config)."""
    for info in pkgutil.iter_modules(sdk_types.__path__):
        try:
            module = importlib.import_module(f"anthropic.types.{info.name}")
        except ImportError:
            continue
        for value in vars(module).values():
            if isinstance(value, type) and hasattr(value, "__total__"):
                value.__pydantic_config__ = ConfigDict(  # type: ignore[attr-defined]
                    extra="forbid", arbitrary_types_allowed=True)


_forbid_unknown_fields()
_REQUESTS = {False: TypeAdapter(MessageCreateParamsNonStreaming),
             True: TypeAdapter(MessageCreateParamsStreaming)}


class Refused(Exception):
    """A body the real API answers 400 for."""


def validate(body: dict[str, Any]) -> None:
    """Raise Refused with the API's kind of message for a body Anthropic would refuse."""
    accepted, exclusive = MODEL_SAMPLING.get(str(body.get("model")), (set(), False))
    sampling = [k for k in SAMPLING if k in body]
    for key in sampling:
        if key not in accepted:
            raise Refused(f"{key}: Extra inputs are not permitted for {body.get('model')}")
    if exclusive and {"temperature", "top_p"} <= set(sampling):
        raise Refused("`temperature` and `top_p` cannot both be specified for this model")
    for sequence in body.get("stop_sequences") or []:
        if isinstance(sequence, str) and not sequence.strip():
            raise Refused("stop_sequences: each stop sequence must contain non-whitespace")
    _check_turns(body.get("messages"))
    rest = {k: v for k, v in body.items() if k not in SAMPLING}
    try:
        _consume(_REQUESTS[bool(body.get("stream"))].validate_python(rest))
    except ValidationError as exc:
        raise Refused(str(exc)) from None


def _check_turns(messages: Any) -> None:
    for index, message in enumerate(messages or []):
        content = message.get("content") if isinstance(message, dict) else None
        if content == [] or content == "":
            raise Refused(f"messages.{index}: all messages must have non-empty content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "text" \
                    and not str(block.get("text", "")).strip():
                raise Refused(f"messages.{index}: text content blocks must be non-empty")


def _consume(value: Any) -> Any:
    """Walk what pydantic returned: it validates iterables lazily, as they are read."""
    if isinstance(value, dict):
        return {k: _consume(v) for k, v in value.items()}
    if isinstance(value, str | bytes | int | float | bool | BaseModel) or value is None:
        return value
    return [_consume(item) for item in value]


def refusal_body(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               404: "not_found_error", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                       "message": message}}


def usage(output: int, cache_read: int = 0, cache_write: int = 0) -> dict[str, Any]:
    return {"input_tokens": 11, "output_tokens": output,
            "cache_read_input_tokens": cache_read, "cache_creation_input_tokens": cache_write}


def message(body: dict[str, Any], words: list[str], cache_read: int = 0,
            cache_write: int = 0) -> dict[str, Any]:
    text = "".join(words)
    content: list[dict[str, Any]] = [{"type": "text", "text": text, "citations": None}]
    if body.get("tools"):
        content.append({"type": "tool_use", "id": "toolu_1", "name": body["tools"][0]["name"],
                        "input": {"city": "Paris"}, "caller": {"type": "direct"}})
    answer = Message.model_validate({
        "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
        "content": content, "stop_reason": "tool_use" if body.get("tools") else "end_turn",
        "stop_sequence": None,
        "usage": usage(len(text.split()), cache_read, cache_write)})
    return answer.model_dump(mode="json", exclude_none=True)


def stream_events(body: dict[str, Any], words: list[str], cache_read: int = 0,
                  cache_write: int = 0) -> list[bytes]:
    start = message(body, [], cache_read, cache_write)
    start.update(content=[], stop_reason=None, usage=usage(1, cache_read, cache_write))
    events: list[BaseModel] = [
        RawMessageStartEvent.model_validate({"type": "message_start", "message": start}),
        RawContentBlockStartEvent.model_validate({
            "type": "content_block_start", "index": 0,
            "content_block": {"type": "text", "text": "", "citations": None}}),
        *[RawContentBlockDeltaEvent.model_validate({
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": w}}) for w in words],
        RawContentBlockStopEvent.model_validate({"type": "content_block_stop", "index": 0}),
        RawMessageDeltaEvent.model_validate({
            "type": "message_delta", "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": len("".join(words).split())}}),
        RawMessageStopEvent.model_validate({"type": "message_stop"}),
    ]
    out = [_sse(e) for e in events]
    out.insert(2, b'event: ping\ndata: {"type": "ping"}\n\n')
    return out


def _sse(event: BaseModel) -> bytes:
    data = event.model_dump(mode="json", exclude_none=True)
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()
