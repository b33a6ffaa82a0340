"""The private event loop: one daemon thread, one asyncio loop where every SDK client lives, and
the ways into it (`run`, `bridge`, `Pending`).

Why not run on the caller's loop (Jupyter's) with nest_asyncio? Measured in a real kernel, that
killed the kernel on interrupt in 11 of 19 trials and never cancelled the requests. Instead:

- sync callers (`run`, the magics) submit a coroutine here and wait in 0.1 s slices, so that
  KeyboardInterrupt (Ctrl-C or a kernel interrupt) arrives between slices; on interrupt they
  cancel the run, wait briefly for it to unwind, and raise one short KeyboardInterrupt;
- async callers (`await llmcells.ask(...)` in Jupyter) await the cross-thread future with a
  0.1 s wake-up (without it, ipykernel's interrupt stalls until the next byte arrives) and cancel
  the run when their own await is cancelled.

Every run has a `Scope`: a flag that the engine checks before each request and at every stream
event, besides the asyncio cancellation of its root task. A task cancellation alone can be lost
(an interrupt can land before the task exists, or, on Python 3.11, inside a `wait_for` that
swallows it); the flag cannot, so no call starts or finishes after an interrupt.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("llmcells")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None

#: how long a sync caller waits for a cancelled run to unwind before giving up on it
CANCEL_GRACE_S = 0.5
_SLICE_S = 0.1
INTERRUPTED = "llmcells: interrupted; the requests in flight were cancelled."


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or a kernel interrupt) cancelled an llmcells run; its calls are recorded as
    cancelled. A KeyboardInterrupt like any other, which IPython shows as one line."""

    def _render_traceback_(self) -> list[str]:
        """IPython's hook: this one line instead of a traceback. Nothing in the user's code went
        wrong, and formatting a traceback (IPython parses every frame's source) in a busy
        kernel can take longer than the interrupt itself."""
        return [f"KeyboardInterrupt: {self}"]


class InterruptedAwait(asyncio.CancelledError):
    """The same interrupt in an `await` cell: ipykernel turns SIGINT there into cancelling the
    cell's task, and it must stay a cancellation for asyncio (a KeyboardInterrupt raised in a
    task would stop the kernel's own loop). IPython shows it as the same one line."""

    _render_traceback_ = Interrupted._render_traceback_


NOT_SENT = "llmcells: interrupted before anything was sent."


def one_line_interrupt(fn: Callable[..., T]) -> Callable[..., T]:
    """fn, with a KeyboardInterrupt that lands outside `run` (while a magic parses its options,
    or the first call imports an SDK) shown as one line like any other llmcells interrupt: an
    import's traceback is the slowest IPython has to format (seconds in a fresh kernel), and
    nothing had been sent yet. The interrupt waits for any import under way (see
    `imports_finish_first`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        __tracebackhide__ = True
        try:
            with imports_finish_first():
                return fn(*args, **kwargs)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            raise Interrupted(NOT_SENT) from None

    return wrapper


def _importing(frame: Any) -> bool:
    """True when frame is inside the import machinery."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


_held_interrupt = False  # an interrupt that landed inside an import, to raise at a safe point


def raise_held_interrupt() -> None:
    """Raise the KeyboardInterrupt held back by `imports_finish_first`, if there is one."""
    global _held_interrupt
    if _held_interrupt:
        _held_interrupt = False
        raise KeyboardInterrupt


