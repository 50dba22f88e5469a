"""The lean client's failures, as kinds of aiohttp's own, so that every place that
already tells a backend's failures apart (the forwarder, the stream relay, the words
in `backends.causes`) handles both clients alike."""

from __future__ import annotations

import aiohttp


class ConnectFailed(aiohttp.ClientConnectionError):
    """No connection could be made (refused, unreachable, DNS, timed out)."""

    def __init__(self, host: str, port: int, os_error: OSError) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {os_error}")
        self.host = host
        self.port = port
        self.os_error = os_error


class BrokenResponse(aiohttp.ClientError):
    """The backend's bytes are not HTTP/1.1 (the parser's words say where)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def disconnected() -> aiohttp.ServerDisconnectedError:
    return aiohttp.ServerDisconnectedError()


def cut_short() -> aiohttp.ClientPayloadError:
    return aiohttp.ClientPayloadError("the backend closed the connection mid-body")
