"""Why a connection to a backend failed, in words an operator reads in a log line."""

from __future__ import annotations

import errno
import socket

import aiohttp

from nexus.core.masking import mask_urls_in

_ERRNO_WORDS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EPIPE: "connection closed",
}


def connection_failure(exc: BaseException) -> str:
    """"connection refused", "DNS lookup failed for gpu-1", ... never a class name alone."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError) or \
            isinstance(getattr(exc, "os_error", None), socket.gaierror):
        host = getattr(exc, "host", None) or getattr(getattr(exc, "_conn_key", None), "host",
                                                     None)
        return f"DNS lookup failed for {host}" if host else "DNS lookup failed"
    os_error = getattr(exc, "os_error", None) or (exc if isinstance(exc, OSError) else None)
    if isinstance(os_error, OSError) and os_error.errno in _ERRNO_WORDS:
        return _ERRNO_WORDS[os_error.errno]
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the backend closed the connection without answering"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response was cut short"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"unreadable response ({exc.message})"
    if isinstance(exc, ConnectionResetError | aiohttp.ClientConnectionResetError):
        return "connection reset"
    if isinstance(exc, ValueError | KeyError | TypeError):
        return "unreadable response body"
    text = mask_urls_in(str(exc))  # a library's message may name the URL it was given
    return text if text else exc.__class__.__name__