class imports_finish_first:
    """While this block runs in the main thread, Ctrl-C (or a kernel interrupt) that lands
    inside an import is held until a safe point: the end of the block, or `run()`'s next wait
    slice (0.1 s), whichever comes first.

    Python raises KeyboardInterrupt at any bytecode, importlib's own included: between taking
    the global import lock and the `try` that gives it back, say. The lock then stays taken for
    good, and the next import in any other thread (the event loop's, the warm-up's) waits
    forever: a fresh kernel interrupted during its first %%compare hung this way. Nested blocks
    and other threads do nothing; no signal is ever sent from here."""

    _active = False

    def __enter__(self) -> "imports_finish_first":
        import signal

        self._installed = False
        if imports_finish_first._active or threading.current_thread() is not threading.main_thread():
            return self
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):  # SIGINT ignored, or not Python's to handle: nothing to hold
            return self
        self._previous = previous
        signal.signal(signal.SIGINT, self._handler)
        self._installed = imports_finish_first._active = True
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        global _held_interrupt
        if _importing(frame):
            _held_interrupt = True  # raised at the next safe point
            return
        _held_interrupt = False
        self._previous(signum, frame)

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        import signal

        if not self._installed:
            return
        signal.signal(signal.SIGINT, self._previous)
        imports_finish_first._active = False
        if exc_type is None:
            raise_held_interrupt()  # it came during the block's last import
        else:
            global _held_interrupt
            _held_interrupt = False


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


def stop() -> None:
    """Stop the loop thread (`%unload_ext llmcells`): cancel what runs, close the loop, drop the
    SDK clients bound to it. The next call starts a new loop."""
    global _loop, _thread
    from .session import session

    with _lock:
        loop, thread = _loop, _thread
        _loop = _thread = None
    if loop is None or thread is None or not thread.is_alive():
        return

    async def shutdown() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.wait(tasks, timeout=CANCEL_GRACE_S) if tasks else None
        loop.stop()

    loop.call_soon_threadsafe(lambda: loop.create_task(shutdown()))
    thread.join(timeout=2.0)
    if not thread.is_alive():
        loop.close()
    session.clients.clear()


# ----- scopes: one per top-level run ------------------------------------------------------------


class Scope:
    """One top-level run (an ask, a compare, a batch): its root task and its cancelled flag."""

    def __init__(self) -> None:
        self.cancelled = False
        self.task: asyncio.Task | None = None
        self.finished = threading.Event()  # set once the root task has really ended

    def cancel(self) -> None:
        """Cancel the run (on the loop thread)."""
        self.cancelled = True
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def cancel_threadsafe(self) -> None:
        """Cancel the run from another thread: the flag at once, the task on the loop."""
        self.cancelled = True  # a plain store: seen by the loop thread at its next check
        loop = _loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self.cancel)
            except RuntimeError:  # the loop closed meanwhile: nothing left to cancel
                log.debug("loop closed while cancelling a run")


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("llmcells_scope", default=None)


def current_scope() -> Scope | None:
    """The Scope of the run the current task belongs to (None outside a run)."""
    return _scope.get()


def cancelled() -> bool:
    """True when the run the current task belongs to was cancelled."""
    scope = _scope.get()
    return scope is not None and scope.cancelled


def check_cancelled() -> None:
    """Raise CancelledError when the run the current task belongs to was cancelled."""
    scope = _scope.get()
    if scope is not None and scope.cancelled:
        raise asyncio.CancelledError


async def wait_all(tasks: Iterable[asyncio.Future[Any]]) -> bool:
    """Wait until every task has ended. If the waiting task is cancelled meanwhile, each task still
    running is cancelled once (a second cancel would cut its unwinding short, and the Result it
    records) and still waited for. True when that happened."""
    interrupted = False
    pending = set(tasks)
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:
            if not interrupted:
                interrupted = True
                for task in pending:
                    task.cancel()
    return interrupted


def submit(coro: Coroutine[Any, Any, T], scope: Scope | None = None) -> concurrent.futures.Future[T]:
    """Schedule coro on the private loop as the root of a run; returns a thread-safe future whose
    `scope` cancels the run and whose `finished` event is set once the task has really ended
    (a cancelled future is marked done at once, while the task still closes its streams and
    writes its ledger rows)."""
    scope = scope or Scope()

    async def root() -> T:
        scope.task = asyncio.current_task()
        _scope.set(scope)  # inherited by every task the run creates
        try:
            if scope.cancelled:  # interrupted before the task existed
                coro.close()
                raise asyncio.CancelledError
            return await coro
        finally:
            scope.finished.set()

    fut = asyncio.run_coroutine_threadsafe(root(), get_loop())
    fut.scope = scope  # type: ignore[attr-defined]
    fut.finished = scope.finished  # type: ignore[attr-defined]
    return fut


