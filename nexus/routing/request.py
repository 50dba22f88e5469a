"""What the router is asked, and what it answers."""

from __future__ import annotations

from typing import Literal

import msgspec

from nexus.backends.backend import Backend

Endpoint = Literal["chat", "completions", "embeddings"]


class RoutingRequest(msgspec.Struct, kw_only=True):
    model: str
    endpoint: Endpoint = "chat"
    excluded: frozenset[str] = frozenset()  # backends this request already failed on
    attempt: int = 0                        # 0 for the first try, n for the n-th retry


class Route(msgspec.Struct, kw_only=True):
    backend: Backend
    model: str                         # the model name the backend is asked for
    requested_model: str
    reason: str
    fallback_model: str | None = None  # set when a fallback chain chose the model
