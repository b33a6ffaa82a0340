"""Model chains ("claude|chatgpt|gemini"): try the next model when one fails before its first token.

The outermost stage of the call pipeline (pipeline.py): each model of a chain is one inner call
(which never raises for a failed call, and records its ledger row): the first model runs with
the full retry policy; if its
Result is an error of a kind in the fallback set, with no token shown, the next model runs, and
so on. Every attempt is its own ledger row, all in one group; the final Result is the answering
model's, with `attempts_by_model` listing the chain.

Also here: daily caps are checked before each attempt (quotas.admit), models whose provider the
last health check found down are tried last, and, in a batch, a `Breaker` skips a model that
keeps failing for a cool-down, so that a dead model costs one cool-down, not a retry cycle per row.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from . import otel, quotas
from ._log import quietly
from .errors import ConfigError, ContextWindowError, UnsupportedError
from .finish import finish, not_sent
from .session import known_down
from .types import CallInfo, CallObserver, Result, RetryInfo, Usage
from ._log import swallowed

if TYPE_CHECKING:
    from .models import ModelSpec
    from .engine import CallPlan

#: error kinds that move a chain on by default: the next model may well answer
DEFAULT_FALLBACK_ON = frozenset({"rate_limited", "overloaded", "server_error", "connection",
                                 "timeout", "missing_key", "billing"})
#: kinds `fallback_on=` may add (a 400, a rejected key, a bad option would fail the same way on
#: the next model, or hide a real problem, so they are opt-in)
KNOWN_KINDS = DEFAULT_FALLBACK_ON | {"bad_request", "authentication", "config", "model_not_found",
                                     "provider_error", "incomplete"}


# ----- chains ----------------------------------------------------------------------------------


def split(model: str | Sequence[str] | None, fallback: Sequence[str] | str | None = None) -> list[str]:
    """The models of a chain: "a|b|c" (or a list), then `fallback` (a list or "x|y")."""
    names: list[str] = []
    for part in ([model] if isinstance(model, str) or model is None else list(model)):
        if part is None:
            continue
        names.extend(p.strip() for p in str(part).split("|"))
    if fallback:
        names.extend(split(fallback))
    if any(not n for n in names):
        raise ConfigError(f"Empty model name in the chain {model!r}: write models as 'claude|chatgpt'.")
    return names


def is_chain(model: Any, fallback: Any = None) -> bool:
    return bool(fallback) or (isinstance(model, str) and "|" in model) or (
        isinstance(model, (list, tuple)) and len(model) > 1)


def check_on(fallback_on: Iterable[str] | str | None) -> frozenset[str]:
    """The set of error kinds that move a chain on: the defaults plus those given ("all": any)."""
    if fallback_on is None:
        return DEFAULT_FALLBACK_ON
    kinds = {fallback_on} if isinstance(fallback_on, str) else set(fallback_on)
    if "all" in kinds or "any" in kinds:
        return KNOWN_KINDS
    unknown = kinds - KNOWN_KINDS
    if unknown:
        raise ConfigError(f"fallback_on: unknown error kind {sorted(unknown)[0]!r}; "
                          f"known: {', '.join(sorted(KNOWN_KINDS))}.")
    return DEFAULT_FALLBACK_ON | kinds


def resolve_chain(entry: str, **kw: Any) -> "list[ModelSpec]":
    """Resolve every model of a chain entry now (a bad name fails before anything is sent)."""
    from .models import resolve

    return [resolve(name, **kw) for name in split(entry)]


def chain_plan(make: Callable[[str], "CallPlan"], model: str | Sequence[str],
               fallback: Sequence[str] | str | None = None, fallback_on: Any = None) -> "CallPlan":
    """The CallPlan of a model or a chain: `make(model)` builds one plan per model; the first
    carries the others in `.fallbacks`, all in one ledger group."""
    if not is_chain(model, fallback):
        return make(model if isinstance(model, str) else model[0])
    names = split(model, fallback)
    plans, too_long = [], []
    # a prompt too long for one model of the chain, or asking what its provider can't take
    # (attachments to an agent CLI), goes to the others
    for name in names:
        try:
            plans.append(make(name))
        except (ContextWindowError, UnsupportedError) as err:
            too_long.append(err)
    if not plans:
        raise too_long[0]
    head = plans[0]
    group = head.info.group_id or uuid.uuid4().hex[:12]
    for p in plans:
        p.info.group_id = group
    head.fallbacks = plans[1:]
    head.fallback_on = check_on(fallback_on)
    return head


def plans_of(plan: "CallPlan") -> list["CallPlan"]:
    """A plan and its fallbacks (to set a batch's cell, id, gate... on each)."""
    return [plan, *getattr(plan, "fallbacks", ())]


def should_fall_back(result: Result, kinds: frozenset[str] = DEFAULT_FALLBACK_ON) -> bool:
    """True for a failed attempt that showed nothing and whose error kind is in `kinds`."""
    return (result.status == "error" and not result.text and result.ttft_s is None
            and (result.error_kind or "") in kinds)


def _order(plans: list["CallPlan"]) -> list["CallPlan"]:
    """Models whose provider the last health check found down go last (stable otherwise)."""
    try:
        down = known_down()
    except Exception as exc:
        swallowed("reading which providers are down (the given order instead)", exc)
        down = set()
    if not down:
        return plans
    return [p for p in plans if p.spec.provider not in down] + [
        p for p in plans if p.spec.provider in down]


# ----- the circuit breaker -----------------------------------------------------------------------


class Breaker:
    """Skips a model for `cooldown` seconds after `after` failures in a row (kinds that would
    move a chain on). After the cool-down one call probes it; a failed probe re-opens at once."""

    def __init__(self, after: int = 3, cooldown: float = 60.0):
        self.after, self.cooldown = max(1, int(after)), float(cooldown)
        self.fails: dict[str, int] = {}
        self.open_until: dict[str, float] = {}
        self.reason: dict[str, str] = {}
        self.probing: set[str] = set()
        self.skipped = 0

    def blocked(self, model: str) -> float | None:
        """The epoch time the model's cool-down ends when it must be skipped now; else None
        (and, after a cool-down, this caller is the probe)."""
        until = self.open_until.get(model)
        if until is None:
            return None
        if time.time() < until or model in self.probing:
            return until
        self.probing.add(model)
        return None

    def record(self, model: str, result: Result, kinds: frozenset[str]) -> None:
        self.probing.discard(model)
        if result.ok:
            self.fails.pop(model, None)
            self.open_until.pop(model, None)
            return
        if not should_fall_back(result, kinds) or result.attempts == 0:
            return  # not sent (a missing key, a daily cap): says nothing about the model
        n = self.fails[model] = self.fails.get(model, 0) + 1
        self.reason[model] = result.error_kind or "error"
        if n >= self.after or model in self.open_until:  # a failed probe re-opens at once
            self.open_until[model] = time.time() + self.cooldown


# ----- running a chain ---------------------------------------------------------------------------


class _Relay(CallObserver):
    """Passes one attempt's events on, but holds on_finish: the chain decides which Result
    finishes the call, so the observer sees on_finish exactly once."""

    def __init__(self, inner: CallObserver):
        self.inner = inner
        self.held: Result | None = None

    def on_start(self, info: CallInfo) -> None:
        self.inner.on_start(info)

    def on_sent(self, t0: float) -> None:
        self.inner.on_sent(t0)

    def on_status(self, status: str, detail: str | None = None) -> None:
        if status not in ("error", "done", "cancelled", "incomplete"):  # the chain's end says that
            self.inner.on_status(status, detail)

    def on_retry(self, retry: RetryInfo) -> None:
        self.inner.on_retry(retry)

    def on_first_token(self, ttft_s: float) -> None:
        self.inner.on_first_token(ttft_s)

    def on_text(self, delta: str) -> None:
        self.inner.on_text(delta)

    def on_usage(self, usage: Usage) -> None:
        self.inner.on_usage(usage)

    def on_finish(self, result: Result) -> None:
        self.held = result


def _entry(result: Result, status: str | None = None) -> dict[str, Any]:
    return {"model": result.model, "status": status or result.status,
            "error_kind": result.error_kind, "error": result.error, "call_id": result.call_id}


async def _one(plan: "CallPlan", observer: CallObserver, caps: Any, next: Any) -> Result:
    """One model's call: checked against its daily cap first (not sent when over it)."""
    reserved, over = await quotas.admit(plan.spec, caps, plan.info.call_id)
    if over is not None:
        quietly(observer.on_start, plan.info)
        return await finish(not_sent(plan, over.kind, over.message), plan, observer)
    try:
        return await next(plan, observer)
    finally:
        if reserved:
            quotas.release(plan.spec, plan.info.call_id)


def _fallback_kinds(plan: "CallPlan") -> frozenset[str]:
    """The error kinds that move plan's chain along (and count against a model in a breaker)."""
    return getattr(plan, "fallback_on", None) or DEFAULT_FALLBACK_ON


async def stage(plan: "CallPlan", observer: CallObserver, next: Any) -> Result:
    """The pipeline stage: run a plan and its fallbacks (see the module's docstring); returns the
    final Result.

    The observer sees on_start for each model tried, on_fallback between them, and on_finish
    once, with the final Result. Cancellation stops the chain (the cancelled attempt's row is
    recorded) and propagates. plan.breaker (a batch's) skips models that keep failing.
    """
    chain = plans_of(plan)
    caps = plan.limits
    breaker = plan.breaker
    if len(chain) == 1 and not caps and not quotas.has_caps():
        if breaker is None:
            return await next(plan, observer)  # the common case: one model, no caps
        model = plan.spec.id
        if model not in breaker.open_until:  # a batch's row of one model that hasn't tripped
            result = await next(plan, observer)
            breaker.record(model, result, _fallback_kinds(plan))
            return result
    with otel.parent("fallback", when=len(chain) > 1, chain="|".join(p.spec.id for p in chain)):
        return await _chain(plan, chain, observer, breaker, caps, next)


async def _chain(plan: "CallPlan", chain: list["CallPlan"], observer: CallObserver,
                 breaker: Breaker | None, caps: Any, next: Any) -> Result:
    """The models of a chain in turn until one answers (run's work for a real chain)."""
    kinds = _fallback_kinds(plan)
    chain = _order(chain)
    relay = _Relay(observer)
    tried: list[dict[str, Any]] = []
    final: Result | None = None
    try:
        for i, p in enumerate(chain):
            last = i == len(chain) - 1
            until = breaker.blocked(p.spec.id) if breaker is not None else None
            if until is not None and getattr(p.gate, "closed", None) is None:
                # (a batch gate closed on an hour-long wait fails the row with that message itself)
                breaker.skipped += 1
                reason = breaker.reason.get(p.spec.id, "error")
                stamp = time.strftime("%H:%M:%S", time.gmtime(until))
                result = not_sent(p, reason, f"Skipped {p.spec.id}: it kept failing ({reason}); "
                                             f"cooling down until {stamp} UTC.")
                if last:  # nothing else will answer: this row stands for the call
                    quietly(relay.on_start, p.info)
                    await finish(result, p, None)
                tried.append(_entry(result, "skipped"))
            else:
                relay.held = None
                result = await _one(p, relay, caps, next)
                result = relay.held or result
                if breaker is not None:
                    breaker.record(p.spec.id, result, kinds)
                tried.append(_entry(result))
            final = result
            if result.ok or last or not should_fall_back(result, kinds):
                break
            quietly(observer.on_fallback, p.spec.id, result.error_kind or "error", chain[i + 1].spec.id)
    except asyncio.CancelledError:
        if relay.held is not None:
            relay.held.attempts_by_model = [*tried, _entry(relay.held)] if len(chain) > 1 else []
            quietly(observer.on_finish, relay.held)
        raise
    assert final is not None
    if len(chain) > 1:
        final.attempts_by_model = tried
    quietly(observer.on_finish, final)
    return final


def describe(result: Result) -> str:
    """"claude: overloaded → chatgpt" for a Result that moved along its chain ("" otherwise)."""
    return result.to_row().get("fallback", "")
