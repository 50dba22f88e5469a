"""Request ids: the client's X-Request-Id when it is sane, otherwise a fresh one."""

from __future__ import annotations

import re
import uuid

_SANE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def request_id(client_value: str | None) -> str:
    if client_value and _SANE.match(client_value):
        return client_value
    return uuid.uuid4().hex
