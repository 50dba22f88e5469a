from nexus.backends.backend import Backend
from nexus.backends.health import Health
from nexus.backends.registry import Registry

__all__ = ["Backend", "Health", "Registry"]
