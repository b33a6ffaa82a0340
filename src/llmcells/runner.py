"""Running calls: ask and compare, with timeouts, retries, cancellation, display and recording.

Every call goes through `execute`, on the private loop: it resolves the key and client, streams
events from the provider adapter, tells the observer (display) what happens, prices the usage,
writes the ledger row whatever the outcome, and returns a Result. It never raises for a failed
call (the Result says what went wrong); it re-raises only cancellation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from . import _loop, quotas
from .config import settings
from .errors import (ConfigError, IncompleteStreamError, LLMError, ProviderError,
                     ProviderTimeoutError, redact)
from .models import ModelSpec, api_key, resolve
from .providers import ClientOptions, get_provider
from .types import (CallInfo, CallObserver, Comparison, Finish, Message, ReasoningDelta, Request,
                    ResponseInfo, Result, RetryInfo, TextDelta, Usage, UsageUpdate)

T = TypeVar("T")

_clients: dict[tuple[str, ClientOptions], Any] = {}
#: the Result (or Comparison) of the last call that finished, for `_llm` and post-mortems
last: Result | Comparison | None = None
#: the most samples per model compare() (and `-n` in magics) takes
MAX_REPEAT = 100


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
    gate: Any = None               # batch calls: rate limiter (acquire / release / rate_limited)
    # --- fallback / quotas (see fallback.py): the rest of a model chain, the error kinds that
    # move it on, and per-call daily caps ({"google": {"rpd": 250}})
    fallbacks: list["CallPlan"] = field(default_factory=list)
    fallback_on: frozenset[str] | None = None
    limits: dict[str, Any] | None = None

    @property
    def spec(self) -> ModelSpec:
        return self.request.spec


# ----- awaitables that open their display in the caller's thread ------------------------------


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
        return _loop.bridge(self._coroutine()).__await__()

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


# ----- the call itself --------------------------------------------------------------------------


async def _client_for(plan: CallPlan, key: str) -> Any:
    spec = plan.spec
    options = ClientOptions(base_url=spec.base_url, api_key=key, connect_timeout=plan.connect_timeout,
                            read_timeout=plan.timeout, http_client=plan.http_client)
    cache_key = (spec.adapter, options)
    client = _clients.get(cache_key)
    if client is None:
        # The first use of a provider imports its SDK (about a second): build the client off the
        # loop, so that other calls keep streaming and an interrupt is still served meanwhile;
        # and once, however many calls are waiting for it.
        client = _clients[cache_key] = asyncio.ensure_future(
            asyncio.to_thread(lambda: get_provider(spec.adapter).make_client(options)))
    if isinstance(client, asyncio.Future):
        try:
            built = await asyncio.shield(client)
        except Exception:
            _clients.pop(cache_key, None)  # let the next call try again
            raise
        _clients[cache_key] = built
        return built
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text)[:300]  # redact first: a cut could leave an unrecognisable piece of a key


def _as_llm_error(exc: BaseException, spec: ModelSpec) -> LLMError:
    if isinstance(exc, LLMError):
        return exc
    try:
        mapped = get_provider(spec.adapter).map_error(exc, spec)
    except Exception:  # a mapper bug must not hide the original error
        mapped = None
    if mapped is not None:
        return mapped
    if isinstance(exc, TimeoutError):
        return ProviderTimeoutError(f"{spec.label} did not answer in time.", provider=spec.provider)
    return ProviderError(f"{spec.label}: {type(exc).__name__}: {_short(exc)}", provider=spec.provider)


class _Attempt:
    """The state of one call across its attempts: text shown, usage seen, timings."""

    def __init__(self, plan: CallPlan, observer: CallObserver, t0: float):
        self.plan, self.observer, self.t0 = plan, observer, t0
        self.text = ""  # the answer so far
        self.reasoning: list[str] = []
        self.usage = Usage()
        self.response_model: str | None = None
        self.finish_reason: str | None = None
        self.ttft: float | None = None
        self.attempts = 0

    async def run(self, client: Any) -> None:
        """One attempt: stream until the terminal event. Raises LLMError on failure."""
        self.attempts += 1
        plan = self.plan
        provider = get_provider(plan.spec.adapter)
        self.observer.on_status("waiting")
        events = provider.stream(client, plan.request)
        got_token = False
        answered = plan.gate is None
        finished = False
        sent_at = time.monotonic()
        try:
            while True:
                try:
                    if got_token:
                        event = await events.__anext__()
                    else:
                        left = plan.ttft_timeout - (time.monotonic() - sent_at)
                        if left <= 0:
                            raise TimeoutError
                        event = await asyncio.wait_for(events.__anext__(), left)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise ProviderTimeoutError(
                        f"No first token from {plan.spec.id} within {plan.ttft_timeout:g} s; "
                        "try again, or raise the limit with llmcells.configure(ttft_timeout=...).",
                        provider=plan.spec.provider) from None
                if not answered:  # the provider has the request: its rate windows can count it
                    answered = True
                    plan.gate.answered(plan)
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    if self.ttft is None:
                        self.ttft = time.monotonic() - self.t0
                        self.observer.on_first_token(self.ttft)
                        self.observer.on_status("streaming")
                    got_token = True
                    self.text += event.text
                    self.observer.on_text(event.text)
                elif isinstance(event, UsageUpdate):
                    self.usage = event.usage
                    self.observer.on_usage(event.usage)
                elif isinstance(event, ReasoningDelta):
                    got_token = True
                    self.reasoning.append(event.text)
                elif isinstance(event, ResponseInfo):
                    self.response_model = event.response_model or self.response_model
                    if event.rate_limits:
                        quotas.observe(plan.spec, event.rate_limits)
                elif isinstance(event, Finish):
                    finished = True
                    self.finish_reason = event.reason
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            quotas.observe_error(plan.spec, exc)
            err = _as_llm_error(exc, plan.spec)
            err.partial = bool(self.text)  # never re-send once the user has seen tokens
            raise err from None
        finally:
            await _aclose(events)
        if not finished:
            err = IncompleteStreamError(
                f"The stream from {plan.spec.id} ended before it was complete; the partial answer is kept.",
                provider=plan.spec.provider)
            err.partial = True
            raise err


async def _aclose(events: Any) -> None:
    try:
        await events.aclose()
    except BaseException:  # closing a broken stream can fail again; nothing more to do
        pass


def _on_retry(observer: CallObserver, spec: ModelSpec) -> Callable[[LLMError, float, int], None]:
    def note(err: LLMError, wait: float, attempt: int) -> None:
        observer.on_retry(RetryInfo(attempt=attempt, max_attempts=settings.max_attempts, wait_s=wait,
                                    reason=err.kind, status_code=err.status_code,
                                    message=err.message, asked_wait_s=err.retry_after))
        what = err.kind.replace("_", " ")
        code = f" ({err.status_code})" if err.status_code else ""
        observer.on_status("retrying", f"{what}{code}; retrying in {wait:.1f} s "
                                       f"(attempt {attempt} of {settings.max_attempts})")
    return note


async def execute(plan: CallPlan, observer: CallObserver | None = None) -> Result:
    """Make one call and return its Result; records it in the ledger whatever happens."""
    from .retry import retrying

    observer = observer or CallObserver()
    spec = plan.spec
    t0 = time.monotonic()
    result = Result(model=spec.id, provider=spec.provider, call_id=plan.info.call_id,
                    group_id=plan.info.group_id, sample=plan.info.sample, simulated=spec.simulated,
                    started_at=time.time(), cell=plan.cell, batch_id=plan.batch_id)
    state = _Attempt(plan, observer, t0)
    _safe(observer.on_start, plan.info)
    if plan.cache and await _from_cache(result, plan, observer):
        return result
    gate = plan.gate
    try:
        async with asyncio.timeout(plan.timeout):
            key = api_key(spec)
            client = await _client_for(plan, key)
            state.t0 = time.monotonic()  # latency and TTFT measure the request, not SDK set-up
            observer.on_sent(state.t0)
            async for attempt in retrying(settings, _on_retry(observer, spec)):
                with attempt:
                    if gate is not None:
                        await gate.acquire(plan)
                    try:
                        await state.run(client)
                    except LLMError as err:
                        if gate is not None and err.kind == "rate_limited":
                            gate.rate_limited(plan, err.retry_after)
                        raise
                    finally:
                        if gate is not None:
                            gate.release(plan, state.usage)
        result.status = "ok"
    except asyncio.CancelledError:
        result.status, result.error_kind = "cancelled", "cancelled"
        result.error = "Cancelled; the partial answer is kept." if state.text else "Cancelled."
        await _finish(result, state, observer, plan)
        raise
    except LLMError as err:  # first: ProviderTimeoutError is a TimeoutError too
        result.status = "incomplete" if isinstance(err, IncompleteStreamError) else "error"
        result.error_kind, result.error = err.kind, err.message
    except TimeoutError:
        result.status, result.error_kind = "error", "timeout"
        result.error = (f"No complete answer from {spec.id} within {plan.timeout:g} s; "
                        "raise the limit with timeout=... (--timeout in magics).")
    except Exception as exc:  # a bug or an unexpected SDK error: still one line, still recorded
        err = _as_llm_error(exc, spec)
        result.status, result.error_kind, result.error = "error", err.kind, err.message
    await _finish(result, state, observer, plan)
    return result


async def _finish(result: Result, state: _Attempt, observer: CallObserver, plan: CallPlan) -> None:
    result.text = state.text
    result.reasoning = "".join(state.reasoning)
    result.usage = state.usage
    result.response_model = state.response_model
    result.finish_reason = state.finish_reason
    result.ttft_s = state.ttft
    result.latency_s = time.monotonic() - state.t0
    result.attempts = state.attempts
    _price(result, plan)
    try:
        await _persist(result, plan)
    finally:  # even if a second cancellation interrupts the wait for the writer
        _safe(observer.on_finish, result)


_writer: concurrent.futures.ThreadPoolExecutor | None = None


async def _persist(result: Result, plan: CallPlan) -> None:
    """Write the ledger row (and keep an ok answer) on the writer thread, and wait for it.

    Off the loop, so that a slow or locked database never stalls the other streams or an
    interrupt; awaited, so that a call counts as finished only once its row is committed.
    Shielded: a second cancellation must not drop a row still waiting for the writer.
    """
    global _writer
    if _writer is None:
        _writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmcells-ledger")

    def write() -> None:
        _record(result, plan)
        if result.ok and not result.cached:
            _keep(result, plan)

    await asyncio.shield(asyncio.get_running_loop().run_in_executor(_writer, write))


async def _from_cache(result: Result, plan: CallPlan, observer: CallObserver) -> bool:
    """Fill result from the local store if this exact request was answered before."""
    from . import store

    try:
        hit = store.get(store.cache_key(plan.request, plan.info.sample))
    except Exception:  # an unreadable store is a cache miss, not a failed call
        return False
    if hit is None:
        return False
    for name, value in hit.items():
        setattr(result, name, value)
    result.status, result.cached, result.cost_usd, result.attempts = "ok", True, 0.0, 0
    result.latency_s = result.ttft_s = 0.0
    _safe(observer.on_text, result.text)
    _safe(observer.on_usage, result.usage)
    await _persist(result, plan)
    _safe(observer.on_finish, result)
    return True


def _keep(result: Result, plan: CallPlan) -> None:
    from . import store

    try:
        if plan.cache:
            store.put(store.cache_key(plan.request, plan.info.sample), result)
        if plan.store_key:
            store.put(plan.store_key, result, plan.batch_id)
    except Exception:
        pass


def _price(result: Result, plan: CallPlan) -> None:
    if result.cached:
        result.cost_usd = 0.0
        return
    try:
        from .pricing import cost

        result.cost_usd, result.price_source = cost(
            plan.spec.provider, result.response_model or plan.spec.name, result.usage,
            requested=plan.spec.name)
    except Exception:
        result.cost_usd = math.nan


def _record(result: Result, plan: CallPlan) -> None:
    try:
        from . import ledger

        ledger.record(result, prompt=plan.request.prompt, system=plan.request.system)
    except Exception:  # the ledger warns on its own; a call must never fail because of it
        pass


def _safe(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        pass


# ----- building plans ---------------------------------------------------------------------------


def current_cell() -> int | None:
    """The IPython execution count of the running cell, when there is one."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    return getattr(ip, "execution_count", None) if ip is not None else None


