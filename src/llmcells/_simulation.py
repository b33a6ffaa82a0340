"""Switching every provider to an in-process simulator (`llmcells.simulate()`)."""

from __future__ import annotations

import sys
import threading
from typing import Any

from . import models

_lock = threading.Lock()
_sim: Any = None


def simulate(on: bool = True, *, providers: list[str] | None = None, strict: bool = True,
             **options: Any) -> Any:
    """Route every built-in provider to a simulator on loopback (no keys, no network needed).

    simulate() starts one in this process (options: ttft, tokens_per_s, output_tokens) and
    returns it; providers limits it to some providers (e.g. those without a key), each named
    as in a model id or by its magic: ["anthropic", "chatgpt"];
    simulate(False) switches back to the real APIs. Cards and ledger rows of
    simulated calls are labelled as such. strict=True (the default) refuses what the real
    APIs refuse, with their errors; strict=False answers any well-formed request.
    """
    global _sim
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:  # the Simulator's own TypeError would name a class the user never called
        from .errors import ConfigError, did_you_mean

        raise ConfigError(f"simulate() takes {', '.join(OPTIONS)}, not {unknown[0]!r}"
                          f"{did_you_mean(unknown[0], OPTIONS)}.")
    providers = _provider_names(providers)
    with _lock:
        if not on:
            models.set_simulator(None)
            return None
        from .sim import Simulator

        if _sim is None:
            # in a script, the simulator checks a request type once a request needs it
            _sim = Simulator(strict=strict, warm_types=_in_notebook(), **options).start()
        else:
            _sim.start()  # again, on its port, after `%unload_ext` stopped it (else nothing)
            if options:
                _sim.configure(**options)
        _sim.strict = strict
        models.set_simulator(_sim.url, providers)
        if _in_notebook():
            # a notebook's next cell may call any of them: warm every simulated API provider's
            # SDK while the user types (the providers %load_ext warms for keys): not the agent
            # CLIs' or cloud routes' libraries, seconds of imports a first %%compare would wait
            # for and never use. The widgets are left to the first cell that shows a card, as
            # before: imported there, on the kernel's main thread, they never hold up a Ctrl-C
            # behind another thread's import. A script's calls import only the SDK they use;
            # warming all of them there would take the CPU from its first calls.
            from . import warmup

            warmup.start()
        return _sim


#: the simulator's settings simulate() passes on (`--tps` of %llmcells simulate is tokens_per_s)
OPTIONS = ("ttft", "tokens_per_s", "output_tokens")


def _provider_names(names: Any) -> list[str] | None:
    """providers= checked and named as the registry does: claude -> anthropic, chatgpt -> openai;
    a string is split at commas and spaces. ConfigError for a name that is no provider (it would
    leave every provider unsimulated without a word)."""
    if names is None:
        return None
    from .errors import ConfigError, did_you_mean
    from .registry import PREFIXES, PROVIDERS

    if isinstance(names, str):
        names = names.replace(",", " ").split()
    known = {**PREFIXES, **{row.alias: p for p, row in PROVIDERS.items() if row.alias}}
    out = []
    for name in names:
        key = str(name).strip().lower()
        if key not in known:
            raise ConfigError(f"simulate(providers=...): unknown provider {name!r}"
                              f"{did_you_mean(key, PROVIDERS)}; the providers are "
                              f"{', '.join(PROVIDERS)}.")
        out.append(known[key])
    return out


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython already imported, its shell has a kernel)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def active() -> bool:
    """True when calls go to the simulator."""
    return models.simulator_url() is not None


def stop() -> None:
    """Stop the simulator's server thread (`%unload_ext llmcells`); the switch and the port are
    kept, and `resume()` (`%load_ext`) or `simulate()` serves on that port again."""
    with _lock:
        if _sim is not None:
            _sim.stop()


def resume() -> None:
    """Serve again (on the same port) when the switch still routes calls to the simulator that
    stop() stopped."""
    with _lock:
        if _sim is not None and models.simulator_url() == _sim.url:
            _sim.start()
