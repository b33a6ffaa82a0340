"""The live batch runner: a pool of workers running a batch's CallPlans through the pipeline,
each through its provider's gate (rate limits and an adaptive in-flight limit), within a budget.

batches.batch() plans a batch and runs it here; a provider job's live retry
(batchjobs.JobHandle.retry_failed(via="live")) runs its rows here too.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _loop, fallback, pipeline
from ._loop import import_pandas
from .config import settings
from .engine import CallPlan
from .errors import LLMError, RateLimitError
from .repair import repair
from .session import session
from .structured import schema_columns
from .types import Result
from ._log import swallowed

if TYPE_CHECKING:
    import pandas as pd

#: ok answers kept for `resume` per store transaction (a hard kill loses at most these)
KEEP_EVERY = 256

__all__ = ["RateLimit", "ProviderGate", "Job", "Tally", "run", "last_frame", "PROBE_PAUSE_S",
           "was_interrupted"]


def was_interrupted(batch_id: str) -> bool:
    """Whether the batch batch_id was interrupted in this session, and not run to its end since
    (running the same batch again then resumes it)."""
    return batch_id in session.batches_interrupted


@dataclass
class RateLimit:
    """Limits for one provider; None means no limit."""

    rpm: float | None = None          # requests per minute
    tpm: float | None = None          # tokens (input + expected output) per minute
    rps: float | None = None          # requests per second
    concurrency: int | None = None    # requests in flight
    rpd: int | None = None            # requests per day (quotas.py: counted from the ledger)
    tpd: int | None = None            # tokens per day



def _estimated_tokens(plan: CallPlan) -> int:
    chars = sum(len(m.content) for m in plan.request.messages) + len(plan.request.system or "")
    return chars // 4 + 8 + (plan.request.max_tokens or 256)


class _Window:
    """Requests (or tokens) in the last `span` seconds, counted as the provider sees them.

    The provider counts a request when it arrives, which is some time after we let it go (a
    new connection, SDK warm-up) and before its first event comes back. So an entry is stamped
    when admitted, stamped again when its first event (or its end) is seen, and until then it
    counts whatever its age.
    """

    def __init__(self, span: float):
        self.span = span
        self.entries: list[list] = []  # [time, weight, answered]

    def add(self, now: float, weight: int = 1) -> list:
        entry = [now, weight, False]
        self.entries.append(entry)
        return entry

    def total(self, now: float) -> int:
        self.entries = [e for e in self.entries if not (e[2] and now - e[0] >= self.span)]
        return sum(e[1] for e in self.entries)

    def wait(self, now: float) -> float:
        """How long until the oldest answered entry leaves the window."""
        answered = [e[0] for e in self.entries if e[2]]
        return min(answered) + self.span - now if answered else 0.02


#: after a provider asks to wait longer than retry_max_wait: the pause before one probe request
PROBE_PAUSE_S = 1.0


class ProviderGate:
    """Admits one provider's requests within its limits, and backs off when it answers 429.

    A provider that asks to wait longer than retry_max_wait (retry-after: 3600) gets one probe
    request after a short pause (PROBE_PAUSE_S), the other rows held meanwhile: if the probe
    gets the same answer, the gate closes and every row still queued for the provider fails at
    once with that row's message (or moves on along its fallback chain); if not, the limit is
    gone and the rows go ahead."""

    def __init__(self, limit: RateLimit, concurrency: int):
        self.limit = limit
        self.ceiling = float(limit.concurrency or concurrency)
        # Adaptive in-flight limit: halves on a 429, grows back by about one per `allowed` successes.
        self.allowed = self.ceiling
        self.inflight = 0
        self.pause_until = 0.0
        self.minute, self.second, self.tokens = _Window(60.0), _Window(1.0), _Window(60.0)
        self._open: dict[int, list[list]] = {}  # the window entries of each request in flight
        self.rate_limited_count = 0
        self.long_wait = False         # asked to wait longer than retry_max_wait: probe first
        self.probe: int | None = None  # id() of the plan sent as the probe, while it is out
        self.closed: LLMError | None = None  # the probe was told to wait too: rows fail with this

    def _wait_needed(self, now: float, need_tokens: int) -> float:
        if now < self.pause_until:
            return self.pause_until - now
        if self.long_wait and self.probe is not None:  # one probe at a time, the others held
            return 0.02
        if self.inflight >= max(1, int(self.allowed)):
            return 0.02
        lim = self.limit
        if lim.rpm and self.minute.total(now) >= lim.rpm:
            return self.minute.wait(now)
        if lim.rps and self.second.total(now) >= lim.rps:
            return self.second.wait(now)
        if lim.tpm:
            used = self.tokens.total(now)
            if used and used + need_tokens > lim.tpm:
                return self.tokens.wait(now)
        return 0.0

    async def acquire(self, plan: CallPlan) -> None:
        """Wait until plan may be sent; raises the gate's RateLimitError once it has closed."""
        from .quotas import gate_wait

        need = _estimated_tokens(plan)
        while True:
            if self.closed is not None:
                raise RateLimitError(self.closed.message, provider=plan.spec.provider,
                                     status_code=self.closed.status_code,
                                     retry_after=self.closed.retry_after)
            now = time.monotonic()
            # the provider's own rate-limit headers: slow down before it answers 429
            wait = max(self._wait_needed(now, need),
                       gate_wait(plan.spec.provider, plan.spec.name, self.inflight, need))
            if wait <= 0:
                break
            await asyncio.sleep(min(max(wait, 0.005), 0.25))
        if self.long_wait:
            self.probe = id(plan)
        self.inflight += 1
        # a window counts only for a limit that is set (unpruned, the others would keep an
        # entry for every request of the batch)
        lim = self.limit
        self._open[id(plan)] = [w.add(now, weight) for w, weight, on in
                                ((self.minute, 1, lim.rpm), (self.second, 1, lim.rps),
                                 (self.tokens, need, lim.tpm)) if on]

    def answered(self, plan: CallPlan) -> None:
        """The request's first event came back: it reached the provider by now."""
        now = time.monotonic()
        for entry in self._open.pop(id(plan), ()):
            entry[0], entry[2] = now, True

    def release(self, plan: CallPlan, usage: Any) -> None:
        """plan's request is over: free its slot and let the in-flight limit grow back."""
        self.answered(plan)  # if nothing came back, it was sent before now all the same
        self.inflight -= 1
        if self.probe == id(plan):  # the probe was not told to wait long again: the limit is gone
            self.probe = None
            if self.closed is None:
                self.long_wait = False
        if self.allowed < self.ceiling:
            self.allowed = min(self.ceiling, self.allowed + 1.0 / max(1.0, self.allowed))

    def rate_limited(self, plan: CallPlan, retry_after: float | None, error: LLMError | None = None) -> None:
        """A 429: halve the in-flight limit and pause the provider for what it asked, capped at
        retry_max_wait like a single call's wait. Asked for longer than that: a short pause,
        then one probe; the probe asked too: the gate closes (see the class)."""
        self.rate_limited_count += 1
        self.allowed = max(1.0, self.allowed / 2)
        now = time.monotonic()
        if retry_after is not None and retry_after > settings.retry_max_wait:
            if self.probe == id(plan) and error is not None:
                self.closed = error
            elif not self.long_wait:
                self.long_wait = True
                self.pause_until = max(self.pause_until, now + min(PROBE_PAUSE_S, settings.retry_max_wait))
            return
        pause = retry_after if retry_after is not None else 1.0
        self.pause_until = max(self.pause_until, now + max(0.0, pause))


