"""Which OpenAI request parameters an Anthropic model takes, and what becomes of the rest.

Anthropic's models differ in their sampling parameters: the current API version
(the `anthropic` SDK's 2026-10-21) has no `temperature`, `top_p` or `top_k` at all;
the Claude 4 models up to 4.5 take them, but not `temperature` together with `top_p`;
Claude 3 takes all three. `SAMPLING_FAMILIES` holds those defaults by model name;
a backend's `[backends.sampling]` table overrides them per model glob.

Whatever cannot pass is clamped (temperature to Anthropic's 0..1) or dropped, and
each is named in the response's `X-Nexus-Dropped-Params` / `X-Nexus-Clamped-Params`,
so nothing the client asked for disappears without a word.
"""

from __future__ import annotations

from typing import Any

import msgspec
from wcmatch import fnmatch

from nexus.config.schema import SamplingParam, SamplingRule

SAMPLING: tuple[SamplingParam, ...] = ("temperature", "top_p", "top_k")
TEMPERATURE_RANGE = (0.0, 1.0)  # OpenAI's is 0..2
ALL = SamplingRule(accepts=list(SAMPLING))
CLAUDE_4 = SamplingRule(accepts=list(SAMPLING), exclusive=["temperature", "top_p"])
NONE = SamplingRule(accepts=[])
# First match wins; a model no pattern names follows the current API: no sampling.
SAMPLING_FAMILIES: list[tuple[str, SamplingRule]] = [
    ("claude-3*", ALL),
    ("claude-{opus,sonnet}-4", ALL), ("claude-{opus,sonnet}-4-2025*", ALL),
    ("claude-opus-4-1*", CLAUDE_4), ("claude-{opus,sonnet,haiku}-4-5*", CLAUDE_4),
    ("*", NONE),
]
# OpenAI parameters with no Anthropic equivalent: dropped, and said so.
NO_EQUIVALENT = ("frequency_penalty", "presence_penalty", "seed", "logprobs", "top_logprobs",
                 "logit_bias", "store", "service_tier", "prediction", "modalities", "audio",
                 "reasoning_effort", "web_search_options", "verbosity")
# Translated elsewhere (messages, tools, stop, response_format, ...): not "dropped".
TRANSLATED = frozenset({"model", "messages", "stream", "stream_options", "max_tokens",
                        "max_completion_tokens", "stop", "tools", "tool_choice",
                        "parallel_tool_calls", "response_format", "user", "n",
                        "functions", "function_call", "metadata", *SAMPLING})


class Adjustments(msgspec.Struct):
    """What the translation changed of the client's request, for the response headers."""

    dropped: list[str] = msgspec.field(default_factory=list)
    clamped: list[str] = msgspec.field(default_factory=list)

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.dropped:
            headers["X-Nexus-Dropped-Params"] = ", ".join(self.dropped)
        if self.clamped:
            headers["X-Nexus-Clamped-Params"] = ", ".join(self.clamped)
        return headers


def rule_for(model: str, overrides: dict[str, SamplingRule]) -> SamplingRule:
    for pattern, rule in [*overrides.items(), *SAMPLING_FAMILIES]:
        if fnmatch.fnmatch(model, pattern, flags=fnmatch.BRACE):
            return rule
    return NONE


def copy_sampling(payload: dict[str, Any], request: dict[str, Any], rule: SamplingRule,
                  adjustments: Adjustments) -> None:
    sent: list[str] = []
    for key in SAMPLING:
        value = payload.get(key)
        if value is None:
            continue
        if key not in rule.accepts or (key in rule.exclusive and
                                       any(k in rule.exclusive for k in sent)):
            adjustments.dropped.append(key)
            continue
        request[key] = _clamped(key, value, adjustments)
        sent.append(key)


def _clamped(key: str, value: Any, adjustments: Adjustments) -> Any:
    if key != "temperature" or not isinstance(value, int | float):
        return value
    low, high = TEMPERATURE_RANGE
    if low <= value <= high:
        return value
    adjustments.clamped.append(f"temperature={value}->{min(max(value, low), high):g}")
    return min(max(value, low), high)


def note_untranslated(payload: dict[str, Any], adjustments: Adjustments) -> None:
    """Parameters with no equivalent, and any the translation does not know."""
    for key, value in payload.items():
        if key not in TRANSLATED and value not in (None, False, 0, "", [], {}):
            adjustments.dropped.append(key)
