"""Prefix affinity: keep a conversation on the server whose prefix cache holds it.

A request's affinity key is, in order, the client's session (`X-Session-Id` or
`X-Session-Affinity`, OpenAI's `prompt_cache_key`, `user`), else a hash of its leading
block: the messages up to and including the first user turn (the system prompt and
the question that opens the conversation), which every later turn repeats. The key
maps to a backend by rendezvous (highest-random-weight) hashing over the candidates:
every replica computes the same weights from the key and the backends' names, so all
agree without asking anyone, and a backend that leaves moves only its own share.

Stickiness is bounded by load: the preferred backend keeps the conversation unless it
is saturated (its engine has a queue, or its slots are full) or clearly busier than
the least-loaded candidate (more than `ratio` times its load and `gap` requests more).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from nexus.backends.backend import Backend
from nexus.routing.scoring import capacity

MASK64 = (1 << 64) - 1


class AffinityKey(msgspec.Struct, frozen=True):
    value: int      # 64 bits, the same in every replica
    source: str     # "session", "prompt_cache_key", "user" or "prefix"

    def label(self) -> str:
        return f"{self.source}:{self.value & 0xFFFFFF:06x}"


def hash64(text: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def session_key(session: str | None, prompt_cache_key: Any, user: Any) -> AffinityKey | None:
    """The client's own name for its conversation, when it gives one."""
    for source, value in (("session", session), ("prompt_cache_key", prompt_cache_key),
                          ("user", user)):
        if isinstance(value, str) and value:
            return AffinityKey(hash64(f"{source}\0{value}".encode()), source)
    return None


def prefix_key(leading: Sequence[Any]) -> AffinityKey | None:
    """The hash of a conversation's leading block (already cut by `leading_block`)."""
    if not leading:
        return None
    return AffinityKey(hash64(msgspec.json.encode(leading)), "prefix")


def leading_block(messages: Sequence[Any], role_of: Any) -> Sequence[Any]:
    """The messages up to and including the first user turn."""
    for index, message in enumerate(messages):
        if role_of(message) == "user":
            return messages[:index + 1]
    return messages[:1]


def mix64(value: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit weight from key ^ backend seed."""
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
    value = (value ^ (value >> 27)) * 0x94D049BB133111EB & MASK64
    return value ^ (value >> 31)


def seed_of(name: str) -> int:
    return hash64(name.encode())


class Affinity:
    """Pick a candidate for a key: rendezvous hashing under a bounded-load guard."""

    def __init__(self, ratio: float, gap: int) -> None:
        self.ratio = ratio
        self.gap = gap
        self._seeds: dict[str, int] = {}

    def ranked(self, key: AffinityKey, candidates: Sequence[Backend]) -> list[Backend]:
        """The candidates in the key's order of preference (the same in every replica)."""
        seeds = self._seeds
        weights = []
        for backend in candidates:
            seed = seeds.get(backend.name)
            if seed is None:
                seed = seeds[backend.name] = seed_of(backend.name)
            weights.append((mix64(key.value ^ seed), backend))
        weights.sort(key=lambda pair: -pair[0])
        return [backend for _, backend in weights]

    def pick(self, key: AffinityKey, candidates: Sequence[Backend]) -> tuple[Backend, str]:
        ranked = self.ranked(key, candidates)
        preferred = ranked[0]
        least = min(ranked, key=busy)
        if least is preferred or not self._too_busy(preferred, least):
            return preferred, f"affinity {key.label()}"
        return least, (f"load: affinity {key.label()} preferred {preferred.name} "
                       f"(busy {busy(preferred)} vs {busy(least)})")

    def _too_busy(self, preferred: Backend, least: Backend) -> bool:
        if saturated(preferred):
            return not saturated(least)
        mine, theirs = busy(preferred), busy(least)
        return mine >= theirs * self.ratio and mine - theirs >= self.gap


def busy(backend: Backend) -> int:
    """Requests on the backend: the fleet's in flight now, and the traffic from
    elsewhere its engine last reported (while that reading is fresh)."""
    return capacity(backend, time.monotonic())[0]


def saturated(backend: Backend) -> bool:
    """No free slot: what runs there fills every slot the engine has (or, when it says
    nothing, the configured max_concurrent)."""
    load, slots = capacity(backend, time.monotonic())
    return load >= slots
