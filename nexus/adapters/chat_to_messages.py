"""OpenAI chat completion → Anthropic Message: the reverse of anthropic.to_chat_completion,
through the same mapping (anthropic_map.py)."""

from __future__ import annotations

from typing import Any

from nexus.adapters import anthropic_map as m
from nexus.core.types import Usage

Json = dict[str, Any]


def message_id(completion_id: object) -> str:
    """Anthropic's ids start with msg_; the backend's own id is kept after it."""
    text = completion_id if isinstance(completion_id, str) and completion_id else "nexus"
    text = text.removeprefix("chatcmpl-")
    return text if text.startswith("msg_") else "msg_" + text


def to_message(completion: Json, model: str, usage: Usage,
               stop_sequences: list[str]) -> Json:
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    reply = choice.get("message") or {}
    content: list[Json] = []
    thinking = reply.get("reasoning_content") or reply.get("reasoning")
    if isinstance(thinking, str) and thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    text = m.text_of(reply.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    content.extend(m.tool_call_to_anthropic(call) for call in reply.get("tool_calls") or [])
    reason, sequence = stop_of(choice, stop_sequences)
    return {"id": message_id(completion.get("id")), "type": "message", "role": "assistant",
            "model": model, "content": content, "stop_reason": reason,
            "stop_sequence": sequence, "usage": m.usage_to_anthropic(usage)}


def stop_of(choice: Json, stop_sequences: list[str]) -> tuple[str, str | None]:
    """The stop reason, and which stop sequence ended the text when the backend says
    (vLLM names it in the choice's `stop_reason`; others only say "stop")."""
    matched = choice.get("stop_reason")
    if isinstance(matched, str) and matched in stop_sequences:
        return "stop_sequence", matched
    return m.stop_reason(choice.get("finish_reason")), None
