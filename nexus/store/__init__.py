from nexus.budget.records import SpendRecord
from nexus.config.schema import Config
from nexus.store.base import Store
from nexus.store.memory import MemoryStore

__all__ = ["MemoryStore", "SpendRecord", "Store", "store_for"]


def store_for(config: Config) -> Store:
    """Redis when the config names one, else the in-process store."""
    if config.redis is None:
        return MemoryStore()
    from nexus.store.redis_store import RedisStore

    return RedisStore(config.redis)
