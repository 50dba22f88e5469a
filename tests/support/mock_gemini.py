"""The mock backend's Gemini API: `models/{model}:generateContent`,
`:streamGenerateContent?alt=sse` and `GET /v1beta/models`, with Google's habits.

Every request body is validated against the `google-genai` SDK's own types (pydantic,
unknown fields refused), as Google's server would refuse it: a body that does not
pass is a 400 in Google's error shape, naming the field, and the reason is kept in
`mock.refusals`. The key must come in `x-goog-api-key`, never in the URL; turns must
alternate between `user` and `model`; a `functionResponse` must answer a call the
model made. Streams end lines with CRLF, as Google's do, and carry no end marker: the
chunk with `finishReason` (and the usage) is the last.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

import pydantic
from aiohttp import web
from google.genai import types

if TYPE_CHECKING:
    from tests.support.mock_backend import MockBackend

Json = dict[str, Any]
FIELDS: dict[str, Any] = {
    "contents": pydantic.TypeAdapter(list[types.Content]),
    "systemInstruction": pydantic.TypeAdapter(types.Content),
    "generationConfig": pydantic.TypeAdapter(types.GenerationConfig),
    "tools": pydantic.TypeAdapter(list[types.Tool]),
    "toolConfig": pydantic.TypeAdapter(types.ToolConfig),
    "safetySettings": pydantic.TypeAdapter(list[types.SafetySetting]),
    "cachedContent": pydantic.TypeAdapter(str),
}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
_ids = itertools.count(1)


class Refused(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def error(status: int, message: str, field: str | None = None,
          retry_delay: str | None = None) -> web.Response:
    details: list[Json] = []
    if field is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": field, "description": message}]})
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": retry_delay})
    return web.json_response({"error": {"code": status, "message": message,
                                        "status": STATUS_NAMES.get(status, "UNKNOWN"),
                                        "details": details}}, status=status)


def validate(body: Json) -> None:
    for name, value in body.items():
        if name not in FIELDS:
            raise Refused(name, f'Invalid JSON payload received. Unknown name "{name}"')
        try:
            FIELDS[name].validate_python(value)
        except pydantic.ValidationError as exc:
            where = ".".join(str(p) for p in exc.errors()[0]["loc"])
            raise Refused(f"{name}.{where}", str(exc.errors()[0]["msg"])) from None
    calls: set[str] = set()
    previous = None
    for index, content in enumerate(body.get("contents") or []):
        role = content.get("role")
        if role not in ("user", "model") or role == previous:
            raise Refused(f"contents[{index}].role", "Please ensure that multiturn "
                          "requests alternate between user and model.")
        previous = role
        for part in content.get("parts") or []:
            if "functionCall" in part:
                calls.add(part["functionCall"].get("name"))
            if "functionResponse" in part and part["functionResponse"].get("name") not in calls:
                raise Refused(f"contents[{index}].parts", "Please ensure that function "
                              "response turn comes immediately after a function call turn.")


async def generate(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    body = await mock._record(request)
    model, _, action = request.match_info["target"].partition(":")
    if "key" in request.query or not request.headers.get("x-goog-api-key"):
        return error(403, "Method doesn't allow unregistered callers: send x-goog-api-key")
    b = mock.behaviour
    if b.status is not None:
        return error(b.status, f"mock {mock.name} failing",
                     retry_delay=b.retry_after and f"{b.retry_after}s")
    if model not in b.models:
        return error(404, f"models/{model} is not found for API version v1beta")
    try:
        validate(body)
    except Refused as refused:
        mock.refusals.append(f"{refused.field}: {refused}")
        return error(400, str(refused), field=refused.field)
    chunks = list(_chunks(mock, model))
    if action == "generateContent":
        return web.json_response(_whole(chunks))
    if action != "streamGenerateContent" or request.query.get("alt") != "sse":
        return error(400, f"unknown action {action!r} (streams need ?alt=sse)")
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    for chunk in chunks:
        await out.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
    await out.write_eof()
    return out


def _chunks(mock: MockBackend, model: str) -> list[Json]:
    b = mock.behaviour
    response_id = f"gemini-{next(_ids)}"
    parts: list[Json] = [{"text": b.gemini_thoughts, "thought": True}] \
        if b.gemini_thoughts else []
    if b.tool_call:
        parts.append({"functionCall": {"name": b.tool_call["name"],
                                       "args": json.loads(b.tool_call["arguments"])}})
    else:
        parts.extend({"text": word} for word in mock._reply_words())
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [part]}, "index": 0}],
               "modelVersion": model, "responseId": response_id} for part in parts]
    last = chunks[-1]["candidates"][0]
    last["finishReason"] = b.gemini_finish
    if b.gemini_finish == "SAFETY":
        last["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                  "probability": "HIGH", "blocked": True}]
    if not b.omit_usage:
        output = b.usage_completion_tokens or len(parts)
        prompt = b.usage_prompt_tokens or 10
        usage: Json = {"promptTokenCount": prompt, "candidatesTokenCount": output,
                       "totalTokenCount": prompt + output + b.gemini_thought_tokens}
        if b.gemini_thought_tokens:
            usage["thoughtsTokenCount"] = b.gemini_thought_tokens
        if b.cache_read_tokens:
            usage["cachedContentTokenCount"] = b.cache_read_tokens
        chunks[-1]["usageMetadata"] = usage
    return chunks


def _whole(chunks: list[Json]) -> Json:
    parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
    whole = json.loads(json.dumps(chunks[-1]))
    whole["candidates"][0]["content"]["parts"] = parts
    return whole


async def list_models(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    if not request.headers.get("x-goog-api-key"):
        return error(403, "Method doesn't allow unregistered callers")
    models: list[Json] = [{"name": f"models/{m}", "inputTokenLimit": 1048576,
                           "outputTokenLimit": 65536,
                           "supportedGenerationMethods": ["generateContent", "countTokens"]}
                          for m in mock.behaviour.models]
    models.append({"name": "models/text-embedding-004",
                   "supportedGenerationMethods": ["embedContent"]})
    return web.json_response({"models": models})
