"""Counters this replica keeps for /metrics and /v1/stats."""

from __future__ import annotations

import time
from collections import Counter

from nexus.budget.records import SpendRecord
from nexus.core.types import Usage
from nexus.tenants.model import Tenant


class Stats:
    def __init__(self) -> None:
        self.started = time.time()
        self.responses: Counter[tuple[str, int]] = Counter()    # (backend, status)
        self.failures: Counter[tuple[str, str]] = Counter()     # (backend, kind)
        self.prompt_tokens: Counter[str] = Counter()
        self.completion_tokens: Counter[str] = Counter()
        # The part of the token counts that was estimated: the backend reported none
        # (llama-cpp-python's streams ignore stream_options.include_usage).
        self.estimated_prompt_tokens: Counter[str] = Counter()
        self.estimated_completion_tokens: Counter[str] = Counter()
        self.rejected: Counter[int] = Counter()                 # status of unrouted requests
        # By tenant: bounded by the key table (names, never secrets).
        self.key_requests: Counter[str] = Counter()
        self.key_spend: Counter[str] = Counter()                # micro-USD
        self.team_requests: Counter[str] = Counter()
        self.team_spend: Counter[str] = Counter()
        # How limited requests were judged: "allowance" (a block this replica holds),
        # "store" (a rate.lua call, or the in-process store), "local_share" (the store
        # could not be asked: a share of the limit, by when_stale).
        self.rate_checks: Counter[str] = Counter()

    def response(self, backend: str, status: int, usage: Usage | None,
                 estimated: bool = False) -> None:
        self.responses[backend, status] += 1
        if usage is not None:
            self.prompt_tokens[backend] += usage.prompt_tokens
            self.completion_tokens[backend] += usage.completion_tokens
            if estimated:
                self.estimated_prompt_tokens[backend] += usage.prompt_tokens
                self.estimated_completion_tokens[backend] += usage.completion_tokens

    def tenant_request(self, tenant: Tenant) -> None:
        self.key_requests[tenant.key.name] += 1
        if tenant.team is not None:
            self.team_requests[tenant.team.name] += 1

    def tenant_spend(self, record: SpendRecord) -> None:
        if record.key:
            self.key_spend[record.key] += record.cost_micro_usd
        if record.team:
            self.team_spend[record.team] += record.cost_micro_usd

    def failure(self, backend: str, kind: str) -> None:
        self.failures[backend, kind] += 1

    def uptime(self) -> float:
        return time.time() - self.started
