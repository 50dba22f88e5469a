from nexus.store.base import SpendRecord, Store
from nexus.store.memory import MemoryStore

__all__ = ["MemoryStore", "SpendRecord", "Store"]
