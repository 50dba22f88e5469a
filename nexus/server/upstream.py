"""Send one attempt to one backend and classify what went wrong before the first byte."""

from __future__ import annotations

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.discovery import is_loading, loading_eta
from nexus.errors import BackendError, NexusError, RateLimited, error_for_status

RETRY_STATUSES = frozenset({404, 408, 429})  # another backend may well answer these


class UpstreamFailure(Exception):
    """The attempt failed before anything reached the client: the next candidate may try."""

    def __init__(self, error: NexusError) -> None:
        super().__init__(error.message)
        self.error = error


def normalize_error(status: int, body: bytes) -> tuple[str, bytes]:
    """(message, body in the OpenAI error shape) for any backend's error answer."""
    message = _message_of(body) or f"backend answered HTTP {status}"
    error = error_for_status(status, message)
    error.type = _type_of(body) or error.type
    return message, msgspec.json.encode(error.body())


def _decoded(body: bytes) -> object:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def _message_of(body: bytes) -> str:
    data = _decoded(body)
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            return error
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return body[:500].decode("utf-8", "replace").strip()


def _type_of(body: bytes) -> str | None:
    data = _decoded(body)
    error = data.get("error") if isinstance(data, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    return kind if isinstance(kind, str) else None


def classify_status(backend: Backend, status: int, body: bytes,
                    retry_after: str | None) -> UpstreamFailure | None:
    """None when the client should see this error as is; otherwise a retryable failure."""
    message, _ = normalize_error(status, body)
    if is_loading(status, body):
        backend.health.loading(loading_eta(body, retry_after))
        return UpstreamFailure(BackendError(f"{backend.name} is loading the model: {message}"))
    if status >= 500:
        backend.health.failure(f"HTTP {status}")
        return UpstreamFailure(BackendError(f"{backend.name} answered HTTP {status}: {message}"))
    if status == 429:
        return UpstreamFailure(RateLimited(f"{backend.name} is rate limiting: {message}"))
    if status in RETRY_STATUSES:
        return UpstreamFailure(error_for_status(status, f"{backend.name}: {message}"))
    return None
