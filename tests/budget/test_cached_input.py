"""OpenAI-compatible usage counts its cached input (`prompt_tokens_details.cached_tokens`,
sent by OpenAI and by vLLM) as cache reads, priced at the model's cached-input price."""

from __future__ import annotations

import msgspec

from nexus.budget.prices import KNOWN_PRICES, Price
from nexus.core.types import Usage


def test_cached_tokens_of_an_openai_usage_are_cache_reads() -> None:
    usage = msgspec.json.decode(
        b'{"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,'
        b' "prompt_tokens_details": {"cached_tokens": 600, "audio_tokens": 0},'
        b' "completion_tokens_details": {"reasoning_tokens": 4}}', type=Usage)
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (600, 4)


def test_a_usage_without_details_or_with_nulls_reads_as_before() -> None:
    plain = msgspec.json.decode(b'{"prompt_tokens": 5, "completion_tokens": 2}', type=Usage)
    nulls = msgspec.json.decode(b'{"prompt_tokens": 5, "completion_tokens": 2,'
                                b' "prompt_tokens_details": null,'
                                b' "completion_tokens_details": {"reasoning_tokens": null}}',
                                type=Usage)
    for usage in (plain, nulls):
        assert (usage.cache_read_tokens, usage.reasoning_tokens) == (0, 0)


def test_a_server_claiming_more_cached_than_prompt_tokens_is_capped() -> None:
    usage = msgspec.json.decode(b'{"prompt_tokens": 5, "completion_tokens": 2,'
                                b' "prompt_tokens_details": {"cached_tokens": 50}}', type=Usage)
    assert usage.cache_read_tokens == 5  # never a negative count of fresh input


def test_gpt_4o_bills_cached_input_at_half_price() -> None:
    price = KNOWN_PRICES["gpt-4o"]
    assert price == Price.per_million(2.50, 10.00, 2.50, 1.25)
    # 1M prompt tokens of which 400k cached: 600k × $2.50 + 400k × $1.25 = $2.00
    assert price.cost_of(Usage(1_000_000, 0, cache_read_tokens=400_000)) == 2_000_000
