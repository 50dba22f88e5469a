"""Typed views of client requests, used to validate them; forwarding keeps the raw fields."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from nexus.core.errors import BadRequest
from nexus.core.types import Endpoint, Requirements
from nexus.http.nesting import check_nesting
from nexus.routing.requirements import requirements_of, requirements_of_chat

ModelName = Annotated[str, Meta(min_length=1, max_length=256)]
_AT_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


class Message(msgspec.Struct):
    role: Annotated[str, Meta(min_length=1)]
    content: str | list[Any] | None = None


class ChatRequest(msgspec.Struct):
    model: ModelName
    messages: Annotated[list[Message], Meta(min_length=1)]
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    # Read for routing only (requirements); forwarded as the client sent them.
    max_completion_tokens: Any = None
    tools: Any = None
    functions: Any = None
    response_format: Any = None
    # Read for affinity: the client's own name for the conversation.
    prompt_cache_key: Any = None
    user: Any = None


class CompletionRequest(msgspec.Struct):
    model: ModelName
    prompt: Any = msgspec.field(default=None)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: Any = None
    user: Any = None


class EmbeddingRequest(msgspec.Struct):
    model: ModelName
    input: Any = msgspec.field(default=None)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


RequestView = ChatRequest | CompletionRequest | EmbeddingRequest
_DECODERS: dict[Endpoint, msgspec.json.Decoder[Any]] = {
    "chat": msgspec.json.Decoder(ChatRequest),
    "completions": msgspec.json.Decoder(CompletionRequest),
    "embeddings": msgspec.json.Decoder(EmbeddingRequest),
}
decode_object = msgspec.json.Decoder(dict[str, Any]).decode  # the body as a dict, to change


def parse_body(endpoint: Endpoint, body: bytes) -> RequestView:
    """The validated view; BadRequest says what is wrong. The body itself is forwarded
    as it came, or decoded again only when something in it must change."""
    view: RequestView = decode_view(_DECODERS[endpoint], body)
    _require_input(endpoint, view)
    return view


def decode_view(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """The body decoded by one typed decoder; BadRequest says what is wrong, and where."""
    if not body.strip():
        raise BadRequest("The request body is empty; send a JSON object")
    check_nesting(body)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, param = _explain(str(exc))
        raise BadRequest(message, param=param) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:  # nested less than the limit, yet deeper than this stack has room
        raise BadRequest("The request body nests objects and arrays too deeply") from None


def _require_input(endpoint: Endpoint, view: RequestView) -> None:
    if endpoint == "completions" and getattr(view, "prompt", None) is None:
        raise BadRequest("Missing required field 'prompt'", param="prompt")
    if endpoint == "embeddings" and getattr(view, "input", None) in (None, "", []):
        raise BadRequest("Missing required field 'input'", param="input")


def _explain(text: str) -> tuple[str, str | None]:
    match = _AT_PATH.search(text)
    path = match["path"] if match else None
    message = text[: match.start()] if match else text
    missing = re.search(r"missing required field `([^`]+)`", message)
    if missing:
        field = missing[1]
        path = f"{path}.{field}" if path else field
    if message.startswith("Expected `object`") and not path:
        message = "The request body must be a JSON object"
    message = message.replace("`", "'")
    return (f"{message} at '{path}'" if path else message), path


def view_requirements(view: RequestView) -> Requirements:
    """What routing needs to know of a request, read from its validated view."""
    if isinstance(view, ChatRequest):
        return requirements_of_chat(view.messages, view.response_format,
                                    view.max_tokens or view.max_completion_tokens,
                                    bool(view.tools or view.functions))
    if isinstance(view, CompletionRequest):
        return requirements_of({"prompt": view.prompt, "max_tokens": view.max_tokens})
    return requirements_of({"input": view.input})