def _check_options(temperature: float | None, max_tokens: int | None, timeout: float | None) -> None:
    if temperature is not None and not (0.0 <= float(temperature) <= 2.0):
        raise ConfigError(f"temperature must be between 0 and 2, not {temperature}.")
    if max_tokens is not None and int(max_tokens) < 1:
        raise ConfigError(f"max_tokens must be a positive number, not {max_tokens}.")
    if timeout is not None and float(timeout) <= 0:
        raise ConfigError(f"timeout must be a positive number of seconds, not {timeout}.")


def make_plan(prompt: str, model: str | ModelSpec, *, system: str | None = None,
              temperature: float | None = None, max_tokens: int | None = None,
              timeout: float | None = None, history: Sequence[Message] = (),
              params: dict[str, Any] | None = None, api: str | None = None,
              group_id: str | None = None, sample: int = 0, cell: int | None = None,
              batch_id: str | None = None, cache: bool | None = None) -> CallPlan:
    """A CallPlan from user-level options, with settings filling what was not given."""
    if not isinstance(prompt, str):
        raise ConfigError(f"The prompt must be text, not {type(prompt).__name__}.")
    if not prompt.strip():
        raise ConfigError("The prompt is empty: write something to ask.")
    _check_options(temperature, max_tokens, timeout)
    spec = model if isinstance(model, ModelSpec) else resolve(model, openai_api=api)
    extra: dict[str, Any] = {"default_max_tokens": settings.anthropic_default_max_tokens}
    if params:
        extra["params"] = dict(params)
    request = Request(spec=spec, messages=[*history, Message("user", prompt)],
                      system=system if system is not None else settings.system,
                      temperature=temperature if temperature is not None else settings.temperature,
                      max_tokens=max_tokens if max_tokens is not None else settings.max_tokens,
                      extra=extra)
    info = CallInfo(call_id=uuid.uuid4().hex, model=spec.requested, model_id=spec.id,
                    provider=spec.provider, simulated=spec.simulated, group_id=group_id, sample=sample)
    total = float(timeout) if timeout is not None else settings.timeout
    return CallPlan(request=request, info=info, timeout=total,
                    ttft_timeout=min(settings.ttft_timeout, total),
                    connect_timeout=settings.connect_timeout, cell=cell, batch_id=batch_id,
                    cache=bool(settings.cache if cache is None else cache))


