"""Nexus: an OpenAI-compatible gateway for fleets of local and cloud LLM backends."""

__version__ = "0.1.0"
