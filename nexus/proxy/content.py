"""An answer's content as the client saw it, for a trace that records content: the
text and the finish reason, out of an OpenAI chat or Anthropic Messages body or stream.
Without OpenTelemetry, so the forwarder can hold one whether or not a replica traces."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec


class Output:
    """The answer's text and finish reason as the client saw it, from an OpenAI chat, an
    Anthropic Messages or a Responses body or stream (only kept when content is
    captured)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.finish: str | None = None

    def whole(self, body: bytes) -> None:
        with contextlib.suppress(msgspec.DecodeError, TypeError, AttributeError):
            answer = msgspec.json.decode(body)
            for choice in answer.get("choices") or ():
                self.text.append((choice.get("message") or {}).get("content") or "")
                self.finish = choice.get("finish_reason") or self.finish
            for block in answer.get("content") or ():
                self.text.append(block.get("text") or "")
            self.finish = answer.get("stop_reason") or self.finish
            self._response(answer)

    def _response(self, response: dict[str, Any]) -> None:
        """A Responses API object: its output messages' text, its status."""
        if response.get("object") != "response":
            return
        for item in response.get("output") or ():
            for part in item.get("content") or () if item.get("type") == "message" else ():
                self.text.append(part.get("text") or "")
        self.finish = response.get("status") or self.finish

    def feed(self, data: bytes) -> None:
        """Take the text out of the `data:` lines of events relayed to the client."""
        for line in data.split(b"\n"):
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                with contextlib.suppress(msgspec.DecodeError, TypeError, AttributeError):
                    self._event(msgspec.json.decode(line[5:]))

    def _event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if isinstance(kind, str) and kind.startswith("response."):  # a Responses event
            if kind == "response.output_text.delta":
                self.text.append(event.get("delta") or "")
            elif isinstance(event.get("response"), dict) and kind != "response.created":
                self.finish = event["response"].get("status") or self.finish
            return
        for choice in event.get("choices") or ():
            self.text.append((choice.get("delta") or {}).get("content") or "")
            self.finish = choice.get("finish_reason") or self.finish
        self.text.append((event.get("delta") or {}).get("text") or "")
        self.finish = (event.get("delta") or {}).get("stop_reason") or self.finish

    def messages(self) -> str:
        return msgspec.json.encode([{
            "role": "assistant", "parts": [{"type": "text", "content": "".join(self.text)}],
            "finish_reason": self.finish or "unknown"}]).decode()
