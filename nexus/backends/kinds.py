"""What each backend type is: where it lists models, whether it is paid, which API it speaks."""

from __future__ import annotations

import enum

import msgspec


class Api(enum.Enum):
    OPENAI = "openai"        # OpenAI-compatible /v1/* endpoints
    ANTHROPIC = "anthropic"  # Anthropic Messages API, translated both ways
    GEMINI = "gemini"        # Google's generateContent, translated both ways

    # Members are singletons: hash by identity, in C. Enum's own __hash__ is Python
    # code, run on every request where the adapter is looked up.
    __hash__ = object.__hash__


BOTH_JSON_MODES = frozenset({"json_object", "json_schema"})


class Kind(msgspec.Struct, frozen=True):
    api: Api
    cloud: bool
    discovery_path: str
    # response_format types the API can honour: Anthropic's structured output takes a
    # schema; it has nothing for json_object, so routing sends that elsewhere.
    json_formats: frozenset[str] = BOTH_JSON_MODES
    # Whether its model list keeps a model it unloaded (Ollama's disk, llama-server's
    # router: present, cold) or drops it (vLLM lists only the adapters it holds).
    lists_unloaded: bool = True


KINDS: dict[str, Kind] = {
    "ollama": Kind(Api.OPENAI, cloud=False, discovery_path="/api/tags"),
    "vllm": Kind(Api.OPENAI, cloud=False, discovery_path="/v1/models", lists_unloaded=False),
    "llamacpp": Kind(Api.OPENAI, cloud=False, discovery_path="/v1/models"),
    "lmstudio": Kind(Api.OPENAI, cloud=False, discovery_path="/v1/models"),
    "generic": Kind(Api.OPENAI, cloud=False, discovery_path="/v1/models"),
    "openai": Kind(Api.OPENAI, cloud=True, discovery_path="/v1/models"),
    "anthropic": Kind(Api.ANTHROPIC, cloud=True, discovery_path="/v1/models",
                      json_formats=frozenset({"json_schema"})),
    # Google's model list: up to 1,000 a page (the default is 50)
    "gemini": Kind(Api.GEMINI, cloud=True, discovery_path="/v1beta/models?pageSize=1000"),
}


def base_url(url: str) -> str:
    """The server root: configs may name it with or without a trailing /v1 (/v1beta for
    Gemini)."""
    url = url.rstrip("/")
    for suffix in ("/v1", "/v1beta"):
        if url.endswith(suffix):
            return url[: -len(suffix)]
    return url
