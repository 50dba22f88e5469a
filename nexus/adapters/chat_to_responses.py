"""A chat completion → an OpenAI Responses API `response` object.

The answer's reasoning, text and tool calls become output items (`reasoning`,
`message` with `output_text`, `function_call`), in that order; the finish reason
becomes the status (`length` → incomplete, max_output_tokens); usage becomes
input/output tokens with the cached and reasoning details. The request's own settings
(instructions, tools, text format, metadata...) are echoed as the API does.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from nexus.core.types import Usage

Json = dict[str, Any]
# Settings a response object repeats from its request, with the API's defaults.
ECHOED: Json = {"instructions": None, "max_output_tokens": None, "metadata": {},
                "parallel_tool_calls": True, "previous_response_id": None,
                "reasoning": {"effort": None, "summary": None}, "store": True,
                "temperature": None, "text": {"format": {"type": "text"}},
                "tool_choice": "auto", "tools": [], "top_p": None, "truncation": "disabled",
                "user": None}
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def response_shell(response_id: str, request: Json, model: str, status: str) -> Json:
    """A response object with no output yet: what `response.created` carries."""
    shell: Json = {"id": response_id, "object": "response", "created_at": int(time.time()),
                   "status": status, "error": None, "incomplete_details": None,
                   "model": model, "output": [], "usage": None}
    for name, default in ECHOED.items():
        value = request.get(name)
        shell[name] = default if value is None else value
    return shell


def failure(message: str, code: str) -> Json:
    """A failed response's `error`: its code is one of the API's own (a client may check
    it against the list), so the gateway's code goes in the message."""
    return {"code": "server_error", "message": f"{message} ({code})"}


def usage_of(usage: Usage) -> Json:
    return {"input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cache_read_tokens,
                                     "cache_write_tokens": usage.cache_write_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


def finished(shell: Json, output: list[Json], finish_reason: str | None,
             usage: Usage) -> Json:
    """The shell completed: its output, status and usage."""
    reason = INCOMPLETE.get(finish_reason or "")
    return {**shell, "status": "incomplete" if reason else "completed",
            "incomplete_details": {"reason": reason} if reason else None,
            "output": output, "usage": usage_of(usage)}


def to_response(completion: Json, shell: Json, usage: Usage) -> Json:
    """A whole chat completion as a finished response."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    return finished(shell, output_items(message), choice.get("finish_reason"), usage)


def output_items(message: Json) -> list[Json]:
    items: list[Json] = []
    thinking = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thinking, str) and thinking:
        items.append(reasoning_item(new_id("rs"), thinking))
    text = message.get("content")
    if isinstance(text, str) and text:
        items.append(message_item(new_id("msg"), text, "completed"))
    elif message.get("refusal"):
        items.append({**message_item(new_id("msg"), "", "completed"),
                      "content": [{"type": "refusal", "refusal": message["refusal"]}]})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        items.append(function_call_item(new_id("fc"), str(call.get("id") or new_id("call")),
                                        str(function.get("name", "")),
                                        str(function.get("arguments") or ""), "completed"))
    return items


def message_item(item_id: str, text: str | None, status: str) -> Json:
    content = [] if text is None else [text_part(text)]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": content}


def text_part(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str | None) -> Json:
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str,
                       status: str) -> Json:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}
