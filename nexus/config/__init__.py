from nexus.config.errors import ConfigError
from nexus.config.loader import load_config
from nexus.config.schema import BackendConfig, Config

__all__ = ["BackendConfig", "Config", "ConfigError", "load_config"]
