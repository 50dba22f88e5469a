"""A model on its way in or out of a backend, as routing sees it."""

from __future__ import annotations

from typing import Literal

import msgspec


class Transition(msgspec.Struct, frozen=True):
    """A model on its way in or out of a backend: routing keeps requests away."""

    kind: Literal["loading", "unloading"]
    operation: str
    started_unix: float
    progress: float | None = None

    def eta_seconds(self, now: float) -> float | None:
        """The time left, from the progress so far (None while nothing says)."""
        if not self.progress or self.progress <= 0:
            return None
        elapsed = max(0.0, now - self.started_unix)
        return elapsed * (1 - self.progress) / self.progress
