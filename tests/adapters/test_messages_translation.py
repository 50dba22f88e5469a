"""The Messages ↔ chat translation as properties: one mapping read both ways, and a
translated stream that is valid however the backend's bytes are cut."""

from __future__ import annotations

import json
import typing
from typing import Any

import msgspec
from anthropic.types import StopReason
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.adapters import anthropic_map as m
from nexus.adapters.anthropic import to_chat_completion
from nexus.adapters.anthropic_params import Adjustments
from nexus.adapters.chat_to_anthropic import to_messages_request
from nexus.adapters.chat_to_messages import to_message
from nexus.adapters.chat_to_messages_stream import MessagesStream
from nexus.adapters.messages_to_chat import to_chat_request
from nexus.core.types import Usage

MODEL = "claude-3-5-haiku-20241022"  # takes every sampling parameter
words = st.text(alphabet="abcdefgh XYZ.,{}\"\\é", min_size=1, max_size=12).filter(str.strip)
ids = st.from_regex(r"toolu_[a-z0-9]{4}", fullmatch=True)
inputs = st.dictionaries(st.sampled_from(["city", "unit", "n"]),
                         st.one_of(words, st.integers(-5, 5)), max_size=3)
image = st.builds(lambda data: {"type": "image", "source": {
    "type": "base64", "media_type": "image/png", "data": data}},
    st.from_regex(r"[A-Za-z0-9+/]{4,12}", fullmatch=True))
text_block = st.builds(lambda t: {"type": "text", "text": t}, words)
tool_use = st.builds(lambda i, n, x: {"type": "tool_use", "id": i, "name": n, "input": x},
                     ids, st.sampled_from(["get_weather", "search"]), inputs)
tool_result = st.builds(lambda i, t: {"type": "tool_result", "tool_use_id": i, "content": t},
                        ids, words)


@st.composite
def user_turn(draw: st.DrawFn) -> dict[str, Any]:
    # Tool results first: the order OpenAI's messages can hold.
    results = draw(st.lists(tool_result, max_size=2))
    parts = draw(st.lists(st.one_of(text_block, image), min_size=0 if results else 1,
                          max_size=3))
    return {"role": "user", "content": [*results, *parts]}


@st.composite
def assistant_turn(draw: st.DrawFn) -> dict[str, Any]:
    text = draw(st.lists(text_block, max_size=1))
    calls = draw(st.lists(tool_use, min_size=0 if text else 1, max_size=2))
    return {"role": "assistant", "content": [*text, *calls]}


@st.composite
def messages_request(draw: st.DrawFn) -> dict[str, Any]:
    turns = [draw(user_turn())]
    for _ in range(draw(st.integers(0, 3))):
        turns += [draw(assistant_turn()), draw(user_turn())]
    request: dict[str, Any] = {"model": MODEL, "messages": turns,
                               "max_tokens": draw(st.integers(1, 4096))}
    if draw(st.booleans()):
        request["system"] = draw(words)
    if draw(st.booleans()):
        request["stop_sequences"] = draw(st.lists(words, min_size=1, max_size=3))
    for key, values in (("temperature", st.floats(0, 1)), ("top_p", st.floats(0, 1)),
                        ("top_k", st.integers(1, 50))):
        if draw(st.booleans()):
            request[key] = draw(values)
    if draw(st.booleans()):
        request["tools"] = [{"name": "get_weather", "description": draw(words),
                             "input_schema": {"type": "object", "properties": {}}}]
        choice = draw(st.sampled_from([{"type": "auto"}, {"type": "any"}, {"type": "none"},
                                       {"type": "tool", "name": "get_weather"}]))
        if choice["type"] != "none" and draw(st.booleans()):
            choice["disable_parallel_tool_use"] = True
        request["tool_choice"] = choice
    if draw(st.booleans()):
        request["metadata"] = {"user_id": draw(words)}
    return request


@settings(max_examples=300, deadline=None)
@given(messages_request())
def test_a_messages_request_survives_the_trip_to_chat_and_back(request: dict[str, Any]) -> None:
    adjustments = Adjustments()
    chat = to_chat_request(request, adjustments, keeps_top_k=True)
    back = to_messages_request(chat, stream=False, adjustments=adjustments)
    assert back == request
    assert adjustments.dropped == adjustments.clamped == []


stop_reasons = st.sampled_from(["end_turn", "max_tokens", "tool_use", "refusal"])


@settings(max_examples=200, deadline=None)
@given(st.lists(text_block, max_size=1), st.lists(tool_use, max_size=2), stop_reasons,
       st.tuples(*[st.integers(0, 10_000)] * 4))
def test_a_message_survives_the_trip_to_a_chat_completion_and_back(
        text: list[Any], calls: list[Any], reason: str, counts: tuple[int, ...]) -> None:
    fresh, output, read, write = counts
    usage = {"input_tokens": fresh, "output_tokens": output,
             "cache_creation_input_tokens": write, "cache_read_input_tokens": read}
    message = {"id": "msg_01", "type": "message", "role": "assistant", "model": MODEL,
               "content": [*text, *calls], "stop_reason": reason, "stop_sequence": None,
               "usage": usage}
    completion = to_chat_completion(message, MODEL)
    reported = m.usage_from_anthropic(usage)
    assert to_message(completion, MODEL, reported, []) == message


