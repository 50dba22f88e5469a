"""Mask every credential a URL can carry, for logs, CLI output and error messages.

A URL carries secrets in its userinfo (`redis://user:secret@host`) and in its query
(`redis://host/0?password=secret`, which redis-py accepts, or `?token=`). Every
place that prints a URL goes through `mask_url`; free text that may hold one (an
exception's message) goes through `mask_urls_in`.
"""

from __future__ import annotations

import re

from yarl import URL

MASK = "***"
SECRET_PARAMS = frozenset({"password", "pass", "passwd", "pwd", "secret", "token",
                           "access_token", "api_key", "apikey", "key", "auth", "credentials"})
_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with its password and any secret-looking query values replaced by ***."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return "<unparsable URL>"
    if parsed.password:
        parsed = parsed.with_password(MASK)
    secret = [k for k in parsed.query if k.lower() in SECRET_PARAMS]
    if secret:
        parsed = parsed.update_query({k: MASK for k in secret})
    return str(parsed) if parsed.password or secret else url


def mask_urls_in(text: str) -> str:
    """`text` with every URL in it masked."""
    return _URL_IN_TEXT.sub(lambda match: mask_url(match[0]), text)
