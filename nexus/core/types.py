"""The words every layer shares: what a request is for, what it needs, what it used."""

from __future__ import annotations

from typing import Literal

import msgspec

Endpoint = Literal["chat", "completions", "embeddings"]


class RequestFlags(msgspec.Struct, frozen=True, kw_only=True):
    """What the client asked for in X-Nexus-* headers; it can tighten, never loosen."""

    restricted: bool = False
    strict: bool = False
    flexible: bool = False


NO_FLAGS = RequestFlags()


class Requirements(msgspec.Struct, kw_only=True):
    vision: bool = False
    tools: bool = False
    json_mode: bool = False
    json_format: str | None = None  # response_format.type: json_object or json_schema
    input_tokens: int = 0
    max_output_tokens: int | None = None

    @property
    def context_needed(self) -> int:
        return self.input_tokens + (self.max_output_tokens or 0)


class PromptDetails(msgspec.Struct):
    cached_tokens: int | None = 0


class CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = 0


class Usage(msgspec.Struct, omit_defaults=True):
    """Tokens a request used, as a backend reports them (or as estimated). Decoded
    straight from an OpenAI-compatible `usage`, whose cached prompt tokens (OpenAI's,
    vLLM's `prompt_tokens_details`) count as cache reads."""

    prompt_tokens: int = 0      # all input, prompt-cache reads and writes included
    completion_tokens: int = 0
    cache_read_tokens: int = 0  # of prompt_tokens: read from the prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens: written to it
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None

    def __post_init__(self) -> None:
        details = self.prompt_tokens_details
        if details is not None and not self.cache_read_tokens and details.cached_tokens:
            self.cache_read_tokens = min(details.cached_tokens, self.prompt_tokens)

    @property
    def reasoning_tokens(self) -> int:
        """Of completion_tokens: spent thinking, where the backend says."""
        details = self.completion_tokens_details
        return (details.reasoning_tokens or 0) if details is not None else 0
