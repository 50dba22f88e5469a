from nexus.adapters.anthropic import AnthropicAdapter
from nexus.adapters.base import Adapter, StreamTranslator, UpstreamRequest, Usage
from nexus.adapters.openai import OpenAIAdapter
from nexus.backends.kinds import Api

ADAPTERS: dict[Api, Adapter] = {Api.OPENAI: OpenAIAdapter(), Api.ANTHROPIC: AnthropicAdapter()}

__all__ = ["ADAPTERS", "Adapter", "StreamTranslator", "UpstreamRequest", "Usage"]