def test_every_stop_reason_of_the_sdk_has_a_finish_reason() -> None:
    assert {a for a, _ in m.STOP_REASONS} == set(typing.get_args(StopReason))
    for finish in {o for _, o in m.STOP_REASONS}:  # and each finish reason a way back
        assert m.finish_reason(m.stop_reason(finish)) == finish


# -- streams -----------------------------------------------------------------------------
def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-7", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


piece = st.one_of(
    st.tuples(st.just("text"), words),
    st.tuples(st.just("thinking"), words),
    st.tuples(st.just("tool"), st.lists(words, min_size=1, max_size=4)),
)


def openai_stream(pieces: list[tuple[str, Any]], usage: bool) -> tuple[bytes, list[Any]]:
    """The SSE bytes of a chat stream, and the blocks a client should rebuild from it."""
    events = [chunk({"role": "assistant", "content": ""})]
    expected: list[Any] = []
    tools = 0
    for kind, value in pieces:
        if kind == "text" or kind == "thinking":
            field = "content" if kind == "text" else "reasoning_content"
            events.append(chunk({field: value}))
            if expected and expected[-1][0] == kind:
                expected[-1] = (kind, expected[-1][1] + value)
            else:
                expected.append((kind, value))
            continue
        head = {"index": tools, "id": f"call_{tools}", "type": "function",
                "function": {"name": "f", "arguments": ""}}
        events.append(chunk({"tool_calls": [head]}))
        for fragment in value:
            events.append(chunk({"tool_calls": [{"index": tools,
                                                 "function": {"arguments": fragment}}]}))
        expected.append(("tool", "".join(value)))
        tools += 1
    events.append(chunk(finish="tool_calls" if tools else "stop"))
    if usage:
        events.append({"id": "chatcmpl-7", "choices": [],
                       "usage": {"prompt_tokens": 9, "completion_tokens": 4}})
    data = b"".join(b"data: " + msgspec.json.encode(e) + b"\n\n" for e in events)
    return data + b"data: [DONE]\n\n", expected


def translate(data: bytes, cuts: list[int]) -> bytes:
    stream = MessagesStream("m", 5, [])
    out, start = [], 0
    for cut in [*sorted({c % (len(data) + 1) for c in cuts}), len(data)]:
        out.append(stream.feed(data[start:cut]))
        start = cut
    out.append(stream.close())
    return b"".join(out)


def parse(out: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for raw in out.decode().split("\n\n"):
        if raw.strip():
            name, data = raw.split("\n", 1)
            payload = json.loads(data.removeprefix("data: "))
            assert name == f"event: {payload['type']}"  # the event line names the data
            events.append((payload["type"], payload))
    return events


def check_sequence(events: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Every block started before its deltas and stopped before message_stop; returns
    the blocks as a client would rebuild them."""
    assert events[0][0] == "message_start"
    assert events[0][1]["message"]["role"] == "assistant"
    assert events[1][0] == "ping"
    assert [name for name, _ in events[-2:]] == ["message_delta", "message_stop"]
    assert [name for name, _ in events].count("message_stop") == 1
    open_blocks: dict[int, list[Any]] = {}
    built: dict[int, list[Any]] = {}
    for name, payload in events[2:-2]:
        index = payload.get("index")
        if name == "content_block_start":
            assert index not in built  # each index starts once
            block = payload["content_block"]
            kind = "tool" if block["type"] == "tool_use" else block["type"]
            open_blocks[index] = built[index] = [kind, ""]
        elif name == "content_block_delta":
            assert index in open_blocks  # started, not yet stopped
            delta = payload["delta"]
            open_blocks[index][1] += delta.get("text") or delta.get("thinking") \
                or delta.get("partial_json") or ""
        elif name == "content_block_stop":
            assert open_blocks.pop(index) is not None
        else:
            raise AssertionError(f"unexpected {name} between start and end")
    assert open_blocks == {}  # all stopped before message_stop
    return [tuple(built[i]) for i in sorted(built)]


@settings(max_examples=300, deadline=None)
@given(st.lists(piece, max_size=6), st.booleans(), st.lists(st.integers(0, 10_000),
                                                            max_size=12))
def test_a_translated_stream_is_valid_under_any_chunking(
        pieces: list[tuple[str, Any]], usage: bool, cuts: list[int]) -> None:
    data, expected = openai_stream(pieces, usage)
    out = translate(data, cuts)
    assert out == translate(data, [])  # the cut changes nothing the client sees
    events = parse(out)
    assert check_sequence(events) == expected
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == ("tool_use" if any(k == "tool" for k, _ in pieces)
                                             else "end_turn")
    if usage:
        assert delta["usage"]["input_tokens"] == 9
        assert delta["usage"]["output_tokens"] == 4


def test_a_stream_that_ends_without_done_still_finishes_when_it_said_why() -> None:
    data, _ = openai_stream([("text", "hi")], usage=False)
    cut = data[: data.index(b"data: [DONE]")]
    events = parse(translate(cut, []))
    check_sequence(events)
    unfinished = cut[: cut.rindex(b"data: ")]  # without the finish chunk: an error
    assert parse(translate(unfinished, []))[-1][0] == "error"


def test_usage_goes_both_ways_with_the_cache() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=5, cache_read_tokens=60,
                  cache_write_tokens=30)
    assert m.usage_from_anthropic(m.usage_to_anthropic(usage)) == usage
