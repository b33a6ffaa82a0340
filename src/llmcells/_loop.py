"""The private event loop: one daemon thread, one asyncio loop where every SDK client lives, and
the ways into it (`run`, `bridge`, `Pending`).

Why not run on the caller's loop (Jupyter's) with nest_asyncio? Measured in a real kernel, that
killed the kernel on interrupt in 11 of 19 trials and never cancelled the requests. Instead:

- sync callers (`run`, the magics) submit a coroutine here and wait for it under llmcells'
  own SIGINT handler (`deferred_interrupts`, as asyncio.Runner does): Ctrl-C (or a kernel
  interrupt) only records the interrupt and cancels the run, so it never lands inside an import
  or a lock of the main thread; once the run has unwound (briefly), one short
  KeyboardInterrupt is raised, and the handler in place before is given back exactly;
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
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("llmcells")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_MAIN_THREAD_ID = threading.main_thread().ident  # the thread Python runs signal handlers in
_pools: dict[Any, concurrent.futures.ThreadPoolExecutor] = {}  # the private loop's thread pool

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
    """fn, run under llmcells' SIGINT handler (see `deferred_interrupts`): a Ctrl-C while it
    parses options, opens a display or imports an SDK is only recorded, and raised as one line
    once fn is done (or by the run fn starts, after that run has unwound)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        __tracebackhide__ = True
        with deferred_interrupts():
            return fn(*args, **kwargs)

    return wrapper


def import_pandas() -> Any:
    """pandas, its first import made with Ctrl-C deferred (`deferred_interrupts`): a
    KeyboardInterrupt inside that import leaves numpy half-initialized for the rest of the
    process ("cannot load module more than once per process"), so that every later frame, ours
    and the user's, fails until the kernel restarts. Once imported, it is a dictionary lookup."""
    pd = sys.modules.get("pandas")
    if pd is None or getattr(pd, "DataFrame", None) is None:
        with deferred_interrupts():
            import pandas as pd
    return pd


def _in_machinery(frame: Any) -> bool:
    """True when frame is inside the import machinery or a threading lock operation, where a
    KeyboardInterrupt would leave a lock taken or half released."""
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith("<frozen importlib") or name == threading.__file__:
            return True
        frame = frame.f_back
    return False


class _Sigint:
    """The state of llmcells' SIGINT handler while something runs in the main thread."""

    def __init__(self) -> None:
        self.depth = 0                 # nested deferred_interrupts blocks
        self.previous: Any = None      # the handler to give back, exactly
        self.at: float | None = None   # when the interrupt came (monotonic); None: none pending
        self.count = 0                 # interrupts since the last one was raised
        self.scope: Scope | None = None  # the run that an interrupt cancels
        self.ran = False               # a run was submitted in this block


_sigint = _Sigint()


def _on_sigint(signum: int, frame: Any) -> None:
    """The handler: as asyncio.Runner's, it records the interrupt and cancels the run, and
    raises nothing, so an import or a lock in the main thread is never cut in half. The
    KeyboardInterrupt comes at one known point, once the run has unwound (see `run`). A
    second Ctrl-C stops waiting for the unwinding; outside importlib and threading' locks it is
    raised at once (the way out of something stuck in the main thread)."""
    state = _sigint
    state.count += 1
    if state.at is None:
        scope = state.scope
        if scope is not None:
            scope.cancel_threadsafe()
        state.at = time.monotonic()
        return
    if state.count >= 2 and state.scope is None and not _in_machinery(frame):
        state.at, state.count = None, 0
        raise Interrupted(INTERRUPTED)


def interrupt_pending() -> bool:
    """True from a Ctrl-C that `deferred_interrupts` recorded until it is raised: the main
    thread is ending its cell, and work in other threads that can wait (the warm-up) does."""
    return _sigint.at is not None


