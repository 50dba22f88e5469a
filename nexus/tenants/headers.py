"""OpenAI's x-ratelimit-* headers, from the standing of a request's subjects."""

from __future__ import annotations

from nexus.tenants.rates import Quota, RateCheck, RateVerdict


def tightest(quotas: tuple[Quota, ...]) -> tuple[Quota | None, Quota | None]:
    """The subjects with the fewest requests and the fewest tokens left (each among
    those with such a limit)."""
    requests: Quota | None = None
    tokens: Quota | None = None
    for quota in quotas:  # one or two subjects: a loop, not a sort
        if quota.subject.rpm and (requests is None or
                                  quota.remaining_requests < requests.remaining_requests):
            requests = quota
        if quota.subject.tpm and (tokens is None or
                                  quota.remaining_tokens < tokens.remaining_tokens):
            tokens = quota
    return requests, tokens


def ratelimit_headers(quotas: tuple[Quota, ...]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the tightest subject of each kind."""
    requests, tokens = tightest(quotas)
    headers: dict[str, str] = {}
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests.subject.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, requests.remaining_requests))
        headers["x-ratelimit-reset-requests"] = seconds(requests.reset_ms)
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens.subject.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, tokens.remaining_tokens))
        headers["x-ratelimit-reset-tokens"] = seconds(tokens.reset_ms)
    return headers


def seconds(ms: int) -> str:
    """OpenAI's duration form, in whole seconds rounded up ("60s")."""
    return f"{-(-max(0, ms) // 1000)}s"


def refusal_headers(check: RateCheck, verdict: RateVerdict) -> dict[str, str]:
    """The x-ratelimit-* headers of a 429: every limited kind's standing, and the limit
    that refused with none left."""
    subject = next(s for s in check.subjects if s.name == verdict.refused_by)
    kind = verdict.refused_limit
    limit = subject.rpm if kind == "requests" else subject.tpm
    headers = ratelimit_headers(verdict.quotas)  # the refusing subject's standing
    headers.update({f"x-ratelimit-limit-{kind}": str(limit),
                    f"x-ratelimit-remaining-{kind}": "0",
                    f"x-ratelimit-reset-{kind}": seconds(verdict.retry_after_ms)})
    return headers
