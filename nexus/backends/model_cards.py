"""Ask a local server for its models' context windows and capabilities, where it says.

Only what the model list itself lacks costs another request: llama-server's
`/props` (when its `/v1/models` has no `meta.n_ctx`), LM Studio's `/api/v0/models`,
and Ollama's `/api/show`, once per model name. A server that does not answer these
keeps its models routable, with no window known.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers
from nexus.backends.windows import (
    ContextWindow,
    ollama_card,
    window_in_props,
    windows_in_model_list,
)

Card = tuple[ContextWindow | None, frozenset[str] | None]


class ModelCards:
    def __init__(self, session: aiohttp.ClientSession, timeout_seconds: float) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._ollama: dict[tuple[str, str], Card] = {}  # (backend, model) -> its card

    async def read(self, backend: Backend, models: frozenset[str], listed: bytes,
                   ) -> tuple[dict[str, ContextWindow], dict[str, frozenset[str]]]:
        kind = backend.config.type
        if kind == "ollama":
            return await self._ollama_cards(backend, models)
        windows = windows_in_model_list(_decoded(listed))
        if kind == "lmstudio":
            windows |= windows_in_model_list(await self._get(backend, "/api/v0/models"))
        if kind == "llamacpp" and models - windows.keys():
            props = window_in_props(await self._get(backend, "/props"))
            if props is not None:
                windows |= {m: props for m in models if m not in windows}
        return windows, {}

    async def _ollama_cards(self, backend: Backend, models: frozenset[str],
                            ) -> tuple[dict[str, ContextWindow], dict[str, frozenset[str]]]:
        windows: dict[str, ContextWindow] = {}
        capabilities: dict[str, frozenset[str]] = {}
        for model in sorted(models):
            key = (backend.name, model)
            if key not in self._ollama:
                card = ollama_card(await self._post(backend, "/api/show", {"model": model}))
                if card == (None, None):
                    continue  # not cached: asked again at the next check
                self._ollama[key] = card
            window, can = self._ollama[key]
            if window is not None:
                windows[model] = window
            if can is not None:
                capabilities[model] = can
        return windows, capabilities

    async def _get(self, backend: Backend, path: str) -> Any:
        return await self._ask(self.session.get(backend.base_url + path,
                                                headers=request_headers(backend),
                                                timeout=self.timeout))

    async def _post(self, backend: Backend, path: str, body: dict[str, Any]) -> Any:
        return await self._ask(self.session.post(backend.base_url + path, json=body,
                                                 headers=request_headers(backend),
                                                 timeout=self.timeout))

    @staticmethod
    async def _ask(request: Any) -> Any:
        try:
            async with request as response:
                return _decoded(await response.read()) if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None


def _decoded(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
