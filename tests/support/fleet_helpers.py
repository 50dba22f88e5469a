"""Hand-built fleets and intents for pipeline tests: no I/O, no servers."""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.registry import Registry
from nexus.config.schema import BackendConfig, Config, HealthCheckConfig, PolicyConfig
from nexus.config.validate import validate
from nexus.core.types import RequestFlags
from nexus.routing.intent import RoutingIntent
from nexus.routing.policies import PolicySet
from nexus.routing.requirements import requirements_of

CLOUD_TYPES = {"openai", "anthropic"}


def make_backend(name: str, *, healthy: bool = True, **fields: Any) -> Backend:
    raw = {"name": name, "url": f"http://{name}.test:8000", "models": ["m"], **fields}
    if raw.get("type") in CLOUD_TYPES:
        raw.setdefault("api_key_env", "KEY")
    backend = Backend(msgspec.convert(raw, BackendConfig), HealthCheckConfig(),
                      environ={"KEY": "secret"})
    if healthy:
        backend.health.success()
    return backend


def make_registry(*backends: Backend) -> Registry:
    return Registry(list(backends))


def make_intent(*candidates: Backend, model: str = "m",
                payload: dict[str, Any] | None = None,
                policies: list[dict[str, Any]] | None = None,
                flags: RequestFlags | None = None) -> RoutingIntent:
    """An intent as the RequestAnalyzer leaves it, for testing the stages after it."""
    policy_set = PolicySet([msgspec.convert(p, PolicyConfig) for p in policies or []])
    return RoutingIntent(request_id="test", requested_model=model, resolved_model=model,
                         payload=payload, requirements=requirements_of(payload),
                         candidates=list(candidates), model_served=True,
                         policy=policy_set.effective([model]),
                         headers=flags or RequestFlags())


def names(backends: list[Backend]) -> list[str]:
    return [b.name for b in backends]


def config_for(url: str, prefix: str) -> Config:
    raw: dict[str, Any] = {
        "redis": {"url": url, "prefix": prefix, "snapshot_interval_seconds": 0.2},
        "backends": [{"name": "gpu", "url": "http://10.0.0.1:8000", "models": ["llm"]}]}
    config = msgspec.convert(raw, Config)
    validate(config, "<test>")
    return config
