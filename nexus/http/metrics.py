"""Prometheus text exposition of this replica's counters and backend gauges."""

from __future__ import annotations

from nexus.backends.health import Health
from nexus.backends.registry import Registry
from nexus.backends.stats import Stats
from nexus.http.connections import Edge
from nexus.store.base import StoreStatus


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(registry: Registry, stats: Stats, store: StoreStatus, tenants: bool = False,
                   store_lost_keys: bool = False, edge: Edge | None = None) -> str:
    """The exposition; the per-tenant series (names of keys and teams) only when
    `tenants` (an authorised scraper)."""
    lines = [
        "# HELP nexus_uptime_seconds Seconds since this replica started.",
        "# TYPE nexus_uptime_seconds gauge",
        f"nexus_uptime_seconds {stats.uptime():.3f}",
        "# HELP nexus_responses_total Responses relayed, by backend and status.",
        "# TYPE nexus_responses_total counter",
    ]
    lines += [f'nexus_responses_total{{backend="{_escape(b)}",status="{s}"}} {n}'
              for (b, s), n in sorted(stats.responses.items())]
    lines += ["# HELP nexus_backend_failures_total Attempts that failed before the first byte.",
              "# TYPE nexus_backend_failures_total counter"]
    lines += [f'nexus_backend_failures_total{{backend="{_escape(b)}",kind="{k}"}} {n}'
              for (b, k), n in sorted(stats.failures.items())]
    lines += _token_lines(stats) + (_tenant_lines(stats) if tenants else []) \
        + _rate_check_lines(stats) + _backend_lines(registry) + _store_lines(store)
    lines += ["# HELP nexus_tenant_store_lost_keys 1 while the store has lost the tenant "
              "records it had (keys stay required; the last key table is kept).",
              "# TYPE nexus_tenant_store_lost_keys gauge",
              f"nexus_tenant_store_lost_keys {int(store_lost_keys)}"]
    if edge is not None:
        lines += _edge_lines(edge)
    return "\n".join(lines) + "\n"


def _store_lines(store: StoreStatus) -> list[str]:
    age = -1.0 if store.snapshot_age_seconds is None else store.snapshot_age_seconds
    return ["# HELP nexus_store_connected 1 when the shared store (Redis) answers.",
            "# TYPE nexus_store_connected gauge",
            f'nexus_store_connected{{kind="{store.kind}"}} {int(store.connected)}',
            "# HELP nexus_store_snapshot_age_seconds Age of the budget snapshot routing uses "
            "(-1: none yet).",
            "# TYPE nexus_store_snapshot_age_seconds gauge",
            f"nexus_store_snapshot_age_seconds {age:.3f}",
            "# HELP nexus_store_pending_spend_records Costs not yet confirmed by the store.",
            "# TYPE nexus_store_pending_spend_records gauge",
            f"nexus_store_pending_spend_records {store.pending_spend_records}",
            "# HELP nexus_store_circuit_open 1 while requests no longer wait on the store.",
            "# TYPE nexus_store_circuit_open gauge",
            f"nexus_store_circuit_open {int(store.circuit_open)}"]


def _tenant_lines(stats: Stats) -> list[str]:
    """By key and team name (bounded by the key table; never a secret)."""
    lines: list[str] = []
    for kind, requests, spend in (("key", stats.key_requests, stats.key_spend),
                                  ("team", stats.team_requests, stats.team_spend)):
        lines += [f"# HELP nexus_{kind}_requests_total Requests admitted, by tenant {kind}.",
                  f"# TYPE nexus_{kind}_requests_total counter"]
        lines += [f'nexus_{kind}_requests_total{{{kind}="{_escape(n)}"}} {c}'
                  for n, c in sorted(requests.items())]
        lines += [f"# HELP nexus_{kind}_spend_micro_usd_total Spend this replica recorded, by "
                  f"tenant {kind}.", f"# TYPE nexus_{kind}_spend_micro_usd_total counter"]
        lines += [f'nexus_{kind}_spend_micro_usd_total{{{kind}="{_escape(n)}"}} {c}'
                  for n, c in sorted(spend.items())]
    return lines


