"""The call engine: one model request of a CallPlan, on the private loop: its SDK client, its
attempts under the retry policy, and its stream of events folded into a Result.

The engine knows nothing of the features around a call: the pipeline (pipeline.py) wraps it in
stages (fallback chains and daily caps, the tool loop, hooks, replay, the cache) and ends every
Result in one `finish` (validation, price, ledger row, on_finish). `execute` never raises for a
failed request and returns its Result even when it is cancelled (status "cancelled"); whoever
runs it decides whether to propagate the cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _imports, _loop, quotas
from ._log import quietly
from .config import settings
from .errors import (ConnectionFailedError, IncompleteStreamError, LLMError, ProviderError,
                     ProviderTimeoutError, redact)
from .models import ModelSpec, api_key
from .providers import ClientOptions, get_provider
from .retry import retry_wait, should_retry
from .session import session
from .types import (CallInfo, CallObserver, Finish, PartDelta, PartEnd, PartStart, Request,
                    ResponseInfo, Result, RetryInfo, ToolCall, Usage, UsageUpdate)

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
    gate: Any = None               # batch calls: rate limiter (acquire / answered / release / rate_limited)
    # --- fallback / quotas (see fallback.py): the rest of a model chain, the error kinds that
    # move it on, and per-call daily caps ({"google": {"rpd": 250}})
    fallbacks: list["CallPlan"] = field(default_factory=list)
    fallback_on: frozenset[str] | None = None
    limits: dict[str, Any] | None = None
    tools: Any = None              # tools.ToolSet: a call with tools (the tool loop makes its requests)
    breaker: Any = None            # batch calls: fallback.Breaker, skipping a model that keeps failing
    keep: Sequence[Any] = ()       # callables (result, plan) run once an ok answer's row is committed
    #                                (the finish stage gives each call a list of its own)

    @property
    def spec(self) -> ModelSpec:
        return self.request.spec


#: the rest of the call pipeline, as one of its stages sees it (pipeline.py)
Next = Callable[[CallPlan, CallObserver], Awaitable[Result]]
#: a stage of the call pipeline: it may change the plan or the observer, answer without calling
#: next, or call it several times
Stage = Callable[[CallPlan, CallObserver, Next], Awaitable[Result]]


# ----- clients ----------------------------------------------------------------------------------


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
            with _imports.first():  # never beside the warm-up's imports, and before its next one
                provider = get_provider(spec.adapter)  # (its first use imports the SDK: here, off the loop)
                built = provider.make_client(options)
                _imports.import_transport()  # what the first request would import on the loop, mid-stream
            _imports.builder().submit(quietly, provider.finish_client, built)  # after those queued now
            return built

        client = session.clients[cache_key] = loop.run_in_executor(_imports.builder(), build)
        if together:
            _building.add(client)
            client.add_done_callback(_building.discard)
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
            # asyncio.wait neither cancels the builds nor raises their errors (those are their
            # own calls'); a shield around each would hold a failed build's error where no one
            # reads it, and asyncio would print it as "Future exception was never retrieved"
            await asyncio.wait(others)
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
    if isinstance(exc, AttributeError) and "partially initialized module" in str(exc):
        # An SDK looked a module up in sys.modules while another thread was importing it: the
        # openai and anthropic SDKs check for the old httpx, which google-genai imports, as they
        # build a request and read its response. Nothing was sent (or read); the next attempt
        # finds the module whole.
        return ConnectionFailedError(f"{spec.label}: a module was still being imported as the "
                                     "request was made; sent again.", provider=spec.provider)
    if isinstance(exc, RecursionError):  # an SDK parsing JSON of thousands of nested brackets
        return ProviderError(f"{spec.label} sent a body nested too deeply to read.",
                             provider=spec.provider)
    return ProviderError(f"{spec.label}: {type(exc).__name__}: {_short(exc)}", provider=spec.provider)


def _not_started(spec: ModelSpec) -> ConnectionFailedError:
    """A stream that broke before any answer text: nothing was shown, so it can be sent again."""
    return ConnectionFailedError(
        f"The connection to {spec.label} closed before the answer started.", provider=spec.provider)


# ----- one call -----------------------------------------------------------------------------------


#: the longest one stream keeps the loop before letting the others run (seconds)
_TURN_S = 0.005


class _Turn:
    """Whether the event loop has run since a stream's turn began: `mark`, scheduled with
    call_soon when the turn begins, runs at the loop's next pass. A stream that finds it ran has
    already given the loop back (it waited for the network) and begins a new turn without
    yielding again; only one that kept the loop for a whole turn yields (asyncio.sleep(0))."""

    __slots__ = ("looped",)

    def __init__(self) -> None:
        self.looped = False

    def mark(self) -> None:
        self.looped = True

    def begin(self, loop: asyncio.AbstractEventLoop) -> float:
        """Begin a turn now; its end (time.monotonic())."""
        self.looped = False
        loop.call_soon(self.mark)
        return time.monotonic() + _TURN_S


def _is_high_surrogate(ch: str) -> bool:
    return "\ud800" <= ch <= "\udbff"


def _mend(text: str) -> str:
    """Join surrogate pairs into their characters; a lone surrogate becomes U+FFFD."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


