"""The call engine: one CallPlan in, one Result out, on the private loop (client cache, attempts,
the stream, events -> Result, pricing and the ledger row).

`execute` never raises for a failed call and returns its Result even when the call is cancelled
(status "cancelled"); whoever runs it decides whether to propagate the cancellation. A call
counts as finished only once its ledger row is committed (it would survive a SIGKILL).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _loop, quotas, replay
from ._log import quietly
from .config import settings
from .errors import (ConnectionFailedError, IncompleteStreamError, LLMError, ProviderError,
                     ProviderTimeoutError, redact)
from .models import ModelSpec, api_key
from .providers import ClientOptions, get_provider
from .retry import retry_wait, should_retry
from .session import session
from .types import (CallInfo, CallObserver, Finish, ReasoningDelta, Request, ResponseInfo, Result,
                    RetryInfo, TextDelta, ToolCall, Usage, UsageUpdate)

log = logging.getLogger("llmcells")


@dataclass
class CallPlan:
    """One call to make: the request, where it goes, its limits and its identity."""

    request: Request
    info: CallInfo
    timeout: float
    ttft_timeout: float
    connect_timeout: float
    cell: int | None = None
    batch_id: str | None = None
    http_client: Any = None
    cache: bool = False            # answer from / keep in the local store
    store_key: str | None = None   # batch calls: keep an ok result under this key (for resume)
    gate: Any = None               # batch calls: rate limiter (acquire / answered / release / rate_limited)
    # --- fallback / quotas (see fallback.py): the rest of a model chain, the error kinds that
    # move it on, and per-call daily caps ({"google": {"rpd": 250}})
    fallbacks: list["CallPlan"] = field(default_factory=list)
    fallback_on: frozenset[str] | None = None
    limits: dict[str, Any] | None = None
    tools: Any = None              # tools.ToolSet: a call with tools (tools.run_call makes its requests)

    @property
    def spec(self) -> ModelSpec:
        return self.request.spec


# ----- clients ----------------------------------------------------------------------------------


_builder_pool: concurrent.futures.ThreadPoolExecutor | None = None


def builder() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that builds SDK clients (and so imports the SDKs), started on first use."""
    global _builder_pool
    if _builder_pool is None:
        _builder_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmcells-clients")
    return _builder_pool


#: clients being built for calls (not for the warm-up): a call waits for all of them, see below
_building: set[asyncio.Future] = set()


async def client_for(plan: CallPlan, key: str, *, together: bool = True) -> Any:
    """The SDK client for plan's endpoint and key: built once, off the loop, and reused.

    together=True: if other calls' clients are being built too (a first %%compare), wait for
    them all, so that the requests go out together. The last client is ready at the same time
    either way; sending early would only measure the first answers' latency against the GIL
    of the imports still running."""
    spec = plan.spec
    options = ClientOptions(base_url=spec.base_url, api_key=key, connect_timeout=plan.connect_timeout,
                            read_timeout=plan.timeout, http_client=plan.http_client)
    cache_key = (spec.adapter, options)
    client = session.clients.get(cache_key)
    if client is None:
        # The first use of a provider imports its SDK (about a second): build the client off the
        # loop, so that other calls keep streaming and an interrupt is still served meanwhile;
        # and once, however many calls are waiting for it. One thread builds them all, one
        # after another: imports hold the GIL, so three SDKs imported side by side took 2.35 s
        # where one after another took 1.9 s, and the first SDK's request now goes out as soon
        # as that SDK alone is in.
        loop = asyncio.get_running_loop()

        def build() -> Any:
            from .warmup import CALLING, _import_quietly, first, import_transport

            with first():  # never beside the warm-up's imports, and before its next one (see warmup)
                provider = get_provider(spec.adapter)  # (its first use imports the SDK: here, off the loop)
                built = provider.make_client(options)
                import_transport()  # what the first request would import on the loop, mid-stream
                _import_quietly(CALLING)  # what the call imports on the loop
            builder().submit(quietly, provider.finish_client, built)  # after those queued now
            return built

        client = session.clients[cache_key] = loop.run_in_executor(builder(), build)
        if together:
            _building.add(client)
            client.add_done_callback(_building.discard)
        # What the end of the call needs (pricing data, the ledger) is imported meanwhile, in
        # the background, while the request is out: a script's first call pays only for its SDK.
        from . import warmup

        warmup.start([], finishing=True)
    if isinstance(client, asyncio.Future):
        try:
            built = await asyncio.shield(client)
        except Exception:
            session.clients.pop(cache_key, None)  # let the next call try again
            raise
        session.clients[cache_key] = built
        loop = asyncio.get_running_loop()
        others = {f for f in _building if not f.done() and f.get_loop() is loop}
        _building.intersection_update(others)  # (a build of a loop since stopped never ends)
        if together and others:
            await asyncio.wait({asyncio.shield(f) for f in others})  # (their errors are theirs)
        return built
    return client