def _rate_check_lines(stats: Stats) -> list[str]:
    lines = ["# HELP nexus_rate_checks_total Rate-limited requests, by what judged them: "
              "allowance (a block of the limit this replica holds), store, local_share "
              "(the store unreachable).", "# TYPE nexus_rate_checks_total counter"]
    lines += [f'nexus_rate_checks_total{{by="{by}"}} {stats.rate_checks[by]}'
              for by in ("allowance", "store", "local_share")]
    return lines


def _edge_lines(edge: Edge) -> list[str]:
    lines = ["# HELP nexus_client_connections Client connections open on this replica.",
             "# TYPE nexus_client_connections gauge",
             f"nexus_client_connections {edge.open}",
             "# HELP nexus_client_errors_total What clients caused, by kind: malformed "
             "requests, disconnects, header timeouts, write timeouts, refused connections.",
             "# TYPE nexus_client_errors_total counter"]
    lines += [f'nexus_client_errors_total{{kind="{kind}"}} {n}'
              for kind, n in sorted(edge.client_errors.items())]
    return lines


def _token_lines(stats: Stats) -> list[str]:
    lines = ["# HELP nexus_tokens_total Tokens, as backends reported them or estimated.",
             "# TYPE nexus_tokens_total counter"]
    for kind, counter in (("prompt", stats.prompt_tokens), ("completion", stats.completion_tokens)):
        lines += [f'nexus_tokens_total{{backend="{_escape(b)}",kind="{kind}"}} {n}'
                  for b, n in sorted(counter.items())]
    lines += ["# HELP nexus_tokens_estimated_total The part of nexus_tokens_total estimated "
              "because the backend reported no usage.",
              "# TYPE nexus_tokens_estimated_total counter"]
    for kind, counter in (("prompt", stats.estimated_prompt_tokens),
                          ("completion", stats.estimated_completion_tokens)):
        lines += [f'nexus_tokens_estimated_total{{backend="{_escape(b)}",kind="{kind}"}} {n}'
                  for b, n in sorted(counter.items())]
    return lines


def _backend_lines(registry: Registry) -> list[str]:
    lines = ["# HELP nexus_backend_state 1 for the state each backend is in.",
             "# TYPE nexus_backend_state gauge",
             "# HELP nexus_backend_in_flight Requests in flight on each backend.",
             "# TYPE nexus_backend_in_flight gauge"]
    for backend in registry:
        name = _escape(backend.name)
        lines += [f'nexus_backend_state{{backend="{name}",state="{s.value}"}} '
                  f"{int(backend.health.state is s)}" for s in Health]
        lines.append(f'nexus_backend_in_flight{{backend="{name}"}} {backend.in_flight}')
    return lines + _engine_lines(registry)


def _engine_lines(registry: Registry) -> list[str]:
    """What each engine reports of its own load (fresh readings only)."""
    lines = ["# HELP nexus_engine_requests Requests the backend's engine reports, by state.",
             "# TYPE nexus_engine_requests gauge",
             "# HELP nexus_engine_kv_cache_usage The engine's KV-cache use, 0 to 1.",
             "# TYPE nexus_engine_kv_cache_usage gauge",
             "# HELP nexus_engine_prefix_cache_hit_rate Cached over queried prompt tokens.",
             "# TYPE nexus_engine_prefix_cache_hit_rate gauge"]
    for backend in registry:
        engine, name = backend.state.engine, _escape(backend.name)
        if engine is None or not engine.fresh():
            continue
        lines += [f'nexus_engine_requests{{backend="{name}",state="running"}} {engine.running}',
                  f'nexus_engine_requests{{backend="{name}",state="waiting"}} {engine.waiting}']
        if engine.kv_usage is not None:
            lines.append(f'nexus_engine_kv_cache_usage{{backend="{name}"}} {engine.kv_usage}')
        rate = engine.prefix_hit_rate
        if rate is not None:
            lines.append(f'nexus_engine_prefix_cache_hit_rate{{backend="{name}"}} {rate:.4f}')
    return lines
