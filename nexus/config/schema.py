"""The configuration file's schema: one msgspec struct per TOML table.

Every struct forbids unknown fields, so a typo in a key is an error rather
than a silently ignored setting. Defaults make every section optional.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

BackendType = Literal["ollama", "vllm", "llamacpp", "lmstudio", "generic", "openai", "anthropic",
                      "gemini"]
Strategy = Literal["smart", "round_robin", "priority_only", "random"]
Zone = Literal["restricted", "open"]
Privacy = Literal["unrestricted", "restricted"]
HardLimitAction = Literal["warn", "block_cloud", "block_all"]
Enforcement = Literal["snapshot", "strict"]
WhenStale = Literal["fail_open", "fail_closed"]
RedisMode = Literal["standalone", "sentinel", "cluster"]

Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveFloat = Annotated[float, Meta(gt=0)]
PositiveInt = Annotated[int, Meta(ge=1)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
Tier = Annotated[int, Meta(ge=1, le=5)]
Percent = Annotated[float, Meta(ge=0, le=100)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
Name = Annotated[str, Meta(min_length=1)]


class Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base for every table: unknown keys are errors."""


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 8000
    request_timeout_seconds: PositiveFloat = 300.0
    max_body_bytes: PositiveInt = 10 * 1024 * 1024
    api_keys_env: str | None = None
    admin_key_env: str | None = None  # the admin API's key (/admin/...); unset: no admin API
    metrics_key_env: str | None = None  # a scraper's key: per-tenant series on /metrics
    # "auto": keys are required once any exists (and stay required, even if the store
    # loses them); "required": a key is always required, also on a fresh replica whose
    # store is empty, which a fleet keeping its keys in Redis should set.
    auth: Literal["auto", "required"] = "auto"
    access_log: bool = False
    # Slow and idle clients: a request's headers must arrive within header_timeout of
    # the connection (408, closed), its body within body_timeout (408); a client that
    # reads none of a response for write_timeout is cut (never the backend's fault); a
    # keep-alive connection idle for idle_timeout is closed. Beyond max_connections
    # open client connections, a new one gets 503 at once.
    header_timeout_seconds: PositiveFloat = 10.0
    body_timeout_seconds: PositiveFloat = 60.0
    write_timeout_seconds: PositiveFloat = 60.0
    idle_timeout_seconds: PositiveFloat = 75.0
    max_connections: PositiveInt = 10_000


class RedisConfig(Section):
    # standalone: `url`; sentinel: `sentinels` and `master_name`; cluster: `url` of one
    # seed node, or `nodes`. rediss:// URLs or `tls` for TLS in every mode.
    mode: RedisMode = "standalone"
    url: str = "redis://127.0.0.1:6379/0"
    sentinels: list[str] = msgspec.field(default_factory=list)  # "host:port"
    master_name: str = ""
    nodes: list[str] = msgspec.field(default_factory=list)      # "host:port"
    username: str | None = None
    password_env: str | None = None  # the variable holding the password (never the file)
    tls: bool = False
    # Spend and leases count as written once this many replicas have them (WAIT):
    # asynchronous replication can lose what a failed master acknowledged.
    wait_replicas: NonNegativeInt = 0
    wait_timeout_ms: Annotated[int, Meta(ge=1)] = 500  # under timeout_seconds
    prefix: Name = "nexus"
    snapshot_interval_seconds: PositiveFloat = 1.0  # how often the budget view is re-read
    stale_after_seconds: PositiveFloat = 10.0       # a view older than this is stale
    timeout_seconds: PositiveFloat = 1.0            # per Redis command
    # A busy key's replica may lease a block of its rate limits (docs/tenants.md); off,
    # every limited request is checked by Redis and none is ever refused early.
    rate_allowances: bool = True


class FleetConfig(Section):
    replica_id: str = ""
    lease_ttl_ms: Annotated[int, Meta(ge=1000)] = 10_000
    # Pre-warm recommendations from the request history (docs/lifecycle.md): "advice"
    # only shows them; "auto" lets the leader load what they name, within the headroom.
    prewarm: Literal["advice", "auto"] = "advice"
    prewarm_interval_seconds: PositiveFloat = 300.0
    # "auto" loads only on a backend whose KV cache (the engine's own reading) leaves
    # this share free, and at most this many loads per round.
    prewarm_headroom_percent: Percent = 20.0
    prewarm_max_loads: PositiveInt = 1


