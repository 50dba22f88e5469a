"""A Messages API client's call: passed through to an Anthropic backend, translated both
ways (anthropic_map.py) for an OpenAI-compatible one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from nexus.adapters import ADAPTERS
from nexus.adapters.anthropic import AnthropicAdapter, NativeStream
from nexus.adapters.anthropic_params import Adjustments
from nexus.adapters.base import Chained, StreamTranslator, UpstreamRequest
from nexus.adapters.chat_to_messages import to_message
from nexus.adapters.chat_to_messages_stream import MESSAGE_STOP, MessagesStream, error_event
from nexus.adapters.messages_to_chat import to_chat_request
from nexus.backends.kinds import Api
from nexus.core.errors import BadRequest, NexusError
from nexus.core.types import Usage
from nexus.proxy.anthropic_errors import anthropic_error_response
from nexus.proxy.call import StreamShape
from nexus.proxy.headers import sendable

if TYPE_CHECKING:
    from nexus.proxy.call import Call
    from nexus.routing.types import Route

Json = dict[str, Any]
MESSAGES_STREAM = StreamShape(end=MESSAGE_STOP, error=lambda message, code: error_event(message))
PASSED_HEADERS = ("anthropic-version", "anthropic-beta")  # what an Anthropic backend reads
_NATIVE = AnthropicAdapter()
_encode = msgspec.json.Encoder().encode


class MessagesDialect:
    shape = MESSAGES_STREAM

    def __init__(self, body: bytes, payload: Json, client_headers: dict[str, str]) -> None:
        self.body = body          # the client's bytes, for an Anthropic backend
        self.payload = payload
        self.client_headers = client_headers
        stops = payload.get("stop_sequences")
        self.stop_sequences = [s for s in stops if isinstance(s, str)] \
            if isinstance(stops, list) else []

    def upstream(self, route: Route, call: Call) -> UpstreamRequest:
        backend = route.backend
        if backend.api is Api.ANTHROPIC:
            body = self.body if route.model == self.payload.get("model") \
                else _encode({**self.payload, "model": route.model})
            return _NATIVE.forward_native(backend, body, self.client_headers)
        adjustments = Adjustments()
        chat = to_chat_request({**self.payload, "model": route.model}, adjustments,
                               keeps_top_k=not backend.is_cloud)
        upstream = ADAPTERS[backend.api].prepare(backend, "chat", chat, call.stream)
        upstream.notes.update(adjustments.headers())
        return upstream

    def reply(self, route: Route, body: bytes, estimate: Usage) -> tuple[bytes, Usage, bool]:
        if route.backend.api is Api.ANTHROPIC:
            usage = _NATIVE.native_usage(body)
            return body, usage or estimate, usage is None
        chat, reported = ADAPTERS[route.backend.api].translate_body(body, route.model)
        usage = reported or estimate
        message = to_message(msgspec.json.decode(chat), route.model, usage, self.stop_sequences)
        return _encode(message), usage, reported is None

    def stream_translator(self, route: Route, call: Call) -> StreamTranslator:
        if route.backend.api is Api.ANTHROPIC:
            return NativeStream()
        stream = MessagesStream(route.model, route.cost_estimate.input_tokens,
                                self.stop_sequences)
        if route.backend.api is Api.OPENAI:
            return stream
        return Chained(ADAPTERS[route.backend.api].stream_translator(route.model, True, True),
                       stream)

    def error_response(self, error: NexusError, headers: dict[str, str]) -> web.Response:
        return anthropic_error_response(error, headers.get("X-Nexus-Request-Id", ""), headers)

    async def completed(self) -> None:
        return None  # a Messages call keeps no state


def client_headers(headers: Any) -> dict[str, str]:
    """The client's headers an Anthropic backend reads; one HTTP cannot carry on is the
    client's 400, never a failure of the backend."""
    passed = {name: headers[name] for name in PASSED_HEADERS if name in headers}
    for name, value in passed.items():
        if not sendable(value):
            raise BadRequest(f"The {name} header holds characters HTTP cannot carry",
                             param=name)
    return passed