async def run_plans(plans: Sequence[CallPlan], observers: Sequence[CallObserver | None],
                    results: list[Result | None] | None = None) -> list[Result]:
    """Run plans concurrently; one failure never stops the others. On cancellation every call is
    cancelled (and recorded as such) before CancelledError propagates; the Results finished so
    far, cancelled ones included, are left in `results` when given."""
    if results is None:
        results = [None] * len(plans)
    results[:] = [None] * len(plans)

    async def one(i: int) -> None:
        from .fallback import run  # a model chain, or exactly execute() for one model

        await run(plans[i], _ResultHolder(observers[i], results, i))

    tasks = [asyncio.ensure_future(one(i)) for i in range(len(plans))]
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for t in tasks:  # gather has cancelled them once already; a second cancel would cut short their unwinding
            if not t.done() and not t.cancelling():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    return [r for r in results if r is not None]


class _ResultHolder(CallObserver):
    """Passes events on to the display observer and keeps the Result, even of a cancelled call."""

    def __init__(self, inner: CallObserver | None, results: list[Result | None], index: int):
        self.inner, self.results, self.index = inner or CallObserver(), results, index
        inner = self.inner
        self.on_start, self.on_sent, self.on_status = inner.on_start, inner.on_sent, inner.on_status
        self.on_retry, self.on_first_token = inner.on_retry, inner.on_first_token
        self.on_text, self.on_usage = inner.on_text, inner.on_usage
        self.on_fallback = inner.on_fallback

    def on_finish(self, result: Result) -> None:
        self.results[self.index] = result
        self.inner.on_finish(result)


