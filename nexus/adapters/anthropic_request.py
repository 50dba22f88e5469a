"""OpenAI chat request → Anthropic Messages request, refusing what cannot be honoured
and saying what was dropped."""

from __future__ import annotations

import json
from typing import Any

from nexus.adapters.anthropic_params import (
    Adjustments,
    copy_sampling,
    note_untranslated,
    rule_for,
)
from nexus.config.schema import SamplingRule
from nexus.errors import BadRequest

DEFAULT_MAX_TOKENS = 4096
_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}

Json = dict[str, Any]


def to_messages_request(payload: Json, stream: bool,
                        sampling: dict[str, SamplingRule] | None = None,
                        adjustments: Adjustments | None = None) -> Json:
    adjustments = adjustments if adjustments is not None else Adjustments()
    _refuse_what_cannot_be_honoured(payload)
    system, messages = _split_system(payload.get("messages") or [])
    turns = _merge_same_role([m for m in map(_message, messages) if m["content"]])
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
    system = [_text_of(m.get("content")) for m in messages if m.get("role") in ("system",
                                                                                  "developer")]
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
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
        request["tools"] = [_tool(t) for t in tools if t.get("type", "function") == "function"]
    choice = payload.get("tool_choice")
    if isinstance(choice, str) and choice in _TOOL_CHOICE:
        request["tool_choice"] = dict(_TOOL_CHOICE[choice])
    elif isinstance(choice, dict) and "function" in choice:
        request["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}
    if payload.get("parallel_tool_calls") is False and request.get("tools"):
        chosen = request.setdefault("tool_choice", {"type": "auto"})
        if chosen["type"] != "none":
            chosen["disable_parallel_tool_use"] = True


def _tool(tool: Json) -> Json:
    function = tool.get("function", {})
    out: Json = {"name": function.get("name", ""),
                 "input_schema": function.get("parameters")
                 or {"type": "object", "properties": {}}}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") is True:
        out["strict"] = True
    return out


def _copy_format(payload: Json, request: Json) -> None:
    """json_schema becomes Anthropic's structured output; json_object has no equivalent,
    and routing never sends it here (the backend does not count as capable of it)."""
    fmt = payload.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}


def _message(message: Json) -> Json:
    role = message.get("role")
    if role == "tool":
        block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                 "content": _text_of(message.get("content")) or "(empty)"}
        return {"role": "user", "content": [block]}
    if role == "assistant":
        return {"role": "assistant", "content": _assistant_blocks(message)}
    return {"role": "user", "content": _user_blocks(message.get("content"))}


def _assistant_blocks(message: Json) -> list[Json]:
    text = _text_of(message.get("content"))
    blocks: list[Json] = [{"type": "text", "text": text}] if text.strip() else []
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        blocks.append({"type": "tool_use", "id": call.get("id", ""),
                       "name": function.get("name", ""),
                       "input": _json_object(function.get("arguments"))})
    return blocks


def _user_blocks(content: Any) -> list[Json]:
    if not isinstance(content, list):
        text = _text_of(content)
        return [{"type": "text", "text": text}] if text.strip() else []
    return [block for part in content if isinstance(part, dict)
            if (block := _part(part)) is not None]


def _part(part: Json) -> Json | None:
    if part.get("type") == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        return {"type": "image", "source": _image_source(url)}
    text = str(part.get("text", ""))
    return {"type": "text", "text": text} if text.strip() else None  # no empty blocks


def _image_source(url: str) -> Json:
    if url.startswith("data:") and ";base64," in url:
        header, data = url[5:].split(";base64,", 1)
        return {"type": "base64", "media_type": header, "data": data}
    return {"type": "url", "url": url}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _json_object(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {}


def _merge_same_role(messages: list[Json]) -> list[Json]:
    """The Messages API wants user and assistant turns to alternate."""
    merged: list[Json] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1]["content"] = [*merged[-1]["content"], *message["content"]]
        else:
            merged.append(message)
    return merged
