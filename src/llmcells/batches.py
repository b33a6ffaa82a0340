"""Batch runs: prompts x models x samples, with rate limits, a budget, resume and the cache.

A batch is a list of CallPlans run by a fixed pool of workers (the global concurrency), each
call passing through its provider's gate (requests / tokens per minute or second, and an
adaptive in-flight limit that halves on a 429 and grows back on success). Failures are rows with
a status; nothing aborts the batch but an interrupt, and an interrupted batch resumes where it
stopped, because every ok answer is kept in the local store under the batch's id.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import fallback, pipeline
from .config import settings
from .errors import ConfigError, LLMError, RateLimitError, did_you_mean
from .interpolate import interpolate, missing_names
from . import _loop
from ._loop import Pending, one_line_interrupt
from .attachments import row_attachments as _row_attachments
from .calls import make_plan
from .session import current_cell
from .repair import repair
from .structured import output_schema, schema_columns
from .engine import CallPlan
from .session import session
from .types import Result

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("llmcells")

#: ok answers kept for `resume` per store transaction (a hard kill loses at most these)
KEEP_EVERY = 256

@dataclass
class RateLimit:
    """Limits for one provider; None means no limit."""

    rpm: float | None = None          # requests per minute
    tpm: float | None = None          # tokens (input + expected output) per minute
    rps: float | None = None          # requests per second
    concurrency: int | None = None    # requests in flight
    rpd: int | None = None            # requests per day (quotas.py: counted from the ledger)
    tpd: int | None = None            # tokens per day


#: the session's rate limits (the same dict object as session.rate_limits)
_rate_limits: dict[str, RateLimit] = session.rate_limits


def set_rate_limit(provider: str, *, rpm: float | None = None, tpm: float | None = None,
                   rps: float | None = None, concurrency: int | None = None) -> None:
    """Limit the requests of one provider ("openai", "anthropic", "google" or an endpoint name)
    in every batch of this session."""
    _rate_limits[provider] = RateLimit(rpm, tpm, rps, concurrency)


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
        self._open[id(plan)] = [self.minute.add(now), self.second.add(now), self.tokens.add(now, need)]

    def answered(self, plan: CallPlan) -> None:
        """The request's first event came back: it reached the provider by now."""
        now = time.monotonic()
        for entry in self._open.pop(id(plan), ()):
            entry[0], entry[2] = now, True

    def release(self, plan: CallPlan, usage: Any) -> None:
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
class _Job:
    index: int
    plan: CallPlan
    call_key: str
    inputs: dict[str, Any]
    result: Result | None = None
    resumed: bool = False


@dataclass
class _Tally:
    """What a batch has done so far; read by the progress display."""

    total: int
    done: int = 0
    failed: int = 0
    inflight: int = 0
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    stopped: str | None = None


