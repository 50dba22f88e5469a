"""A request's affinity key, read where the request is parsed: the client's session
(headers, then body fields), else the hash of its conversation's leading block."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from multidict import istr

from nexus.http.schemas import ChatRequest, CompletionRequest, RequestView
from nexus.routing.affinity import AffinityKey, leading_block, prefix_key, session_key

SESSION_HEADERS = (istr("X-Session-Id"), istr("X-Session-Affinity"))


def _session(headers: Mapping[str, str]) -> str | None:
    return next((headers[h] for h in SESSION_HEADERS if headers.get(h)), None)


def chat_affinity(headers: Mapping[str, str], view: RequestView) -> AffinityKey | None:
    """The key of an OpenAI-API request (chat or completions; embeddings have none)."""
    if isinstance(view, ChatRequest):
        return session_key(_session(headers), view.prompt_cache_key, view.user) or \
            prefix_key(leading_block(view.messages, lambda m: m.role))
    if isinstance(view, CompletionRequest):
        return session_key(_session(headers), None, view.user) or \
            (prefix_key([view.prompt]) if view.prompt else None)
    return None


def messages_affinity(headers: Mapping[str, str], payload: dict[str, Any]) -> AffinityKey | None:
    """The key of a Messages request: its system prompt and opening turn."""
    metadata = payload.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    key = session_key(_session(headers), None, user)
    if key is not None:
        return key
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return None
    opening = leading_block(messages, lambda m: m.get("role") if isinstance(m, dict) else None)
    return prefix_key([payload.get("system"), *opening])


def responses_affinity(headers: Mapping[str, str], payload: dict[str, Any],
                       messages: list[dict[str, Any]]) -> AffinityKey | None:
    """The key of a Responses request that opens a conversation (a later turn keeps the
    key its previous response was routed by): the client's session, else the leading
    block of the chat messages it becomes."""
    return session_key(_session(headers), payload.get("prompt_cache_key"),
                       payload.get("user")) or \
        prefix_key(leading_block(messages, lambda m: m.get("role")))