class HealthCheckConfig(Section):
    enabled: bool = True
    interval_seconds: PositiveFloat = 10.0
    timeout_seconds: PositiveFloat = 5.0
    failure_threshold: PositiveInt = 3
    recovery_threshold: PositiveInt = 2


class Price(Section):
    """USD per million tokens. Prompt-cache writes and reads (Anthropic's) default to
    1.25x and 0.1x the input price, as Anthropic lists them."""

    input: NonNegativeFloat
    output: NonNegativeFloat
    cache_write: NonNegativeFloat | None = None
    cache_read: NonNegativeFloat | None = None


SamplingParam = Literal["temperature", "top_p", "top_k"]


class SamplingRule(Section):
    """Which sampling parameters a model takes; `exclusive`: at most one of these."""

    accepts: list[SamplingParam] = msgspec.field(default_factory=list)
    exclusive: list[SamplingParam] = msgspec.field(default_factory=list)


class Capabilities(Section):
    """What the backend's models can do; unset means "assume yes"."""

    vision: bool = True
    tools: bool = True
    json_mode: bool = True
    context_window: PositiveInt | None = None


class BackendConfig(Section):
    name: Name
    url: Name
    type: BackendType = "generic"
    zone: Zone = "open"
    tier: Tier = 1
    priority: Annotated[int, Meta(ge=0, le=100)] = 50
    max_concurrent: PositiveInt = 32
    api_key_env: str | None = None
    models: list[Name] = msgspec.field(default_factory=list)
    pricing: dict[str, Price] = msgspec.field(default_factory=dict)
    capabilities: Capabilities = msgspec.field(default_factory=Capabilities)
    # anthropic: model glob -> the sampling parameters it takes (over the built-in table)
    sampling: dict[str, SamplingRule] = msgspec.field(default_factory=dict)
    # The engine whose own load signals are read ("auto": by type: vllm, llamacpp,
    # ollama; "sglang" for an SGLang server; "off": none), and how often.
    engine: Literal["auto", "vllm", "sglang", "llamacpp", "ollama", "off"] = "auto"
    engine_interval_seconds: PositiveFloat = 1.0
    # The GPU memory this server may fill, in GB: pre-warm keeps its headroom of this
    # (Ollama's /api/ps says what each loaded model holds). None: not said.
    vram_gb: PositiveFloat | None = None
    # Responses API requests: sent as they are ("native"), translated to chat
    # ("translate"), or "auto": native where the server says it has the route.
    responses: Literal["auto", "native", "translate"] = "auto"


class Weights(Section):
    priority: NonNegativeFloat = 50.0
    load: NonNegativeFloat = 30.0
    latency: NonNegativeFloat = 20.0


class PolicyConfig(Section):
    model_pattern: Name
    privacy: Privacy = "unrestricted"
    min_tier: Tier | None = None
    max_cost_per_request: NonNegativeFloat | None = None
    fallback_allowed: bool = True


class BudgetConfig(Section):
    monthly_limit_usd: NonNegativeFloat
    soft_limit_percent: Percent = 75.0
    hard_limit_action: HardLimitAction = "block_cloud"
    enforcement: Enforcement = "snapshot"
    reconcile_interval_seconds: PositiveFloat = 60.0
    when_stale: WhenStale | None = None
    # Strict: a reservation lives request_timeout_seconds plus this, then counts as spent.
    reservation_margin_seconds: PositiveFloat = 60.0


class RoutingConfig(Section):
    strategy: Strategy = "smart"
    # Keep a conversation on one local server (its prefix cache): by the client's
    # session, or else by a hash of the conversation's leading messages ("prefix").
    affinity: Literal["prefix", "session", "off"] = "prefix"
    # Leave the preferred server when it is saturated, or when it has at least `ratio`
    # times the load of the least-loaded candidate and `gap` requests more.
    affinity_balance_ratio: Annotated[float, Meta(ge=1.0)] = 1.5
    affinity_balance_gap: PositiveInt = 4
    # The output a request that sets no max_tokens is estimated at: what a budget holds
    # for it and what its tpm counts until its usage is known.
    default_output_tokens: PositiveInt = 512
    max_retries: NonNegativeInt = 2
    weights: Weights = msgspec.field(default_factory=Weights)
    aliases: dict[str, str] = msgspec.field(default_factory=dict)
    fallbacks: dict[str, list[str]] = msgspec.field(default_factory=dict)
    policies: list[PolicyConfig] = msgspec.field(default_factory=list)
    budget: BudgetConfig | None = None


