"""The imports llmcells makes outside the main thread, one at a time under one lock, and the
one thread that builds SDK clients.

Two threads importing the same package tree at once can each wait for a module the other holds,
and Python then breaks the deadlock by handing one of them a half-initialized module ("partially
initialized module 'httpx' has no attribute 'Timeout'"). Every import llmcells makes off the main
thread (the warm-up's, the client builder's, and the loop's, which waits for the builder) takes
`import_lock`, so that cannot happen.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import logging
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from ._log import swallowed

log = logging.getLogger("llmcells")

_lock = threading.Lock()
_started: set[str] = set()       # modules a background import was started for
_threads: list[threading.Thread] = []
_builder_pool: concurrent.futures.ThreadPoolExecutor | None = None


def builder() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that builds SDK clients (and so imports the SDKs), started on first use."""
    global _builder_pool
    if _builder_pool is None:
        _builder_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmcells-clients")
    return _builder_pool


#: the HTTP stack's modules that the SDKs' clients import only when their first request goes out
TRANSPORT = ["httpcore2", "h11", "anyio._backends._asyncio"]

#: the httpx of before httpx2: google-genai imports it, and the openai and anthropic SDKs look it
#: up in sys.modules while they build a request and read its response, so a half-imported one
#: fails a call ("partially initialized module 'httpx' has no attribute 'Timeout'"). A background
#: import that brings it imports it first, on its own, so that it is whole before a client built
#: after it (the builder waits for import_lock) sends anything; a request that met it half-made
#: anyway is sent again (engine.as_llm_error).
LEGACY_HTTPX = "httpx"


def import_transport() -> None:
    """Import TRANSPORT now (the engine does, on its client-building thread)."""
    import_quietly(n for n in TRANSPORT if n not in sys.modules)


#: the one lock under which llmcells imports anything outside the main thread (see above)
import_lock = threading.RLock()


_first = 0  # threads a call is waiting on that want import_lock (see `first`)


@contextlib.contextmanager
def first() -> Any:
    """import_lock, for a thread a call is waiting on (the client builder): the warm-up lets it
    go first between two of its imports (a lock is not fair: the warm-up would take it back
    at once, and the first call would wait for the whole warm-up)."""
    global _first
    with _lock:
        _first += 1
    try:
        with import_lock:
            yield
    finally:
        with _lock:
            _first -= 1


#: the longest the warm-up holds off for `hold` before it goes on anyway (a flag never cleared)
HOLD_MAX_S = 10.0


def import_quietly(names: Any, *, background: bool = False, hold: Any = None) -> None:
    """Import each of names, under import_lock; a missing optional part is left to the call,
    which will say so. background=True (the warm-up): a thread in `first` goes before each,
    and while hold() is true (a Ctrl-C is being handled) no next import starts."""
    for name in names:
        if loaded(name):
            continue
        held_since = None
        while background and (_first or (hold is not None and hold())):
            if not _first:  # held: bounded, so that a flag left set cannot stop the warm-up for good
                held_since = held_since or time.monotonic()
                if time.monotonic() - held_since > HOLD_MAX_S:
                    break
            time.sleep(0.002)
        with import_lock:
            try:
                importlib.import_module(name)
            except Exception as exc:
                log.debug("warm-up could not import %s: %s", name, type(exc).__name__)


def loaded(name: str) -> bool:
    """True when module `name` is imported in full (not still being imported by some thread)."""
    module = sys.modules.get(name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


async def ready(names: list[str]) -> None:
    """On the loop: make sure names are imported in full before the loop uses them. Nothing to
    do once they are; otherwise the import is done (or waited for) on the client builder's
    thread, under import_lock, and the loop goes on meanwhile."""
    if all(loaded(n) for n in names):
        return
    def imports() -> None:
        with first():
            import_quietly(names)

    await asyncio.get_running_loop().run_in_executor(builder(), imports)


def queue_after(names: Iterable[str], *, then: Any = None) -> None:
    """Import names (not already imported or queued) on the client builder's thread, after
    what is queued there by the time the calling task next waits (its SDK client's build):
    one thread importing at a time, so that an SDK's import and these don't contend for the
    GIL (two CPU-bound threads cost more CPU together than one after the other), while the
    request is out. then(), if given, runs there after them (only when they were queued here)."""
    with _lock:
        todo = [n for n in names if n not in _started]
        _started.update(todo)
    if todo:
        asyncio.get_running_loop().call_soon(builder().submit, _import_then, todo, then)


def _import_then(names: list[str], then: Any) -> None:
    import_quietly(names)
    if then is not None:
        try:
            with import_lock:   # then() may import too
                then()
        except Exception as exc:
            swallowed(f"the work queued after importing {', '.join(names)}", exc)


def background(names: Iterable[str], *, work: Any = None, switch: Any = None,
               hold: Any = None) -> threading.Thread | None:
    """Import names (not already imported or being imported) in a daemon thread, then run
    work() there if given, all under the context manager switch() if given, starting no import
    while hold() is true; returns the thread, if one started. (The warm-up's worker.)"""
    with _lock:
        todo = [n for n in names if n not in _started]
        _started.update(todo)
    if not todo and work is None:
        return None

    def run() -> None:
        with switch() if switch is not None else contextlib.nullcontext():
            import_quietly(todo, background=True, hold=hold)
            if work is not None:
                work()

    thread = threading.Thread(target=run, name="llmcells-warmup", daemon=True)
    thread.start()
    with _lock:
        _threads[:] = [t for t in _threads if t.is_alive()] + [thread]
    return thread


def wait(timeout: float | None = None) -> None:
    """Wait for the background import threads (benchmarks, tests, and unloading)."""
    for t in list(_threads):
        t.join(timeout)


def stop(timeout: float = 5.0) -> None:
    """Wait for the background imports and stop the client builder's thread (`%unload_ext`)."""
    global _builder_pool
    wait(timeout)
    pool, _builder_pool = _builder_pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
