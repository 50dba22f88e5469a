"""Alias resolution; the config loader has already refused cycles and long chains."""

from __future__ import annotations


def resolve(model: str, aliases: dict[str, str]) -> str:
    seen = {model}
    while model in aliases:
        model = aliases[model]
        if model in seen:  # unreachable for a validated config; guards hand-built ones
            break
        seen.add(model)
    return model
