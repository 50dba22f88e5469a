"""A backend's HTTP error answer: what the client is told, and whether to try the next one.

The client gets the backend's own error: its status for a 4xx, and its `type`,
`code`, `param` and message always. A 5xx becomes 502 (the gateway's word for a
backend that failed) carrying the backend's status in `upstream_status`; an
overloaded backend's 503/529 stays 503, with Retry-After.
"""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.discovery import is_loading, loading_eta
from nexus.backends.recorder import Answer, OutcomeRecorder
from nexus.core.errors import NexusError, NoViableBackend, error_for_status

RETRY_STATUSES = frozenset({404, 408})  # another backend may well answer these
OVERLOAD_STATUSES = frozenset({429, 503, 529})
RETRY_CODES = frozenset({"context_length_exceeded"})  # another may have a larger window


class UpstreamFailure(Exception):
    """The attempt failed before anything reached the client: the next candidate may try.
    `answer` is set when the backend answered with an HTTP error (not proof it is down)."""

    def __init__(self, error: NexusError, answer: Answer | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.answer = answer


def _decoded(body: bytes) -> object:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def _error_object(body: bytes) -> dict[str, Any]:
    """The error object of an OpenAI-shaped, Anthropic-shaped or plain error body."""
    data = _decoded(body)
    if not isinstance(data, dict):
        text = body[:500].decode("utf-8", "replace").strip()
        return {"message": text} if text else {}
    error = data.get("error", data)
    if isinstance(error, str):
        return {"message": error}
    return error if isinstance(error, dict) else {}


def _google_error(fields: dict[str, Any],
                  retry_after: str | None) -> tuple[dict[str, Any], str | None]:
    """Google's `{code, message, status, details}` as OpenAI's fields: the status as the
    code, the first field violation as the param, RetryInfo's delay as Retry-After."""
    found: dict[str, Any] = {"message": fields.get("message"),
                             "code": str(fields["status"]).lower()}
    for detail in fields.get("details") or ():
        if not isinstance(detail, dict):
            continue
        violations = detail.get("fieldViolations") or ()
        if violations and isinstance(violations[0], dict) and "param" not in found:
            found["param"] = violations[0].get("field")
        delay = detail.get("retryDelay")
        if retry_after is None and isinstance(delay, str) and delay.endswith("s"):
            with contextlib.suppress(ValueError):
                retry_after = str(max(1, round(float(delay[:-1]))))
    return found, retry_after


def _text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    return value if isinstance(value, str) and value else None


def _seconds(retry_after: str | None) -> int | None:
    if retry_after and retry_after.isascii() and retry_after.isdigit():
        return max(1, int(retry_after))
    return None


def upstream_error(status: int, body: bytes, retry_after: str | None = None) -> NexusError:
    """The backend's error as the client gets it."""
    fields = _error_object(body)
    if isinstance(fields.get("status"), str):  # a Google RPC status (Gemini)
        fields, retry_after = _google_error(fields, retry_after)
    message = _text(fields, "message") or f"backend answered HTTP {status}"
    if status in OVERLOAD_STATUSES and status != 429:
        error: NexusError = NoViableBackend(message, retry_after=_seconds(retry_after) or 1)
    else:
        error = error_for_status(status if status < 500 else 502, message)
        error.retry_after = _seconds(retry_after) if status == 429 else None
    error.type = _text(fields, "type") or error.type
    code = fields.get("code")
    error.code = str(code) if isinstance(code, str | int) and code != "" else error.code
    error.param = _text(fields, "param")
    if status >= 500:
        error.extra["upstream_status"] = status
    return error


def classify_status(backend: Backend, status: int, body: bytes, retry_after: str | None,
                    recorder: OutcomeRecorder) -> tuple[NexusError, UpstreamFailure | None]:
    """The error to tell the client, and the failure to retry on when another backend
    may do better (None: relay the error as it is)."""
    error = upstream_error(status, body, retry_after)
    if is_loading(status, body):
        eta = loading_eta(body, retry_after)
        recorder.loading(backend, eta)
        error.retry_after = max(1, round(eta)) if eta else 1
        error.message = f"{backend.name} is loading the model: {error.message}"
        return error, UpstreamFailure(error)
    if status in OVERLOAD_STATUSES:
        recorder.overloaded(backend, status)
        return error, UpstreamFailure(error)
    answer = recorder.answered(backend, status, error.code)
    if status >= 500:
        error.message = f"{backend.name} answered HTTP {status}: {error.message}"
        return error, UpstreamFailure(error, answer)
    if status == 404:  # the model or path is missing there: say where
        error.message = f"{backend.name} answered HTTP 404: {error.message}"
    if status in RETRY_STATUSES or error.code in RETRY_CODES:
        return error, UpstreamFailure(error, answer)
    return error, None
