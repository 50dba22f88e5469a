"""Read a request body, decompressing gzip and deflate ourselves.

aiohttp's own decompression expands each arriving chunk whole: a small body that
inflates to a gigabyte holds the event loop for seconds before the size limit is
checked. Here inflation stops at `max_body_bytes` and yields to the loop between
pieces, so a decompression bomb costs the replica a few milliseconds and a 413.
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import ClientPayloadError, EofStream, web

from nexus.config.schema import ServerConfig
from nexus.core.errors import (
    BadRequest,
    BodyTooLarge,
    ClientDisconnected,
    RequestTimeout,
    UnsupportedMediaType,
)

PIECE = 256 * 1024  # bytes inflated between two yields to the loop
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
          "deflate": zlib.MAX_WBITS}  # deflate: zlib-wrapped as the RFC says; raw is tried too
IDENTITY = frozenset({"", "identity"})


async def read_body(request: web.Request, server: ServerConfig) -> bytes:
    """The body, whole and inflated. A client that takes longer than
    `body_timeout_seconds` to send it gets 408; one that leaves half-way is
    ClientDisconnected (nobody is left to answer)."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    try:
        async with asyncio.timeout(server.body_timeout_seconds):
            raw = await request.read()  # the compressed size is capped by client_max_size
    except TimeoutError:
        raise RequestTimeout("The request body did not arrive in time "
                             "(server.body_timeout_seconds)") from None
    except (ConnectionError, EofStream, ClientPayloadError) as exc:
        raise ClientDisconnected(f"the client left while sending its body: {exc}") from None
    return await _decoded(raw, encoding, server.max_body_bytes)


async def _decoded(raw: bytes, encoding: str, max_bytes: int) -> bytes:
    if encoding in IDENTITY:
        return raw
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not supported; send the body as identity, "
            "gzip or deflate")
    try:
        return await _inflate(raw, wbits, max_bytes)
    except zlib.error:
        if encoding != "deflate":
            raise _undecodable(encoding) from None
    try:  # some clients send raw deflate without the zlib wrapper
        return await _inflate(raw, -zlib.MAX_WBITS, max_bytes)
    except zlib.error:
        raise _undecodable(encoding) from None


async def _inflate(data: bytes, wbits: int, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
    while pending:
        out += inflater.decompress(pending, PIECE)
        if len(out) > max_bytes:
            raise BodyTooLarge(f"The request body inflates to more than {max_bytes} bytes "
                               "(server.max_body_bytes)")
        pending = inflater.unconsumed_tail
        await asyncio.sleep(0)  # let other requests run between pieces
    out += inflater.flush()
    if not inflater.eof:
        raise zlib.error("truncated")
    if len(out) > max_bytes:
        raise BodyTooLarge(f"The request body inflates to more than {max_bytes} bytes "
                           "(server.max_body_bytes)")
    return bytes(out)


def _undecodable(encoding: str) -> BadRequest:
    return BadRequest(f"The request body does not decode as {encoding} (Content-Encoding)")
