"""OpenAI chat request → Anthropic Messages request, refusing what cannot be honoured
and saying what was dropped."""

from __future__ import annotations

from typing import Any

from nexus.adapters import anthropic_map as m
from nexus.adapters.anthropic_params import (
    Adjustments,
    copy_sampling,
    note_untranslated,
    rule_for,
)
from nexus.config.schema import SamplingRule
from nexus.core.errors import BadRequest

DEFAULT_MAX_TOKENS = 4096

Json = dict[str, Any]


def to_messages_request(payload: Json, stream: bool,
                        sampling: dict[str, SamplingRule] | None = None,
                        adjustments: Adjustments | None = None) -> Json:
    adjustments = adjustments if adjustments is not None else Adjustments()
    _refuse_what_cannot_be_honoured(payload)
    system, messages = _split_system(payload.get("messages") or [])
    turns = _merge_same_role([t for t in map(_message, messages) if t["content"]])
    if not turns:
        raise BadRequest("Every message is empty; send at least one with content",
                         param="messages")
    request: Json = {
        "model": payload["model"], "messages": turns,
        "max_tokens": payload.get("max_tokens") or payload.get("max_completion_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        request["system"] = system
    if stream:
        request["stream"] = True
    copy_sampling(payload, request, rule_for(request["model"], sampling or {}), adjustments)
    _copy_stop(payload, request, adjustments)
    _copy_tools(payload, request)
    _copy_format(payload, request)
    if isinstance(payload.get("user"), str):
        request["metadata"] = {"user_id": payload["user"]}
    note_untranslated(payload, adjustments)
    return request


def _refuse_what_cannot_be_honoured(payload: Json) -> None:
    n = payload.get("n")
    if isinstance(n, int) and n > 1:
        raise BadRequest("n > 1 is not supported by the Anthropic Messages API: it answers "
                         "one choice; send n separate requests", param="n")


def _split_system(messages: list[Json]) -> tuple[str, list[Json]]:
    system = [m.text_of(msg.get("content")) for msg in messages
              if msg.get("role") in ("system", "developer")]
    rest = [msg for msg in messages if msg.get("role") not in ("system", "developer")]
    return "\n\n".join(s for s in system if s), rest


def _copy_stop(payload: Json, request: Json, adjustments: Adjustments) -> None:
    stop = payload.get("stop")
    if not stop:
        return
    sequences = [stop] if isinstance(stop, str) else [s for s in stop if isinstance(s, str)]
    kept = [s for s in sequences if s.strip()]  # Anthropic refuses whitespace-only ones
    if len(kept) < len(sequences):
        adjustments.dropped.append("stop (whitespace-only sequences)")
    if kept:
        request["stop_sequences"] = kept


def _copy_tools(payload: Json, request: Json) -> None:
    tools = payload.get("tools")
    if tools:
        request["tools"] = [m.tool_to_anthropic(t) for t in tools
                            if t.get("type", "function") == "function"]
    choice = m.tool_choice_to_anthropic(payload.get("tool_choice"),
                                        payload.get("parallel_tool_calls"),
                                        bool(request.get("tools")))
    if choice is not None:
        request["tool_choice"] = choice


def _copy_format(payload: Json, request: Json) -> None:
    """Routing never sends json_object here (the backend is not capable of it)."""
    config = m.json_format_to_anthropic(payload.get("response_format"))
    if config is not None:
        request["output_config"] = config


def _message(message: Json) -> Json:
    role = message.get("role")
    if role == "tool":
        return {"role": "user", "content": [m.tool_result_to_anthropic(message)]}
    if role == "assistant":
        return {"role": "assistant", "content": _assistant_blocks(message)}
    return {"role": "user", "content": _user_blocks(message.get("content"))}


def _assistant_blocks(message: Json) -> list[Json]:
    text = m.text_of(message.get("content"))
    blocks: list[Json] = [{"type": "text", "text": text}] if text.strip() else []
    blocks.extend(m.tool_call_to_anthropic(call) for call in message.get("tool_calls") or [])
    return blocks


def _user_blocks(content: Any) -> list[Json]:
    if not isinstance(content, list):
        text = m.text_of(content)
        return [{"type": "text", "text": text}] if text.strip() else []
    return [block for part in content if isinstance(part, dict)
            if (block := _part(part)) is not None]


def _part(part: Json) -> Json | None:
    if part.get("type") == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        return {"type": "image", "source": m.image_to_anthropic(url)}
    text = str(part.get("text", ""))
    return {"type": "text", "text": text} if text.strip() else None  # no empty blocks


def _merge_same_role(messages: list[Json]) -> list[Json]:
    """The Messages API wants user and assistant turns to alternate."""
    merged: list[Json] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1]["content"] = [*merged[-1]["content"], *message["content"]]
        else:
            merged.append(message)
    return merged
