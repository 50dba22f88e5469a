"""What each backend type is: where it lists models, whether it is paid, which API it speaks."""

from __future__ import annotations

import enum

import msgspec


class Api(enum.Enum):
    OPENAI = "openai"        # OpenAI-compatible /v1/* endpoints
    ANTHROPIC = "anthropic"  # Anthropic Messages API, translated both ways

    # Members are singletons: hash by identity, in C. Enum's own __hash__ is Python
    # code, run on every request where the adapter is looked up.
    __hash__ = object.__hash__


class Kind(msgspec.Struct, frozen=True):
    api: Api
    cloud: bool
    discovery_path: str


KINDS: dict[str, Kind] = {
    "ollama": Kind(Api.OPENAI, cloud=False, discovery_path="/api/tags"),
    "vllm": Kind(Api.OPENAI, cloud=False, discovery_path="/v1/models"),
    "llamacpp": Kind(Api.OPENAI, cloud=False, discovery_path="/v1/models"),
    "lmstudio": Kind(Api.OPENAI, cloud=False, discovery_path="/v1/models"),
    "generic": Kind(Api.OPENAI, cloud=False, discovery_path="/v1/models"),
    "openai": Kind(Api.OPENAI, cloud=True, discovery_path="/v1/models"),
    "anthropic": Kind(Api.ANTHROPIC, cloud=True, discovery_path="/v1/models"),
}


def base_url(url: str) -> str:
    """The server root: configs may name it with or without a trailing /v1."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url