def _display(kind: str, plans: Sequence[CallPlan], display: bool | str | None, prompt: str,
             markdown: bool):
    from .display import detect_mode, open_display

    mode = detect_mode(display)
    if mode == "none":
        return None
    return open_display(kind, [p.info for p in plans], mode, prompt=prompt, markdown=markdown)


# ----- the public entry points ------------------------------------------------------------------


def ask(prompt: str, model: str | None = None, *, system: str | None = None,
        temperature: float | None = None, max_tokens: int | None = None,
        timeout: float | None = None, display: bool | str | None = None,
        history: Sequence[Message] = (), params: dict[str, Any] | None = None,
        api: str | None = None, cache: bool | None = None, markdown: bool = True,
        fallback: Sequence[str] | str | None = None, fallback_on: Sequence[str] | str | None = None,
        limits: dict[str, Any] | None = None) -> Pending[Result]:
    """Ask one model; `await` it (or `llmcells.run(...)` it) for a Result.

    model: an alias (chatgpt, claude, gemini) or provider:model id; default: the first of the
    configured compare models. history: earlier messages of the conversation. params: extra
    provider-specific request fields. api: "responses" to use OpenAI's Responses API.
    cache: answer identical requests from the local store (default: settings.cache).
    markdown: render the finished answer as Markdown in a notebook (False: plain text).
    model="claude|chatgpt" (or fallback=["chatgpt"]): a chain, the next model answers when one
    fails before its first token (fallback_on= adds error kinds; see fallback.py).
    limits: daily caps, e.g. {"google": {"rpd": 250}} (see quotas.py).
    A failed call does not raise: the Result's status and error say what happened.
    """
    from . import fallback as _fallback

    plan = _fallback.chain_plan(
        lambda m: make_plan(prompt, m, system=system, temperature=temperature,
                            max_tokens=max_tokens, timeout=timeout, history=history,
                            params=params, api=api, cache=cache),
        model or settings.compare_models[0], fallback, fallback_on)
    plan.limits = quotas.daily_caps(limits) or None

    async def go(handle: Any) -> Result:
        global last
        results: list[Result | None] = []
        try:
            await run_plans([plan], [handle.observers[0] if handle else None], results)
        finally:
            last = results[0] if results and results[0] else last
            if handle is not None:
                _safe(handle.close, [r for r in results if r])
        return results[0]

    def start() -> Coroutine[Any, Any, Result]:
        plan.cell = current_cell()
        return go(_display("ask", [plan], display, prompt, markdown))

    return Pending(start, "ask")


