"""What a request needs from a backend, read from its body without decoding it twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nexus.core.types import Requirements

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
JSON_FORMATS = frozenset({"json_object", "json_schema"})


def requirements_of(payload: dict[str, Any] | None) -> Requirements:
    if not payload:
        return Requirements()
    return _requirements(_content(payload), payload.get("response_format"),
                         payload.get("max_tokens") or payload.get("max_completion_tokens"),
                         bool(payload.get("tools") or payload.get("functions")))


def requirements_of_chat(messages: Sequence[Any], response_format: Any, max_tokens: Any,
                         tools: bool) -> Requirements:
    """The same, from an already decoded chat view (objects with a `content`)."""
    chars, vision = 0, False
    for message in messages:
        text, image = _message_content(message.content)
        chars, vision = chars + text, vision or image
    return _requirements((chars, len(messages), vision), response_format, max_tokens, tools)


def _requirements(content: tuple[int, int, bool], response_format: Any, max_tokens: Any,
                  tools: bool) -> Requirements:
    chars, messages, vision = content
    json_format = response_format.get("type") if isinstance(response_format, dict) else None
    json_mode = json_format in JSON_FORMATS
    return Requirements(
        vision=vision, tools=tools, json_mode=json_mode,
        json_format=json_format if json_mode else None,
        input_tokens=chars // CHARS_PER_TOKEN + messages * TOKENS_PER_MESSAGE,
        max_output_tokens=max_tokens if isinstance(max_tokens, int) and max_tokens > 0
        else None,
    )


def _content(payload: dict[str, Any]) -> tuple[int, int, bool]:
    """(characters of text, number of messages, any image part) of chat, prompt or input."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        chars, vision = 0, False
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            text, image = _message_content(content)
            chars, vision = chars + text, vision or image
        return chars, len(messages), vision
    other = payload.get("prompt", payload.get("input"))
    return len(str(other)) if other is not None else 0, 0, False


def _message_content(content: Any) -> tuple[int, bool]:
    if isinstance(content, str):
        return len(content), False
    if not isinstance(content, list):
        return 0, False
    chars, vision = 0, False
    for part in content:
        if isinstance(part, dict):
            if part.get("type") in ("image_url", "input_image", "image"):
                vision = True
            chars += len(str(part.get("text", "")))
    return chars, vision


def requirements_of_messages(body: dict[str, Any]) -> Requirements:
    """The same, from an Anthropic Messages request: its system prompt and every block's
    text count towards the input; an image block needs vision, tools need tool calls,
    and structured output (output_config.format) a backend that takes a JSON schema."""
    chars, vision = _blocks_content(body.get("system"))
    messages = body.get("messages") or []
    for message in messages:
        text, image = _blocks_content(message.get("content") if isinstance(message, dict)
                                      else None)
        chars, vision = chars + text, vision or image
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    response_format = {"type": "json_schema"} if isinstance(fmt, dict) \
        and fmt.get("type") == "json_schema" else None
    return _requirements((chars, len(messages), vision), response_format,
                         body.get("max_tokens"), bool(body.get("tools")))


def _blocks_content(content: Any) -> tuple[int, bool]:
    """(characters, any image) of a string or of blocks, tool calls and results included."""
    if not isinstance(content, list):
        return _message_content(content)
    chars, vision = 0, False
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("image", "document"):
            vision = True
        elif kind == "tool_result":
            text, image = _blocks_content(block.get("content"))
            chars, vision = chars + text, vision or image
        elif kind == "tool_use":
            chars += len(str(block.get("input", "")))
        chars += len(str(block.get("text", "")))
    return chars, vision
