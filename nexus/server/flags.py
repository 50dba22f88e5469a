"""Read the X-Nexus-* request headers; a malformed one is a 400, never ignored."""

from __future__ import annotations

from collections.abc import Mapping

from nexus.errors import BadRequest
from nexus.pipeline.types import NO_FLAGS, RequestFlags

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"", "0", "false", "no", "off"})
PRIVACY = frozenset({"restricted", "unrestricted"})
MAX_PRIORITY = 100


def request_flags(headers: Mapping[str, str]) -> RequestFlags:
    privacy = headers.get("X-Nexus-Privacy", "unrestricted").strip().lower()
    if privacy not in PRIVACY:
        raise BadRequest(f"X-Nexus-Privacy must be 'restricted' or 'unrestricted', "
                         f"not {privacy!r}")
    restricted = privacy == "restricted"
    strict = _switch(headers, "X-Nexus-Strict")
    flexible = _switch(headers, "X-Nexus-Flexible")
    if not (restricted or strict or flexible):
        return NO_FLAGS
    return RequestFlags(restricted=restricted, strict=strict, flexible=flexible)


def request_priority(headers: Mapping[str, str]) -> int:
    raw = headers.get("X-Nexus-Priority")
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


def _switch(headers: Mapping[str, str], name: str) -> bool:
    value = headers.get(name)
    if value is None:
        return False
    value = value.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise BadRequest(f"{name} must be true or false, not {value!r}")
