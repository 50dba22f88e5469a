"""Loading and unloading models on the servers that can, each with what it offers.

- Ollama: `POST /api/pull` (streamed progress) puts the model on disk, then a
  `POST /api/generate` with `keep_alive` and no prompt loads it; `keep_alive: 0`
  unloads it.
- llama-server in router mode: `POST /models/load` and `/models/unload`. A load is
  followed on `GET /models/sse` (subscribed before the load is asked for, so no event
  is missed): `download_progress` and `model_status` events carry the progress, and
  `unloaded` during a load is a failure, with its exit code. A build without the
  event stream, or one that goes quiet, is polled at `GET /models` until the
  model's status is `loaded` (or `unloaded`); a status that says `failed` ends the
  operation with its exit code.
- vLLM: LoRA adapters, `POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter`,
  where the server allows runtime loading (VLLM_ALLOW_RUNTIME_LORA_UPDATING).

Any other type cannot, and says so (Unsupported: the API's 501). A step that fails
raises LifecycleError with the server's own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import aiohttp

from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers

Kind = Literal["load", "unload", "migrate"]
Progress = Callable[[float | None], None]
CAPABLE = ("ollama", "llamacpp", "vllm")
KEEP_ALIVE = "30m"      # how long Ollama keeps a model it was told to load
POLL_SECONDS = 0.25     # llama-server's /models, while a model loads


class Unsupported(Exception):
    pass


class LifecycleError(Exception):
    pass


class ModelOps:
    """The HTTP steps of loading and unloading, for one replica's session."""

    def __init__(self, session: aiohttp.ClientSession, step_timeout: float) -> None:
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=None, sock_read=step_timeout,
                                             sock_connect=step_timeout)

    @staticmethod
    def check(backend: Backend, kind: Kind) -> None:
        if backend.config.type not in CAPABLE:
            raise Unsupported(f"backend type '{backend.config.type}' cannot {kind} models "
                              f"(only {', '.join(CAPABLE)} can)")

    async def load(self, backend: Backend, model: str, path: str | None,
                   progress: Progress) -> None:
        kind = backend.config.type
        if kind == "ollama":
            await self._ollama_pull(backend, model, progress)
            await self._post(backend, "/api/generate", {"model": model,
                                                        "keep_alive": KEEP_ALIVE})
        elif kind == "llamacpp":
            async with self._llama_events(backend) as events:
                await self._post(backend, "/models/load", {"model": model})
                if events is not None and await self._llama_follow(backend, model, events,
                                                                   progress):
                    return
            await self._llama_until(backend, model, "loaded", progress)
        elif kind == "vllm":
            await self._post(backend, "/v1/load_lora_adapter",
                             {"lora_name": model, "lora_path": path or model})
        else:
            raise Unsupported(kind)

    async def unload(self, backend: Backend, model: str, progress: Progress) -> None:
        kind = backend.config.type
        if kind == "ollama":
            await self._post(backend, "/api/generate", {"model": model, "keep_alive": 0})
        elif kind == "llamacpp":
            await self._post(backend, "/models/unload", {"model": model})
            await self._llama_until(backend, model, "unloaded", progress)
        elif kind == "vllm":
            await self._post(backend, "/v1/unload_lora_adapter", {"lora_name": model})
        else:
            raise Unsupported(kind)

    # -- the steps -----------------------------------------------------------------------
    async def _post(self, backend: Backend, path: str, body: dict[str, Any]) -> bytes:
        async with self.session.post(backend.base_url + path, json=body,
                                     headers=request_headers(backend),
                                     timeout=self.timeout) as response:
            answer = await response.read()
            if response.status >= 400:
                raise LifecycleError(f"{backend.name} answered {path} with HTTP "
                                     f"{response.status}: {_words(answer)}")
            return answer

    async def _ollama_pull(self, backend: Backend, model: str, progress: Progress) -> None:
        """Ollama streams one JSON object a line: status, and total/completed bytes."""
        async with self.session.post(backend.base_url + "/api/pull",
                                     json={"model": model, "stream": True},
                                     headers=request_headers(backend),
                                     timeout=self.timeout) as response:
            if response.status >= 400:
                raise LifecycleError(f"{backend.name} could not pull {model}: HTTP "
                                     f"{response.status}: {_words(await response.read())}")
            async for line in response.content:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("error"):
                    raise LifecycleError(f"{backend.name} could not pull {model}: "
                                         f"{event['error']}")
                total, done = event.get("total"), event.get("completed")
                if isinstance(total, int) and total > 0 and isinstance(done, int):
                    progress(min(1.0, done / total))

    @contextlib.asynccontextmanager
    async def _llama_events(self, backend: Backend) -> AsyncIterator[
            aiohttp.StreamReader | None]:
        """llama-server's /models/sse stream, or None where the build has none."""
        try:
            response = await self.session.get(backend.base_url + "/models/sse",
                                              headers=request_headers(backend),
                                              timeout=self.timeout)
        except (aiohttp.ClientError, TimeoutError):
            yield None
            return
        with contextlib.closing(response):
            yield response.content if response.status == 200 else None

    async def _llama_follow(self, backend: Backend, model: str,
                            events: aiohttp.StreamReader, progress: Progress) -> bool:
        """Follow a load on the event stream: True once loaded, False when the stream
        ends or goes quiet (the caller polls /models instead)."""
        status = await self._llama_status(backend, model)
        if status.get("value") in ("loaded", "sleeping"):
            return True  # loaded before the events could say so
        try:
            async for line in events:
                event = _sse_event(line, model)
                if event is not None and _llama_event(backend, model, event, progress):
                    return True
        except (aiohttp.ClientError, TimeoutError):
            pass
        return False

    async def _llama_status(self, backend: Backend, model: str) -> dict[str, Any]:
        async with self.session.get(backend.base_url + "/models",
                                    headers=request_headers(backend),
                                    timeout=self.timeout) as response:
            if response.status == 404:
                raise LifecycleError(f"{backend.name} has no /models: llama-server is "
                                     "not in router mode")
            return _llama_status(await response.json(content_type=None), model)

    async def _llama_until(self, backend: Backend, model: str, wanted: str,
                           progress: Progress) -> None:
        while True:
            status = await self._llama_status(backend, model)
            if status.get("failed"):
                raise LifecycleError(f"{backend.name} failed to load {model} (exit code "
                                     f"{status.get('exit_code', '?')})")
            value = status.get("value")
            if value == wanted or (wanted == "loaded" and value == "sleeping"):
                return
            if value is None:
                raise LifecycleError(f"{backend.name} does not list {model}")
            if value == "loading":
                progress(status.get("progress") if isinstance(status.get("progress"), float)
                         else None)
            await asyncio.sleep(POLL_SECONDS)


