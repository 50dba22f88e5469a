"""The gateway's error tree; each maps to one status and the OpenAI error shape."""

from __future__ import annotations

from typing import Any


class NexusError(Exception):
    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None,
                 code: str | None = None, extra: dict[str, Any] | None = None,
                 retry_after: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra = extra or {}
        self.retry_after = retry_after  # seconds, sent as Retry-After: waiting helps
        self.headers = headers or {}    # more response headers (x-ratelimit-*)
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "code": self.code,
                 "param": self.param, **self.extra}
        return {"error": error}


class BadRequest(NexusError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class ClientInputError(BadRequest):
    """The request could not be built for the backend from what the client sent: the
    client's fault, never counted against the backend."""


class ContextLengthExceeded(BadRequest):
    code = "context_length_exceeded"


class UnsupportedMediaType(NexusError):
    status, type, code = 415, "invalid_request_error", "unsupported_content_encoding"


class Unauthorized(NexusError):
    status, type, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(NexusError):
    status, type, code = 403, "permission_error", "forbidden"


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"


class RateLimitExceeded(NexusError):
    status, type, code = 429, "rate_limit_error", "rate_limit_exceeded"


class InsufficientQuota(NexusError):
    """Out of budget: waiting does not help, so the answer says so to every SDK (the
    OpenAI and Anthropic SDKs both read `x-should-retry: false` and raise at once)."""

    status, type, code = 429, "insufficient_quota", "insufficient_quota"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.headers.setdefault("x-should-retry", "false")


class NotFound(NexusError):
    status, type, code = 404, "invalid_request_error", "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(NexusError):
    status, type, code = 409, "invalid_request_error", "conflict"


class NotImplementedHere(NexusError):
    status, type, code = 501, "invalid_request_error", "not_implemented"


class MethodNotAllowed(NexusError):
    status, type, code = 405, "invalid_request_error", "method_not_allowed"


class RequestTimeout(NexusError):
    status, type, code = 408, "invalid_request_error", "request_timeout"


class ClientDisconnected(NexusError):
    """The client left mid-request: nobody is left to answer, and it is no bug of ours."""

    status, type, code = 400, "invalid_request_error", "client_disconnected"


class BodyTooLarge(NexusError):
    status, type, code = 413, "invalid_request_error", "request_too_large"


class RateLimited(NexusError):
    status, type, code = 429, "rate_limit_error", "rate_limited"


class BackendError(NexusError):
    status, type, code = 502, "api_error", "backend_error"


class NoViableBackend(NexusError):
    status, type, code = 503, "service_unavailable", "no_viable_backend"


class StoreUnreachable(NexusError):
    """The shared store cannot answer a request that needs it (stored state)."""

    status, type, code = 503, "service_unavailable", "store_unavailable"


class BackendTimeout(NexusError):
    status, type, code = 504, "timeout_error", "backend_timeout"


_BY_STATUS: dict[int, type[NexusError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    408: RequestTimeout, 413: BodyTooLarge, 429: RateLimited, 502: BackendError,
    503: NoViableBackend, 504: BackendTimeout,
}


def error_for_status(status: int, message: str) -> NexusError:
    """The error class a status means; statuses without one keep their number."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(message)
    error = NexusError(message)
    error.status = status
    if 400 <= status < 500:
        error.type, error.code = "invalid_request_error", "invalid_request"
    return error
