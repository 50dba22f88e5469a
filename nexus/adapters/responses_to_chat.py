"""An OpenAI Responses API request → a chat completions request, for a backend that
speaks only chat.

The input (a string, or items: messages, function calls and their outputs, images) and
`instructions` become chat messages; tools, tool_choice, text.format, max_output_tokens,
sampling, reasoning effort and parallel_tool_calls have chat equivalents. What has none
(reasoning items, built-in tools, `include`, `truncation: auto`...) is dropped and named
in the Adjustments, so the client's X-Nexus-Dropped-Params says what did not go.
"""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.adapters.anthropic_params import Adjustments

Json = dict[str, Any]

# Fields handled below, or only the gateway's business: never "dropped".
HANDLED = frozenset({"model", "input", "instructions", "tools", "tool_choice", "text",
                     "max_output_tokens", "temperature", "top_p", "reasoning", "metadata",
                     "parallel_tool_calls", "stream", "store", "previous_response_id",
                     "user", "service_tier", "prompt_cache_key", "stream_options"})
# Passed on with the same name and meaning.
SAME = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier",
        "prompt_cache_key")
_encode = msgspec.json.Encoder().encode


def to_chat_request(body: Json, history: list[Json], adjustments: Adjustments) -> Json:
    """The chat request for a Responses request whose earlier turns (from the stored
    `previous_response_id` chain, input and output items alike) are `history`."""
    chat: Json = {"model": body["model"],
                  "messages": chat_messages(body.get("instructions"),
                                            [*history, *input_items(body.get("input"))],
                                            adjustments)}
    if body.get("stream"):
        chat["stream"] = True
    for name in SAME:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    _copy_tools(body, chat, adjustments)
    _copy_text_format(body.get("text"), chat, adjustments)
    _copy_reasoning(body.get("reasoning"), chat, adjustments)
    _note_untranslated(body, adjustments)
    return chat


def input_items(value: Any) -> list[Json]:
    """The request's `input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def chat_messages(instructions: Any, items: list[Json], adjustments: Adjustments) -> list[Json]:
    messages: list[Json] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    for item in items:
        kind = item.get("type", "message")
        if kind == "message":
            _message(item, messages, adjustments)
        elif kind == "function_call":
            _function_call(item, messages)
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id", "")),
                             "content": _output_text(item.get("output"))})
        else:  # reasoning, item_reference, built-in tool calls: chat has no place for them
            _once(adjustments, f"input[{kind}]")
    return messages


def _message(item: Json, messages: list[Json], adjustments: Adjustments) -> None:
    role = item.get("role", "user")
    role = "system" if role == "developer" else role
    content = _content(item.get("content"), adjustments)
    if role == "assistant":
        text = content if isinstance(content, str) else "".join(
            part.get("text", "") for part in content)
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and not last.get("content"):
            last["content"] = text  # calls came first: one assistant turn holds both
            return
        messages.append({"role": "assistant", "content": text})
        return
    messages.append({"role": role, "content": content})


def _function_call(item: Json, messages: list[Json]) -> None:
    """A call the model made: calls in a row (and the text before them) are one
    assistant turn, as chat has it."""
    call = {"id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
            "function": {"name": str(item.get("name", "")),
                         "arguments": str(item.get("arguments") or "{}")}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _content(content: Any, adjustments: Adjustments) -> str | list[Json]:
    if isinstance(content, str):
        return content
    parts: list[Json] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image" and part.get("image_url"):
            image: Json = {"url": part["image_url"]}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:  # files, images by file_id, audio: nothing a chat backend can open
            _once(adjustments, f"input[{kind}]")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _output_text(output: Any) -> str:
    """A function call's output: a string, or content parts whose text is joined."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
    return _encode(output).decode()


def _copy_tools(body: Json, chat: Json, adjustments: Adjustments) -> None:
    tools = []
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict) or tool.get("type") != "function":
            _once(adjustments, f"tools[{tool.get('type') if isinstance(tool, dict) else '?'}]")
            continue
        function = {"name": tool.get("name", ""),
                    "parameters": tool.get("parameters") or {"type": "object",
                                                             "properties": {}}}
        if tool.get("description"):
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        tools.append({"type": "function", "function": function})
    if tools:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, str) and (tools or choice == "none"):
        chat["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function" and tools:
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif choice is not None and tools:
        _once(adjustments, "tool_choice")


def _copy_text_format(text: Any, chat: Json, adjustments: Adjustments) -> None:
    if not isinstance(text, dict):
        return
    form = text.get("format")
    if isinstance(form, dict) and form.get("type") == "json_schema":
        schema = {k: form[k] for k in ("name", "schema", "strict", "description") if k in form}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(form, dict) and form.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    if text.get("verbosity") is not None:
        _once(adjustments, "text.verbosity")


def _copy_reasoning(reasoning: Any, chat: Json, adjustments: Adjustments) -> None:
    if not isinstance(reasoning, dict):
        return
    if reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if reasoning.get("summary") is not None or reasoning.get("generate_summary") is not None:
        _once(adjustments, "reasoning.summary")


def _note_untranslated(body: Json, adjustments: Adjustments) -> None:
    for name, value in body.items():
        if name in HANDLED or value is None:
            continue
        if name == "truncation" and value == "disabled":
            continue  # chat never truncates: the same thing
        if name == "background" and value is False:
            continue
        _once(adjustments, name)


def _once(adjustments: Adjustments, name: str) -> None:
    if name not in adjustments.dropped:
        adjustments.dropped.append(name)
