"""Relaying SSE: events pass unchanged, usage is read, the unasked usage chunk is hidden,
and events are found whole, whatever the chunk boundaries upstream."""

from __future__ import annotations

import itertools
import json

from hypothesis import given
from hypothesis import strategies as st

from nexus.adapters.openai import OpenAIStream
from nexus.adapters.sse import EventSplitter

CONTENT = {"object": "chat.completion.chunk", "choices": [{"delta": {"content": "hi"}}]}
USAGE = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}


def event(payload: dict[str, object] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


KINDS = {
    "role": event({"object": "chat.completion.chunk",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
    "content": event(CONTENT),
    "content, usage null": event({**CONTENT, "usage": None}),
    "usage only": event({"object": "chat.completion.chunk", "choices": [], "usage": USAGE}),
    "usage with choices": event({**CONTENT, "usage": USAGE}),
    "done": event("[DONE]"),
}


def relay(stream: bytes, cuts: list[int], include_usage: bool) -> tuple[bytes, OpenAIStream]:
    translator = OpenAIStream(include_usage)
    bounds = [0, *sorted(set(cuts)), len(stream)]
    out = b"".join(translator.feed(stream[a:b]) for a, b in itertools.pairwise(bounds))
    return out, translator


@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=8),
       include_usage=st.booleans(), crlf=st.booleans(), data=st.data())
def test_any_chunking_relays_the_same_events(kinds: list[str], include_usage: bool,
                                             crlf: bool, data: st.DataObject) -> None:
    stream = b"".join(KINDS[k] for k in kinds)
    upstream = stream.replace(b"\n", b"\r\n") if crlf else stream
    cuts = data.draw(st.lists(st.integers(0, len(upstream)), max_size=6))

    out, translator = relay(upstream, cuts, include_usage)

    hidden = "usage only" if not include_usage else None
    assert out == b"".join(KINDS[k] for k in kinds if k != hidden)
    # Token-carrying: not the role's opening, a usage-only chunk or [DONE].
    assert translator.events == len([k for k in kinds if k not in ("done", "role", "usage only")])
    with_usage = any(k.startswith("usage") for k in kinds)
    assert (translator.usage is not None) == with_usage
    if with_usage:
        assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (11, 3)


def test_a_usage_chunk_split_mid_event_is_held_until_complete() -> None:
    usage = KINDS["usage only"]
    translator = OpenAIStream(include_usage=True)
    assert translator.feed(KINDS["content"] + usage[:20]) == KINDS["content"]
    assert translator.feed(usage[20:]) == usage
    assert translator.usage is not None


def test_a_prompt_tokens_key_outside_usage_is_not_taken_for_usage() -> None:
    tricky = event({**CONTENT, "x_timings": {"prompt_tokens": 5}})
    out, translator = relay(tricky + KINDS["done"], [], include_usage=False)
    assert out == tricky + KINDS["done"]
    assert translator.usage is None


@given(kinds=st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=8),
       crlf=st.booleans(), data=st.data())
def test_the_event_splitter_finds_the_same_events_for_any_chunking(
        kinds: list[str], crlf: bool, data: st.DataObject) -> None:
    stream = b"".join(KINDS[k] for k in kinds)
    upstream = stream.replace(b"\n", b"\r\n") if crlf else stream
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(upstream)), max_size=6))))
    splitter = EventSplitter()
    bounds = [0, *cuts, len(upstream)]
    events = [e for a, b in itertools.pairwise(bounds) for e in splitter.feed(upstream[a:b])]
    assert events == [KINDS[k][:-2] for k in kinds]
