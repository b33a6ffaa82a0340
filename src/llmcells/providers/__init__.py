"""Provider adapters, one module per provider, imported on first use (the SDKs are slow to import)."""

from __future__ import annotations

import importlib

from .base import ClientOptions, Provider

_instances: dict[str, Provider] = {}


def adapter_names() -> set[str]:
    """The adapter modules the registry names (a row's `adapter`): derived, never listed here."""
    from ..registry import PROVIDERS

    return {r.adapter for r in PROVIDERS.values()}


def get_provider(adapter: str) -> Provider:
    """The adapter of a registry row ("openai", "anthropic", "google", "codex"...): the ADAPTER of
    the module llmcells.providers.<adapter>, imported on first use."""
    if adapter not in _instances:
        if not adapter.isidentifier():
            raise KeyError(adapter)
        module = importlib.import_module(f".{adapter}", __name__)
        _instances[adapter] = module.ADAPTER
    return _instances[adapter]


__all__ = ["ClientOptions", "Provider", "adapter_names", "get_provider"]
