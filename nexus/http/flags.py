"""Read the X-Nexus-* request headers; a malformed one is a 400, never ignored.

A header may come more than once (or as a comma-joined list): the values can only
tighten the request. Any `restricted` makes it restricted, any true
X-Nexus-Strict makes it strict, and strict wins over flexible.
"""

from __future__ import annotations

import re

from multidict import CIMultiDictProxy, istr

from nexus.core.errors import BadRequest
from nexus.core.types import NO_FLAGS, RequestFlags

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})
PRIVACY = frozenset({"restricted", "unrestricted"})
MAX_PRIORITY = 100
_ASCII_INTEGER = re.compile(r"[+-]?[0-9]{1,4}")  # not int()'s "٥" or "1_0"
# Case-insensitive names made once: a lookup with a plain str folds its case every time.
PRIVACY_HEADER, STRICT_HEADER = istr("X-Nexus-Privacy"), istr("X-Nexus-Strict")
FLEXIBLE_HEADER, PRIORITY_HEADER = istr("X-Nexus-Flexible"), istr("X-Nexus-Priority")
Headers = CIMultiDictProxy[str]


def request_flags(headers: Headers) -> RequestFlags:
    if PRIVACY_HEADER not in headers and STRICT_HEADER not in headers \
            and FLEXIBLE_HEADER not in headers:  # most requests
        return NO_FLAGS
    privacy = _values(headers, PRIVACY_HEADER)
    for value in privacy:
        if value not in PRIVACY:
            raise BadRequest("X-Nexus-Privacy must be 'restricted' or 'unrestricted', "
                             f"not {value!r}")
    restricted = "restricted" in privacy
    strict = any(_switch("X-Nexus-Strict", v) for v in _values(headers, STRICT_HEADER))
    flexible = all(_switch("X-Nexus-Flexible", v) for v in _values(headers, FLEXIBLE_HEADER)) \
        and FLEXIBLE_HEADER in headers and not strict
    if not (restricted or strict or flexible):
        return NO_FLAGS
    return RequestFlags(restricted=restricted, strict=strict, flexible=flexible)


def _values(headers: Headers, name: istr) -> list[str]:
    """Every value the header was sent with, comma-joined lists split, trimmed, lowered.
    A header sent empty is one empty value (for X-Nexus-Privacy: an error)."""
    return [part.strip().lower() for raw in headers.getall(name, [])
            for part in (raw.split(",") if raw.strip() else [raw])]


def request_priority(headers: Headers) -> int:
    raws = headers.getall(PRIORITY_HEADER, [])
    if not raws:
        return 0
    values = {_priority(raw) for raw in raws}
    if len(values) > 1:
        raise BadRequest("X-Nexus-Priority was sent more than once with different values")
    return values.pop()


def _priority(raw: str) -> int:
    text = raw.strip()
    if not _ASCII_INTEGER.fullmatch(text):
        raise BadRequest(f"X-Nexus-Priority must be an integer, not {raw!r}")
    value = int(text)
    if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise BadRequest(f"X-Nexus-Priority must be between {-MAX_PRIORITY} and "
                         f"{MAX_PRIORITY}")
    return value


def _switch(name: str, value: str) -> bool:
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadRequest(f"{name} must be true or false, not {value!r}")
