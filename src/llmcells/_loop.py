"""The private event loop: one daemon thread, one asyncio loop, where every SDK client lives.

Why not run on the caller's loop (Jupyter's) with nest_asyncio? Measured in a real kernel, that
killed the kernel on interrupt in 11 of 19 trials and never cancelled the requests. Instead:

- sync callers (`run`, the magics) submit a coroutine here and wait in 0.1 s slices, so that
  KeyboardInterrupt (Ctrl-C or a kernel interrupt) arrives between slices; on interrupt they
  cancel the task, wait briefly for it to unwind, and raise one short KeyboardInterrupt;
- async callers (`await llmcells.ask(...)` in Jupyter) await the cross-thread future with a
  0.1 s wake-up (without it, ipykernel's interrupt stalls until the next byte arrives) and cancel
  the task when their own await is cancelled.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None

#: how long a sync caller waits for a cancelled task to unwind before giving up on it
CANCEL_GRACE_S = 0.5
_SLICE_S = 0.1


def get_loop() -> asyncio.AbstractEventLoop:
    """The private loop, started on first use."""
    global _loop, _thread
    if _loop is not None and _thread is not None and _thread.is_alive():
        return _loop
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def main() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=main, name="llmcells-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
    return _loop


def in_loop_thread() -> bool:
    """True when called from the private loop's own thread."""
    return _thread is not None and threading.current_thread() is _thread


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule coro on the private loop; returns a thread-safe future.

    The future's `finished` event is set once the task has really ended: cancelling the future
    marks it cancelled at once, while the task still has its streams to close and its ledger
    rows to write.
    """
    finished = threading.Event()

    async def tracked() -> T:
        try:
            return await coro
        finally:
            finished.set()

    fut = asyncio.run_coroutine_threadsafe(tracked(), get_loop())
    fut.finished = finished  # type: ignore[attr-defined]
    return fut


def _cancel_and_wait(fut: concurrent.futures.Future) -> None:
    fut.cancel()
    fut.finished.wait(CANCEL_GRACE_S)  # type: ignore[attr-defined]


def run(awaitable: Awaitable[T]) -> T:
    """Run an llmcells awaitable to completion from synchronous code (scripts, terminal, magics).

    Ctrl-C cancels the requests in flight and raises KeyboardInterrupt within about half a second.
    """
    __tracebackhide__ = True  # an interrupt shows the cell's line and one message, not this frame
    from .runner import prepare  # local: runner imports this module

    if in_loop_thread():
        raise RuntimeError("llmcells.run() cannot be called from inside llmcells' own event loop; use await.")
    coro = prepare(awaitable)
    fut = submit(coro)
    try:
        while True:
            try:
                return fut.result(timeout=_SLICE_S)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        _cancel_and_wait(fut)
        raise KeyboardInterrupt("llmcells: interrupted; the requests in flight were cancelled.") from None


async def bridge(coro: Coroutine[Any, Any, T]) -> T:
    """Await coro on the private loop from another running loop (e.g. Jupyter's)."""
    if in_loop_thread():
        return await coro
    fut = submit(coro)
    waiter = asyncio.wrap_future(fut)
    try:
        while True:
            done, _ = await asyncio.wait([waiter], timeout=_SLICE_S)
            if done:
                return waiter.result()
    except asyncio.CancelledError:
        # (ipykernel turns an interrupt of an `await` cell into this.) Re-raised as a fresh
        # CancelledError, still a cancellation for asyncio, so that the cell shows its own line and
        # one message rather than four frames of asyncio internals.
        fut.cancel()
        # Let the task unwind (close its streams, record the ledger row) without blocking this loop.
        deadline = asyncio.get_running_loop().time() + CANCEL_GRACE_S
        while not fut.finished.is_set() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        raise asyncio.CancelledError("llmcells: interrupted; the requests in flight were cancelled.") from None
    except KeyboardInterrupt:
        fut.cancel()
        raise