@dataclass
class Job:
    """One row of a batch: its plan, its key in the store, its input columns, and its result."""

    index: int
    plan: CallPlan
    call_key: str
    inputs: dict[str, Any]
    result: Result | None = None
    resumed: bool = False


@dataclass
class Tally:
    """What a batch has done so far; read by the progress display."""

    total: int
    done: int = 0
    failed: int = 0
    inflight: int = 0
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    stopped: str | None = None



#: the rows of the last batch, even if it was interrupted
last_frame: "pd.DataFrame | None" = None


def _check_priced(jobs: Any) -> None:
    """With max_cost, every model a call may go to (a chain's fallbacks too) needs a price: an
    unknown one (NaN) would drop out of the spent sum and let the batch pass max_cost. Raises
    ConfigError, before anything is sent, naming them (as provider jobs do)."""
    from .errors import ConfigError
    from .pricing import basis

    specs = {p.spec.id: p.spec for job in jobs for p in fallback.plans_of(job.plan)}
    unpriced = sorted(i for i, s in specs.items() if basis(   # as price_result looks it up
        s.provider, s.name, requested=getattr(s, "price_model", None) or s.name,
        base_url=None if s.simulated else s.base_url) is None)
    if unpriced:
        raise ConfigError(
            f"No price is known for {', '.join(unpriced)}, so max_cost cannot be checked; "
            f"nothing was sent. Set one with llmcells.set_price('{unpriced[0]}', input=..., "
            f"output=...) (USD per million tokens) or drop max_cost.")


