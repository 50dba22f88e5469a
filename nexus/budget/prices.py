"""Prices and costs, in integers: nano-USD per token in, micro-USD per request out.

USD per million tokens (the unit of price lists and of the config) times 1,000 is
nano-USD per token, so $2.50/M is 2,500 nano-USD per token, exactly.
"""

from __future__ import annotations

import msgspec

from nexus.config.schema import BackendConfig
from nexus.core.types import Usage

CACHE_WRITE_FACTOR, CACHE_READ_FACTOR = 1.25, 0.1  # of the input price, as Anthropic lists


class Price(msgspec.Struct, frozen=True):
    input_nano: int   # nano-USD per input token
    output_nano: int  # nano-USD per output token
    cache_write_nano: int = 0  # per prompt-cache write token
    cache_read_nano: int = 0   # per prompt-cache read token

    @classmethod
    def per_million(cls, input_usd: float, output_usd: float,
                    cache_write_usd: float | None = None,
                    cache_read_usd: float | None = None) -> Price:
        write = input_usd * CACHE_WRITE_FACTOR if cache_write_usd is None else cache_write_usd
        read = input_usd * CACHE_READ_FACTOR if cache_read_usd is None else cache_read_usd
        return cls(round(input_usd * 1000), round(output_usd * 1000), round(write * 1000),
                   round(read * 1000))

    def cost_micro_usd(self, input_tokens: int, output_tokens: int) -> int:
        nano = input_tokens * self.input_nano + output_tokens * self.output_nano
        return -(-nano // 1000)  # round up: an estimate never undercounts

    def cost_of(self, usage: Usage) -> int:
        """A served request's cost: cache reads and writes at their own prices."""
        fresh = usage.prompt_tokens - usage.cache_read_tokens - usage.cache_write_tokens
        nano = (fresh * self.input_nano + usage.cache_write_tokens * self.cache_write_nano
                + usage.cache_read_tokens * self.cache_read_nano
                + usage.completion_tokens * self.output_nano)
        return -(-nano // 1000)


FREE = Price(0, 0)
# Public list prices (USD per million tokens) of well-known cloud models, matched by prefix
# so dated snapshots ("gpt-4o-2024-08-06") find their family. Longest prefix wins.
KNOWN_PRICES: dict[str, Price] = {
    # OpenAI's cached input (prompt_tokens_details.cached_tokens) at its listed price;
    # a model with no caching pays full input for it. OpenAI has no cache writes.
    "gpt-4o-mini": Price.per_million(0.15, 0.60, 0.15, 0.075),
    "gpt-4o": Price.per_million(2.50, 10.00, 2.50, 1.25),
    "gpt-4.1-nano": Price.per_million(0.10, 0.40, 0.10, 0.025),
    "gpt-4.1-mini": Price.per_million(0.40, 1.60, 0.40, 0.10),
    "gpt-4.1": Price.per_million(2.00, 8.00, 2.00, 0.50),
    "gpt-4-turbo": Price.per_million(10.00, 30.00, 10.00, 10.00),
    "gpt-4": Price.per_million(30.00, 60.00, 30.00, 30.00),
    "gpt-3.5-turbo": Price.per_million(0.50, 1.50, 0.50, 0.50),
    "o1-mini": Price.per_million(1.10, 4.40, 1.10, 0.55),
    "o1": Price.per_million(15.00, 60.00, 15.00, 7.50),
    "o3-mini": Price.per_million(1.10, 4.40, 1.10, 0.55),
    "o3": Price.per_million(2.00, 8.00, 2.00, 0.50),
    "o4-mini": Price.per_million(1.10, 4.40, 1.10, 0.275),
    "text-embedding-3-small": Price.per_million(0.02, 0.0),
    "text-embedding-3-large": Price.per_million(0.13, 0.0),
    "claude-3-5-haiku": Price.per_million(0.80, 4.00),
    "claude-3-haiku": Price.per_million(0.25, 1.25),
    "claude-3-5-sonnet": Price.per_million(3.00, 15.00),
    "claude-3-7-sonnet": Price.per_million(3.00, 15.00),
    "claude-sonnet": Price.per_million(3.00, 15.00),
    "claude-haiku": Price.per_million(1.00, 5.00),
    "claude-opus": Price.per_million(15.00, 75.00),
    "claude-3-opus": Price.per_million(15.00, 75.00),
    # Gemini, prompts up to 200k tokens; cached content at a tenth of the input price.
    "gemini-3-pro": Price.per_million(2.00, 12.00),
    "gemini-3-flash": Price.per_million(0.50, 3.00),
    "gemini-2.5-pro": Price.per_million(1.25, 10.00),
    "gemini-2.5-flash": Price.per_million(0.30, 2.50),
    "gemini-2.5-flash-lite": Price.per_million(0.10, 0.40),
    "gemini-2.0-flash": Price.per_million(0.10, 0.40),
    "gemini-2.0-flash-lite": Price.per_million(0.075, 0.30),
}
# A cloud model nobody priced is assumed expensive rather than free.
UNKNOWN_CLOUD_PRICE = Price.per_million(15.00, 75.00)


class PriceTable:
    """Price lookups for one backend, resolved once per model name and cached."""

    def __init__(self, config: BackendConfig, cloud: bool) -> None:
        self._configured = {model: Price.per_million(p.input, p.output, p.cache_write,
                                                     p.cache_read)
                            for model, p in config.pricing.items()}
        self._cloud = cloud
        self._cache: dict[str, Price] = {}
        # Local hardware with no configured price never bills: routing skips the lookup.
        self.always_free = not cloud and all(p == FREE for p in self._configured.values())

    def price(self, model: str) -> Price:
        found = self._cache.get(model)
        if found is None:
            found = self._cache[model] = self._lookup(model)
        return found

    def _lookup(self, model: str) -> Price:
        if model in self._configured:
            return self._configured[model]
        if not self._cloud:
            return FREE  # our own hardware: no per-token bill
        family = max((p for p in KNOWN_PRICES if model.startswith(p)), key=len, default=None)
        return KNOWN_PRICES[family] if family else UNKNOWN_CLOUD_PRICE


def usd(micro: int) -> str:
    """Micro-USD as a decimal USD string, exact (no float on the way)."""
    if micro == 0:
        return "0.000000"  # most requests: local backends
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), 1_000_000)
    return f"{sign}{whole}.{frac:06d}"


def micro_usd(amount_usd: float) -> int:
    return round(amount_usd * 1_000_000)
