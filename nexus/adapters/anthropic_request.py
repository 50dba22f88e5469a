"""OpenAI chat request → Anthropic Messages request."""

from __future__ import annotations

import json
from typing import Any

DEFAULT_MAX_TOKENS = 4096
_TOOL_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}

Json = dict[str, Any]


def to_messages_request(payload: Json, stream: bool) -> Json:
    system, messages = _split_system(payload.get("messages") or [])
    request: Json = {
        "model": payload["model"],
        "messages": _merge_same_role([_message(m) for m in messages]),
        "max_tokens": payload.get("max_tokens") or payload.get("max_completion_tokens")
        or DEFAULT_MAX_TOKENS,
    }
    if system:
        request["system"] = system
    if stream:
        request["stream"] = True
    _copy_sampling(payload, request)
    _copy_tools(payload, request)
    return request


def _split_system(messages: list[Json]) -> tuple[str, list[Json]]:
    system = [_text_of(m.get("content")) for m in messages if m.get("role") in ("system",
                                                                                  "developer")]
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
    return "\n\n".join(s for s in system if s), rest


def _copy_sampling(payload: Json, request: Json) -> None:
    for key in ("temperature", "top_p", "top_k"):
        if payload.get(key) is not None:
            request[key] = payload[key]
    stop = payload.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(payload.get("user"), str):
        request["metadata"] = {"user_id": payload["user"]}


def _copy_tools(payload: Json, request: Json) -> None:
    tools = payload.get("tools")
    if tools:
        request["tools"] = [_tool(t) for t in tools if t.get("type", "function") == "function"]
    choice = payload.get("tool_choice")
    if isinstance(choice, str) and choice in _TOOL_CHOICE:
        request["tool_choice"] = _TOOL_CHOICE[choice]
    elif isinstance(choice, dict) and "function" in choice:
        request["tool_choice"] = {"type": "tool", "name": choice["function"]["name"]}


def _tool(tool: Json) -> Json:
    function = tool.get("function", {})
    return {"name": function.get("name", ""), "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}


def _message(message: Json) -> Json:
    role = message.get("role")
    if role == "tool":
        block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
                 "content": _text_of(message.get("content"))}
        return {"role": "user", "content": [block]}
    if role == "assistant":
        return {"role": "assistant", "content": _assistant_blocks(message)}
    return {"role": "user", "content": _user_blocks(message.get("content"))}


def _assistant_blocks(message: Json) -> list[Json]:
    text = _text_of(message.get("content"))
    blocks: list[Json] = [{"type": "text", "text": text}] if text else []
    for call in message.get("tool_calls") or []:
        function = call.get("function", {})
        blocks.append({"type": "tool_use", "id": call.get("id", ""),
                       "name": function.get("name", ""),
                       "input": _json_object(function.get("arguments"))})
    return blocks


def _user_blocks(content: Any) -> list[Json]:
    if not isinstance(content, list):
        return [{"type": "text", "text": _text_of(content)}]
    return [_part(part) for part in content if isinstance(part, dict)]


def _part(part: Json) -> Json:
    if part.get("type") == "image_url":
        url = (part.get("image_url") or {}).get("url", "")
        return {"type": "image", "source": _image_source(url)}
    return {"type": "text", "text": str(part.get("text", ""))}


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
