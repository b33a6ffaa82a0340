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

from ._loop import deferred_interrupts, run
from .config import configure, settings
from .errors import (AuthenticationError, ConfigError, IncompleteStreamError, LLMError,
                     MissingKeyError, ModelNotFoundError, OverloadedError, ProviderError,
                     ProviderTimeoutError, RateLimitError)
from .models import add_alias, add_endpoint, aliases
from .session import session
from .types import Comparison, Message, Result, Usage

__version__ = "0.1.0"

__all__ = [
    "ask", "compare", "batch", "jobs", "job", "run", "usage", "costs", "simulate", "configure",
    "settings", "session",
    "add_alias", "add_endpoint", "aliases", "set_price", "reprice", "plot_costs",
    "health", "quota", "set_limits",
    "Result", "Comparison", "Usage", "Message",
    "LLMError", "ConfigError", "MissingKeyError", "AuthenticationError", "ModelNotFoundError",
    "RateLimitError", "OverloadedError", "ProviderTimeoutError", "IncompleteStreamError",
    "ProviderError",
    # scoring, the frontier, replay
    "exact", "contains", "regex", "json_valid", "matches_schema", "max_words", "judge", "column",
    "summarize", "frontier",
    # hooks, tools and chats
    "on", "off", "Chat",
]

# Loaded on first use: the engine pulls in tenacity, the ledger pandas, simulate an HTTP server.
_LAZY = {
    "ask": ("api", "ask"),
    "compare": ("api", "compare"),
    "batch": ("batches", "batch"),
    "jobs": ("batchjobs", "jobs"),
    "job": ("batchjobs", "job"),
    "usage": ("ledger", "usage"),
    "costs": ("ledger", "costs"),
    "set_price": ("pricing", "set_price"),
    "reprice": ("repricing", "reprice"),
    "plot_costs": ("plots", "plot_costs"),
    "simulate": ("_simulation", "simulate"),
    **{name: ("scoring", name) for name in ("exact", "contains", "regex", "json_valid",
                                            "matches_schema", "max_words", "judge", "column",
                                            "summarize")},
    "frontier": ("frontier", "frontier"),
    "health": ("healthcheck", "health"),
    "quota": ("quotas", "quota"),
    "set_limits": ("quotas", "set_limits"),
    "on": ("hooks", "on"),
    "off": ("hooks", "off"),
    "Chat": ("chats", "Chat"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        with deferred_interrupts():  # a Ctrl-C waits for the import: never a half-imported module
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
    """`%unload_ext llmcells`: stop the private loop thread."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def _warm_up_in_a_kernel() -> None:
    """Imported inside a running Jupyter kernel: start importing what the first call needs."""
    import sys

    if "ipykernel" not in sys.modules:
        return
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception as exc:  # no IPython: nothing to warm for
        from ._log import swallowed

        swallowed("finding the IPython shell", exc)
        return
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from . import warmup

        warmup.start(notebook=True)


_warm_up_in_a_kernel()