# ----- errors -----------------------------------------------------------------------------------


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text)[:300]  # redact first: a cut could leave an unrecognisable piece of a key


def as_llm_error(exc: BaseException, spec: ModelSpec) -> LLMError:
    """The llmcells error for any exception raised while calling spec's provider."""
    if isinstance(exc, LLMError):
        return exc
    try:
        mapped = get_provider(spec.adapter).map_error(exc, spec)
    except Exception:  # a mapper bug must not hide the original error
        log.debug("map_error failed for %s", spec.id, exc_info=False)
        mapped = None
    if mapped is not None:
        return mapped
    if isinstance(exc, TimeoutError):
        return ProviderTimeoutError(f"{spec.label} did not answer in time.", provider=spec.provider)
    return ProviderError(f"{spec.label}: {type(exc).__name__}: {_short(exc)}", provider=spec.provider)


def _not_started(spec: ModelSpec) -> ConnectionFailedError:
    """A stream that broke before any answer text: nothing was shown, so it can be sent again."""
    return ConnectionFailedError(
        f"The connection to {spec.label} closed before the answer started.", provider=spec.provider)


# ----- one call -----------------------------------------------------------------------------------


#: the longest one stream keeps the loop before letting the others run (seconds)
_TURN_S = 0.005


def _is_high_surrogate(ch: str) -> bool:
    return "\ud800" <= ch <= "\udbff"