def _prompt_rows(prompts: Any, template: str | None) -> list[tuple[Any, str, dict[str, Any]]]:
    """(id, prompt, input columns) for a list, a Series, or a DataFrame with a template."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(prompts, pd.DataFrame):
        if template is None:
            if "prompt" not in prompts.columns:
                raise ConfigError("A DataFrame of prompts needs template='...{column}...' "
                                  "or a 'prompt' column.")
            template = "{prompt}"
        _check_template(template, list(prompts.columns), "column", "the columns are")
        rows = []
        for label, row in prompts.iterrows():
            values = row.to_dict()
            rows.append((label, interpolate(template, values, strict=True), values))
        return rows
    if pd is not None and isinstance(prompts, pd.Series):
        items = list(prompts.items())
    elif isinstance(prompts, str):
        items = [(0, prompts)]
    else:
        items = list(enumerate(prompts))
    if template:
        _check_template(template, ["prompt"], "name", "a template over a list or Series takes")
    rows = []
    for label, text in items:
        if not isinstance(text, str):
            raise ConfigError(f"Prompt {label!r} is {type(text).__name__}, not text.")
        rows.append((label, interpolate(template, {"prompt": text}, strict=True) if template else text, {}))
    return rows


def _check_template(template: str, names: list[Any], what: str, there: str) -> None:
    """Refuse a template naming a column that is not there, before anything is sent (a typo would
    otherwise send the literal placeholder with every row)."""
    missing = missing_names(template, [str(n) for n in names])
    if missing:
        hint = did_you_mean(f"{{{missing[0]}}}", [f"{{{n}}}" for n in names])
        raise ConfigError(f"template= names {{{missing[0]}}}, which is not a {what}{hint}; {there}: "
                          f"{', '.join(map(str, names))}. Nothing was sent; write {{{{ }}}} to send braces.")


def _call_key(plan: CallPlan, sample: int) -> str:
    from .store import request_key

    return request_key(plan.request, sample)[:32]


def _batch_id(jobs: list[_Job]) -> str:
    return hashlib.sha256("".join(j.call_key for j in jobs).encode()).hexdigest()[:12]


@one_line_interrupt  # (it imports pandas in the caller's thread: no Ctrl-C may cut that)
def batch(prompts: Any, models: Sequence[str] | str | None = None, *, template: str | None = None,
          repeat: int = 1, concurrency: int = 16, limits: dict[str, RateLimit | dict] | None = None,
          max_cost: float | None = None, batch_id: str | None = None, resume: bool = False,
          cache: bool | None = None, system: str | None = None, temperature: float | None = None,
          max_tokens: int | None = None, timeout: float | None = None,
          display: bool | str | None = None, params: dict[str, Any] | None = None,
          score: Any = None, refresh: bool = False, via: str = "live",
          fallback: Sequence[str] | str | None = None, fallback_on: Sequence[str] | str | None = None,
          attach: Any = None, schema: Any = None, repair: int = 0) -> Pending["pd.DataFrame"]:
    """Run every prompt through every model, `repeat` times; `await` it for a DataFrame with one
    row per (prompt, model, sample): inputs, text, status, error, tokens, cost, latency, TTFT.

    prompts: a list of strings, a pandas Series, or a DataFrame with `template` ("...{column}...").
    concurrency: requests in flight in all; limits: per provider, e.g.
    {"openai": {"rpm": 500, "tpm": 200_000}} (see also set_rate_limit). max_cost: stop launching
    calls once spent plus in-flight estimated cost would pass it (USD). batch_id / resume: a
    re-run with the same id, or with resume=True, only makes the calls not yet done. cache:
    answer identical requests (same sample index) from the local store at no cost.
    score: a scorer or a list (see llmcells.scoring); a scorer taking (result, row) reads the
    row's input columns, e.g. row["expected"]; the frame gets a score_<name> column per scorer.
    refresh: make every call anew even if replay (or the cache) has its answer.
    via: "live" (default) calls the models now; "provider" submits the same plan to the
    providers' batch APIs (half the price, results within 24 h) and `await` gives a JobHandle
    at once (see llmcells.jobs). Provider jobs take attach= and schema= too: each request line
    carries the files and the structured-output request, each answer is validated when the
    job is collected (a mismatch is status "error", error_kind "invalid_output") and the frame
    gets the field columns. repair= is live only: a provider job cannot re-ask at once, so
    rows whose answer does not match are re-run with job.retry_failed(via="live", repair=1).
    A model may be a chain, "claude|chatgpt" (or give fallback=[...] for every model): a model
    that keeps failing is skipped for a cool-down (fallback.Breaker). limits may also hold daily
    caps, {"google": {"rpd": 250, "tpd": ...}}, counted from the ledger (quotas.py).
    attach: files for every prompt (see ask), or the name of a DataFrame column holding each
    row's attachment(s). schema: validate each answer (see ask); the frame gets one column per
    top-level field of the schema; repair=1 re-asks once when an answer does not match (the
    first call's cost counts toward max_cost too).
    """
    from . import fallback as _fallback

    if isinstance(models, str):
        models = [models]
    models = list(models) if models else list(settings.compare_models)
    if concurrency < 1:
        raise ConfigError(f"concurrency must be 1 or more, not {concurrency}.")
    if int(repeat) < 1:
        raise ConfigError(f"repeat must be 1 or more, not {repeat}.")
    if max_cost is not None and max_cost < 0:
        raise ConfigError("max_cost must be a number of US dollars >= 0.")
    rows = _prompt_rows(prompts, template)
    # an alias and its id are one model; an entry may be a chain, "claude|chatgpt"
    specs = list({"|".join(s.id for s in chain): "|".join(s.requested for s in chain)
                  for chain in (_fallback.resolve_chain(m) for m in models)}.values())
    if fallback:
        _fallback.resolve_chain("|".join(_fallback.split(fallback)))
    row_files = _row_attachments(prompts, rows, attach)  # each row's files (or the same for all)
    schema = output_schema(schema)  # once, not per row
    jobs: list[_Job] = []
    for (label, prompt, inputs), files in zip(rows, row_files):
        for spec in specs:
            for k in range(int(repeat)):
                plan = _fallback.chain_plan(
                    lambda m, k=k: make_plan(prompt, m, system=system, temperature=temperature,
                                             max_tokens=max_tokens, timeout=timeout, params=params,
                                             sample=k, cache=cache, attach=files, schema=schema,
                                             repair=repair),
                    spec, fallback, fallback_on)
                jobs.append(_Job(len(jobs), plan, _call_key(plan, k),
                                 {"prompt_id": label, **inputs, "prompt": prompt}))
    resume = resume or batch_id is not None
    batch_id = batch_id or _batch_id(jobs)
    from . import replay as _replay  # [scoring/replay hook]
    from .scoring import start as _scoring

    if refresh:
        _replay.refresh(job.plan for job in jobs)
    scoring = _scoring(score, refresh=refresh, concurrency=concurrency)
    gate_limits = {**_rate_limits, **{k: v if isinstance(v, RateLimit) else RateLimit(**v)
                                      for k, v in (limits or {}).items()}}
    if via != "live":  # provider batch jobs live in their own package; it reuses this plan
        from .batchjobs import submit

        if via != "provider":
            raise ConfigError(f"via must be 'live' or 'provider', not {via!r}.")
        if repair:  # a provider job cannot re-ask at once; its retry can (batchjobs.core)
            raise ConfigError("repair= needs via='live'; with via='provider' run "
                              "job.retry_failed(via='live', repair=1) once the job is done.")
        return submit(jobs, batch_id, max_cost=max_cost, display=display,
                      concurrency=concurrency, limits=gate_limits)

    from .quotas import daily_caps

    caps = daily_caps(gate_limits) or None
    for job in jobs:
        job.plan.limits = caps

    def start():
        from . import store
        cell = current_cell()
        for job in jobs:
            for plan in _fallback.plans_of(job.plan):
                plan.cell, plan.batch_id = cell, batch_id
                plan.store_key = store.batch_key(batch_id, job.call_key)
        front = session.front_end
        mode = front.detect_mode(display)
        progress = front.open_progress(len(jobs), mode, batch_id=batch_id) if mode != "none" else None
        return _run(jobs, batch_id, resume, concurrency, gate_limits, max_cost, progress, scoring)

    return Pending(start, "batch")


#: the rows of the last batch, even if it was interrupted
last_frame: "pd.DataFrame | None" = None


async def _run(jobs: list[_Job], batch_id: str, resume: bool, concurrency: int,
               limits: dict[str, RateLimit], max_cost: float | None, progress: Any,
               scoring: Any = None) -> "pd.DataFrame":
    global last_frame
    from . import store

    tally = _Tally(total=len(jobs))
    if resume:
        done = store.batch_done(batch_id)
        for job in jobs:
            kept = done.get(job.call_key)
            if kept is not None:
                job.result = _resumed_result(job, kept)
                job.resumed = True
                tally.done += 1
                tally.cost += job.result.cost_usd if not math.isnan(job.result.cost_usd) else 0.0
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
    queue: deque[_Job] = deque(j for j in jobs if j.result is None)
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
                log.debug("keeping a batch's answers failed: %s", exc)
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
        last_frame = _frame(jobs, batch_id, tally)
        if progress is not None:
            progress.close(tally, interrupted=True)
        raise asyncio.CancelledError
    for w in workers:  # a bug in a worker: say so rather than return a frame with holes
        if w.exception() is not None:
            raise w.exception()
    last_frame = frame = _frame(jobs, batch_id, tally)
    if progress is not None:
        progress.close(tally)
    return frame


def _resumed_result(job: _Job, kept: dict[str, Any]) -> Result:
    plan = job.plan
    result = Result(model=plan.spec.id, provider=plan.spec.provider, status="ok",
                    sample=plan.info.sample, batch_id=plan.batch_id, simulated=plan.spec.simulated)
    for name, value in kept.items():
        setattr(result, name, value)
    return result


def _frame(jobs: list[_Job], batch_id: str, tally: _Tally) -> "pd.DataFrame":
    import pandas as pd

    records = []
    for job in jobs:
        row = dict(job.inputs)
        if job.result is not None:
            r = job.result.to_row()
            r.pop("group_id", None)
            row.update(r)
            if job.plan.request.schema is not None:  # [rich requests hook] one column per field
                row.update(schema_columns(job.result, job.plan.request.schema, row))
        else:
            row.update(model=job.plan.spec.id, provider=job.plan.spec.provider,
                       sample=job.plan.info.sample,
                       status="skipped" if tally.stopped else "not run",
                       error_kind="budget" if tally.stopped else "interrupted",
                       error=tally.stopped or "Not run: the batch was interrupted; resume it.")
        row["resumed"] = job.resumed
        row["batch_id"] = batch_id
        records.append(row)
    frame = pd.DataFrame.from_records(records)
    frame.attrs["batch_id"] = batch_id
    frame.attrs["stopped"] = tally.stopped
    return frame
