"""The forwarder's HTTP client for backends (see pool.py), and the response shape the
forwarder reads from it and from aiohttp alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from multidict import CIMultiDictProxy

from nexus.client.pool import BackendClient


class ResponseBody(Protocol):
    def iter_any(self) -> AsyncIterator[bytes]: ...

    def set_exception(self, exc: BaseException) -> None: ...


class UpstreamResponse(Protocol):
    """What the forwarder uses of a backend's response: aiohttp's or BackendResponse."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> CIMultiDictProxy[str]: ...

    @property
    def content_type(self) -> str: ...

    @property
    def content(self) -> ResponseBody: ...

    async def read(self) -> bytes: ...


__all__ = ["BackendClient", "ResponseBody", "UpstreamResponse"]
