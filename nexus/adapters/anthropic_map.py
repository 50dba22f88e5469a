"""The one mapping between Anthropic's Messages API and OpenAI's chat completions.

Each concept is written here once, as a table or as a pair of functions side by side,
and both directions of the gateway use it: an OpenAI request sent to an Anthropic
backend (anthropic_request.py, anthropic.py) and a Messages request sent to an
OpenAI-compatible backend (messages_request.py, messages_reply.py,
messages_stream.py). A round-trip property test holds the two directions together.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from nexus.core.types import Usage

Json = dict[str, Any]

# (Anthropic stop_reason, OpenAI finish_reason): every value of the SDK's StopReason
# literal (a test checks). Going back, the first pair naming a finish reason wins.
STOP_REASONS: tuple[tuple[str, str], ...] = (
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"), ("pause_turn", "stop"),
    ("model_context_window_exceeded", "length"),
)
FINISH_REASONS = dict(STOP_REASONS)
_STOP_REASON_OF: dict[str, str] = {}
for _anthropic, _openai in STOP_REASONS:
    _STOP_REASON_OF.setdefault(_openai, _anthropic)
_STOP_REASON_OF["function_call"] = "tool_use"  # the legacy name of tool_calls

# (Anthropic tool_choice type, OpenAI tool_choice string).
TOOL_CHOICES: tuple[tuple[str, str], ...] = (("auto", "auto"), ("any", "required"),
                                             ("none", "none"))
_CHOICE_TO_ANTHROPIC = {o: a for a, o in TOOL_CHOICES}
_CHOICE_TO_OPENAI = dict(TOOL_CHOICES)

# Request fields that carry the same meaning under another name: (Anthropic, OpenAI).
RENAMED: tuple[tuple[str, str], ...] = (("stop_sequences", "stop"),
                                        ("max_tokens", "max_tokens"))
SAMPLING_FIELDS = ("temperature", "top_p", "top_k")  # same names and meaning on both


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "", "stop")


def stop_reason(finish: str | None) -> str:
    return _STOP_REASON_OF.get(finish or "", "end_turn")


# -- tool choice -------------------------------------------------------------------------
def tool_choice_to_anthropic(choice: Any, parallel: Any, has_tools: bool) -> Json | None:
    out: Json | None = None
    if isinstance(choice, str) and choice in _CHOICE_TO_ANTHROPIC:
        out = {"type": _CHOICE_TO_ANTHROPIC[choice]}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name", "")}
    if parallel is False and has_tools:
        out = out or {"type": "auto"}
        if out["type"] != "none":
            out["disable_parallel_tool_use"] = True
    return out


def tool_choice_to_openai(choice: Any) -> tuple[Any, bool | None]:
    """(tool_choice, parallel_tool_calls) for an Anthropic tool_choice."""
    if not isinstance(choice, dict):
        return None, None
    kind = choice.get("type")
    out: Any = {"type": "function", "function": {"name": choice.get("name", "")}} \
        if kind == "tool" else _CHOICE_TO_OPENAI.get(str(kind))
    return out, (False if choice.get("disable_parallel_tool_use") is True else None)


# -- tool definitions --------------------------------------------------------------------
def tool_to_anthropic(tool: Json) -> Json:
    function = tool.get("function", {})
    out: Json = {"name": function.get("name", ""),
                 "input_schema": function.get("parameters")
                 or {"type": "object", "properties": {}}}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") is True:
        out["strict"] = True
    return out


def tool_to_openai(tool: Json) -> Json:
    function: Json = {"name": tool.get("name", ""),
                      "parameters": tool.get("input_schema")
                      or {"type": "object", "properties": {}}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is True:
        function["strict"] = True
    return {"type": "function", "function": function}


# -- a call of a tool and its result -----------------------------------------------------
def tool_call_to_anthropic(call: Json) -> Json:
    function = call.get("function", {})
    return {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""),
            "input": json_object(function.get("arguments"))}


def tool_call_to_openai(block: Json) -> Json:
    return {"id": block.get("id", ""), "type": "function",
            "function": {"name": block.get("name", ""),
                         "arguments": msgspec.json.encode(block.get("input", {})).decode()}}


def tool_result_to_anthropic(message: Json) -> Json:
    return {"type": "tool_result", "tool_use_id": message.get("tool_call_id", ""),
            "content": text_of(message.get("content")) or "(empty)"}


def tool_result_to_openai(block: Json) -> Json:
    return {"role": "tool", "tool_call_id": block.get("tool_use_id", ""),
            "content": text_of(block.get("content"))}


# -- images ------------------------------------------------------------------------------
def image_to_anthropic(url: str) -> Json:
    """An OpenAI image_url (a data: URL or a link) as an Anthropic image source."""
    if url.startswith("data:") and ";base64," in url:
        header, data = url[5:].split(";base64,", 1)
        return {"type": "base64", "media_type": header, "data": data}
    return {"type": "url", "url": url}


def image_to_openai(source: Json) -> str:
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', '')};base64,{source.get('data', '')}"
    return str(source.get("url", ""))


# -- structured output -------------------------------------------------------------------
def json_format_to_anthropic(response_format: Any) -> Json | None:
    """json_schema becomes Anthropic's structured output; json_object has no equivalent."""
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema") or {"type": "object"}
        return {"format": {"type": "json_schema", "schema": schema}}
    return None


def json_format_to_openai(output_config: Any) -> Json | None:
    fmt = output_config.get("format") if isinstance(output_config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": "output", "schema": fmt.get("schema")
                                or {"type": "object"}}}
    return None


# -- usage -------------------------------------------------------------------------------
def usage_from_anthropic(raw: Json, before: Usage | None = None) -> Usage:
    """Anthropic's `input_tokens` leaves out what the prompt cache wrote and read;
    OpenAI's `prompt_tokens` (and our Usage) counts them all. Fields a stream's
    message_delta does not repeat keep what message_start said."""
    base = before or Usage()
    read = _count(raw, "cache_read_input_tokens", base.cache_read_tokens)
    write = _count(raw, "cache_creation_input_tokens", base.cache_write_tokens)
    fresh = _count(raw, "input_tokens",
                   base.prompt_tokens - base.cache_read_tokens - base.cache_write_tokens)
    return Usage(prompt_tokens=fresh + read + write,
                 completion_tokens=_count(raw, "output_tokens", base.completion_tokens),
                 cache_read_tokens=read, cache_write_tokens=write)


def usage_to_anthropic(usage: Usage) -> Json:
    return {"input_tokens": usage.prompt_tokens - usage.cache_read_tokens
            - usage.cache_write_tokens,
            "output_tokens": usage.completion_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cache_read_tokens}


def usage_to_openai(usage: Usage) -> Json:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens}}


def _count(raw: Json, key: str, default: int) -> int:
    value = raw.get(key)
    return int(value) if isinstance(value, int) else default


# -- shared helpers ----------------------------------------------------------------------
def text_of(content: Any) -> str:
    """The text of a string or of a list of text parts / blocks (the same shape on both)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return ""


def json_object(arguments: Any) -> Any:
    """Tool arguments: OpenAI sends a JSON string, Anthropic an object."""
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments or "{}")
    except (TypeError, ValueError):
        return {}
