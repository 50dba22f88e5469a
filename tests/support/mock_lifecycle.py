"""The mock backend's model management, with each server's habits:

- Ollama: `POST /api/pull` streams NDJSON progress (`status`, `total`, `completed`)
  and ends with `{"status": "success"}`, or an `{"error": ...}` line for a model the
  registry lacks (`pull_fails`); `POST /api/generate` with no prompt and `keep_alive`
  loads a model (it shows in /api/ps), `keep_alive: 0` unloads it.
- llama-server in router mode (flavor "llama-router"): `GET /models` lists each model
  with `status.value` unloaded/loading/loaded/sleeping (a failed load: `unloaded` with
  `failed: true` and an `exit_code`); `POST /models/load` and `/models/unload`; `GET
  /models/sse` pushes `model_status` events (loading with {stages, current, value}
  progress, loaded, or unloaded with the exit code of a load that failed), unless
  `router_sse` is off (a build without it: 404). `sleeping` lists the models that
  are present but asleep (their status says so; they are not in memory).
- vLLM: `/v1/load_lora_adapter` and `/v1/unload_lora_adapter`, refused (400) unless
  `runtime_lora` (VLLM_ALLOW_RUNTIME_LORA_UPDATING); `/v1/models` lists the adapters it
  holds, so an unloaded one leaves the list (a request for it: 404).

With `hold_loads`, a load stays under way until the test sets `mock.release`.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.mock_backend import MockBackend


def loaded_models(mock: MockBackend) -> list[str]:
    b = mock.behaviour
    return list(b.models if b.loaded is None else b.loaded)


def _set_loaded(mock: MockBackend, model: str, present: bool) -> None:
    loaded = [m for m in loaded_models(mock) if m != model]
    mock.behaviour.loaded = [*loaded, model] if present else loaded
    if present and model not in mock.behaviour.models:
        mock.behaviour.models = [*mock.behaviour.models, model]


async def _body(mock: MockBackend, request: web.Request) -> dict[str, Any]:
    return await mock._record(request)


async def ollama_pull(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    body = await _body(mock, request)
    model = body.get("model") or body.get("name")
    out = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await out.prepare(request)

    async def line(payload: dict[str, Any]) -> None:
        await out.write(json.dumps(payload).encode() + b"\n")

    await line({"status": "pulling manifest"})
    if model in mock.behaviour.pull_fails:
        await line({"error": "pull model manifest: file does not exist"})
        await out.write_eof()
        return out
    total = 4_000_000_000
    for step in range(1, 5):
        await line({"status": "pulling 6a0746a1ec1a", "digest": "sha256:6a07",
                    "total": total, "completed": total * step // 4})
        if step == 2 and mock.behaviour.hold_loads:
            await mock.release.wait()
    for status in ("verifying sha256 digest", "writing manifest", "success"):
        await line({"status": status})
    if model not in mock.behaviour.models:
        mock.behaviour.models = [*mock.behaviour.models, str(model)]
        mock.behaviour.loaded = [m for m in loaded_models(mock) if m != model]
    await out.write_eof()
    return out


async def ollama_generate(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    body = await _body(mock, request)
    model = str(body.get("model"))
    if model not in mock.behaviour.models:
        return web.json_response({"error": f"model '{model}' not found"}, status=404)
    keep = body.get("keep_alive")
    _set_loaded(mock, model, keep not in (0, "0", "0s"))
    return web.json_response({"model": model, "created_at": "2026-12-04T00:00:00Z",
                              "response": "", "done": True,
                              "done_reason": "unload" if keep in (0, "0") else "load"})


def router_status(mock: MockBackend, model: str) -> dict[str, Any]:
    if model in mock.behaviour.sleeping:
        return {"value": "sleeping", "args": ["llama-server", "-m", model]}
    return mock.router_states.get(model) or {
        "value": "loaded" if model in loaded_models(mock) else "unloaded"}


def _emit(mock: MockBackend, model: str, event: str, data: dict[str, Any]) -> None:
    payload = b"data: " + json.dumps({"model": model, "event": event,
                                      "data": data}).encode() + b"\n\n"
    for listener in mock.router_listeners:
        listener.put_nowait(payload)


async def router_sse(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    if mock.behaviour.flavor != "llama-router" or not mock.behaviour.router_sse:
        raise web.HTTPNotFound()
    await mock._record(request)
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await out.prepare(request)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    mock.router_listeners.add(queue)
    try:
        while True:
            await out.write(await queue.get())
    except (ConnectionResetError, asyncio.CancelledError):
        return out
    finally:
        mock.router_listeners.discard(queue)


async def router_models(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    if mock.behaviour.flavor != "llama-router":
        raise web.HTTPNotFound()
    return web.json_response({"data": [
        {"id": m, "object": "model", "in_cache": True, "path": f"/models/{m}.gguf",
         "status": router_status(mock, m)} for m in mock.behaviour.models]})


async def router_load(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    if mock.behaviour.flavor != "llama-router":
        raise web.HTTPNotFound()
    model = str((await _body(mock, request)).get("model"))
    if model not in mock.behaviour.models:
        return web.json_response({"error": {"code": 404, "message": "model not found",
                                            "type": "not_found_error"}}, status=404)
    mock.router_states[model] = {"value": "loading", "args": ["llama-server", "-m", model]}
    _emit(mock, model, "model_status", {"status": "loading"})
    mock.tasks.add(asyncio.get_running_loop().create_task(_finish_load(mock, model)))
    return web.json_response({"success": True})


STAGES = ["text_model", "mmproj_model"]


async def _finish_load(mock: MockBackend, model: str) -> None:
    _emit(mock, model, "model_status", {"status": "loading", "progress": {
        "stages": STAGES, "current": "text_model", "value": 0.5}})  # 25 % of the load
    if mock.behaviour.hold_loads:
        await mock.release.wait()
    else:
        await asyncio.sleep(0)
    if model in mock.behaviour.pull_fails:  # the child process exits: back to unloaded
        mock.router_states[model] = {"value": "unloaded", "failed": True, "exit_code": 1}
        _emit(mock, model, "model_status", {"status": "unloaded", "exit_code": 1})
        return
    mock.router_states.pop(model, None)
    _set_loaded(mock, model, True)
    _emit(mock, model, "model_status", {"status": "loaded", "info": {"id": model}})


async def router_unload(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    if mock.behaviour.flavor != "llama-router":
        raise web.HTTPNotFound()
    model = str((await _body(mock, request)).get("model"))
    mock.router_states.pop(model, None)
    _set_loaded(mock, model, False)
    return web.json_response({"success": True})


async def lora(mock: MockBackend, request: web.Request) -> web.StreamResponse:
    body = await _body(mock, request)
    if not mock.behaviour.runtime_lora:
        return web.json_response({"object": "error", "message": "Runtime LoRA updating is "
                                  "disabled: set VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
                                  "type": "BadRequestError", "code": 400}, status=400)
    name = str(body.get("lora_name"))
    loading = request.path.endswith("/load_lora_adapter")
    _set_loaded(mock, name, loading)
    if not loading:  # vLLM lists only the adapters it holds
        mock.behaviour.models = [m for m in mock.behaviour.models if m != name]
    return web.Response(text=f"Success: LoRA adapter '{name}' done")
