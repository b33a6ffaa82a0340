"""Provider adapters, one module per provider, imported on first use (the SDKs are slow to import)."""

from __future__ import annotations

import importlib

from .base import ClientOptions, Provider

_MODULES = {"openai": ".openai", "anthropic": ".anthropic", "google": ".google",
            # [agents] the coding-agent CLIs
            "claude_code": ".claude_code", "gemini_cli": ".gemini_cli", "codex": ".codex",
            # [routes] the cloud routes
            "azure": ".azure", "vertex_anthropic": ".vertex_anthropic", "vertex_google": ".vertex_google"}
_instances: dict[str, Provider] = {}


def get_provider(adapter: str) -> Provider:
    """The adapter named "openai", "anthropic" or "google"."""
    if adapter not in _instances:
        module = importlib.import_module(_MODULES[adapter], __name__)
        _instances[adapter] = module.ADAPTER
    return _instances[adapter]


__all__ = ["ClientOptions", "Provider", "get_provider"]
