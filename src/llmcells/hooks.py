"""Hooks: user callbacks on every call's events (`llmcells.on(event, callback)` / `llmcells.off`).

Events: "request" (a model request starts), "first_token", "retry", "tool_call" (a tool the
model asked for finished running), "finish" (a request ended "ok") and "error" (it ended any
other way). A callback gets one `HookRecord`: a frozen snapshot of the call, never the key.

Callbacks never slow a call down and never break it:
- sync callbacks run, in event order, on one dedicated daemon thread fed by a queue, so a slow
  one delays only the callbacks queued behind it, never the stream;
- async callbacks run as tasks on the private loop;
- a callback that raises is reported once (a warning on the `llmcells` logger) and then ignored.

The pipeline's hooks stage adds the hook observer to every model request (`observe`); with no
callbacks registered and tracing off it adds nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import otel
from .session import session
from .types import CallInfo, CallObserver, Result, RetryInfo
from ._log import swallowed

log = logging.getLogger("llmcells")

#: the events a callback can follow
EVENTS = ("request", "first_token", "retry", "tool_call", "finish", "error")

# The callbacks live in the session (session.reset() removes them); this is the same dict.
session.hooks.update({e: [] for e in EVENTS})
_callbacks: dict[str, list[Callable[..., Any]]] = session.hooks
_lock = threading.Lock()
_reported: set[int] = session.hook_failures  # id() of callbacks whose failure was already reported
_queue: "queue.SimpleQueue[tuple[Callable[..., Any], HookRecord] | None]" = queue.SimpleQueue()
_worker: threading.Thread | None = None
_tasks: set[asyncio.Task] = set()  # async callbacks still running (kept referenced)


@dataclass(frozen=True)
class HookRecord:
    """A read-only snapshot of one call at one event. No key is ever in it.

    event: which event; call_id / group_id / model / model_id / provider / purpose identify the
    call; at: epoch seconds of the event; elapsed_s: seconds since the request was sent (None
    before). first_token: ttft_s. retry: the RetryInfo. tool_call: name, arguments, duration_s,
    result preview, error. finish / error: status, error, text, usage, cost_usd, latency_s,
    attempts (and the whole result row in `row`).
    """

    event: str
    call_id: str
    model: str
    model_id: str
    provider: str
    group_id: str | None = None
    purpose: str = "answer"
    simulated: bool = False
    at: float = 0.0
    elapsed_s: float | None = None
    ttft_s: float | None = None
    retry: RetryInfo | None = None
    tool_call: MappingProxyType | None = None
    status: str | None = None
    error: str | None = None
    error_kind: str | None = None
    text: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    attempts: int | None = None
    row: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


def on(event: str, callback: Callable[[HookRecord], Any]) -> Callable[[HookRecord], Any]:
    """Call callback(record) on every `event` of every call ("request", "first_token", "retry",
    "tool_call", "finish", "error"). callback may be sync or async; returns it (usable as a
    decorator factory: `llmcells.on("finish", f)`)."""
    from .errors import ConfigError

    if event not in EVENTS:
        raise ConfigError(f"Unknown hook event {event!r}; use one of: {', '.join(EVENTS)}.")
    if not callable(callback):
        raise ConfigError(f"A hook must be a function, not {type(callback).__name__}.")
    with _lock:
        _callbacks[event].append(callback)
    return callback


def off(event: str | None = None, callback: Callable[..., Any] | None = None) -> None:
    """Remove callback from event; callback only: from every event; event only: all of its
    callbacks; nothing: every callback."""
    with _lock:
        for name in ([event] if event else EVENTS):
            if name not in _callbacks:
                continue
            if callback is None:
                _callbacks[name].clear()
            else:
                _callbacks[name][:] = [c for c in _callbacks[name] if c is not callback]


def active() -> bool:
    """Whether any callback is registered."""
    return any(_callbacks.values())


# ----- dispatch ------------------------------------------------------------------------------------


def _report(callback: Callable[..., Any], exc: BaseException) -> None:
    if id(callback) in _reported:
        return
    _reported.add(id(callback))
    name = getattr(callback, "__qualname__", None) or repr(callback)
    log.warning("llmcells hook %s raised %s: %s (reported once; the call goes on).", name,
                type(exc).__name__, str(exc)[:200])


def _work() -> None:
    while True:
        item = _queue.get()
        if item is None:
            return
        callback, record = item
        try:
            callback(record)
        except Exception as exc:
            _report(callback, exc)


def _run_sync(callback: Callable[..., Any], record: HookRecord) -> None:
    global _worker
    if _worker is None or not _worker.is_alive():
        with _lock:
            if _worker is None or not _worker.is_alive():
                _worker = threading.Thread(target=_work, name="llmcells-hooks", daemon=True)
                _worker.start()
    _queue.put((callback, record))


def _run_async(callback: Callable[..., Any], record: HookRecord) -> None:
    async def guarded() -> None:
        try:
            await callback(record)
        except Exception as exc:
            _report(callback, exc)

    try:
        task = asyncio.get_running_loop().create_task(guarded())
    except RuntimeError:  # no loop in this thread: run it on the hook thread instead
        _run_sync(lambda r: asyncio.run(guarded()), record)
        return
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


def emit(event: str, record: HookRecord) -> None:
    """Hand record to every callback of event; returns at once."""
    with _lock:
        callbacks = list(_callbacks.get(event, ()))
    for callback in callbacks:
        if inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
                getattr(callback, "__call__", None)):
            _run_async(callback, record)
        else:
            _run_sync(callback, record)


def stop(timeout: float = 5.0) -> None:
    """Run the sync callbacks queued so far, then end the hook thread (`%unload_ext llmcells`);
    the next sync callback starts it again."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None and worker.is_alive():
        _queue.put(None)  # after everything queued before it
        worker.join(timeout)


