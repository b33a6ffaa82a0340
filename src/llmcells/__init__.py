"""llmcells: ask ChatGPT, Claude and Gemini from notebook cells, compare them side by side, and
know what every call cost.

    import llmcells
    r = await llmcells.ask("prompt", model="claude")
    c = await llmcells.compare("prompt", models=["chatgpt", "claude", "gemini"])
    llmcells.run(llmcells.ask("prompt"))          # from a script
    llmcells.usage(); llmcells.costs(by="model")  # the ledger, as DataFrames

In IPython or Jupyter: `%load_ext llmcells`, then `%%chatgpt`, `%%claude`, `%%gemini`,
`%%compare` and `%llmcells`. The SDKs, pandas and ipywidgets are imported on first use.
"""

from __future__ import annotations

from typing import Any

from ._loop import run
from .config import configure, settings
from .errors import (AuthenticationError, ConfigError, IncompleteStreamError, LLMError,
                     MissingKeyError, ModelNotFoundError, OverloadedError, ProviderError,
                     ProviderTimeoutError, RateLimitError)
from .models import add_alias, add_endpoint, aliases
from .types import Comparison, Message, Result, Usage

__version__ = "0.1.0"

__all__ = [
    "ask", "compare", "batch", "run", "usage", "costs", "simulate", "configure", "settings",
    "add_alias", "add_endpoint", "aliases", "set_price", "health", "quota", "set_limits",
    "Result", "Comparison", "Usage", "Message",
    "LLMError", "ConfigError", "MissingKeyError", "AuthenticationError", "ModelNotFoundError",
    "RateLimitError", "OverloadedError", "ProviderTimeoutError", "IncompleteStreamError",
    "ProviderError",
]

# Loaded on first use: the runner pulls in tenacity, the ledger pandas, simulate an HTTP server.
_LAZY = {
    "ask": ("runner", "ask"),
    "compare": ("runner", "compare"),
    "batch": ("batches", "batch"),
    "usage": ("ledger", "usage"),
    "costs": ("ledger", "costs"),
    "set_price": ("pricing", "set_price"),
    "simulate": ("_simulation", "simulate"),
    "health": ("healthcheck", "health"),
    "quota": ("quotas", "quota"),
    "set_limits": ("quotas", "set_limits"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'llmcells' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext llmcells`: register the magics."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload_ipython_extension as unload

    unload(ipython)