class QualityConfig(Section):
    error_rate_threshold: Fraction = 0.5
    ttft_penalty_threshold_ms: PositiveFloat = 3000.0
    min_requests: PositiveInt = 10  # fewer requests in the hour than this: no verdict yet


class QueueConfig(Section):
    enabled: bool = True
    max_size: NonNegativeInt = 100
    max_wait_seconds: NonNegativeFloat = 30.0


Day = Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]


class TenantLimitsConfig(Section):
    monthly_budget_usd: NonNegativeFloat | None = None
    rpm: PositiveInt | None = None
    tpm: PositiveInt | None = None
    when_stale: WhenStale | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class TeamConfig(TenantLimitsConfig, kw_only=True):
    name: Name


class KeyConfig(TenantLimitsConfig, kw_only=True):
    """A key declared in the file: its secret from `secret_env`, or only its hash."""

    name: Name
    secret_env: str | None = None
    secret_sha256: Sha256 | None = None
    team: str | None = None
    models: list[Name] = msgspec.field(default_factory=list)
    privacy: Privacy = "unrestricted"
    expires_at: Day | None = None


class TracingConfig(Section):
    """OpenTelemetry traces (the `otel` extra). Unset fields come from the standard
    OTEL_* variables; a field set here wins over its variable."""

    enabled: bool | None = None          # None: on when OTEL_TRACES_EXPORTER=otlp
    endpoint: str | None = None          # OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT)
    sample_ratio: Fraction | None = None  # of new traces (OTEL_TRACES_SAMPLER_ARG)
    capture_content: bool = False        # prompts in spans; never for restricted traffic
    service_name: str | None = None      # OTEL_SERVICE_NAME, else "nexus"


class LifecycleConfig(Section):
    """Model load, unload and migrate operations (docs/lifecycle.md)."""

    # An operation nobody has heard from for this long has failed: its replica stopped.
    operation_timeout_seconds: PositiveFloat = 60.0
    sync_interval_seconds: PositiveFloat = 1.0  # how often a replica reads others' ops


class DiscoveryConfig(Section):
    """Servers found on the network by mDNS/DNS-SD (docs/lifecycle.md)."""

    enabled: bool = False
    service_types: list[Name] = msgspec.field(
        default_factory=lambda: ["_ollama._tcp.local.", "_llm._tcp.local."])
    # A service that vanished is unroutable at once, and forgotten after this long.
    grace_seconds: NonNegativeFloat = 60.0
    interfaces: list[Name] = msgspec.field(default_factory=list)  # empty: all


class ResponsesConfig(Section):
    """Stored Responses API responses (`store: true`, for `previous_response_id`)."""

    ttl_seconds: PositiveInt = 30 * 24 * 3600  # as long as OpenAI keeps them
    max_stored_bytes: PositiveInt = 8 * 1024 * 1024  # a larger response is not kept


class Config(Section):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    tracing: TracingConfig = msgspec.field(default_factory=TracingConfig)
    responses: ResponsesConfig = msgspec.field(default_factory=ResponsesConfig)
    lifecycle: LifecycleConfig = msgspec.field(default_factory=LifecycleConfig)
    discovery: DiscoveryConfig = msgspec.field(default_factory=DiscoveryConfig)
    redis: RedisConfig | None = None
    fleet: FleetConfig = msgspec.field(default_factory=FleetConfig)
    health_check: HealthCheckConfig = msgspec.field(default_factory=HealthCheckConfig)
    backends: list[BackendConfig] = msgspec.field(default_factory=list)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    quality: QualityConfig = msgspec.field(default_factory=QualityConfig)
    queue: QueueConfig = msgspec.field(default_factory=QueueConfig)
    keys: list[KeyConfig] = msgspec.field(default_factory=list)
    teams: list[TeamConfig] = msgspec.field(default_factory=list)


def default_backend() -> BackendConfig:
    """The backend used when none is configured: a local Ollama at its default address."""
    return BackendConfig(name="ollama-local", url="http://127.0.0.1:11434", type="ollama",
                         zone="restricted")
