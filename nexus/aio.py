"""Small asyncio helpers."""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Re-raise a cancellation that a library turned into its own error.

    redis-py may answer a cancel that lands mid-command with a ConnectionError; a loop
    that retries on Redis errors would then never stop. Call this in such handlers.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
