"""How the CLI talks to a running gateway: its address, its key, its errors.

Every command that asks a gateway takes `--url` (default: the config's address) and
`--api-key-env NAME` (default NEXUS_API_KEY): the name of the variable that holds a
client key, never the key itself, which would show in the process list.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

from nexus.config.loader import load_config
from nexus.core.masking import mask_urls_in

DEFAULT_KEY_ENV = "NEXUS_API_KEY"
ADMIN_KEY_ENV = "NEXUS_ADMIN_KEY"


class GatewayError(Exception):
    """The gateway could not be reached, or answered with an error: said in one line."""


class UsageError(GatewayError):
    """The command cannot run as asked (exit 2, as for any usage error)."""


def admin_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of a command that acts on the fleet through a gateway's admin API."""
    parser.add_argument("--config", help="TOML file naming the gateway's address")
    parser.add_argument("--url", help="gateway URL (default: from the config)")
    parser.add_argument("--admin-key-env", default=ADMIN_KEY_ENV, metavar="NAME",
                        help=f"variable holding the admin key (default {ADMIN_KEY_ENV})")
    parser.add_argument("--json", action="store_true")
    return parser


def gateway_url(config_path: str | None, url: str | None) -> str:
    if url is None:
        server = load_config(config_path).server
        url = f"http://{server.host}:{server.port}"
    return url.rstrip("/")


def call(url: str, key_env: str = DEFAULT_KEY_ENV, body: bytes | None = None,
         headers: dict[str, str] | None = None, method: str | None = None) -> Any:
    """GET (or, with a body, POST; or `method`) and decode the JSON answer."""
    sent = {"Accept": "application/json", **(headers or {})}
    key = os.environ.get(key_env)
    if key:
        sent["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, headers=sent,
                                     method=method or ("POST" if body is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise GatewayError(_http_error(exc, key_env, bool(key))) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise GatewayError(f"cannot reach the gateway at {mask_urls_in(url)}: {reason} (name "
                           "a running one with --url http://HOST:PORT, or the config it runs "
                           "with with --config)") from None


def _http_error(exc: urllib.error.HTTPError, key_env: str, key_sent: bool) -> str:
    try:
        message = json.loads(exc.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason
    hint = ""
    if exc.code == 401:
        hint = (f" (set {key_env} to a client key, or name another variable with "
                "--api-key-env)" if not key_sent else f" (the key in {key_env} was refused)")
    return f"the gateway answered {exc.code}: {message}{hint}"
