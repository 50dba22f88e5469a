"""Request ids: the client's X-Request-Id when it is sane, otherwise a fresh one.

Fresh ids are a random per-process prefix plus a counter: unique across replicas and
restarts, and far cheaper than a uuid4 per request.
"""

from __future__ import annotations

import itertools
import re
import secrets

_SANE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count(1)


def request_id(client_value: str | None) -> str:
    if client_value and _SANE.match(client_value):
        return client_value
    return fresh_id()


def fresh_id() -> str:
    """An id no client chose: the key that makes a spend write count once."""
    return f"{_PREFIX}{next(_COUNTER):016x}"