class deferred_interrupts:
    """While this block runs in the main thread, SIGINT is handled by `_on_sigint`: it cancels
    the run under way and is raised, as `Interrupted`, after that run has unwound (by `run`),
    or at the end of the block. The handler in place before (Python's default, IPython's, the
    user's) is given back exactly at the end; a handler of the user's own is called then, once,
    at that safe point. Nested blocks and other threads do nothing, and a SIGINT that is
    ignored (SIG_IGN) or not Python's to handle stays so."""

    def __enter__(self) -> "deferred_interrupts":
        import signal

        self._installed = False
        # threading.get_ident is C code: a SIGINT that comes this early is raised here, in no
        # threading.py frame (current_thread() is Python code, where it could land mid-way)
        if threading.get_ident() != _MAIN_THREAD_ID:
            return self
        if _sigint.depth:
            _sigint.depth += 1
            self._installed = True
            return self
        previous = signal.getsignal(signal.SIGINT)
        if not callable(previous):
            return self
        _sigint.previous, _sigint.at, _sigint.count, _sigint.ran = previous, None, 0, False
        signal.signal(signal.SIGINT, _on_sigint)
        _sigint.depth = 1
        self._installed = True
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        import signal

        if not self._installed:
            return
        _sigint.depth -= 1
        if _sigint.depth:
            return
        previous = _sigint.previous
        # The handler is given back before the pending interrupt is read: signal.signal() first
        # runs a SIGINT still pending with the handler it replaces (ours), which records it.
        # Read before, that interrupt was lost (the next block starts afresh) and the run that
        # came next went on as if no Ctrl-C had come. One after this line is Python's to raise.
        signal.signal(signal.SIGINT, previous)
        pending, ran = _sigint.at is not None, _sigint.ran
        _sigint.previous, _sigint.at, _sigint.count, _sigint.scope = None, None, 0, None
        if pending and exc_type is None:  # it came after the last run, or with none
            _raise_interrupt(previous, INTERRUPTED if ran else NOT_SENT)


def _raise_interrupt(previous: Any, message: str) -> None:
    """The one point where an interrupt is raised: the user's own handler (if any) is called
    here, then Interrupted, whatever it did (the run it interrupted has no result)."""
    import signal

    __tracebackhide__ = True
    if previous is not None and previous is not signal.default_int_handler \
            and previous is not _on_sigint:
        try:
            previous(int(signal.SIGINT), sys._getframe(1))  # (an int, as Python passes it)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            pass
    raise Interrupted(message) from None


def get_loop() -> asyncio.AbstractEventLoop:
    """The private loop, started on first use."""
    global _loop, _thread
    if _loop is not None and _thread is not None and _thread.is_alive():
        return _loop
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            # asyncio.to_thread and getaddrinfo run here: named as llmcells', stopped by stop()
            pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="llmcells-loop-pool")
            loop.set_default_executor(pool)
            _pools[loop] = pool
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
    return _thread is not None and threading.get_ident() == _thread.ident


def stop() -> None:
    """Stop the loop thread (`%unload_ext llmcells`): cancel what runs, close the loop, drop the
    SDK clients bound to it. The next call starts a new loop."""
    global _loop, _thread
    from .session import session

    with _lock:
        loop, thread = _loop, _thread
        _loop = _thread = None
    pool = _pools.pop(loop, None)
    if loop is None or thread is None or not thread.is_alive():
        if pool is not None:
            pool.shutdown(wait=True)
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
    if pool is not None:  # (close() shuts it down without waiting): no thread outlives the loop
        pool.shutdown(wait=not thread.is_alive())
    session.clients.clear()  # bound to the closed loop: built again on the next loop
    session.job_clients.clear()


# ----- scopes: one per top-level run ------------------------------------------------------------


