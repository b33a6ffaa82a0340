"""llmcells: ask ChatGPT, Claude and Gemini from notebook cells, compare them side by side, and
know what every call cost.

    import llmcells
    r = await llmcells.ask("prompt", model="claude")
    c = await llmcells.compare("prompt", models=["chatgpt", "claude", "gemini"])
    llmcells.run(llmcells.ask("prompt"))          # from a script
    llmcells.usage(); llmcells.costs(by="model")  # the ledger, as DataFrames

In IPython or Jupyter, `import llmcells` (or `%load_ext llmcells`) registers `%%chatgpt`,
`%%claude`, `%%gemini`, `%%compare` and `%llmcells`. No keys yet? `llmcells.simulate()` (or
`%llmcells simulate on`) answers every provider from the built-in simulator. The SDKs, pandas and ipywidgets are imported on first use.
"""

from __future__ import annotations

from typing import Any

from ._loop import deferred_interrupts, run

# A Ctrl-C while the package is first imported (`%load_ext llmcells` takes some 50 ms) waits for
# these imports, so that none is left half made; it is then raised as one line.
with deferred_interrupts():
    from .config import configure, settings
    from .errors import (AuthenticationError, BillingError, ConfigError, ContextWindowError,
                         IncompleteStreamError, LLMError, MissingKeyError, ModelNotFoundError,
                         OverloadedError, ProviderError, ProviderTimeoutError, RateLimitError,
                         UnsupportedError, one_line_warnings)
    from .models import add_alias, add_endpoint, aliases
    from .session import session
    from .types import Message, Result, Usage

    from ._version import __version__  # (re-exported)

__all__ = [
    "ask", "compare", "batch", "jobs", "job", "run", "usage", "costs", "simulate", "configure",
    "settings", "session",
    "add_alias", "add_endpoint", "aliases", "set_price", "reprice", "plot_costs",
    "health", "quota", "set_limits",
    "Result", "Comparison", "Usage", "Message",
    "LLMError", "ConfigError", "ContextWindowError", "MissingKeyError", "AuthenticationError", "ModelNotFoundError",
    "RateLimitError", "OverloadedError", "ProviderTimeoutError", "IncompleteStreamError",
    "ProviderError", "UnsupportedError", "BillingError",
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
    "Comparison": ("comparison", "Comparison"),
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


class _FrontEnd:
    """The front end the calls open (`session.front_end`): llmcells.display, imported when a
    call first shows something (the features that open it sit below it, and can't import it)."""

    _module: Any = None  # llmcells.display once imported (an import statement per call cost more)

    def __getattr__(self, name: str) -> Any:
        module = _FrontEnd._module
        if module is None:
            from . import display as module

            _FrontEnd._module = module
        return getattr(module, name)

    def detect_mode(self, display: Any) -> str:
        """display.detect_mode, without importing the display package when the answer is
        "none" for sure: display=False, or the default in a plain script (IPython not imported),
        which shows nothing."""
        import sys

        if display is False or (display is None and "IPython" not in sys.modules):
            return "none"
        from . import display as package

        return package.detect_mode(display)


session.front_end = _FrontEnd()
one_line_warnings()


def _bind_submodules() -> None:
    """Bind the package's submodules already in sys.modules as its attributes. An import of the
    package that a Ctrl-C cut short leaves its submodules there, and the next import of the
    package finds them without binding them (`llmcells.models` was then missing for the
    session); the names the package sets itself (`session`, the lazy functions) stay."""
    import sys

    prefix = __name__ + "."
    for name, module in list(sys.modules.items()):
        short = name[len(prefix):]
        if (module is not None and name.startswith(prefix) and "." not in short
                and short not in globals() and short not in _LAZY):
            globals()[short] = module


_bind_submodules()


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext llmcells`: register the magics."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext llmcells`: stop every llmcells thread (they start again when needed)."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)


def _register_in_ipython() -> None:
    """`import llmcells` inside IPython or Jupyter registers the magics, as `%load_ext llmcells`
    does (which stays valid, and says "already loaded"). Outside IPython this costs one dict
    lookup: IPython is never imported here."""
    import sys

    if "IPython" not in sys.modules:  # not inside IPython (a script, a test runner)
        return
    try:
        shell = sys.modules["IPython"].get_ipython()
        manager = getattr(shell, "extension_manager", None)
        if manager is None or __name__ in manager.loaded:
            return
        with deferred_interrupts():  # (the magics' imports, whole)
            from .magics import load_ipython_extension as load

            load(shell)
        manager.loaded.add(__name__)  # what %load_ext records: a later %load_ext is a no-op
    except Exception as exc:  # never let registering break the import itself
        from ._log import swallowed

        swallowed("registering the magics on import", exc)


_register_in_ipython()
