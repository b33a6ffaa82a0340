"""The call pipeline: the stages around the engine's one model request, assembled once, and the
runner of many calls at a time.

A stage is `async def stage(plan, observer, next) -> Result`: it may change the plan or the
observer, answer without calling `next`, or call it several times; it knows nothing of the other
stages. From the outside in:

- fallback: a model chain ("claude|chatgpt"), daily caps, a batch's circuit breaker;
- tools: the tool loop, one inner call per model request;
- hooks: the user's callbacks and OpenTelemetry spans follow each request;
- finish: on_start, then the one end of every call (validate, price, ledger row, on_finish);
- replay: a recorded answer instead of a request (replay on);
- cache: a stored answer instead of a request (cache=True);
- the engine: the request itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from . import _loop, cache, engine, fallback, finish, hooks, otel, replay, tools
from .engine import CallPlan, Next, Stage
from .types import CallObserver, Result

#: the stages, from the outside in
STAGES: tuple[Stage, ...] = (fallback.stage, tools.stage, hooks.stage, finish.stage,
                             replay.stage, cache.stage)


def assemble(stages: Sequence[Stage], core: Next) -> Next:
    """One callable that runs stages around core (the first stage outermost)."""
    call = core
    for stage in reversed(stages):
        call = _Link(stage, call)
    return call


class _Link:
    """One stage with what is inside it: called, it returns the stage's own coroutine (no
    coroutine around it, awaiting the stage's: two frames per stage on every call were one)."""

    __slots__ = ("stage", "inner")

    def __init__(self, stage: Stage, inner: Next) -> None:
        self.stage, self.inner = stage, inner

    def __call__(self, plan: CallPlan, observer: CallObserver) -> Awaitable[Result]:
        return self.stage(plan, observer, self.inner)


_call = assemble(STAGES, engine.execute)


async def call(plan: CallPlan, observer: CallObserver | None = None) -> Result:
    """Make one call through every stage and return its Result, whatever happens (a cancelled
    call too: status "cancelled"); its ledger row is committed before this returns."""
    return await _call(plan, observer or CallObserver())


async def run_plans(plans: Sequence[CallPlan], observers: Sequence[CallObserver | None],
                    results: list[Result | None] | None = None) -> list[Result]:
    """Run plans concurrently; one failure never stops the others. On cancellation every call is
    cancelled (and recorded as such) before CancelledError propagates; the Results, cancelled
    ones included, are left in `results` when given."""
    if results is None:
        results = []
    results[:] = [None] * len(plans)
    if len(plans) == 1:  # one call (ask): awaited here, without a task and a wait around it
        results[0] = await call(plans[0], observers[0])
        task = asyncio.current_task()
        # The call turned a cancellation into a cancelled Result; the caller still learns of it.
        if _loop.cancelled() or (task is not None and task.cancelling()):
            raise asyncio.CancelledError
        return [results[0]]
    with otel.parent("compare", group_id=plans[0].info.group_id, calls=len(plans)):
        tasks = [asyncio.ensure_future(call(p, o)) for p, o in zip(plans, observers)]
        interrupted = await _loop.wait_all(tasks)
    for i, t in enumerate(tasks):
        if not t.cancelled() and t.exception() is None:
            results[i] = t.result()
    if interrupted or _loop.cancelled():
        raise asyncio.CancelledError
    return [r for r in results if r is not None]
