"""A mock LLM backend on a real loopback port: OpenAI-compatible, Ollama tags, Anthropic.

It can be slow, fail with a chosen status, report "loading", stream, drop the
connection before answering or mid-stream, and records what it received.
Run it as a script: `python tests/support/mock_backend.py --port 9001 --models llama3:8b`.
Behaviour can be changed at run time with `POST /_mock/config` (JSON of `Behaviour` fields).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import time
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

from aiohttp import web

try:
    from tests.support import mock_gemini, mock_lifecycle
    from tests.support.mock_engine import MockEngine
    from tests.support.mock_responses import responses
except ImportError:  # run as a script: tests/support/ is the script's own folder
    import mock_gemini  # type: ignore[no-redef]
    import mock_lifecycle  # type: ignore[no-redef]
    from mock_engine import MockEngine  # type: ignore[no-redef]
    from mock_responses import responses  # type: ignore[no-redef]

# Servers with no /api/tags (the plain "openai" flavor answers it, so tests may point
# an Ollama-typed backend at it)
NOT_OLLAMA = frozenset({"vllm", "sglang", "llama-server", "llama-server-props", "lmstudio",
                        "llama-router"})


@dataclass
class Behaviour:
    models: list[str] = field(default_factory=lambda: ["mock-model"])
    delay: float = 0.0               # seconds before answering
    status: int | None = None        # answer inference requests with this error status
    models_status: int | None = None  # answer model discovery with this error status
    discovery_body: bytes | None = None  # the model list answered as is (a broken one)
    fail_times: int = 0              # with status: fail only the first N requests
    retry_after: str | None = None   # with status: the Retry-After header to send
    loading: bool = False            # answer 503 "loading model" everywhere
    loading_eta: float | None = None
    chunks: int = 3                  # content chunks in a stream
    chunk_delay: float = 0.0
    drop_before_answer: bool = False  # close the connection without a response
    drop_after_chunks: int | None = None  # stream this many chunks, then drop
    stall_body: bool = False         # a whole answer: headers and half the body, then silence
    omit_usage: bool = False
    reply: str = ""                  # default: "hello from <name>"
    usage_prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None
    # llama-cpp-python's habits: a parameter of the wrong type is a 500 with pydantic's
    # validation message; a prompt over `context_window` is a 400
    # context_length_exceeded, or, streamed, an empty event stream.
    strict_types: bool = False
    context_window: int | None = None
    # How the server reports its context window (and, for Ollama, capabilities):
    # "llama-server" (/v1/models meta.n_ctx), "llama-server-props" (/props only),
    # "vllm" (max_model_len), "ollama" (/api/show), "lmstudio" (/api/v0/models).
    flavor: str = "openai"
    cache_read_tokens: int = 0       # prompt-cache reads (OpenAI: cached_tokens) and writes
    cache_write_tokens: int = 0
    capabilities: list[str] | None = None  # Ollama's /api/show list
    # Answer chat with a call of this tool ({"id", "name", "arguments": JSON text});
    # streamed, the arguments come in `tool_fragments` pieces, as servers send them.
    tool_call: dict[str, str] | None = None
    tool_fragments: int = 3
    # Engine habits (tests/support/mock_engine.py): at most `slots` requests at once
    # (the rest wait in a queue), a prefix cache that reports cached_tokens, and, with
    # flavor "vllm", "sglang" or "llama-server", the engine's /metrics; Ollama's /api/ps
    # lists `loaded` (default: every model).
    slots: int | None = None
    prefix_cache: bool = False
    loaded: list[str] | None = None
    # The server's own /v1/responses and its habits (tests/support/mock_responses.py).
    responses_api: bool = False
    responses_bare_completed: bool = False
    responses_args_done_only: bool = False
    # Gemini (tests/support/mock_gemini.py): the finish reason, thinking text and tokens
    gemini_finish: str = "STOP"
    gemini_thoughts: str = ""
    gemini_thought_tokens: int = 0
    # Model management (tests/support/mock_lifecycle.py): loads that fail, loads held
    # until `release`, vLLM's runtime LoRA switch.
    pull_fails: list[str] = field(default_factory=list)
    hold_loads: bool = False
    runtime_lora: bool = False
    router_sse: bool = True   # llama-server's /models/sse (older builds lack it)
    sleeping: list[str] = field(default_factory=list)  # llama-server: present, asleep
    model_gb: dict[str, float] = field(default_factory=dict)  # Ollama's sizes (tags, ps)


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    client_port: int = 0  # tells one kept-alive connection from a new one


class MockBackend:
    def __init__(self, name: str = "mock", history: int | None = None,
                 **behaviour: Any) -> None:
        self.name = name
        self.behaviour = Behaviour(**behaviour)
        # Tests read everything; a long-running mock (benchmarks) keeps only the latest.
        self.received: deque[Received] = deque(maxlen=history)
        self.refusals: list[str] = []  # why the Anthropic mock answered 400
        self.release = asyncio.Event()  # a stream with `hold` waits on this after chunk 1
        self.hold = False
        self.hold_after_done = False  # a stream waits on `release` between [DONE] and its end
        self.port = 0
        self.engine = MockEngine()
        self._runner: web.AppRunner | None = None
        self._failures = 0
        self.router_states: dict[str, dict[str, Any]] = {}  # llama-server: model → status
        self.router_listeners: set[asyncio.Queue[bytes]] = set()  # /models/sse clients
        self.tasks: set[asyncio.Task[None]] = set()  # loads finishing in the background

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_post("/api/show", self._show)
        app.router.add_get("/props", self._props)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_get("/api/v0/models", self._lmstudio_models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/responses", self._responses)
        for path, handler in (("/api/pull", mock_lifecycle.ollama_pull),
                              ("/api/generate", mock_lifecycle.ollama_generate),
                              ("/models/load", mock_lifecycle.router_load),
                              ("/models/unload", mock_lifecycle.router_unload),
                              ("/v1/load_lora_adapter", mock_lifecycle.lora),
                              ("/v1/unload_lora_adapter", mock_lifecycle.lora)):
            app.router.add_post(path, functools.partial(handler, self))
        app.router.add_get("/models", functools.partial(mock_lifecycle.router_models, self))
        app.router.add_get("/models/sse", functools.partial(mock_lifecycle.router_sse, self))
        app.router.add_post("/v1beta/models/{target}", self._gemini)
        app.router.add_get("/v1beta/models", self._gemini_models)
        app.router.add_post("/_mock/config", self._configure)
        app.router.add_get("/_mock/stats", self._stats)
        return app

    async def start(self, port: int = 0) -> MockBackend:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def set(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self.behaviour, key, value)

    def chat_requests(self) -> list[Received]:
        return [r for r in self.received
                if r.path not in ("/v1/models", "/api/tags", "/v1beta/models")]

    # -- shared behaviour --------------------------------------------------------------------
    async def _gate(self, request: web.Request) -> web.StreamResponse | None:
        """Delay, loading and failures, applied to every endpoint; None means go on."""
        b = self.behaviour
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.loading:
            body: dict[str, Any] = {"error": {"message": "Loading model", "type": "unavailable"}}
            if b.loading_eta is not None:
                body["estimated_time"] = b.loading_eta
            return web.json_response(body, status=503)
        if b.status is not None and (b.fail_times == 0 or self._failures < b.fail_times):
            self._failures += 1
            headers = {"Retry-After": b.retry_after} if b.retry_after else None
            message = f"mock {self.name} failing"
            body = _anthropic_rules().error_body(b.status, message) \
                if request.path == "/v1/messages" else \
                {"error": {"message": message, "type": "server_error"}}
            return web.json_response(body, status=b.status, headers=headers)
        if b.drop_before_answer:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return None

    async def _record(self, request: web.Request) -> dict[str, Any]:
        body = await request.json() if request.can_read_body else {}
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.received.append(Received(request.path, body, dict(request.headers),
                                      peer[1] if peer else 0))
        return body

    def _reply_words(self) -> list[str]:
        text = self.behaviour.reply or f"hello from {self.name}"
        words = text.split(" ")
        n = max(1, self.behaviour.chunks)
        per = max(1, -(-len(words) // n))
        return [" ".join(words[i:i + per]) + " " for i in range(0, len(words), per)][:n] or [""]

    def _usage(self, body: dict[str, Any], completion: str) -> dict[str, int]:
        b = self.behaviour
        text = json.dumps(body.get("messages") or body.get("prompt") or "")
        prompt = b.usage_prompt_tokens
        if prompt is None:
            prompt = max(1, len(str(body.get("messages") or body.get("prompt") or "")) // 4)
        done = b.usage_completion_tokens
        if done is None:
            done = len(completion.split())
        usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": done,
                                 "total_tokens": prompt + done}
        if b.prefix_cache:
            usage["prompt_tokens_details"] = {
                "cached_tokens": min(prompt, self.engine.cached_tokens(text))}
        elif b.cache_read_tokens:  # OpenAI's cached input, as its usage reports it
            usage["prompt_tokens_details"] = {"cached_tokens": b.cache_read_tokens}
        return usage

    # -- endpoints ---------------------------------------------------------------------------
    def _discovery_gate(self) -> web.StreamResponse | None:
        if self.behaviour.loading:
            return web.json_response({"error": "loading model",
                                      "estimated_time": self.behaviour.loading_eta}, status=503)
        if self.behaviour.models_status is not None:
            return web.json_response({"error": "discovery failing"},
                                     status=self.behaviour.models_status)
        if self.behaviour.discovery_body is not None:
            return web.Response(body=self.behaviour.discovery_body,
                                content_type="application/json")
        return None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(request.path, {}, dict(request.headers)))
        gated = self._discovery_gate()
        if gated is not None:
            return gated
        owner = "vllm" if self.behaviour.flavor == "vllm" else self.name  # vLLM's habit
        data = [{"id": m, "object": "model", "created": 0, "owned_by": owner,
                 **self._window_fields()} for m in self.behaviour.models]
        return web.json_response({"object": "list", "data": data})

    def _window_fields(self) -> dict[str, Any]:
        window, flavor = self.behaviour.context_window, self.behaviour.flavor
        if window is None:
            return {}
        if flavor == "llama-server":
            return {"meta": {"n_ctx": window, "n_ctx_train": window * 4, "n_vocab": 32000}}
        if flavor == "vllm":
            return {"max_model_len": window}
        return {}

    async def _props(self, request: web.Request) -> web.StreamResponse:
        if self.behaviour.flavor not in ("llama-server-props", "llama-server"):
            raise web.HTTPNotFound()
        return web.json_response({"default_generation_settings": {
            "n_ctx": self.behaviour.context_window}, "total_slots": self.behaviour.slots or 1})

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        flavor = self.behaviour.flavor
        if flavor not in ("vllm", "sglang", "llama-server"):
            raise web.HTTPNotFound()
        return web.Response(text=self.engine.metrics(flavor, self.behaviour.models[0]),
                            content_type="text/plain")

    async def _ps(self, request: web.Request) -> web.StreamResponse:
        if self.behaviour.flavor != "ollama":
            raise web.HTTPNotFound()
        loaded = self.behaviour.models if self.behaviour.loaded is None \
            else self.behaviour.loaded
        sizes = {m: int(self.behaviour.model_gb.get(m, 4.0) * 1e9) for m in loaded}
        return web.json_response({"models": [
            {"name": m, "model": m, "size": sizes[m], "size_vram": sizes[m],
             "expires_at": "2099-01-01T00:00:00Z"} for m in loaded]})

    async def _lmstudio_models(self, request: web.Request) -> web.StreamResponse:
        if self.behaviour.flavor != "lmstudio":
            raise web.HTTPNotFound()
        return web.json_response({"object": "list", "data": [
            {"id": m, "type": "llm", "state": "loaded",
             "max_context_length": self.behaviour.context_window}
            for m in self.behaviour.models]})

    async def _show(self, request: web.Request) -> web.StreamResponse:
        """Ollama's model card: architecture details, context length, capabilities."""
        body = await request.json()
        if self.behaviour.flavor != "ollama" or body.get("model") not in \
                {*self.behaviour.models, *(m.removesuffix(":latest") for m in
                                           self.behaviour.models)}:
            return web.json_response({"error": "model not found"}, status=404)
        info: dict[str, Any] = {"general.architecture": "llama"}
        if self.behaviour.context_window is not None:
            info["llama.context_length"] = self.behaviour.context_window
        return web.json_response({"model_info": info, "details": {"family": "llama"},
                                  "capabilities": self.behaviour.capabilities
                                  or ["completion"]})

    async def _tags(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(request.path, {}, dict(request.headers)))
        if self.behaviour.flavor in NOT_OLLAMA:  # only Ollama has /api/tags
            raise web.HTTPNotFound()
        gated = self._discovery_gate()
        if gated is not None:
            return gated
        return web.json_response({"models": [
            {"name": m, "model": m, "size": int(self.behaviour.model_gb.get(m, 4.0) * 1e9)}
            for m in self.behaviour.models]})

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        return await mock_gemini.generate(self, request)

    async def _gemini_models(self, request: web.Request) -> web.StreamResponse:
        self.received.append(Received(request.path, {}, dict(request.headers)))
        return await mock_gemini.list_models(self, request)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        return await responses(self, request)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        self.engine.configure(self.behaviour.slots)
        async with self.engine.slot():
            return await self._chat_in_slot(request, body)

    async def _chat_in_slot(self, request: web.Request,
                            body: dict[str, Any]) -> web.StreamResponse:
        gated = await self._gate(request) or self._llama_cpp_refusal(body)
        if gated is not None:
            return gated
        if body.get("stream"):
            if self.behaviour.tool_call:
                return await self._stream_tool_call(request, body)
            return await self._stream_chat(request, body)
        text = "".join(self._reply_words())
        message: dict[str, Any] = {"role": "assistant", "content": text}
        finish = "stop"
        if self.behaviour.tool_call:
            call = self.behaviour.tool_call
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": call["id"], "type": "function",
                 "function": {"name": call["name"], "arguments": call["arguments"]}}]}
            finish, text = "tool_calls", call["arguments"]
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{self.name}", "object": "chat.completion",
            "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": finish, "message": message}]}
        if not self.behaviour.omit_usage:
            answer["usage"] = self._usage(body, text)
        if self.behaviour.stall_body:
            return await self._stalled(request, json.dumps(answer).encode())
        return web.json_response(answer)

    def _llama_cpp_refusal(self, body: dict[str, Any]) -> web.StreamResponse | None:
        b = self.behaviour
        if b.strict_types:
            for name in ("temperature", "top_p", "max_tokens"):
                value = body.get(name)
                if value is not None and (isinstance(value, bool)
                                          or not isinstance(value, int | float)):
                    return _validation_error(name, value)
        if b.context_window is not None and self._prompt_tokens(body) > b.context_window:
            if body.get("stream"):
                return _EmptyStream()
            return web.json_response({"error": {
                "message": f"Requested tokens ({self._prompt_tokens(body)}) exceed context "
                           f"window of {b.context_window}",
                "type": "invalid_request_error", "param": "messages",
                "code": "context_length_exceeded"}}, status=400)
        return None

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> int:
        return len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4

    async def _stalled(self, request: web.Request, data: bytes) -> web.StreamResponse:
        """Promise the whole body, send half of it, wait for `release`, send the rest."""
        out = web.StreamResponse(headers={"Content-Type": "application/json"})
        out.content_length = len(data)
        await out.prepare(request)
        await out.write(data[: len(data) // 2])
        await self.release.wait()
        await out.write(data[len(data) // 2:])
        await out.write_eof()
        return out

    async def _stream_chat(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        words = self._reply_words()
        # Servers open with the role and no text (vLLM, llama.cpp, OpenAI): no token. One
        # told to drop before its first chunk drops before this too.
        if self.behaviour.drop_after_chunks != 0:
            await out.write(_sse(self._chunk(body, {"role": "assistant", "content": ""}, None)))
        for index, word in enumerate(words):
            if self.behaviour.drop_after_chunks is not None and \
                    index >= self.behaviour.drop_after_chunks:
                assert request.transport is not None
                request.transport.close()
                return out
            await out.write(_sse(self._chunk(body, {"content": word}, None)))
            if index == 0 and self.hold:
                await self.release.wait()
            if self.behaviour.chunk_delay:
                await asyncio.sleep(self.behaviour.chunk_delay)
        await out.write(_sse(self._chunk(body, {}, "stop")))
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        if wants_usage and not self.behaviour.omit_usage:
            usage_chunk = self._chunk(body, {}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self._usage(body, "".join(words))
            await out.write(_sse(usage_chunk))
        await out.write(b"data: [DONE]\n\n")
        if self.hold_after_done:
            await self.release.wait()
        await out.write_eof()
        return out

    async def _stream_tool_call(self, request: web.Request,
                                body: dict[str, Any]) -> web.StreamResponse:
        """A tool call as OpenAI streams it: id and name first, the arguments in pieces."""
        call = self.behaviour.tool_call
        assert call is not None
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        head = {"index": 0, "id": call["id"], "type": "function",
                "function": {"name": call["name"], "arguments": ""}}
        await out.write(_sse(self._chunk(body, {"role": "assistant", "tool_calls": [head]},
                                         None)))
        arguments, n = call["arguments"], max(1, self.behaviour.tool_fragments)
        size = -(-len(arguments) // n)
        for start in range(0, len(arguments), size):
            piece = {"index": 0, "function": {"arguments": arguments[start:start + size]}}
            await out.write(_sse(self._chunk(body, {"tool_calls": [piece]}, None)))
        await out.write(_sse(self._chunk(body, {}, "tool_calls")))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage_chunk = self._chunk(body, {}, None)
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self._usage(body, arguments)
            await out.write(_sse(usage_chunk))
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    def _chunk(self, body: dict[str, Any], delta: dict[str, Any],
               finish: str | None) -> dict[str, Any]:
        return {"id": f"chatcmpl-{self.name}", "object": "chat.completion.chunk",
                "created": 0, "model": body.get("model"),
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        gated = await self._gate(request)
        if gated is not None:
            return gated
        text = "".join(self._reply_words())
        return web.json_response({
            "id": f"cmpl-{self.name}", "object": "text_completion", "created": 0,
            "model": body.get("model"),
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
            "usage": self._usage(body, text)})

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        gated = await self._gate(request)
        if gated is not None:
            return gated
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                for i in range(len(items))]
        return web.json_response({"object": "list", "data": data, "model": body.get("model"),
                                  "usage": {"prompt_tokens": len(items), "total_tokens":
                                            len(items)}})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API, held to the real API's rules (tests/support/mock_anthropic.py,
        imported here: it needs the anthropic SDK, which only the tests install)."""
        mock_anthropic = _anthropic_rules()
        body = await self._record(request)
        gated = await self._gate(request)
        if gated is not None:
            return gated
        try:
            mock_anthropic.validate(body)
        except mock_anthropic.Refused as refused:
            self.refusals.append(str(refused))
            return web.json_response(mock_anthropic.refusal_body(str(refused)), status=400)
        words = self._reply_words()
        cache = {"cache_read": self.behaviour.cache_read_tokens,
                 "cache_write": self.behaviour.cache_write_tokens}
        if not body.get("stream"):
            return web.json_response(mock_anthropic.message(body, words, **cache))
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        deltas = 0
        for event in mock_anthropic.stream_events(body, words, **cache):
            if b"content_block_delta" in event:
                if self.behaviour.drop_after_chunks is not None and \
                        deltas >= self.behaviour.drop_after_chunks:
                    assert request.transport is not None
                    request.transport.close()  # cut short: no message_delta, no usage
                    return out
                deltas += 1
            await out.write(event)
        await out.write_eof()
        return out

    # -- control -----------------------------------------------------------------------------
    async def _configure(self, request: web.Request) -> web.Response:
        changes = await request.json()
        known = {f.name for f in fields(Behaviour)}
        unknown = set(changes) - known
        if unknown:
            return web.json_response({"error": f"unknown fields {sorted(unknown)}"}, status=400)
        self.set(**changes)
        return web.json_response({"ok": True})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": len(self.chat_requests())})


def _validation_error(name: str, value: Any) -> web.Response:
    """llama-cpp-python's answer to a body its pydantic model refuses."""
    detail = [{"type": "float_parsing", "loc": ["body", name],
               "msg": "Input should be a valid number", "input": value}]
    return web.json_response({"error": {"message": str(detail), "type": "internal_server_error",
                                        "param": None, "code": None}}, status=500)


class _EmptyStream(web.StreamResponse):
    """An event stream that ends before its first event."""

    def __init__(self) -> None:
        super().__init__(headers={"Content-Type": "text/event-stream"})


def _anthropic_rules() -> Any:
    try:
        from tests.support import mock_anthropic
    except ImportError:  # run as a script: tests/support/ is the script's own folder
        import mock_anthropic  # type: ignore[no-redef]
    return mock_anthropic


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default="mock")
    parser.add_argument("--models", default="mock-model", help="comma-separated")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--chunk-delay", type=float, default=0.0,
                        help="seconds between streamed chunks")
    parser.add_argument("--reply", default="", help="the answer's words, one chunk each "
                        "at most (default: hello from NAME)")
    args = parser.parse_args()
    mock = MockBackend(args.name, history=1000, models=args.models.split(","),
                       delay=args.delay, chunks=args.chunks, chunk_delay=args.chunk_delay,
                       reply=args.reply)
    web.run_app(mock.app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
