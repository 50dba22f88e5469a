"""All backends of this replica, indexed by the models they serve."""

from __future__ import annotations

from collections.abc import Iterator

from nexus.backends.backend import Backend
from nexus.config.schema import Config


class Registry:
    def __init__(self, backends: list[Backend]) -> None:
        self._backends = backends
        self._by_name = {backend.name: backend for backend in backends}
        self._by_model: dict[str, list[Backend]] = {}
        self.reindex()

    @classmethod
    def from_config(cls, config: Config, environ: dict[str, str] | None = None) -> Registry:
        return cls([Backend(b, config.health_check, environ) for b in config.backends])

    def __iter__(self) -> Iterator[Backend]:
        return iter(self._backends)

    def __len__(self) -> int:
        return len(self._backends)

    def get(self, name: str) -> Backend | None:
        return self._by_name.get(name)

    def add(self, backend: Backend) -> None:
        """A backend added at run time (the admin API, mDNS). The list is replaced, not
        changed in place: a loop iterating the old one across an await stays whole."""
        if backend.name in self._by_name:
            raise ValueError(f"a backend named '{backend.name}' exists")
        self._backends = [*self._backends, backend]
        self._by_name = {**self._by_name, backend.name: backend}
        self.reindex()

    def remove(self, name: str) -> Backend | None:
        backend = self._by_name.get(name)
        if backend is not None:
            self._backends = [b for b in self._backends if b is not backend]
            self._by_name = {b.name: b for b in self._backends}
            self.reindex()
        return backend

    def reindex(self) -> None:
        """Rebuild the model index; called when discovery changes a backend's models."""
        index: dict[str, list[Backend]] = {}
        for backend in self._backends:
            for model in backend.models:
                index.setdefault(model, []).append(backend)
        self._by_model = index

    def serving(self, model: str) -> list[Backend]:
        """Every backend that lists `model`, in configuration order, whatever its health."""
        return self._by_model.get(model, [])

    def knows(self, model: str) -> bool:
        return model in self._by_model

    def available_models(self) -> dict[str, list[Backend]]:
        """Models with at least one healthy backend, for /v1/models."""
        available: dict[str, list[Backend]] = {}
        for model, backends in self._by_model.items():
            healthy = [b for b in backends if b.health.state.value == "healthy"]
            if healthy:
                available[model] = healthy
        return available