class Scope:
    """One top-level run (an ask, a compare, a batch): its root task and its cancelled flag, and
    the record of its interrupt: when cancellation was requested and when each request began
    sending (`note_send`). The flag is set before `cancelled_at` is read from the clock, and a
    send's time is read before the flag is checked, so every send that went ahead has a time
    earlier than `cancelled_at`: the guarantee is checked from this record, not from the clock
    of a server that may be slow."""

    def __init__(self) -> None:
        self.cancelled = False
        self.cancelled_at: float | None = None  # time.monotonic() when cancellation was requested
        self.sends: list[float] = []            # time.monotonic() when each request began sending
        self.task: asyncio.Task | None = None
        self.finished = threading.Event()  # set once the root task has really ended

    def _flag(self) -> None:
        self.cancelled = True  # first the flag, then the time (see the class docstring)
        if self.cancelled_at is None:
            self.cancelled_at = time.monotonic()

    def cancel(self) -> None:
        """Cancel the run (on the loop thread)."""
        self._flag()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def cancel_threadsafe(self) -> None:
        """Cancel the run from another thread (or a signal handler: no lock is taken): the flag
        at once, the task on the loop."""
        self._flag()  # plain stores: seen by the loop thread at its next check
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


def note_send() -> None:
    """Called as a request is about to be sent (the HTTP layer's request hook; an agent CLI as
    it starts): records the time in the run's Scope, then raises CancelledError if the run was
    cancelled, so that no request begins sending after an interrupt."""
    scope = _scope.get()
    if scope is None:
        return
    began = time.monotonic()  # before the check: see Scope
    if scope.cancelled:
        raise asyncio.CancelledError
    scope.sends.append(began)


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


def submit(coro: Coroutine[Any, Any, T], scope: Scope | None = None,
           run_cancelled: bool = False) -> concurrent.futures.Future[T]:
    """Schedule coro on the private loop as the root of a run; returns a thread-safe future whose
    `scope` cancels the run and whose `finished` event is set once the task has really ended
    (a cancelled future is marked done at once, while the task still closes its streams and
    writes its ledger rows). A run interrupted before its task began is not started, unless
    run_cancelled: llmcells' own run then unwinds under its cancelled scope (see `_run_in`)."""
    scope = scope or Scope()

    async def root() -> T:
        scope.task = asyncio.current_task()
        _scope.set(scope)  # inherited by every task the run creates
        try:
            if scope.cancelled and not run_cancelled:  # interrupted before the task existed
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

    def __init__(self, start: Callable[[], Coroutine[Any, Any, T]], what: str, *,
                 ends_cancelled: bool = False):
        self._start = start
        self._what = what
        self._used = False
        # True when its run, started under a cancelled scope, sends nothing and ends each of
        # its calls as cancelled (the pipeline's calls do): an interrupt while it opened its
        # display then still closes its cards and records its calls (see `_run_in`)
        self.ends_cancelled = ends_cancelled

    def _coroutine(self) -> Coroutine[Any, Any, T]:
        if self._used:
            raise RuntimeError(f"this {self._what} was already awaited; call it again for a new one")
        self._used = True
        return self._start()

    def __await__(self):
        return bridge(self._coroutine()).__await__()

    def __repr__(self) -> str:
        return f"<llmcells {self._what}: await it, or pass it to llmcells.run()>"

    def __getattr__(self, name: str) -> Any:
        # `r = llmcells.ask(...)` then `r.text`: say what to do, not "no attribute 'text'"
        if name.startswith("_"):  # (dunder probes by IPython, copy, pickle stay plain)
            raise AttributeError(name)
        from .errors import NotRunError  # one line in a notebook, as every user mistake

        raise NotRunError(f"this {self._what} has not run yet, so it has no .{name}: await it, "
                          "or pass it to llmcells.run(), for its result.")