async def run(jobs: list[Job], batch_id: str, resume: bool, concurrency: int,
               limits: dict[str, RateLimit], max_cost: float | None, progress: Any,
               scoring: Any = None) -> "pd.DataFrame":
    """Run jobs with a pool of `concurrency` workers through their providers' gates, within
    max_cost, painting progress; the batch's frame (also kept as last_frame, even when
    interrupted). resume: reuse the ok answers the store kept for batch_id."""
    global last_frame
    from . import store

    tally = Tally(total=len(jobs))
    if resume:
        done = store.batch_done(batch_id)
        for job in jobs:
            kept = done.get(job.call_key)
            if kept is not None:
                job.result = _resumed_result(job, kept)
                job.resumed = True
                tally.done += 1
                tally.cost += job.result.cost_usd if not math.isnan(job.result.cost_usd) else 0.0
    if max_cost is not None:
        _check_priced(j for j in jobs if j.result is None)
    gates: dict[str, ProviderGate] = {}
    for job in jobs:
        for plan in fallback.plans_of(job.plan):
            p = plan.spec.provider
            if p not in gates:
                gates[p] = ProviderGate(limits.get(p, RateLimit()), concurrency)
            plan.gate = gates[p]
    breaker = fallback.Breaker(settings.fallback_after, settings.fallback_cooldown)  # a model that keeps failing is skipped for a cool-down
    for job in jobs:
        job.plan.breaker = breaker
    queue: deque[Job] = deque(j for j in jobs if j.result is None)
    inflight_est: dict[int, float] = {}
    from .pricing import BatchEstimator

    estimator = BatchEstimator()   # learns tokens per character, cache shares, output per model

    def paint() -> None:
        if progress is not None:
            progress.update(tally)

    # ok answers kept for `resume`, many to one store transaction (one each cost a commit and a
    # trip to the ledger's writer thread per call); an interrupted batch keeps what it has
    kept: list[tuple[str, Result]] = []

    def keep_rows() -> None:
        if kept:
            try:
                store.put_many(kept, batch_id)
            except Exception as exc:  # keeping answers for resume must never fail the batch
                swallowed("keeping a batch's answers for resume", exc)
            kept.clear()

    async def worker() -> None:
        while queue and tally.stopped is None and not _loop.cancelled():
            job = queue.popleft()
            if max_cost is not None:
                est = estimator.estimate(job.plan)
                if not math.isnan(est) and tally.cost + sum(inflight_est.values()) + est > max_cost:
                    tally.stopped = (f"budget: stopped launching calls at ${tally.cost:.4f} spent "
                                     f"of max_cost=${max_cost:g}")
                    queue.appendleft(job)
                    break
                inflight_est[job.index] = 0.0 if math.isnan(est) else est
            tally.inflight += 1
            paint()
            try:
                job.result = await pipeline.call(job.plan)  # a chain, or one model
                if job.result.error_kind == "invalid_output":  # repair=1: re-ask once
                    first = job.result
                    job.result = await repair(job.plan, first)
                    if job.result is not first and not math.isnan(first.cost_usd):
                        tally.cost += first.cost_usd
                if scoring:  # score while the slot is held (a judge is a call too)
                    await scoring.score(job.result, job.inputs)
            finally:
                tally.inflight -= 1
                inflight_est.pop(job.index, None)
            r = job.result
            if r.status == "cancelled":  # the batch was interrupted: stop taking jobs
                raise asyncio.CancelledError
            tally.done += 1
            tally.failed += r.status != "ok"
            if not math.isnan(r.cost_usd):
                tally.cost += r.cost_usd
            estimator.learn(job.plan, r)
            if r.ok and not r.cached:
                kept.append((store.batch_key(batch_id, job.call_key), r))
                if len(kept) >= KEEP_EVERY:
                    keep_rows()
            paint()

    from . import otel

    with otel.parent("batch", batch_id=batch_id, calls=len(jobs)):
        workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, max(1, len(queue))))]
        try:
            interrupted = await _loop.wait_all(workers)
        finally:
            keep_rows()
    if not interrupted and scoring and not _loop.cancelled() and not any(w.cancelled() for w in workers):
        try:
            await scoring.score_unscored((job.result, job.inputs) for job in jobs)  # resumed rows
        except asyncio.CancelledError:
            interrupted = True
    if interrupted or _loop.cancelled() or any(w.cancelled() for w in workers):
        session.batches_interrupted.add(batch_id)
        last_frame = _frame(jobs, batch_id, tally)
        if progress is not None:
            progress.close(tally, interrupted=True)
        raise asyncio.CancelledError
    for w in workers:  # a bug in a worker: say so rather than return a frame with holes
        if w.exception() is not None:
            raise w.exception()
    session.batches_interrupted.discard(batch_id)
    last_frame = frame = _frame(jobs, batch_id, tally)
    if progress is not None:
        progress.close(tally)
    return frame


