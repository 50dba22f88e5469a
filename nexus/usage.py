"""Tokens a request used, as a backend reports them (or as estimated)."""

from __future__ import annotations

import msgspec


class Usage(msgspec.Struct):
    prompt_tokens: int = 0      # all input, prompt-cache reads and writes included
    completion_tokens: int = 0
    cache_read_tokens: int = 0  # of prompt_tokens: read from the prompt cache
    cache_write_tokens: int = 0  # of prompt_tokens: written to it
