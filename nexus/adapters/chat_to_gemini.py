"""An OpenAI chat request → a Gemini `generateContent` request.

Roles become Gemini's (assistant → `model`; system messages → `systemInstruction`;
a tool result → a `user` turn with a `functionResponse`), consecutive turns of one
role merge (Gemini wants them alternating), images become `inlineData` (data URLs) or
`fileData` (other URLs), tools become `functionDeclarations`, and the sampling,
stop sequences and JSON mode (`response_format`) go in `generationConfig`. What has no
Gemini equivalent is dropped and named, for X-Nexus-Dropped-Params.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from nexus.adapters.anthropic_map import text_of
from nexus.adapters.anthropic_params import Adjustments
from nexus.core.errors import BadRequest

Json = dict[str, Any]
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
# chat field → generationConfig field, the value as it is
SAMPLING = {"temperature": "temperature", "top_p": "topP", "top_k": "topK",
            "seed": "seed", "presence_penalty": "presencePenalty",
            "frequency_penalty": "frequencyPenalty"}
HANDLED = frozenset({"model", "messages", "stream", "stream_options", "max_tokens", "n",
                     "max_completion_tokens", "stop", "tools", "tool_choice",
                     "response_format", *SAMPLING})
# Schema keywords Gemini's `responseSchema` (an OpenAPI subset) refuses.
UNSUPPORTED_SCHEMA = frozenset({"$schema", "additionalProperties", "$defs", "definitions",
                                "$ref", "strict", "examples", "default"})
CHOICES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def to_gemini_request(payload: Json, adjustments: Adjustments) -> Json:
    if (payload.get("n") or 1) != 1:
        raise BadRequest("The Gemini API answers one choice a request: n must be 1",
                         param="n")
    request: Json = {"contents": _contents(payload.get("messages") or [], adjustments)}
    system = _system(payload.get("messages") or [])
    if system:
        request["systemInstruction"] = {"parts": [{"text": system}]}
    config = _generation_config(payload, adjustments)
    if config:
        request["generationConfig"] = config
    _tools(payload, request)
    for name, value in payload.items():
        if name not in HANDLED and value is not None:
            adjustments.dropped.append(name)
    return request


def _system(messages: list[Json]) -> str:
    return "\n\n".join(text_of(m.get("content")) for m in messages
                       if m.get("role") in ("system", "developer"))


def _contents(messages: list[Json], adjustments: Adjustments) -> list[Json]:
    names: dict[str, str] = {}  # tool call id → the function's name (a result needs it)
    contents: list[Json] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            continue
        if role == "assistant":
            parts = _assistant_parts(message, names)
            turn = "model"
        elif role == "tool":
            call_id = str(message.get("tool_call_id", ""))
            parts = [{"functionResponse": {"name": names.get(call_id, call_id),
                                           "response": {"content": text_of(
                                               message.get("content"))}}}]
            turn = "user"
        else:
            parts = _user_parts(message.get("content"), adjustments)
            turn = "user"
        if not parts:
            continue
        if contents and contents[-1]["role"] == turn:  # Gemini wants turns alternating
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn, "parts": parts})
    return contents


def _assistant_parts(message: Json, names: dict[str, str]) -> list[Json]:
    parts: list[Json] = []
    text = text_of(message.get("content"))
    if text:
        parts.append({"text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        name = str(function.get("name", ""))
        names[str(call.get("id", ""))] = name
        parts.append({"functionCall": {"name": name, "args": _arguments(
            function.get("arguments"))}})
    return parts


def _arguments(arguments: Any) -> Json:
    if isinstance(arguments, dict):
        return arguments
    try:
        decoded = msgspec.json.decode(arguments or "{}")
    except (msgspec.DecodeError, TypeError):
        return {"arguments": arguments}
    return decoded if isinstance(decoded, dict) else {"value": decoded}


def _user_parts(content: Any, adjustments: Adjustments) -> list[Json]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[Json] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            found = DATA_URL.match(url)
            parts.append({"inlineData": {"mimeType": found["mime"], "data": found["data"]}}
                         if found else {"fileData": {"fileUri": url,
                                                     "mimeType": _mime_of(url)}})
        elif f"messages[{kind}]" not in adjustments.dropped:
            adjustments.dropped.append(f"messages[{kind}]")
    return parts


def _mime_of(url: str) -> str:
    lower = url.lower().split("?")[0]
    for suffix, mime in ((".png", "image/png"), (".webp", "image/webp"),
                         (".gif", "image/gif")):
        if lower.endswith(suffix):
            return mime
    return "image/jpeg"


def _generation_config(payload: Json, adjustments: Adjustments) -> Json:
    config: Json = {chat_to: payload[name] for name, chat_to in SAMPLING.items()
                    if payload.get(name) is not None}
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = payload.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    form = payload.get("response_format")
    if isinstance(form, dict) and form.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (form.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            config["responseSchema"] = clean_schema(schema)
    return config


def clean_schema(schema: Any) -> Any:
    """A JSON schema as Gemini's responseSchema takes it: without the keywords it refuses."""
    if isinstance(schema, dict):
        return {k: clean_schema(v) for k, v in schema.items() if k not in UNSUPPORTED_SCHEMA}
    if isinstance(schema, list):
        return [clean_schema(v) for v in schema]
    return schema


def _tools(payload: Json, request: Json) -> None:
    declarations = []
    for tool in payload.get("tools") or ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            continue
        declaration: Json = {"name": function.get("name", "")}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parameters"] = clean_schema(function["parameters"])
        declarations.append(declaration)
    if not declarations:
        return
    request["tools"] = [{"functionDeclarations": declarations}]
    choice = payload.get("tool_choice")
    if isinstance(choice, str) and choice in CHOICES:
        request["toolConfig"] = {"functionCallingConfig": {"mode": CHOICES[choice]}}
    elif isinstance(choice, dict) and (choice.get("function") or {}).get("name"):
        request["toolConfig"] = {"functionCallingConfig": {
            "mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}}