def _sse_event(line: bytes, model: str) -> dict[str, Any] | None:
    """One `data:` line of /models/sse, when it concerns `model`."""
    if not line.startswith(b"data:"):
        return None
    try:
        event = json.loads(line[5:])
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("model") != model:
        return None
    return event


def _llama_event(backend: Backend, model: str, event: dict[str, Any],
                 progress: Progress) -> bool:
    """Apply one event of a load: True once loaded; a load that ends unloaded fails."""
    raw = event.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    if event.get("event") == "download_progress":
        files = [f for f in data.values() if isinstance(f, dict)]
        total = sum(f.get("total") or 0 for f in files)
        if total > 0:
            progress(min(1.0, sum(f.get("done") or 0 for f in files) / total))
        return False
    if event.get("event") == "model_remove":
        raise LifecycleError(f"{backend.name} removed {model} while it loaded")
    if event.get("event") != "model_status":
        return False
    status = data.get("status")
    if status in ("loaded", "sleeping"):
        return True
    if status == "unloaded":
        raise LifecycleError(f"{backend.name} failed to load {model} (exit code "
                             f"{data.get('exit_code', '?')})")
    if status == "loading":
        progress(_stage_progress(data.get("progress")))
    return False


def _stage_progress(reported: Any) -> float | None:
    """llama-server's {stages, current, value} as the share of the whole load."""
    if not isinstance(reported, dict):
        return None
    stages, current, value = reported.get("stages"), reported.get("current"), \
        reported.get("value")
    if not isinstance(stages, list) or current not in stages or \
            not isinstance(value, int | float):
        return None
    return min(1.0, (stages.index(current) + max(0.0, min(1.0, float(value)))) / len(stages))


def _llama_status(listing: Any, model: str) -> dict[str, Any]:
    for entry in (listing or {}).get("data") or ():
        if isinstance(entry, dict) and entry.get("id") == model:
            status = entry.get("status")
            return status if isinstance(status, dict) else {"value": status}
    return {}


def _words(body: bytes) -> str:
    text = body[:300].decode("utf-8", "replace").strip()
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        return text
    if isinstance(error, dict):
        return str(error.get("message") or text)
    return str(error or text)


def now() -> float:
    return time.time()
