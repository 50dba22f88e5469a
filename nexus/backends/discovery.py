"""Ask a backend which models it serves, and read "loading" answers."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.kinds import Api
from nexus.backends.windows import ContextWindow

_LOADING = re.compile(rb"loading", re.IGNORECASE)


class Discovery(msgspec.Struct, frozen=True):
    models: frozenset[str] | None = None  # None when the backend is loading or failed
    loading_eta: float | None = None
    loading: bool = False
    error: str = ""
    windows: dict[str, ContextWindow] = msgspec.field(default_factory=dict)  # by model
    capabilities: dict[str, frozenset[str]] = msgspec.field(default_factory=dict)  # Ollama
    sizes: dict[str, int] = msgspec.field(default_factory=dict)  # Ollama: bytes on disk


def request_headers(backend: Backend) -> dict[str, str]:
    """Auth headers for calls to `backend`; the key never leaves this function's result."""
    if not backend.api_key:
        return {}
    if backend.api is Api.ANTHROPIC:
        return {"x-api-key": backend.api_key, "anthropic-version": "2023-06-01"}
    if backend.api is Api.GEMINI:  # a header, never ?key= in a URL a log could keep
        return {"x-goog-api-key": backend.api_key}
    return {"Authorization": f"Bearer {backend.api_key}"}


def parse_models(backend_type: str, body: bytes) -> frozenset[str]:
    data = msgspec.json.decode(body)
    if backend_type == "ollama":
        return frozenset(_ollama_names(data))
    if backend_type == "gemini":
        return frozenset(_gemini_names(data))
    return frozenset(str(item["id"]) for item in data["data"] if "id" in item)


def _ollama_names(data: dict[str, Any]) -> list[str]:
    names = []
    for item in data.get("models", []):
        name = str(item.get("name") or item.get("model"))
        names.append(name)
        if name.endswith(":latest"):  # clients may say "llama3" for "llama3:latest"
            names.append(name[: -len(":latest")])
    return names


def ollama_sizes(body: bytes) -> dict[str, int]:
    """Each model's size on disk from Ollama's /api/tags: about what it takes in memory
    (before its KV cache), for pre-warm's room before the fleet has loaded it."""
    sizes = {}
    for item in msgspec.json.decode(body).get("models", []):
        name, size = str(item.get("name") or item.get("model")), item.get("size")
        if isinstance(size, int) and size > 0:
            sizes[name] = size
            sizes[name.removesuffix(":latest")] = size
    return sizes


def _gemini_names(data: dict[str, Any]) -> list[str]:
    """Google's models that generate content, without the "models/" of their names."""
    return [str(item["name"]).removeprefix("models/") for item in data.get("models", [])
            if "name" in item and "generateContent" in
            (item.get("supportedGenerationMethods") or ["generateContent"])]


def is_loading(status: int, body: bytes) -> bool:
    return status == 503 and bool(_LOADING.search(body))


def loading_eta(body: bytes, retry_after: str | None) -> float | None:
    """Seconds until the model is loaded, when the backend says (body or Retry-After)."""
    for source in _eta_sources(body):
        for key in ("estimated_time", "eta_seconds", "eta"):
            value = source.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    if retry_after and retry_after.isdigit():
        return float(retry_after)
    return None


def _eta_sources(body: bytes) -> list[dict[str, Any]]:
    """The JSON body and its nested "error" object, where either is an object."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return []
    if not isinstance(data, dict):
        return []
    nested = data.get("error")
    return [data, nested] if isinstance(nested, dict) else [data]