def _resumed_result(job: Job, kept: dict[str, Any]) -> Result:
    plan = job.plan
    result = Result(model=plan.spec.id, provider=plan.spec.provider, status="ok",
                    sample=plan.info.sample, batch_id=plan.batch_id, simulated=plan.spec.simulated)
    for name, value in kept.items():
        setattr(result, name, value)
    return result


@functools.cache
def _answer_row() -> tuple[str, ...]:
    """The columns of an answer's row, in their order (a Result's, without group_id): the
    blank row of a call never made, and the names an input column must not take."""
    return tuple(k for k in Result(model="", provider="").to_row() if k != "group_id")


#: the other columns a batch frame's row takes from its answer and the batch (beside score_<name>)
_BATCH_COLUMNS = frozenset({"group_id", "resumed", "batch_id", "processing", "fallback", "score_notes",
                            "cli_cost_usd", "original_cost_usd", "original_latency_s", "original_ttft_s"})


def frame_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    """A row's input columns for its frame: one named like a column of the answer ("text",
    "model", "status", "error", ...) is kept as input_<name>; it was overwritten by the
    answer's value, and the input was lost (a DataFrame of texts to summarise has a "text")."""
    taken = _answer_row()

    def clashes(k: Any) -> bool:
        return k in taken or k in _BATCH_COLUMNS or str(k).startswith("score_")

    if not any(clashes(k) for k in inputs):
        return dict(inputs)
    return {(f"input_{k}" if clashes(k) else k): v for k, v in inputs.items()}


def _frame(jobs: list[Job], batch_id: str, tally: Tally) -> "pd.DataFrame":
    """The batch's rows as a DataFrame. Each row is kept as a tuple in the order of the columns
    seen so far, not as a dict (a dict of some 40 keys per row was most of the batch's peak
    memory at its end); the frame is what `from_records` makes of the rows as dicts: columns in
    the order first seen, NaN where a row lacks one, the same dtype inference."""
    pd = import_pandas()

    columns: dict[str, int] = {}   # column -> position, in the order first seen
    records: list[tuple] = []
    for job in jobs:
        row = frame_inputs(job.inputs)
        if job.result is not None:
            r = job.result.to_row()
            r.pop("group_id", None)
            row.update(r)
            if job.plan.request.schema is not None:  # [rich requests hook] one column per field
                row.update(schema_columns(job.result, job.plan.request.schema, row))
        else:  # the answer's columns, empty: a frame of rows none sent has them all too
            row.update(dict.fromkeys(_answer_row(), math.nan))
            row.update(model=job.plan.spec.id, provider=job.plan.spec.provider,
                       sample=job.plan.info.sample,
                       status="skipped" if tally.stopped else "not run",
                       error_kind="budget" if tally.stopped else "interrupted",
                       error=tally.stopped or "Not run: the batch was interrupted; resume it.")
        row["resumed"] = job.resumed
        row["batch_id"] = batch_id
        for name in row:
            if name not in columns:
                columns[name] = len(columns)
        if len(row) == len(columns):  # (the common case: this row has every column so far)
            records.append(tuple(row[c] for c in columns))
        else:
            records.append(tuple(row.get(c, math.nan) for c in columns))
    width = len(columns)
    for i, rec in enumerate(records):  # rows made before a later row's new columns
        if len(rec) < width:
            records[i] = rec + (math.nan,) * (width - len(rec))
    frame = pd.DataFrame.from_records(records, columns=list(columns))
    frame.attrs["batch_id"] = batch_id
    frame.attrs["stopped"] = tally.stopped
    return frame
