"""Warm-up: import, in a background thread, what the first call will need, so that a `%%compare`
typed a few seconds after `%load_ext llmcells` pays no import delay.

"Needed" means the SDKs of the providers that have a key (all of them while the simulator is
on), the engine, pricing and, in a notebook, the widgets; then it builds those providers' SDK
clients, as their first call would (on the private loop, in the client cache). Nothing is sent.

Every import llmcells makes outside the main thread (this warm-up's, the client builder's, and
the loop's, which waits for the builder) takes one lock, `import_lock`: two threads importing
the same package tree at once can each wait for a module the other holds, and Python then
breaks the deadlock by handing one of them a half-initialized module ("partially initialized
module 'httpx' has no attribute 'Timeout'"). Under the lock that cannot happen.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

from . import _imports, _loop
from .registry import PROVIDERS

log = logging.getLogger("llmcells")

_asked: set[tuple[tuple[str, ...], bool]] = set()
_lock = threading.Lock()

# (the import lock and its helpers live in _imports; these names stay readable from here)
import_lock, first, loaded, ready = _imports.import_lock, _imports.first, _imports.loaded, _imports.ready


def needed_providers() -> list[str]:
    """The built-in API providers the next calls will likely use: those with a key, or those
    the simulator switch covers. Not the agent CLIs: they share the API providers' keys, but
    their libraries are optional, rarely the first call, and heavy enough (the Claude agent
    SDK brings cryptography and MCP) to delay a first %%compare that never uses them."""
    from .config import routes
    from .models import key_status, simulated_providers

    simulated = simulated_providers()
    # a cloud route only when the route setting uses it (its boto3 is not for every session)
    routed = {r.partition(":")[0].strip().lower() for r in routes().values()}
    return [p for p, has_key in key_status().items()
            if (has_key or p in simulated) and PROVIDERS[p].kind != "agent"
            and (PROVIDERS[p].kind != "route" or p in routed)]


def modules_for(providers: list[str], *, notebook: bool) -> list[str]:
    """The modules to import ahead for providers, in the order the first call needs them."""
    names = ["llmcells.engine", "llmcells.ledger"]
    for p in providers:
        row = PROVIDERS[p]
        names += [*row.sdk_modules, f"llmcells.providers.{row.adapter}"]
    if providers:  # what the SDKs import lazily, at their first request
        names += _imports.TRANSPORT
    if notebook:
        names += ["ipywidgets", "llmcells.display.notebook"]
    names += ["llmcells.pricing", "genai_prices", "genai_prices.data"]
    if "google.genai" in names:  # (see _imports.LEGACY_HTTPX)
        names.insert(0, _imports.LEGACY_HTTPX)
    return names


def start(providers: list[str] | None = None, *, notebook: bool = False) -> threading.Thread | None:
    """Import what `providers` need (default: needed_providers()) in a daemon thread, then build
    their SDK clients; modules already imported or already being warmed are skipped. Returns the
    thread, if one started."""
    providers = needed_providers() if providers is None else providers
    if not providers:  # no key and no simulator: the first call can only say so, fast
        return None
    asked = (tuple(providers), notebook)
    with _lock:
        if asked in _asked:  # every call after the first: nothing to do
            return None
        _asked.add(asked)

    def build() -> None:
        _build_clients(providers)

    # An import holds the GIL for long stretches; with the default 5 ms switch interval a
    # thread that needs the GIL back after every short wait (the kernel answering an
    # interrupt) gets it only every 5 ms. In a notebook, a shorter interval while warming
    # keeps the kernel responsive; a script has no one waiting, and would only pay for the
    # extra switches.
    # A Ctrl-C that comes meanwhile is answered first: the main thread's unfinished work (the
    # display's first import) and the run's unwinding no longer share the GIL with an SDK's
    # import, which about halved their pace and took a fresh kernel's interrupted first cell
    # past a second on a loaded machine. The import under way finishes; the next waits.
    return _imports.background(modules_for(providers, notebook=notebook),
                               work=build, switch=_short_switch_interval if notebook else None,
                               hold=_loop.interrupt_pending)


def _build_clients(providers: list[str]) -> None:
    """Build, on the private loop, the SDK client each provider's first call will use (the same
    cache and key as a call with today's settings): creating an SDK client loads its TLS
    certificates and resource modules, about 50 ms each. Nothing is sent. A provider without a
    key, or any failure, is left to the call itself, which will say what is wrong."""

    async def build() -> None:
        from .calls import make_plan
        from .engine import client_for
        from .models import api_key

        for provider in providers:
            try:
                plan = make_plan("warm up", PROVIDERS[provider].default_id)
                await client_for(plan, api_key(plan.spec), together=False)
            except Exception as exc:
                log.debug("warm-up did not build the %s client: %s", provider, type(exc).__name__)

    try:
        _loop.submit(build()).result(timeout=120)
    except Exception as exc:
        log.debug("warm-up client building stopped: %s", type(exc).__name__)


_WARM_SWITCH_INTERVAL_S = 0.0005
_warming = 0


@contextlib.contextmanager
def _short_switch_interval():
    global _warming
    with _lock:
        if _warming == 0:
            _short_switch_interval.saved = sys.getswitchinterval()  # type: ignore[attr-defined]
            sys.setswitchinterval(min(_WARM_SWITCH_INTERVAL_S, _short_switch_interval.saved))  # type: ignore[attr-defined]
        _warming += 1
    try:
        yield
    finally:
        with _lock:
            _warming -= 1
            if _warming == 0:
                sys.setswitchinterval(_short_switch_interval.saved)  # type: ignore[attr-defined]


def stop() -> None:
    """Forget what was warmed (`%unload_ext`): the clients it built went with the stopped loop,
    so the next `%load_ext` builds them again."""
    with _lock:
        _asked.clear()


def wait(timeout: float | None = None) -> None:
    """Wait for the warm-up threads (benchmarks and tests)."""
    _imports.wait(timeout)
