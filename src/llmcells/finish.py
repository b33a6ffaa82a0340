"""The one end of every call: a live answer, one never sent, a provider batch's, a cached or a
replayed one is validated, priced, written to the ledger and announced (on_finish) here.

A call counts as finished only once its ledger row is committed (it would survive a SIGKILL):
`finish` waits for the commit through any further cancellation, so a row is never dropped.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import math
from typing import TYPE_CHECKING, Any

from . import _imports
from ._log import quietly
from .engine import result_for
from .structured import finish as check_rich
from .types import CallObserver, Result

if TYPE_CHECKING:
    from .engine import CallPlan, Next

log = logging.getLogger("llmcells")

#: what the end of a call needs (its price, its ledger row): imported on the client builder's
#: thread after the call's SDK, while a first request is out, so that a script's first call pays
#: only for its SDK (see _imports.queue_after); then genai-prices' data too, unless the price
#: file has the call's price (pricing.load_ahead)
FINISHING = ["llmcells.ledger", "llmcells.pricing"]


async def stage(plan: "CallPlan", observer: CallObserver, next: "Next") -> Result:
    """The pipeline stage: announce the call (on_start), let the inner stages answer it, finish it."""
    if not _ready():
        _imports.queue_after(FINISHING, then=functools.partial(_price_data_ahead, plan.spec))
    quietly(observer.on_start, plan.info)
    # A list of this call's own, where the inner stages (cache, replay) add what keeps its answer
    # once the row is committed: they run inside this stage, and their plan is this one's copy.
    plan = _own_copy(plan)
    result = await next(plan, observer)
    return await finish(result, plan, observer)


def _own_copy(plan: "CallPlan") -> "CallPlan":
    """A shallow copy of plan with a keep list of its own: what dataclasses.replace(plan,
    keep=list(plan.keep)) makes (CallPlan has no __post_init__ and no field left out of
    __init__), without calling __init__ with every field by name."""
    copy = object.__new__(type(plan))
    copy.__dict__.update(plan.__dict__)
    copy.keep = list(plan.keep)
    return copy


async def finish(result: Result, plan: "CallPlan", observer: CallObserver | None = None) -> Result:
    """End one call: the rich request's checks (attachments counted, the schema validated), its
    price, its ledger row (waited for), then plan.keep's callbacks and observer.on_finish."""
    if plan.request.attachments or plan.request.schema is not None:
        check_rich(result, plan.request)
    price(result, plan.spec)
    try:
        await _persist(result, plan)
    finally:
        if observer is not None:
            quietly(observer.on_finish, result)
    return result


def price(result: Result, spec: Any) -> None:
    """cost_usd, price_source and price_basis from the usage the provider reported, through the
    one pricing function (a provider batch's row at its batch price). A Result already priced
    (a cache hit, a replay, a request whose usage never came, one never sent) keeps its cost."""
    if result.priced:
        return
    result.priced = True
    if result.cached:
        result.cost_usd = 0.0
        return
    try:
        _finishing_imports().pricing.price_result(result, spec)
    except Exception:
        log.debug("pricing failed for %s", spec.id, exc_info=False)
        result.cost_usd = math.nan


def _price_data_ahead(spec: Any) -> None:
    """After FINISHING, on the client builder's thread: genai-prices' data, if spec's price needs it."""
    from . import pricing

    pricing.load_ahead(spec)


def not_sent(plan: "CallPlan", kind: str, message: str) -> Result:
    """The Result of a call that was never sent (a daily cap, a model cooling down): $0."""
    return result_for(plan, status="error", error_kind=kind, error=message, latency_s=0.0,
                      cost_usd=0.0, priced=True)


_imported = False   # FINISHING all imported: true for good once seen (modules stay imported)


def _ready() -> bool:
    global _imported
    if not _imported:
        _imported = all(_imports.loaded(n) for n in FINISHING)
    return _imported


class _Finishing:
    """llmcells.ledger and llmcells.pricing, once imported: the modules themselves, looked up
    as attributes on every call (a test may replace a function in them), without an import
    statement per call."""

    ledger: Any = None
    pricing: Any = None


_modules: _Finishing | None = None


def _finishing_imports() -> _Finishing:
    """Import what a call's end needs (its price, its ledger row) here, on the loop, at once,
    and return those modules.

    Not through the client builder's queue: an interrupted first call would wait there for
    every SDK client queued before it, and its card and row would come after its cell ended.
    These modules import no SDK and no transport, so they can't meet the warm-up's imports
    half-way (Python's per-module import locks make a concurrent import of one of them wait)."""
    global _modules
    if _modules is not None:
        return _modules
    if not _ready():
        for name in FINISHING:
            importlib.import_module(name)
    from . import ledger, pricing

    found = _Finishing()
    found.ledger, found.pricing = ledger, pricing
    _modules = found
    return found


async def _persist(result: Result, plan: "CallPlan") -> None:
    """Write the ledger row (then run plan.keep: the cache, replay and a batch's store keep an ok
    answer) on the ledger's writer thread, and wait until it is committed, through any further
    cancellation: a row is never dropped."""
    ledger = _finishing_imports().ledger
    keeps = [k for k in plan.keep if result.ok and not result.cached]
    if not keeps and ledger.write_now(result, prompt=plan.request.prompt, system=plan.request.system):
        return  # committed right here (the common case: no thread round trip)

    def keep() -> None:
        for k in keeps:
            try:
                k(result, plan)
            except Exception:  # keeping an answer must never fail the call
                log.debug("keeping an answer failed", exc_info=False)

    done = asyncio.wrap_future(ledger.write(result, prompt=plan.request.prompt,
                                            system=plan.request.system,
                                            after=keep if keeps else None))
    while not done.done():
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            continue  # an interrupt while unwinding: the row is still written, then we go
        except Exception:
            log.debug("ledger write failed", exc_info=False)  # the ledger warns on its own
            return
