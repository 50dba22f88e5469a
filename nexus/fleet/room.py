"""Whether a backend has the room to load one more model, and why, for pre-warm.

Best is GPU memory: a backend whose `vram_gb` the config states, read with what
Ollama's /api/ps says each loaded model holds, and the model's size as any backend
of the fleet holding it reports (else its size on disk, from Ollama's /api/tags).
Next is the engine's KV cache (vLLM, llama-server), whose fill says how much memory
is spoken for. Failing both, the room is unknown:
advice may still name the backend, but "auto" never loads there, since a load that
does not fit makes the server evict a model that is in use.
"""

from __future__ import annotations

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.registry import Registry

GB = 1_000_000_000


class Room(msgspec.Struct, frozen=True):
    fits: bool | None  # None: unknown
    words: str
    free: float = 0.0  # the share that would stay free (sorts the roomiest first)


def room_for(backend: Backend, model: str, headroom_percent: float,
             registry: Registry) -> Room:
    keep = headroom_percent / 100
    engine = backend.state.engine
    if engine is not None and not engine.fresh():
        engine = None  # an old reading says nothing of the room now
    vram_gb = backend.config.vram_gb
    if vram_gb is not None and engine is not None and engine.vram_bytes is not None:
        return _by_vram(backend.name, vram_gb, engine.vram_bytes, model_bytes(registry, model),
                        model, keep)
    if engine is not None and engine.kv_usage is not None:
        free = 1.0 - engine.kv_usage
        return Room(free >= keep, f"its KV cache is {engine.kv_usage:.0%} full", free)
    return Room(None, f"the room on {backend.name} is unknown (no vram_gb in its config, "
                      "no KV cache reading)")


def _by_vram(name: str, vram_gb: float, held: dict[str, int],
             need: tuple[int, str] | None, model: str, keep: float) -> Room:
    total = vram_gb * GB
    used = sum(held.values())
    after = used + (need[0] if need else 0)
    free = 1.0 - after / total
    size = f"{model} takes about {need[0] / GB:.1f} GB ({need[1]})" if need else \
        f"{model}'s size is unknown"
    words = (f"{name} holds {used / GB:.1f} of {vram_gb:g} GB; {size}, leaving "
             f"{max(free, 0.0):.0%} free")
    return Room(free >= keep, words, free)


def model_bytes(registry: Registry, model: str) -> tuple[int, str] | None:
    """What `model` takes, and how that is known: the GPU memory it holds where the
    fleet has it loaded (the most seen), else its size on disk (Ollama's /api/tags)."""
    held = [(engine.vram_bytes[model], backend.name) for backend in registry
            if (engine := backend.state.engine) is not None and engine.vram_bytes
            and engine.vram_bytes.get(model)]  # a past reading still tells the size
    if held:
        most, where = max(held)
        return most, f"loaded on {where}"
    on_disk = [size for backend in registry if (size := backend.state.sizes.get(model))]
    return (max(on_disk), "its size on disk") if on_disk else None
