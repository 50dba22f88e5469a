"""What kind of server answers at a URL (`nexus backends add URL --type auto`).

Each server says what it is in its own way: Ollama lists its models at /api/tags,
llama-server describes itself at /props, LM Studio has /api/v0/models, and vLLM marks
its /v1/models entries `owned_by: vllm` with a `max_model_len`. Anything else that
lists models at /v1/models is an OpenAI-compatible ("generic") server.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import msgspec
from yarl import URL

from nexus.backends.causes import connection_failure

PROBE_SECONDS = 3.0  # each of four probes; the CLI waits 10 s in all
_NAME_UNSAFE = re.compile(r"[^a-z0-9-]+")


class NotDetected(Exception):
    """Nothing at the URL said what it is (or nothing answered)."""


async def detect_type(session: aiohttp.ClientSession, url: str) -> str:
    base = url.rstrip("/")
    if _lists(await _get(session, base + "/api/tags"), "models"):
        return "ollama"
    props = await _get(session, base + "/props")
    if isinstance(props, dict) and ("default_generation_settings" in props
                                    or "total_slots" in props):
        return "llamacpp"
    if _lists(await _get(session, base + "/api/v0/models"), "data"):
        return "lmstudio"
    listed = await _get(session, base + "/v1/models")
    if not _lists(listed, "data"):
        raise NotDetected(f"nothing at {url} lists models at /api/tags, /props or "
                          "/v1/models; say --type")
    entries = [e for e in listed["data"] if isinstance(e, dict)]
    if any(e.get("owned_by") == "vllm" or "max_model_len" in e for e in entries):
        return "vllm"
    if any(isinstance(e.get("meta"), dict) and "n_ctx_train" in e["meta"] for e in entries):
        return "llamacpp"
    return "generic"


def _lists(found: Any, key: str) -> bool:
    return isinstance(found, dict) and isinstance(found.get(key), list)


async def _get(session: aiohttp.ClientSession, url: str) -> Any:
    """The JSON at `url`, or None for anything else; NotDetected when nothing answers."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=PROBE_SECONDS)) \
                as response:
            if response.status != 200:
                return None
            body = await response.read()
    except TimeoutError:
        raise NotDetected(f"{URL(url).origin()} did not answer within "
                          f"{PROBE_SECONDS:g} s") from None
    except aiohttp.ClientError as exc:
        raise NotDetected(f"{URL(url).origin()} is unreachable: "
                          f"{connection_failure(exc)}") from None
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def name_for(url: str, taken: set[str]) -> str:
    """A backend name from the URL's host and port (`gpu-1-11434`), unique."""
    parsed = URL(url)
    stem = _NAME_UNSAFE.sub("-", f"{parsed.host or 'backend'}-{parsed.port}".lower())
    stem = stem.strip("-")[:60] or "backend"
    name, n = stem, 2
    while name in taken:
        name, n = f"{stem}-{n}", n + 1
    return name
