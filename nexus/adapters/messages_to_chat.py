"""Anthropic Messages request → OpenAI chat request, for an OpenAI-compatible backend.

The reverse of anthropic_request.py, through the same mapping (anthropic_map.py).
What has no equivalent is dropped and named in X-Nexus-Dropped-Params; what cannot
be honoured at all (a PDF document, a server-side tool) is refused, so that the
next candidate, perhaps an Anthropic backend, may take the request instead.
"""

from __future__ import annotations

from typing import Any

from nexus.adapters import anthropic_map as m
from nexus.adapters.anthropic_params import Adjustments
from nexus.core.errors import BadRequest

Json = dict[str, Any]
# Fields of a Messages request translated below; any other is dropped and named.
TRANSLATED = frozenset({"model", "messages", "system", "max_tokens", "stream", "tools",
                        "tool_choice", "metadata", "output_config", *m.SAMPLING_FIELDS,
                        *(anthropic for anthropic, _ in m.RENAMED)})
# Blocks that only steer Anthropic's own servers: left out without a word.
HINTS = frozenset({"cache_control", "citations"})
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})  # the model's own notes


def to_chat_request(body: Json, adjustments: Adjustments, keeps_top_k: bool) -> Json:
    """keeps_top_k: the backend takes `top_k` (the local servers do; OpenAI does not)."""
    messages = _system(body.get("system"))
    for message in body.get("messages") or []:
        messages.extend(_turn(message, adjustments))
    request: Json = {"model": body["model"], "messages": messages}
    for anthropic, openai in m.RENAMED:
        if body.get(anthropic) is not None:
            request[openai] = body[anthropic]
    if body.get("stream"):
        request["stream"] = True
    _copy_sampling(body, request, adjustments, keeps_top_k)
    _copy_tools(body, request)
    fmt = m.json_format_to_openai(body.get("output_config"))
    if fmt is not None:
        request["response_format"] = fmt
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str):
        request["user"] = user
    _note_untranslated(body, adjustments)
    return request


def _system(system: Any) -> list[Json]:
    text = m.text_of(system)
    return [{"role": "system", "content": text}] if text else []


def _turn(message: Json, adjustments: Adjustments) -> list[Json]:
    """One Anthropic turn as OpenAI messages: a user turn's tool results become `tool`
    messages, placed first, right after the assistant's calls as OpenAI wants them."""
    role, content = message.get("role"), message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    blocks = [b for b in content or [] if isinstance(b, dict)]
    _refuse_untranslatable(blocks)
    if any(b.get("type") in _DROPPED_BLOCKS for b in blocks):
        _once(adjustments, "thinking blocks")
    if role == "assistant":
        return [_assistant(blocks)]
    results = [m.tool_result_to_openai(b) for b in blocks if b.get("type") == "tool_result"]
    parts = [_part(b) for b in blocks if b.get("type") in ("text", "image")]
    return [*results, *([{"role": "user", "content": _content(parts)}] if parts else [])]


def _assistant(blocks: list[Json]) -> Json:
    text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
    out: Json = {"role": "assistant", "content": text or None}
    calls = [m.tool_call_to_openai(b) for b in blocks if b.get("type") == "tool_use"]
    if calls:
        out["tool_calls"] = calls
    return out


def _part(block: Json) -> Json:
    if block.get("type") == "image":
        return {"type": "image_url",
                "image_url": {"url": m.image_to_openai(block.get("source") or {})}}
    return {"type": "text", "text": str(block.get("text", ""))}


def _content(parts: list[Json]) -> str | list[Json]:
    """A lone text part as a plain string: every OpenAI-compatible server takes that."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts


_BLOCKS = frozenset({"text", "image", "tool_use", "tool_result", *_DROPPED_BLOCKS})


def _refuse_untranslatable(blocks: list[Json]) -> None:
    for block in blocks:
        kind = block.get("type")
        if kind not in _BLOCKS:
            raise BadRequest(f"A {kind!r} content block has no equivalent on an "
                             "OpenAI-compatible backend; route it to an Anthropic backend",
                             param="messages")


def _copy_sampling(body: Json, request: Json, adjustments: Adjustments,
                   keeps_top_k: bool) -> None:
    for key in m.SAMPLING_FIELDS:
        if body.get(key) is None:
            continue
        if key == "top_k" and not keeps_top_k:
            adjustments.dropped.append("top_k")
            continue
        request[key] = body[key]


def _copy_tools(body: Json, request: Json) -> None:
    tools = body.get("tools") or []
    for tool in tools:
        if tool.get("type") not in (None, "custom"):  # web search, code execution, ...
            raise BadRequest(f"The server tool {tool.get('type')!r} runs only on Anthropic's "
                             "servers; route the request to an Anthropic backend",
                             param="tools")
    if tools:
        request["tools"] = [m.tool_to_openai(t) for t in tools]
    choice, parallel = m.tool_choice_to_openai(body.get("tool_choice"))
    if choice is not None and tools:
        request["tool_choice"] = choice
    if parallel is not None and tools:
        request["parallel_tool_calls"] = parallel


def _note_untranslated(body: Json, adjustments: Adjustments) -> None:
    for key, value in body.items():
        if key not in TRANSLATED and key not in HINTS and value not in (None, False, "", [],
                                                                          {}):
            _once(adjustments, key)


def _once(adjustments: Adjustments, name: str) -> None:
    if name not in adjustments.dropped:
        adjustments.dropped.append(name)