# ----- the ways in ----------------------------------------------------------------------------


class Pending(Generic[T]):
    """An llmcells call that has not started yet. `await` it (in Jupyter or any running loop) or
    pass it to `llmcells.run()`. Its display is opened in the thread that awaits or runs it."""

    def __init__(self, start: Callable[[], Coroutine[Any, Any, T]], what: str):
        self._start = start
        self._what = what
        self._used = False

    def _coroutine(self) -> Coroutine[Any, Any, T]:
        if self._used:
            raise RuntimeError(f"this {self._what} was already awaited; call it again for a new one")
        self._used = True
        return self._start()

    def __await__(self):
        return bridge(self._coroutine()).__await__()

    def __repr__(self) -> str:
        return f"<llmcells {self._what}: await it, or pass it to llmcells.run()>"


def prepare(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """The coroutine to run on the private loop for an awaitable given to llmcells.run()."""
    if isinstance(awaitable, Pending):
        return awaitable._coroutine()
    if asyncio.iscoroutine(awaitable):
        return awaitable

    async def wrap() -> T:
        return await awaitable

    return wrap()


def run(awaitable: Awaitable[T]) -> T:
    """Run an llmcells awaitable to completion from synchronous code (scripts, terminal, magics).

    Ctrl-C cancels the requests in flight and raises KeyboardInterrupt within about half a second.
    """
    __tracebackhide__ = True  # an interrupt shows the cell's line and one message, not this frame
    if in_loop_thread():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # refused, not dropped: no "coroutine was never awaited" later
        raise RuntimeError("llmcells.run() cannot be called from inside llmcells' own event loop; use await.")
    scope = Scope()
    coro: Coroutine[Any, Any, T] | None = None
    fut: concurrent.futures.Future[T] | None = None
    try:  # everything from here on: an interrupt may land anywhere, even inside submit()
        with imports_finish_first():  # (opening a display can import the widgets)
            coro = prepare(awaitable)
            fut = submit(coro, scope)
            while True:
                raise_held_interrupt()
                try:
                    return fut.result(timeout=_SLICE_S)
                except concurrent.futures.TimeoutError:
                    continue
    except KeyboardInterrupt:
        seen = time.monotonic()
        scope.cancel_threadsafe()
        if fut is None and coro is not None and scope.task is None:
            # Not submitted (or submitted and not yet started: its root closes it when it does).
            _close_quietly(coro)
        if fut is not None or scope.task is not None:
            scope.finished.wait(CANCEL_GRACE_S)
        log.debug("interrupted run unwound in %.3f s (finished: %s)", time.monotonic() - seen,
                  scope.finished.is_set())
        raise Interrupted(INTERRUPTED) from None


def _close_quietly(coro: Coroutine[Any, Any, Any]) -> None:
    try:
        coro.close()
    except (RuntimeError, ValueError):  # already running on the loop: the scope flag stops it
        log.debug("interrupted coroutine was already running")


async def bridge(coro: Coroutine[Any, Any, T]) -> T:
    """Await coro on the private loop from another running loop (e.g. Jupyter's)."""
    if in_loop_thread():
        return await coro
    scope = Scope()
    fut = submit(coro, scope)
    waiter = asyncio.wrap_future(fut)
    try:
        while True:
            done, _ = await asyncio.wait([waiter], timeout=_SLICE_S)
            if done:
                return waiter.result()
    except asyncio.CancelledError:
        # (ipykernel turns an interrupt of an `await` cell into this.) Re-raised as a fresh
        # cancellation that IPython shows as the magics' one line, not a dozen lines of frames.
        scope.cancel_threadsafe()
        # Let the run unwind (close its streams, record the ledger rows) without blocking this loop.
        deadline = asyncio.get_running_loop().time() + CANCEL_GRACE_S
        while not scope.finished.is_set() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        raise InterruptedAwait(INTERRUPTED) from None
    except KeyboardInterrupt:
        scope.cancel_threadsafe()
        raise