def flush(timeout: float = 5.0) -> None:
    """Wait until the sync callbacks queued so far have run (for tests and scripts' ends)."""
    done = threading.Event()
    _run_sync(lambda _r: done.set(), None)  # type: ignore[arg-type]
    done.wait(timeout)


# ----- the observer ---------------------------------------------------------------------------------


def _base(info: CallInfo, event: str, t0: float | None, **fields: Any) -> HookRecord:
    return HookRecord(event=event, call_id=info.call_id, model=info.model, model_id=info.model_id,
                      provider=info.provider, group_id=info.group_id, purpose=info.purpose,
                      simulated=info.simulated, at=time.time(),
                      elapsed_s=None if t0 is None else time.monotonic() - t0, **fields)


def result_fields(result: Result) -> dict[str, Any]:
    """The finish / error fields of a record from a Result (a snapshot, not the object)."""
    try:
        row = result.to_row()
    except Exception as exc:
        swallowed("reading a result's row for a hook (its status fields only)", exc)
        row = {}
    return dict(status=result.status, error=result.error, error_kind=result.error_kind,
                text=result.text, input_tokens=result.usage.input_tokens,
                output_tokens=result.usage.output_tokens, cost_usd=result.cost_usd,
                latency_s=result.latency_s, attempts=result.attempts, ttft_s=result.ttft_s,
                row=MappingProxyType(row))


class HookObserver(CallObserver):
    """Turns one call's observer events into hook records."""

    def __init__(self) -> None:
        self.info: CallInfo | None = None
        self.t0: float | None = None

    def _emit(self, event: str, **fields: Any) -> None:
        if self.info is None or not _callbacks.get(event):
            return
        try:
            emit(event, _base(self.info, event, self.t0, **fields))
        except Exception:
            log.debug("emitting a hook event failed", exc_info=False)

    def on_start(self, info: CallInfo) -> None:
        self.info = info
        self._emit("request")

    def on_sent(self, t0: float) -> None:
        self.t0 = t0

    def on_first_token(self, ttft_s: float) -> None:
        self._emit("first_token", ttft_s=ttft_s)

    def on_retry(self, retry: RetryInfo) -> None:
        self._emit("retry", retry=retry)

    def on_finish(self, result: Result) -> None:
        event = "finish" if result.ok else "error"
        if self.info is None or not _callbacks.get(event):
            return
        self._emit(event, **result_fields(result))


def tool_call(info: CallInfo, name: str, arguments: str, duration_s: float, preview: str,
              error: str | None) -> None:
    """The "tool_call" event: a tool the model asked for has run (tools.py calls this); also its
    OpenTelemetry span when tracing is on."""
    otel.tool_span(name, arguments, duration_s, preview, error)
    if not _callbacks.get("tool_call"):
        return
    data = MappingProxyType({"name": name, "arguments": arguments, "duration_s": duration_s,
                             "result": preview, "error": error})
    emit("tool_call", _base(info, "tool_call", None, tool_call=data))


class _Tee:
    """The call's own observer, then the hook observer; the hook side can never raise. Any other
    (optional) observer method goes to the call's own observer."""

    def __init__(self, first: CallObserver, hook: HookObserver) -> None:
        self._first, self._hook = first, hook

    def __getattr__(self, name: str) -> Any:  # optional observer methods (on_scores, ...)
        return getattr(self._first, name)

    def _both(self, name: str, *args: Any) -> None:
        try:
            getattr(self._first, name)(*args)
        finally:
            try:
                getattr(self._hook, name)(*args)
            except Exception:
                log.debug("a hook observer raised", exc_info=False)

    def on_start(self, info): self._both("on_start", info)  # noqa: E704
    def on_sent(self, t0): self._both("on_sent", t0)  # noqa: E704
    def on_status(self, status, detail=None): self._first.on_status(status, detail)  # noqa: E704
    def on_retry(self, retry): self._both("on_retry", retry)  # noqa: E704
    def on_first_token(self, ttft_s): self._both("on_first_token", ttft_s)  # noqa: E704
    def on_text(self, delta): self._first.on_text(delta)  # noqa: E704
    def on_usage(self, usage): self._first.on_usage(usage)  # noqa: E704
    def on_finish(self, result): self._both("on_finish", result)  # noqa: E704


def observe(observer: CallObserver, plan: Any = None) -> CallObserver:
    """observer, followed by the hooks when any are registered, and by an OpenTelemetry span
    when tracing is on (otel.py; plan gives the span the request's settings). The engine calls
    this per model request."""
    if otel.enabled():
        observer = _Tee(observer, otel.observer(plan))  # type: ignore[arg-type]
    if not active():
        return observer
    return _Tee(observer, HookObserver())


async def stage(plan: Any, observer: CallObserver, next: Any) -> Result:
    """The pipeline stage: the hooks (and tracing) follow each model request."""
    return await next(plan, observe(observer, plan))
