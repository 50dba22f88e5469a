"""Which backends take the Responses API themselves (`POST /v1/responses`).

Per backend, `responses = "native"` or `"translate"` decides; `"auto"` (the default)
sends natively to OpenAI, and to vLLM, llama-server, Ollama and LM Studio once their
server has said it has the route. Each replica asks each such server once, off the
request path: `POST /v1/responses` with an empty body is a 400 or 422 from a server
that has the route and a 404 or 405 from one that has not (llama-cpp-python, an Ollama
before 0.13.3, an LM Studio before 0.3.29). Until the answer comes, and after a probe
that failed to get one, the request is translated to chat, which every server takes.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp

from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers

log = logging.getLogger(__name__)
ALWAYS = frozenset({"openai"})
MAY = frozenset({"vllm", "llamacpp", "ollama", "lmstudio"})
NO_ROUTE = frozenset({404, 405, 501})
RETRY_SECONDS = 60.0  # after a probe that got no answer
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=10)


class ResponsesSupport:
    def __init__(self, session: aiohttp.ClientSession | None) -> None:
        self.session = session
        self.known: dict[str, bool] = {}        # backend name → has the route
        self._retry_at: dict[str, float] = {}   # backend name → when to ask again
        self._probing: set[asyncio.Task[None]] = set()

    def native(self, backend: Backend) -> bool:
        mode = backend.config.responses
        if mode != "auto":
            return mode == "native"
        kind = backend.config.type
        if kind in ALWAYS:
            return True
        if kind not in MAY:
            return False
        known = self.known.get(backend.name)
        if known is None:
            self._ask(backend)
            return False
        return known

    def _ask(self, backend: Backend) -> None:
        if self.session is None or time.monotonic() < self._retry_at.get(backend.name, 0.0):
            return
        self._retry_at[backend.name] = time.monotonic() + RETRY_SECONDS  # one at a time
        task = asyncio.get_running_loop().create_task(self.probe(backend))
        self._probing.add(task)
        task.add_done_callback(self._probing.discard)

    async def probe(self, backend: Backend) -> None:
        assert self.session is not None
        try:
            async with self.session.post(backend.base_url + "/v1/responses", data=b"{}",
                                         headers={"Content-Type": "application/json",
                                                  **request_headers(backend)},
                                         timeout=PROBE_TIMEOUT) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("could not ask %s whether it serves /v1/responses: %s", backend.name,
                     exc.__class__.__name__)
            return
        if status >= 500 and status not in NO_ROUTE:
            return  # no answer: ask again later
        self.known[backend.name] = status not in NO_ROUTE
        log.info("%s %s /v1/responses itself", backend.name,
                 "serves" if self.known[backend.name] else "does not serve")

    async def close(self) -> None:
        for task in list(self._probing):
            task.cancel()