def compare(prompt: str, models: Sequence[str] | None = None, *, system: str | None = None,
            temperature: float | None = None, max_tokens: int | None = None,
            timeout: float | None = None, display: bool | str | None = None,
            repeat: int = 1, params: dict[str, Any] | None = None, api: str | None = None,
            histories: Mapping[str, Sequence[Message]] | None = None,
            cache: bool | None = None, markdown: bool = True) -> Pending[Comparison]:
    """Send one prompt to several models at once; `await` it for a Comparison.

    models: aliases or provider:model ids (default: chatgpt, claude, gemini). repeat: samples
    per model (results are ordered model by model, samples in order). All calls run
    concurrently; a failing model never stops the others. histories: earlier messages of each
    model's conversation, keyed by model id (provider:model).
    """
    models = list(models) if models else list(settings.compare_models)
    if not models:
        raise ConfigError("No models to compare.")
    if int(repeat) < 1:
        raise ConfigError(f"repeat must be 1 or more, not {repeat}.")
    if int(repeat) > MAX_REPEAT:  # every sample is a request, shown in its own card
        raise ConfigError(f"repeat is at most {MAX_REPEAT} samples per model, not {repeat}; "
                          "use llmcells.batch(..., repeat=N) for more.")
    group_id = uuid.uuid4().hex[:12]
    from .fallback import chain_plan, resolve_chain  # an entry may be a chain, "claude|chatgpt"

    specs = [resolve_chain(m, openai_api=api) for m in models]
    plans = [chain_plan(lambda m, k=k: make_plan(
                 prompt, resolve(m, openai_api=api), system=system, temperature=temperature,
                 max_tokens=max_tokens, timeout=timeout, params=params, group_id=group_id,
                 sample=k, history=(histories or {}).get(resolve(m).id, ()), cache=cache),
                 "|".join(s.requested for s in chain))
             for chain in specs for k in range(int(repeat))]

    async def go(handle: Any) -> Comparison:
        global last
        results: list[Result | None] = []
        try:
            await run_plans(plans, list(handle.observers) if handle else [None] * len(plans), results)
        finally:
            done = [r for r in results if r]
            last = Comparison(results=done, group_id=group_id, prompt=prompt)
            if handle is not None:
                _safe(handle.close, done)
        return last

    def start() -> Coroutine[Any, Any, Comparison]:
        cell = current_cell()
        for p in plans:
            p.cell = cell
        return go(_display("compare", plans, display, prompt, markdown))

    return Pending(start, "compare")