def _mend(text: str) -> str:
    """Join surrogate pairs into their characters; a lone surrogate becomes U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class _Call:
    """The state of one call across its attempts: the answer's pieces, usage, timings."""

    def __init__(self, plan: CallPlan, observer: CallObserver):
        self.plan, self.observer = plan, observer
        self.t0 = time.monotonic()
        self.pieces: list[str] = []      # the answer, in the pieces it came in (joined once, at the end)
        self.held = ""                   # a high surrogate waiting for its other half
        self.reasoning: list[str] = []
        self.usage = Usage()
        self.usage_seen = False
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.service_tier: str | None = None  # as the provider answered: it sets the price
        self.speed: str | None = None         # Anthropic: "standard" / "fast"
        self.inference_geo: str | None = None
        self.finish_reason: str | None = None
        self.ttft: float | None = None
        self.attempts = 0
        self.heard = False               # any event came back from the provider
        self.agent: dict | None = None   # [agents] an agent CLI's report (ResponseInfo.agent)
        self.tool_calls: list[ToolCall] = []  # the turn ended asking for these (tools.py runs them)
        self.notes: list[str] = []       # how the answer ended, when Finish says (Result.notes)

    @property
    def shown(self) -> bool:
        """Whether the user has seen tokens (answer or reasoning): from then on, never re-send."""
        return bool(self.pieces or self.reasoning)

    def text(self) -> str:
        return "".join(self.pieces) + ("\ufffd" if self.held else "")

    def _piece(self, text: str) -> str:
        """text with surrogate pairs split across deltas rejoined (an answer's emoji can arrive
        as two JSON-escaped halves in two events)."""
        if self.held:
            text, self.held = self.held + text, ""
        if text and _is_high_surrogate(text[-1]):
            text, self.held = text[:-1], text[-1]
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                text = _mend(text)
        return text

    async def attempt(self, client: Any) -> None:
        """One attempt: stream until the terminal event. Raises LLMError on failure."""
        self.attempts += 1
        self.tool_calls = []  # a retried attempt asks anew
        plan, observer = self.plan, self.observer
        gate = plan.gate
        observer.on_status("waiting")
        events = get_provider(plan.spec.adapter).stream(client, plan.request)
        answered = gate is None
        finished = False
        first_token = None
        turn_ends = time.monotonic() + _TURN_S
        scope = _loop.current_scope()  # looked up once: checked at every event
        try:
            async with asyncio.timeout(plan.ttft_timeout) as first_token:
                async for event in events:
                    if scope is not None and scope.cancelled:
                        raise asyncio.CancelledError
                    if time.monotonic() > turn_ends:
                        # An SDK parses every event already buffered without giving the loop
                        # back; a fast, long answer would then stall every other stream.
                        await asyncio.sleep(0)
                        turn_ends = time.monotonic() + _TURN_S
                    self.heard = True
                    if not answered:  # the provider has the request: its rate windows can count it
                        answered = True
                        gate.answered(plan)
                    kind = type(event)
                    if kind is TextDelta:
                        text = event.text
                        if self.held or not text.isascii():  # (ASCII holds no surrogate half)
                            text = self._piece(text)
                        if not text:
                            continue
                        if self.ttft is None:
                            self.ttft = time.monotonic() - self.t0
                            first_token.reschedule(None)  # the first-token limit is met
                            observer.on_first_token(self.ttft)
                            observer.on_status("streaming")
                        self.pieces.append(text)
                        observer.on_text(text)
                    elif kind is UsageUpdate:
                        self.usage, self.usage_seen = event.usage, True
                        observer.on_usage(event.usage)
                    elif kind is ReasoningDelta:
                        if self.ttft is None:  # visible thinking is shown: the same no-resend rule
                            first_token.reschedule(None)
                        self.reasoning.append(event.text)
                    elif kind is ResponseInfo:
                        self.response_model = event.response_model or self.response_model
                        self.response_id = event.response_id or self.response_id
                        self.service_tier = event.service_tier or self.service_tier
                        self.speed = event.speed or self.speed
                        self.inference_geo = event.inference_geo or self.inference_geo
                        if event.rate_limits:  # the provider's rate-limit headers (quota())
                            quotas.observe(plan.spec, event.rate_limits)
                        if event.agent:  # an agent CLI's own report (cli, version, turns...)
                            self.agent = {**(self.agent or {}), **event.agent}
                    elif kind is ToolCall:
                        self.tool_calls.append(event)
                    elif kind is Finish:
                        finished = True
                        self.finish_reason = event.reason
                        if event.note and event.note not in self.notes:
                            self.notes.append(event.note)
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            if first_token is not None and first_token.expired():
                raise ProviderTimeoutError(
                    f"No first token from {plan.spec.id} within {plan.ttft_timeout:g} s; "
                    "try again, or raise the limit with llmcells.configure(ttft_timeout=...).",
                    provider=plan.spec.provider) from None
            raise self._failed(exc) from None
        except BaseException as exc:
            quotas.observe_error(plan.spec, exc)  # a 429's quota details and headers
            raise self._failed(exc) from None
        finally:
            await _aclose(events)
        if not finished:
            if not self.shown:
                raise _not_started(plan.spec)
            err = IncompleteStreamError(
                f"The stream from {plan.spec.id} ended before it was complete; the partial answer is kept.",
                provider=plan.spec.provider)
            err.partial = True
            raise err

    def _failed(self, exc: BaseException) -> LLMError:
        err = as_llm_error(exc, self.plan.spec)
        if isinstance(err, IncompleteStreamError) and not self.shown:
            err = _not_started(self.plan.spec)  # a cut before any text: safe to send again
        err.partial = self.shown  # never re-send once the user has seen tokens
        return err


