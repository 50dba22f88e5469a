from nexus.adapters.anthropic import AnthropicAdapter
from nexus.adapters.base import Adapter, StreamTranslator, UpstreamRequest
from nexus.adapters.gemini import GeminiAdapter
from nexus.adapters.openai import OpenAIAdapter
from nexus.backends.kinds import Api
from nexus.core.types import Usage

ADAPTERS: dict[Api, Adapter] = {Api.OPENAI: OpenAIAdapter(), Api.ANTHROPIC: AnthropicAdapter(),
                                 Api.GEMINI: GeminiAdapter()}

__all__ = ["ADAPTERS", "Adapter", "StreamTranslator", "UpstreamRequest", "Usage"]
