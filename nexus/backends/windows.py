"""Context windows and capabilities, read where each kind of server reports them.

- llama.cpp's llama-server: `/v1/models` -> `data[].meta.n_ctx`, else `/props` ->
  `default_generation_settings.n_ctx`;
- vLLM: `/v1/models` -> `data[].max_model_len`;
- Ollama: `POST /api/show` -> `model_info["<arch>.context_length"]` and `capabilities`
  (asked once per model: a model's card does not change while it keeps its name);
- LM Studio: `/api/v0/models` -> `data[].max_context_length`.

An explicit `capabilities.context_window` in the config wins over all of them.
"""

from __future__ import annotations

from typing import Any

import msgspec


class ContextWindow(msgspec.Struct, frozen=True):
    tokens: int
    source: str  # where the figure came from, shown by /v1/models and `nexus backends`


CONFIGURED = "config"
_IN_MODEL_LIST = (("max_model_len", "vLLM /v1/models max_model_len"),
                  ("max_context_length", "LM Studio max_context_length"),
                  ("context_length", "/v1/models context_length"))


def windows_in_model_list(data: Any) -> dict[str, ContextWindow]:
    """What an OpenAI-style model list says of each model's window (vLLM, llama-server)."""
    found: dict[str, ContextWindow] = {}
    items = data.get("data") if isinstance(data, dict) else None
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            window = _window_of(item)
            if window is not None:
                found[item["id"]] = window
    return found


def _window_of(item: dict[str, Any]) -> ContextWindow | None:
    meta = item.get("meta")
    if isinstance(meta, dict) and _positive(meta.get("n_ctx")):
        return ContextWindow(int(meta["n_ctx"]), "llama.cpp /v1/models meta.n_ctx")
    for key, source in _IN_MODEL_LIST:
        if _positive(item.get(key)):
            return ContextWindow(int(item[key]), source)
    return None


def window_in_props(data: Any) -> ContextWindow | None:
    """llama-server's `/props`."""
    if not isinstance(data, dict):
        return None
    settings = data.get("default_generation_settings")
    for source in (settings if isinstance(settings, dict) else {}, data):
        if _positive(source.get("n_ctx")):
            return ContextWindow(int(source["n_ctx"]), "llama.cpp /props")
    return None


def ollama_card(data: Any) -> tuple[ContextWindow | None, frozenset[str] | None]:
    """(window, capabilities) from Ollama's `/api/show` answer."""
    if not isinstance(data, dict):
        return None, None
    info = data.get("model_info")
    window = None
    if isinstance(info, dict):
        lengths = [v for k, v in info.items() if k.endswith(".context_length") and _positive(v)]
        if lengths:
            window = ContextWindow(int(lengths[0]), "Ollama /api/show")
    capabilities = data.get("capabilities")
    can = frozenset(str(c) for c in capabilities) if isinstance(capabilities, list) else None
    return window, can


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