def _duration(seconds: float) -> str:
    """3600 -> "1 h", 90 -> "1.5 min", 45 -> "45 s"."""
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


async def _aclose(events: Any) -> None:
    try:
        await events.aclose()
    except BaseException:  # closing a broken stream can fail again; nothing more to do
        log.debug("closing a stream failed", exc_info=False)


async def _attempts(call: _Call, client: Any, deadline: asyncio.Timeout) -> None:
    """Attempts until one succeeds or the retry policy gives up. The first attempt pays nothing
    for the policy; only a failure consults it."""
    plan, observer, gate = call.plan, call.observer, call.plan.gate
    while True:
        _loop.check_cancelled()
        if gate is not None:
            # Waiting in the gate is not the call's time: stop its clock meanwhile.
            loop = asyncio.get_running_loop()
            when = deadline.when()
            left = None if when is None else when - loop.time()
            deadline.reschedule(None)
            await gate.acquire(plan)
            if left is not None:
                deadline.reschedule(loop.time() + left)
        try:
            await call.attempt(client)
            return
        except LLMError as err:
            if err.retry_after is not None and err.retry_after > settings.retry_max_wait \
                    and not getattr(err, "partial", False):
                err.args = (f"{err.message} The provider asked to wait {_duration(err.retry_after)}, "
                            f"longer than retry_max_wait ({settings.retry_max_wait:g} s); try again "
                            "later, or raise it with llmcells.configure(retry_max_wait=...).",)
            if gate is not None and err.kind == "rate_limited":
                gate.rate_limited(plan, err.retry_after, err)
            if call.attempts >= max(1, settings.max_attempts) or not should_retry(err, settings.retry_max_wait):
                raise
            failed, wait = err, retry_wait(err, call.attempts, settings)
        finally:
            if gate is not None:
                gate.release(plan, call.usage)
        observer.on_retry(RetryInfo(attempt=call.attempts + 1, max_attempts=settings.max_attempts,
                                    wait_s=wait, reason=failed.kind, status_code=failed.status_code,
                                    message=failed.message, asked_wait_s=failed.retry_after))
        observer.on_status("retrying")
        await asyncio.sleep(wait)


async def execute(plan: CallPlan, observer: CallObserver | None = None) -> Result:
    """Make one call and return its Result, whatever happens (a cancelled call too); records it
    in the ledger before returning."""
    if plan.tools is not None:  # --- tools: one execute() per model request (tools.py) ---
        from .tools import run_call

        return await run_call(plan, observer)
    observer = observer or CallObserver()
    # --- hooks (llmcells.on): followed alongside the call's own observer ---
    from .hooks import observe

    observer = observe(observer, plan)
    # --- end hooks ---
    spec = plan.spec
    result = Result(model=spec.id, provider=spec.provider, call_id=plan.info.call_id,
                    group_id=plan.info.group_id, sample=plan.info.sample, simulated=spec.simulated,
                    started_at=time.time(), cell=plan.cell, batch_id=plan.batch_id,
                    purpose=plan.info.purpose)  # purpose: "judge" for a scorer's calls
    call = _Call(plan, observer)
    quietly(observer.on_start, plan.info)
    if await replay.replay(result, plan, observer, deliver_stored):  # a recorded answer (replay on)
        return result
    if plan.cache and await _from_cache(result, plan, observer):
        return result
    try:
        if _loop.cancelled():
            raise asyncio.CancelledError
        async with asyncio.timeout(None) as deadline:
            client = await client_for(plan, api_key(spec))
            # Latency, TTFT and the call's time limit measure the request, not the SDK's set-up
            # (its first import can take seconds on a busy machine); time spent waiting in a
            # batch's rate gate is not counted either (see _attempts).
            call.t0 = time.monotonic()
            deadline.reschedule(asyncio.get_running_loop().time() + plan.timeout)
            quietly(observer.on_sent, call.t0)
            await _attempts(call, client, deadline)
        result.status = "ok"
    except asyncio.CancelledError:
        result.status, result.error_kind = "cancelled", "cancelled"
        result.error = "Cancelled; the partial answer is kept." if call.shown else "Cancelled."
    except LLMError as err:  # first: ProviderTimeoutError is a TimeoutError too
        result.status = "incomplete" if isinstance(err, IncompleteStreamError) else "error"
        result.error_kind, result.error = err.kind, err.message
    except TimeoutError:
        result.status, result.error_kind = "error", "timeout"
        result.error = (f"No complete answer from {spec.id} within {plan.timeout:g} s; "
                        "raise the limit with timeout=... (--timeout in magics).")
    except Exception as exc:  # a bug or an unexpected SDK error: still one line, still recorded
        err = as_llm_error(exc, spec)
        result.status, result.error_kind, result.error = "error", err.kind, err.message
    await _finish(result, call, observer, plan)
    return result


