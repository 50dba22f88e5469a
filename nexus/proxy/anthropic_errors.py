"""Errors in Anthropic's shape, for clients of the Messages API:
`{"type": "error", "error": {"type", "message"}, "request_id"}` with Anthropic's statuses.

A gateway with no backend free answers 529 `overloaded_error`, as Anthropic does, and
the SDKs wait and retry. Out of budget is 429 with Anthropic's own spend-limit code and
`x-should-retry: false`, so the SDKs raise at once instead of retrying in vain.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from nexus.core.errors import InsufficientQuota, NexusError

_TYPES = {400: "invalid_request_error", 401: "authentication_error",
          403: "permission_error", 404: "not_found_error", 413: "request_too_large",
          429: "rate_limit_error", 504: "timeout_error", 529: "overloaded_error"}
_STATUSES = {503: 529}  # the gateway's "nothing can serve now" is Anthropic's overload
SPEND_LIMIT = "enforced_spend_limit_reached"


def anthropic_status(error: NexusError) -> int:
    return _STATUSES.get(error.status, error.status)


def anthropic_error_body(error: NexusError, request_id: str) -> dict[str, Any]:
    status = anthropic_status(error)
    kind = _TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    detail: dict[str, Any] = {"type": kind, "message": error.message}
    if isinstance(error, InsufficientQuota):
        detail["details"] = {"error_code": SPEND_LIMIT}
    return {"type": "error", "error": detail, "request_id": request_id}


def anthropic_error_response(error: NexusError, request_id: str,
                             headers: dict[str, str] | None = None) -> web.Response:
    out = {"X-Nexus-Request-Id": request_id, "request-id": request_id, **(headers or {}),
           **error.headers}
    if error.retry_after is not None:
        out["Retry-After"] = str(error.retry_after)
    return web.Response(status=anthropic_status(error),
                        body=msgspec.json.encode(anthropic_error_body(error, request_id)),
                        content_type="application/json", headers=out)
