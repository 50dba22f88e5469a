"""The chat → Responses stream translator and the native pass-through, checked against
the openai SDK's own event types (pydantic, strict about shapes) and its stream state,
which raises on events out of order or items never finished."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pydantic
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from nexus.adapters import chat_to_responses as r
from nexus.adapters.chat_to_responses_stream import TERMINAL, ResponsesStream
from nexus.adapters.responses_native import NativeResponsesStream

EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, int] | None = None) -> bytes:
    body: dict[str, Any] = {"id": "c1", "choices": [] if delta is None and finish is None
                            else [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def call(index: int, arguments: str, name: str | None = None,
         call_id: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name:
        function["name"] = name
    entry: dict[str, Any] = {"index": index, "function": function}
    if call_id:
        entry["id"] = call_id
    return {"tool_calls": [entry]}


def parsed(stream: bytes) -> list[Any]:
    """Every event, validated as the SDK's type, and run through the SDK's stream state."""
    events = [EVENTS.validate_python(json.loads(part.split(b"data: ", 1)[1]))
              for part in stream.split(b"\n\n") if part.strip()]
    state = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(event)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    return events


def translate(*chunks: bytes, close: bool = False) -> tuple[bytes, ResponsesStream]:
    shell = r.response_shell("resp_1", {"model": "m"}, "m", "in_progress")
    stream = ResponsesStream(shell, input_estimate=7)
    out = b"".join(stream.feed(c) for c in chunks) + (stream.close() if close else b"")
    return out, stream


def test_reasoning_then_text_then_interleaved_tool_calls() -> None:
    out, stream = translate(
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "think "}), chunk({"reasoning_content": "hard"}),
        chunk({"content": "Calling two tools."}),
        chunk(call(0, "", "first", "call_a")), chunk(call(1, '{"b":', "second", "call_b")),
        chunk(call(0, '{"a": 1}')), chunk(call(1, " 2}")),  # the server interleaves them
        chunk(finish="tool_calls"),
        chunk(usage={"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}),
        b"data: [DONE]\n\n")
    events = parsed(out)
    assert out.endswith(TERMINAL)
    final = Response.model_validate(stream.response)
    kinds = [item.type for item in final.output]
    assert kinds == ["reasoning", "message", "function_call", "function_call"]
    first, second = final.output[2:]
    assert (first.call_id, first.name, first.arguments) == ("call_a", "first", '{"a": 1}')
    assert (second.call_id, second.name, second.arguments) == ("call_b", "second", '{"b": 2}')
    assert final.output_text == "Calling two tools."
    assert final.usage is not None
    assert final.usage.output_tokens == 12
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in done] == ['{"a": 1}', '{"b": 2}']


def test_a_tool_named_late_is_named_when_done() -> None:
    out, stream = translate(chunk(call(0, '{"x"', call_id="call_1")),
                            chunk(call(0, ": 1}", name="late")), chunk(finish="tool_calls"),
                            b"data: [DONE]\n\n")
    parsed(out)
    assert stream.response is not None
    assert stream.response["output"][0]["name"] == "late"


def test_a_length_stop_is_an_incomplete_response() -> None:
    out, _stream = translate(chunk({"content": "cut"}), chunk(finish="length"),
                            b"data: [DONE]\n\n")
    events = parsed(out)
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


def test_a_stream_without_done_finishes_if_it_said_why_it_stopped() -> None:
    out, _ = translate(chunk({"content": "all"}), chunk(finish="stop"), close=True)
    assert parsed(out)[-1].type == "response.completed"


@pytest.mark.parametrize("cut", [
    [chunk({"content": "half"})],  # ended mid-answer
    [chunk({"content": "half"}), b'data: {"error": {"message": "engine died"}}\n\n'],
])
def test_a_broken_stream_ends_with_response_failed(cut: list[bytes]) -> None:
    out, stream = translate(*cut, close=True)
    events = parsed(out)
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None
    assert out.endswith(TERMINAL)
    assert stream.response is None  # nothing finished: nothing to store


def test_without_usage_the_events_are_counted() -> None:
    _, stream = translate(chunk({"content": "a"}), chunk({"content": "b"}),
                          chunk(finish="stop"), b"data: [DONE]\n\n")
    assert stream.usage is None
    assert stream.events == 2


def native_events(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: "
                    + json.dumps({**e, "sequence_number": n}).encode() + b"\n\n"
                    for n, e in enumerate(events))


def test_native_completed_without_output_is_mended_and_args_come_from_done() -> None:
    shell = {"id": "resp_n", "object": "response", "created_at": 0, "status": "in_progress",
             "model": "m", "output": [], "parallel_tool_calls": True, "tool_choice": "auto",
             "tools": []}
    item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f",
            "arguments": "", "status": "in_progress"}
    stream = NativeResponsesStream()
    raw = native_events(
        {"type": "response.created", "response": shell},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {"type": "response.function_call_arguments.done", "item_id": "fc_1",
         "output_index": 0, "arguments": '{"q": 1}', "name": "f"},
        {"type": "response.output_item.done", "output_index": 0,
         "item": {**item, "status": "completed"}},  # its arguments left empty
        {"type": "response.completed", "response": {
            **shell, "status": "completed",
            "usage": {"input_tokens": 5, "output_tokens": 3, "total_tokens": 8,
                      "input_tokens_details": {"cached_tokens": 2,
                                               "cache_write_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}}}})
    out = b"".join(stream.feed(raw[i:i + 7]) for i in range(0, len(raw), 7))  # any split
    events = parsed(out)
    assert out.endswith(TERMINAL)
    final = events[-1].response
    assert final.output[0].arguments == '{"q": 1}'
    assert stream.usage is not None
    assert (stream.usage.prompt_tokens, stream.usage.cache_read_tokens) == (5, 2)
    assert msgspec.json.encode(stream.response)  # kept whole, to store