async def _finish(result: Result, call: _Call, observer: CallObserver, plan: CallPlan) -> None:
    _finishing_imports()
    result.text = call.text()
    result.reasoning = "".join(call.reasoning)
    result.usage = call.usage
    result.response_model = call.response_model
    result.response_id = call.response_id
    result.service_tier = call.service_tier
    result.speed, result.inference_geo = call.speed, call.inference_geo
    result.finish_reason = call.finish_reason
    result.agent = call.agent  # [agents]
    result.ttft_s = call.ttft
    result.latency_s = time.monotonic() - call.t0
    result.attempts = call.attempts
    if plan.request.attachments or plan.request.schema is not None:  # [rich requests hook]
        from .structured import finish as finish_rich  # counts attachments, validates the schema

        finish_rich(result, plan.request)
    result.tool_calls = list(call.tool_calls)
    # notes: what make_plan changed in the request (a refused temperature left out), then the
    # provider's own (a refusal), each once
    for note in [*(plan.request.extra.get("notes") or ()), *call.notes]:
        if note not in result.notes:
            result.notes.append(note)
    _price(result, plan, call)
    try:
        await _persist(result, plan)
    finally:
        quietly(observer.on_finish, result)


def _finishing_imports() -> None:
    """Import what a call's end needs (its price, its ledger row) here, on the loop, at once.

    Not through the client builder's queue: an interrupted first call would wait there for
    every SDK client queued before it, and its card and row would come after its cell ended.
    These modules import no SDK and no transport, so they can't meet the warm-up's imports
    half-way (Python's per-module import locks make a concurrent import of one of them wait)."""
    from .warmup import FINISHING, loaded

    if not all(loaded(n) for n in FINISHING):
        import importlib

        for name in FINISHING:
            importlib.import_module(name)


async def _persist(result: Result, plan: CallPlan) -> None:
    """Write the ledger row (and keep an ok answer in the store) on the ledger's writer thread,
    and wait until it is committed, through any further cancellation: a row is never dropped."""
    _finishing_imports()
    from . import ledger

    keeps = result.ok and not result.cached and (plan.cache or plan.store_key or replay.enabled())
    if not keeps and ledger.write_now(result, prompt=plan.request.prompt, system=plan.request.system):
        return  # committed right here (the common case: no thread round trip)
    keep = (lambda: _keep(result, plan)) if keeps else None
    done = asyncio.wrap_future(ledger.write(result, prompt=plan.request.prompt,
                                            system=plan.request.system, after=keep))
    while not done.done():
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            continue  # an interrupt while unwinding: the row is still written, then we go
        except Exception:
            log.debug("ledger write failed", exc_info=False)  # the ledger warns on its own
            return


