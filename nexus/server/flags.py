"""Read the X-Nexus-* request headers; a malformed one is a 400, never ignored."""

from __future__ import annotations

from collections.abc import Mapping

from multidict import istr

from nexus.errors import BadRequest
from nexus.pipeline.types import NO_FLAGS, RequestFlags

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})
PRIVACY = frozenset({"restricted", "unrestricted"})
MAX_PRIORITY = 100
# Case-insensitive names made once: a lookup with a plain str folds its case every time.
PRIVACY_HEADER, STRICT_HEADER = istr("X-Nexus-Privacy"), istr("X-Nexus-Strict")
FLEXIBLE_HEADER, PRIORITY_HEADER = istr("X-Nexus-Flexible"), istr("X-Nexus-Priority")


def request_flags(headers: Mapping[str, str]) -> RequestFlags:
    privacy, strict, flexible = (headers.get(PRIVACY_HEADER), headers.get(STRICT_HEADER),
                                 headers.get(FLEXIBLE_HEADER))
    if privacy is None and strict is None and flexible is None:  # most requests
        return NO_FLAGS
    restricted = _privacy(privacy)
    is_strict, is_flexible = _switch("X-Nexus-Strict", strict), \
        _switch("X-Nexus-Flexible", flexible)
    if not (restricted or is_strict or is_flexible):
        return NO_FLAGS
    return RequestFlags(restricted=restricted, strict=is_strict, flexible=is_flexible)


def _privacy(value: str | None) -> bool:
    privacy = ("unrestricted" if value is None else value).strip().lower()
    if privacy not in PRIVACY:
        raise BadRequest(f"X-Nexus-Privacy must be 'restricted' or 'unrestricted', "
                         f"not {privacy!r}")
    return privacy == "restricted"


def request_priority(headers: Mapping[str, str]) -> int:
    raw = headers.get(PRIORITY_HEADER)
    if raw is None:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"X-Nexus-Priority must be an integer, not {raw!r}") from None
    if not -MAX_PRIORITY <= value <= MAX_PRIORITY:
        raise BadRequest(f"X-Nexus-Priority must be between {-MAX_PRIORITY} and "
                         f"{MAX_PRIORITY}")
    return value


def _switch(name: str, value: str | None) -> bool:
    if value is None:
        return False
    value = value.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadRequest(f"{name} must be true or false, not {value!r}")
