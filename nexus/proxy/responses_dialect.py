"""A Responses API client's call: passed through to a backend whose server speaks the
Responses API, translated to chat completions (and back) for every other.

The gateway keeps the conversation state itself, so `previous_response_id` works
whatever backend served the turn before and from any replica: the earlier turns
(`history`, from the store) go to the backend in full, and a native backend is asked
to store nothing (`store: false`). The finished response is kept once it is whole,
before its last byte leaves, so the client's next turn finds it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from nexus.adapters import ADAPTERS
from nexus.adapters import chat_to_responses as r
from nexus.adapters.anthropic_params import Adjustments
from nexus.adapters.base import Chained, StreamTranslator, UpstreamRequest
from nexus.adapters.chat_to_responses_stream import TERMINAL, ResponsesStream
from nexus.adapters.responses_native import NativeResponsesStream, reply_usage
from nexus.adapters.responses_to_chat import input_items, to_chat_request
from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers
from nexus.backends.kinds import Api
from nexus.core.errors import NexusError
from nexus.core.types import Usage
from nexus.proxy.call import StreamShape

if TYPE_CHECKING:
    from nexus.proxy.call import Call
    from nexus.routing.types import Route

Json = dict[str, Any]
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode
# Fields a native backend must not see: the state is the gateway's.
GATEWAY_ONLY = ("previous_response_id", "store", "background", "conversation")


class ResponsesDialect:
    def __init__(self, payload: Json, history: list[Json], native: Callable[[Backend], bool],
                 keep: Callable[[ResponsesDialect], Awaitable[None]]) -> None:
        self.payload = payload
        self.history = history            # earlier turns' input and output items
        self.items = input_items(payload.get("input"))  # this turn's input, as items
        self.native = native              # whether a backend's server takes Responses
        self.keep = keep                  # stores the finished response (when `store`)
        self.response_id = r.new_id("resp")
        self.response: Json | None = None  # the finished response object
        self._stream: ResponsesStream | NativeResponsesStream | None = None
        self._native: dict[str, bool] = {}  # backend → how this call's request went to it
        self.shape = StreamShape(end=TERMINAL, error=self._broken)

    # -- out -----------------------------------------------------------------------------
    def upstream(self, route: Route, call: Call) -> UpstreamRequest:
        backend = route.backend
        native = self._native[backend.name] = self.native(backend)
        if native:
            body = {k: v for k, v in self.payload.items() if k not in GATEWAY_ONLY}
            body.update(model=route.model, input=[*self.history, *self.items], store=False)
            return UpstreamRequest(url=backend.base_url + "/v1/responses",
                                   headers={"Content-Type": "application/json",
                                            **request_headers(backend)},
                                   body=_encode(body))
        adjustments = Adjustments()
        chat = to_chat_request({**self.payload, "model": route.model}, self.history,
                               adjustments)
        upstream = ADAPTERS[backend.api].prepare(backend, "chat", chat, call.stream)
        _merge_notes(upstream, adjustments)
        return upstream

    # -- back ----------------------------------------------------------------------------
    def sent_native(self, route: Route) -> bool:
        """Whether the request went to this route's backend as it was (decided once, in
        `upstream`: a probe that answers meanwhile does not change how it is read)."""
        return self._native.get(route.backend.name, False)

    def reply(self, route: Route, body: bytes, estimate: Usage) -> tuple[bytes, Usage, bool]:
        if self.sent_native(route):
            response, usage = reply_usage(body)
            self.response = response
            return body, usage or estimate, usage is None
        chat, reported = ADAPTERS[route.backend.api].translate_body(body, route.model)
        usage = reported or estimate
        self.response = r.to_response(_decode(chat), self.shell(route), usage)
        return _encode(self.response), usage, reported is None

    def stream_translator(self, route: Route, call: Call) -> StreamTranslator:
        if self.sent_native(route):
            self._stream = NativeResponsesStream()
            return self._stream
        self._stream = ResponsesStream(self.shell(route), route.cost_estimate.input_tokens)
        if route.backend.api is Api.OPENAI:
            return self._stream
        inner = ADAPTERS[route.backend.api].stream_translator(route.model, True, True)
        return Chained(inner, self._stream)

    def error_response(self, error: NexusError, headers: dict[str, str]) -> web.Response:
        return web.Response(status=error.status, body=_encode(error.body()),
                            content_type="application/json", headers=headers)

    def shell(self, route: Route) -> Json:
        return r.response_shell(self.response_id, self.payload, route.model, "in_progress")

    def finished(self) -> Json | None:
        """The whole response, once the backend finished it (None for a broken stream)."""
        if self._stream is not None:
            return self._stream.response
        return self.response

    async def completed(self) -> None:
        """Called as the answer is billed, before its last byte: keep it for later turns."""
        if self.finished() is not None:
            await self.keep(self)

    def _broken(self, message: str, code: str) -> bytes:
        if self._stream is None:
            return b""
        return self._stream.failed(message, code)


def _merge_notes(upstream: UpstreamRequest, adjustments: Adjustments) -> None:
    """The adapter's own notes (an Anthropic backend drops some chat fields) and the
    Responses translation's, in one header each."""
    for name, value in adjustments.headers().items():
        before = upstream.notes.get(name)
        upstream.notes[name] = f"{value}, {before}" if before else value