#: what the engine keeps, by index, for a text or reasoning part of the stream (a tool-call part
#: keeps a _ToolPart); checked by identity in the loop
_TEXT, _REASONING = "text", "reasoning"

#: a tool name as every provider's API allows it (letters, digits, "_", "-", "."; at most 64)
_TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def shown_tool_name(name: str | None) -> str | None:
    """A tool name the model wrote, fit to show in a status line; None when it is not a name an
    API allows (it is model output: no markup or terminal control sequences reach a display)."""
    return name if name and _TOOL_NAME.fullmatch(name) else None


class _ToolPart:
    """A tool-call part as it streams: its id, name and thought signature, the fragments of its
    JSON arguments, and its position n among the response's tool calls."""

    __slots__ = ("id", "name", "signature", "args", "n")

    def __init__(self, start: PartStart, n: int):
        self.id, self.name, self.signature = start.id, start.name, start.signature
        self.args: list[str] = []
        self.n = n

    def add(self, delta: PartDelta) -> None:
        if delta.text:
            self.args.append(delta.text)
        if delta.id:  # (OpenAI Chat may send the id and name after the first fragment)
            self.id = delta.id
        if delta.name:
            self.name = delta.name

    def call(self) -> ToolCall:
        """The ToolCall, by one rule for every provider: no arguments are "{}", and a call
        without an id (Gemini may give none) is named by its position and a random part,
        call_0_3f9a1c2e...: unique in a whole chat, as Anthropic requires of every tool_use id
        when the chat moves to Claude (call_0 of each turn was refused as a repeated id)."""
        return ToolCall(self.id or f"call_{self.n}_{secrets.token_hex(4)}", self.name or "",
                        "".join(self.args) or "{}", self.signature)


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
        parts: dict[int, Any] = {}  # this attempt's open parts by index: _TEXT, _REASONING, _ToolPart
        n_tools = 0                 # tool-call parts started so far
        first_token = None
        turn = _Turn()
        turn_ends = turn.begin(asyncio.get_running_loop())
        scope = _loop.current_scope()  # looked up once: checked at every event
        try:
            async with asyncio.timeout(plan.ttft_timeout) as first_token:
                async for event in events:
                    if scope is not None and scope.cancelled:
                        raise asyncio.CancelledError
                    if time.monotonic() > turn_ends:
                        # An SDK parses every event already buffered without giving the loop
                        # back; a fast, long answer would then stall every other stream. A
                        # stream that waited for the network meanwhile has given it back: an
                        # extra pass of the loop would cost every call of a slow stream (a
                        # token every 20 ms) one pass per token, for nothing.
                        if not turn.looped:
                            await asyncio.sleep(0)
                        turn_ends = turn.begin(asyncio.get_running_loop())
                    self.heard = True
                    if not answered:  # the provider has the request: its rate windows can count it
                        answered = True
                        gate.answered(plan)
                    kind = type(event)
                    if kind is PartDelta:
                        part = parts.get(event.index)
                        if part is _TEXT:
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
                        elif part is _REASONING:
                            if not event.text:
                                continue
                            if self.ttft is None:  # visible thinking is shown: the same no-resend rule
                                first_token.reschedule(None)
                            self.reasoning.append(event.text)
                        elif part is not None:
                            part.add(event)  # a tool call's arguments (or its late id / name)
                    elif kind is UsageUpdate:
                        self.usage, self.usage_seen = event.usage, True
                        observer.on_usage(event.usage)
                    elif kind is PartStart:
                        what = event.kind
                        if what == "text":
                            parts[event.index] = _TEXT
                        elif what == "reasoning":
                            parts[event.index] = _REASONING
                        elif what == "tool_call":
                            parts[event.index] = _ToolPart(event, n_tools)
                            n_tools += 1
                            # "calling get_weather…" while the model writes the call's arguments
                            observer.on_status("calling", shown_tool_name(event.name))
                    elif kind is PartEnd:
                        part = parts.pop(event.index, None)
                        if type(part) is _ToolPart:
                            self.tool_calls.append(part.call())
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
                    elif kind is Finish:
                        finished = True
                        self.finish_reason = event.reason
                        if event.note and event.note not in self.notes:
                            self.notes.append(event.note)
                        # tool calls never ended explicitly end here, in the order of their parts
                        for index in sorted(parts):
                            part = parts.pop(index)
                            if type(part) is _ToolPart:
                                self.tool_calls.append(part.call())
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
        if getattr(err, "answered", False):  # an answer we could not read (a JSON one, not a stream)
            self.heard = True
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
            queued = time.monotonic()
            await gate.acquire(plan)
            call.t0 += time.monotonic() - queued  # nor its latency and TTFT (a paced batch's
            if left is not None:                  # calls read as the seconds they queued)
                deadline.reschedule(loop.time() + left)
        try:
            await call.attempt(client)
            return
        except LLMError as err:
            # (an error never retried, such as a daily quota used up, says when on its own)
            if err.retryable and err.retry_after is not None \
                    and err.retry_after > settings.retry_max_wait and not getattr(err, "partial", False):
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


