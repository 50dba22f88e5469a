"""The mock backend's own Responses API (`POST /v1/responses`), with the habits of the
servers that have one (vLLM, llama-server, Ollama, LM Studio):

- `responses_api` off: the route is missing (404), as on llama-cpp-python or an
  older Ollama; an empty body on it is a 400, as a probe expects;
- `responses_bare_completed`: `response.completed` carries status and usage but no
  `output[]`;
- `responses_args_done_only`: a function call's arguments come only in
  `response.function_call_arguments.done`, never as deltas;
- `omit_usage`: no usage at all.
"""

from __future__ import annotations

import itertools
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.mock_backend import MockBackend

Json = dict[str, Any]
_ids = itertools.count(1)


async def responses(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    if not mock.behaviour.responses_api:
        raise web.HTTPNotFound()
    body = await mock._record(request)
    if not body.get("model") or "input" not in body:
        return web.json_response({"error": {"message": "model and input are required",
                                            "type": "invalid_request_error"}}, status=400)
    gated = await mock._gate(request)
    if gated is not None:
        return gated
    response = _response(mock, body)
    if not body.get("stream"):
        return web.json_response(response)
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    for event in _events(mock, response):
        await out.write(b"event: " + event["type"].encode() + b"\ndata: "
                        + json.dumps(event).encode() + b"\n\n")
    await out.write_eof()
    return out


def _response(mock: MockBackend, body: Json) -> Json:
    words = mock._reply_words()
    text = "".join(words)
    call = mock.behaviour.tool_call
    output: list[Json] = [{"type": "function_call", "id": f"fc_{next(_ids)}",
                           "call_id": call["id"], "name": call["name"],
                           "arguments": call["arguments"], "status": "completed"}] if call \
        else [{"type": "message", "id": f"msg_{next(_ids)}", "status": "completed",
               "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}]
    response: Json = {"id": f"resp_{mock.name}_{next(_ids)}", "object": "response",
                      "created_at": 0, "status": "completed", "model": body["model"],
                      "output": output, "usage": None, "words": words}
    b = mock.behaviour
    if not b.omit_usage:
        prompt = b.usage_prompt_tokens or max(1, len(json.dumps(body.get("input"))) // 4)
        done = b.usage_completion_tokens or \
            (len(text.split()) if not call else len(call["arguments"]) // 4)
        response["usage"] = {"input_tokens": prompt, "output_tokens": done,
                             "input_tokens_details": {"cached_tokens": b.cache_read_tokens,
                                                      "cache_write_tokens": 0},
                             "output_tokens_details": {"reasoning_tokens": 0},
                             "total_tokens": prompt + done}
    return response


def _events(mock: MockBackend, response: Json) -> list[Json]:
    words = response.pop("words")
    (item,) = response["output"]
    shell = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[Json] = [{"type": "response.created", "response": shell},
                          {"type": "response.in_progress", "response": shell},
                          {"type": "response.output_item.added", "output_index": 0,
                           "item": {**item, "status": "in_progress",
                                    **({"arguments": ""} if "arguments" in item
                                       else {"content": []})}}]
    if item["type"] == "function_call":
        events.extend(_call_events(mock, item))
    else:
        events.extend(_text_events(item, words))
    events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    final = {**response, "output": []} if mock.behaviour.responses_bare_completed \
        else response
    events.append({"type": "response.completed", "response": final})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def _text_events(item: Json, words: list[str]) -> list[Json]:
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    part = item["content"][0]
    return [{"type": "response.content_part.added", **where,
             "part": {**part, "text": ""}},
            *({"type": "response.output_text.delta", **where, "delta": word, "logprobs": []}
              for word in words),
            {"type": "response.output_text.done", **where, "text": part["text"],
             "logprobs": []},
            {"type": "response.content_part.done", **where, "part": part}]


def _call_events(mock: MockBackend, item: Json) -> list[Json]:
    where = {"item_id": item["id"], "output_index": 0}
    arguments = item["arguments"]
    deltas: list[Json] = []
    if not mock.behaviour.responses_args_done_only:
        size = max(1, -(-len(arguments) // max(1, mock.behaviour.tool_fragments)))
        deltas = [{"type": "response.function_call_arguments.delta", **where,
                   "delta": arguments[i:i + size]} for i in range(0, len(arguments), size)]
    return [*deltas, {"type": "response.function_call_arguments.done", **where,
                      "name": item["name"], "arguments": arguments}]