def prepare(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """The coroutine to run on the private loop for an awaitable given to llmcells.run()."""
    if isinstance(awaitable, Pending):
        return awaitable._coroutine()
    if asyncio.iscoroutine(awaitable):
        return awaitable

    async def wrap() -> T:
        return await awaitable

    return wrap()


#: the Scope of the last run() started in the main thread (its interrupt record, for tests)
last_run: Scope | None = None


def run(awaitable: Awaitable[T]) -> T:
    """Run an llmcells awaitable to completion from synchronous code (scripts, terminal, magics).

    Ctrl-C cancels the requests in flight and raises KeyboardInterrupt (`Interrupted`) once
    they have unwound, within about half a second; see `deferred_interrupts`.
    """
    __tracebackhide__ = True  # an interrupt shows the cell's line and one message, not this frame
    global last_run
    if in_loop_thread():
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # refused, not dropped: no "coroutine was never awaited" later
        raise RuntimeError("llmcells.run() cannot be called from inside llmcells' own event loop; use await.")
    with deferred_interrupts() as guard:
        scope = Scope()
        state = _sigint if guard._installed else None
        if state is not None:
            last_run = scope
            outer, state.scope, state.ran = state.scope, scope, True
            if state.at is not None:  # an interrupt came before this run: it is not started
                scope.cancel_threadsafe()
        try:
            return _run_in(awaitable, scope, state)
        finally:
            if state is not None:
                state.scope = outer


def _run_in(awaitable: Awaitable[T], scope: Scope, state: _Sigint | None) -> T:
    __tracebackhide__ = True
    coro: Coroutine[Any, Any, T] | None = None
    fut: concurrent.futures.Future[T] | None = None
    own = isinstance(awaitable, Pending) and awaitable.ends_cancelled
    sent_nothing = True  # the run was cancelled before its task began: it sent nothing
    try:
        if scope.cancelled:  # an interrupt before this run: nothing is opened, nothing is sent
            if asyncio.iscoroutine(awaitable):
                _close_quietly(awaitable)
        else:
            coro = prepare(awaitable)  # (opening a display can import the widgets: no interrupt cuts it)
        if coro is not None and scope.cancelled and not own:
            _close_quietly(coro)  # not started once interrupted
        elif coro is not None:
            # An interrupt while prepare opened the display (the first one imports the widgets)
            # still starts a run of the pipeline's calls, under its cancelled scope: each call
            # ends as cancelled at once, sending nothing, so its card says so and its ledger row
            # is written, as when the interrupt comes a moment later. Closed unstarted, the run
            # left its cards waiting for good and its calls out of the ledger. Any other run
            # (a provider job's submission, a health check) is not started.
            sent_nothing = scope.cancelled
            fut = submit(coro, scope, run_cancelled=own)
            while not scope.cancelled:
                try:
                    return fut.result(timeout=_SLICE_S)
                except concurrent.futures.TimeoutError:
                    continue
                except concurrent.futures.CancelledError:
                    if not scope.cancelled:
                        raise
    except KeyboardInterrupt:  # no handler of ours (not the main thread, or SIGINT not Python's)
        scope.cancel_threadsafe()
        if coro is not None and fut is None:
            _close_quietly(coro)
    # --- the run was interrupted: let it unwind (close its streams, write its ledger rows) ---
    seen = time.monotonic()
    if fut is not None:
        deadline = seen + CANCEL_GRACE_S
        while not scope.finished.is_set() and time.monotonic() < deadline:
            if state is not None and state.count >= 2:  # a second Ctrl-C: stop waiting
                break
            scope.finished.wait(min(_SLICE_S, max(0.0, deadline - time.monotonic())))
    log.debug("interrupted run unwound in %.3f s (finished: %s)", time.monotonic() - seen,
              scope.finished.is_set())
    # (sends: the requests that went out, and the agent CLIs that started, before the interrupt)
    message = NOT_SENT if sent_nothing or not scope.sends else INTERRUPTED
    if state is None:
        raise Interrupted(message) from None
    previous = state.previous
    state.at, state.count = None, 0  # raised here, once
    _raise_interrupt(previous, message)
    raise AssertionError("unreachable")  # (for type checkers)


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
        raise InterruptedAwait(INTERRUPTED if scope.sends else NOT_SENT) from None
    except KeyboardInterrupt:
        scope.cancel_threadsafe()
        raise