def result_for(plan: CallPlan, **fields: Any) -> Result:
    """A new Result for plan's call: its identity (model, ids, group, sample, cell, batch), nothing
    answered yet. Every stage that ends a call without the engine (a replay, the cache, a
    chain's skipped model) starts from this."""
    spec, info = plan.spec, plan.info
    return Result(model=spec.id, provider=spec.provider, call_id=info.call_id,
                  group_id=info.group_id, sample=info.sample, simulated=spec.simulated,
                  started_at=time.time(), cell=plan.cell, batch_id=plan.batch_id,
                  purpose=info.purpose, **fields)  # purpose: "judge" for a scorer's calls


async def execute(plan: CallPlan, observer: CallObserver | None = None) -> Result:
    """Make plan's model request and return its Result, whatever happens (a cancelled request
    too). The Result is not priced or recorded yet: the pipeline's finish does that; only a
    request whose usage never came back is marked priced here (its cost can't be known)."""
    observer = observer or CallObserver()
    spec = plan.spec
    result = result_for(plan)
    call = _Call(plan, observer)
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
    _fill(result, call, plan)
    return result


def _fill(result: Result, call: _Call, plan: CallPlan) -> None:
    """What the request gave: the answer, usage, timings, the provider's own fields and notes."""
    result.text = call.text()
    result.reasoning = "".join(call.reasoning)
    result.usage = call.usage
    result.response_model = call.response_model
    result.response_id = call.response_id
    result.service_tier = call.service_tier
    result.speed, result.inference_geo = call.speed, call.inference_geo
    result.finish_reason = call.finish_reason
    result.agent = call.agent  # an agent CLI's own report
    result.ttft_s = call.ttft
    result.latency_s = time.monotonic() - call.t0
    result.attempts = call.attempts
    result.tool_calls = list(call.tool_calls)
    # notes: what make_plan changed in the request (a refused temperature left out), then the
    # provider's own (a refusal), each once
    for note in [*(plan.request.extra.get("notes") or ()), *call.notes]:
        if note not in result.notes:
            result.notes.append(note)
    if not call.usage_seen:
        # NaN when tokens were processed but the usage never came (a cut or timed-out stream),
        # 0 when nothing reached the provider; never a silent 0 for work done.
        processed = call.heard or result.error_kind == "timeout"
        result.cost_usd = math.nan if processed else 0.0
        result.price_source = "usage not reported" if processed else None
        result.priced = True
    elif result.status != "ok" and call.shown and not call.usage.output_tokens:
        # The input was reported (Anthropic's message_start) and the output was not: the call
        # ended before the usage that counts the answer it had shown, so its tokens, and the
        # cost with them, are unknown (priced on the input alone, it read as a known, low cost).
        result.cost_usd, result.price_source, result.priced = math.nan, "output not reported", True
