"""The cache stage: a request answered before (`cache=True`) is answered from the local store at
$0, and an ok answer is kept there. (A batch keeps its rows for `resume` itself, many to a
transaction: batches._run.)"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import store
from ._log import quietly
from .engine import result_for
from .types import CallObserver, Result

if TYPE_CHECKING:
    from .engine import CallPlan, Next

log = logging.getLogger("llmcells")


async def stage(plan: "CallPlan", observer: CallObserver, next: "Next") -> Result:
    """The pipeline stage: a stored answer, or the inner stages' (kept once its row commits)."""
    if plan.cache:
        hit = _lookup(plan)
        if hit is not None:
            return _answer(plan, observer, hit)
    if plan.cache:
        plan.keep.append(keep)  # this call's own list (the finish stage made it)
    return await next(plan, observer)


def keep(result: Result, plan: "CallPlan") -> None:
    """Keep an ok answer in the store (called on the ledger's writer thread after its row)."""
    if plan.cache:
        store.put(store.cache_key(plan.request, plan.info.sample), result)


def _lookup(plan: "CallPlan") -> dict | None:
    try:
        return store.get(store.cache_key(plan.request, plan.info.sample))
    except Exception:  # an unreadable store is a cache miss, not a failed call
        log.debug("cache read failed", exc_info=False)
        return None


def _answer(plan: "CallPlan", observer: CallObserver, hit: dict) -> Result:
    result = result_for(plan)
    for name, value in hit.items():
        setattr(result, name, value)
    result.status, result.cached, result.cost_usd, result.attempts = "ok", True, 0.0, 0
    result.latency_s = result.ttft_s = 0.0
    result.priced = True
    quietly(observer.on_text, result.text)
    quietly(observer.on_usage, result.usage)
    return result