async def _from_cache(result: Result, plan: CallPlan, observer: CallObserver) -> bool:
    """Fill result from the local store if this exact request was answered before."""
    from . import store

    try:
        hit = store.get(store.cache_key(plan.request, plan.info.sample))
    except Exception:  # an unreadable store is a cache miss, not a failed call
        log.debug("cache read failed", exc_info=False)
        return False
    if hit is None:
        return False
    for name, value in hit.items():
        setattr(result, name, value)
    result.status, result.cached, result.cost_usd, result.attempts = "ok", True, 0.0, 0
    result.latency_s = result.ttft_s = 0.0
    await deliver_stored(result, plan, observer, first_token=False)
    return True


async def deliver_stored(result: Result, plan: CallPlan, observer: CallObserver, *,
                         first_token: bool) -> None:
    """End a call answered from storage (the local cache, or a replay recording) as a live one
    ends: the rich fields filled in, the observer told, the ledger row written, then on_finish."""
    if plan.request.attachments or plan.request.schema is not None:  # [rich requests hook]
        from .structured import finish as finish_rich

        finish_rich(result, plan.request)
    if first_token:
        quietly(observer.on_first_token, result.ttft_s)
    quietly(observer.on_text, result.text)
    quietly(observer.on_usage, result.usage)
    await _persist(result, plan)
    quietly(observer.on_finish, result)


def _keep(result: Result, plan: CallPlan) -> None:
    from . import store

    replay.record(result, plan)  # keep the answer when replay is on
    try:
        if plan.cache:
            store.put(store.cache_key(plan.request, plan.info.sample), result)
        if plan.store_key:
            store.put(plan.store_key, result, plan.batch_id)
    except Exception:
        log.debug("keeping an answer in the store failed", exc_info=False)


def _price(result: Result, plan: CallPlan, call: _Call | None = None) -> None:
    """cost_usd from the usage the provider reported; NaN when tokens were processed but the
    usage never came (a cut or timed-out stream), never a silent 0."""
    if result.cached:
        result.cost_usd = 0.0
        return
    if call is not None and not call.usage_seen:
        processed = call.heard or result.error_kind == "timeout"
        result.cost_usd = math.nan if processed else 0.0
        result.price_source = "usage not reported" if processed else None
        return
    try:
        from .pricing import price_result

        price_result(result, plan.spec)
    except Exception:
        log.debug("pricing failed for %s", plan.spec.id, exc_info=False)
        result.cost_usd = math.nan


# ----- many calls -------------------------------------------------------------------------------


async def run_plans(plans: Sequence[CallPlan], observers: Sequence[CallObserver | None],
                    results: list[Result | None] | None = None) -> list[Result]:
    """Run plans concurrently; one failure never stops the others. On cancellation every call is
    cancelled (and recorded as such) before CancelledError propagates; the Results, cancelled
    ones included, are left in `results` when given."""
    from .fallback import run as run_chain  # a model chain, or exactly execute() for one model

    if results is None:
        results = []
    results[:] = [None] * len(plans)
    if len(plans) == 1:  # one call (ask): awaited here, without a task and a wait around it
        results[0] = await run_chain(plans[0], observers[0])
        task = asyncio.current_task()
        # execute() turned a cancellation into a cancelled Result; the caller still learns of it.
        if _loop.cancelled() or (task is not None and task.cancelling()):
            raise asyncio.CancelledError
        return [results[0]]
    from . import otel

    with otel.parent("compare", group_id=plans[0].info.group_id, calls=len(plans)):
        tasks = [asyncio.ensure_future(run_chain(p, o)) for p, o in zip(plans, observers)]
        interrupted = await _loop.wait_all(tasks)
    for i, t in enumerate(tasks):
        if not t.cancelled() and t.exception() is None:
            results[i] = t.result()
    if interrupted or _loop.cancelled():
        raise asyncio.CancelledError
    return [r for r in results if r is not None]
