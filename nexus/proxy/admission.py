"""A tenant's request at the door: the models its key may use, and its rate limits.

Rate limits are asked of the store (one `rate.lua` call, only for keys or teams that
have limits). While the store cannot answer, each limit follows its `when_stale`:
`fail_open` (the default for rate limits) admits by a local share of the limit (the
limit divided by the live replicas), `fail_closed` refuses with 503 and Retry-After.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

from nexus.core.errors import ModelNotAllowed, NoViableBackend, RateLimitExceeded
from nexus.core.types import Requirements
from nexus.proxy.request_id import fresh_id
from nexus.store.base import RateLimits
from nexus.store.errors import StoreError
from nexus.tenants.headers import ratelimit_headers, refusal_headers
from nexus.tenants.model import Tenant
from nexus.tenants.rates import LocalLimiter, RateCheck, RateVerdict
from nexus.tenants.table import allows_model

DEFAULT_OUTPUT_TOKENS = 512  # a request's output estimate when it sets no max_tokens


class Admission:
    def __init__(self, store: RateLimits, live_replicas: Callable[[], int] = lambda: 1,
                 judged: Counter[str] | None = None,
                 default_output_tokens: int = DEFAULT_OUTPUT_TOKENS) -> None:
        self.store = store
        self.default_output_tokens = default_output_tokens
        self.local = LocalLimiter(share=live_replicas)  # only while the store is away
        self.judged = Counter[str]() if judged is None else judged  # by whom (Stats)

    @staticmethod
    def check_model(tenant: Tenant, model: str) -> None:
        if not allows_model(tenant.key, model):
            raise ModelNotAllowed(f"key {tenant.key.name!r} may not use model {model!r} "
                                  f"(it may use: {', '.join(tenant.key.models)})",
                                  param="model")

    async def admit(self, tenant: Tenant,
                    needs: Requirements) -> tuple[RateCheck | None, dict[str, str]]:
        """(the check to settle later, the x-ratelimit-* headers); raises 429 when over."""
        if not tenant.rate_limited:
            return None, {}
        # Counted under an id of ours: a client's repeated X-Request-Id must not collapse
        # its requests into one entry of the window.
        check = RateCheck(fresh_id(), needs.input_tokens + (
            needs.max_output_tokens or self.default_output_tokens), tenant.rate_subjects)
        try:
            verdict = await self.store.rate_check(check)
            block = check.allowance
            self.judged["allowance" if block is not None and block.lease_id != check.request_id
                        else "store"] += 1
        except StoreError:
            self.judged["local_share"] += 1
            verdict = self._without_store(tenant, check)
        headers = (verdict.headers or ratelimit_headers(verdict.quotas)) if verdict.allowed \
            else refusal_headers(check, verdict)
        if not verdict.allowed:
            seconds = max(1, math.ceil(verdict.retry_after_ms / 1000))
            raise RateLimitExceeded(
                f"{verdict.refused_by.replace(':', ' ', 1)} is over its "
                f"{'rpm' if verdict.refused_limit == 'requests' else 'tpm'} limit; retry in "
                f"{seconds} s", retry_after=seconds, headers=headers)
        return check, headers

    def _without_store(self, tenant: Tenant, check: RateCheck) -> RateVerdict:
        for limits in (tenant.key, tenant.team):
            if limits is not None and limits.rate_limited and limits.when_stale == "fail_closed":
                raise NoViableBackend("the rate-limit store is unreachable and this key's "
                                      "limits fail closed (when_stale)", retry_after=1)
        check.local = True
        return self.local.check(check)

    def settle(self, check: RateCheck | None, actual_tokens: int) -> None:
        """The request's estimate replaced with what it used, where it was counted."""
        if check is None or not any(s.tpm for s in check.subjects):
            return
        if check.local:
            self.local.settle(check, actual_tokens)
        else:
            self.store.settle_rate(check, actual_tokens)

