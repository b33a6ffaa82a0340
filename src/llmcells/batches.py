"""Batch runs: prompts x models x samples, with rate limits, a budget, resume and the cache.

A batch is a list of CallPlans run by a fixed pool of workers (the global concurrency), each
call passing through its provider's gate (requests / tokens per minute or second, and an
adaptive in-flight limit that halves on a 429 and grows back on success). Failures are rows with
a status; nothing aborts the batch but an interrupt, and an interrupted batch resumes where it
stopped, because every ok answer is kept in the local store under the batch's id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .config import settings
from .errors import ConfigError, did_you_mean
from .interpolate import interpolate, missing_names
from ._loop import Pending, import_pandas, one_line_interrupt
from .attachments import row_attachments as _row_attachments
from .batchrun import PROBE_PAUSE_S, Job, ProviderGate, RateLimit, run, was_interrupted
from .calls import make_plan
from .session import current_cell
from .structured import output_schema
from .engine import CallPlan
from .session import session

if TYPE_CHECKING:
    import pandas as pd

# RateLimit, ProviderGate and PROBE_PAUSE_S live with the runner (batchrun); named here too, where
# set_rate_limit and batch(limits=...) take them
__all__ = ["batch", "set_rate_limit", "RateLimit", "ProviderGate", "PROBE_PAUSE_S"]


#: the session's rate limits (the same dict object as session.rate_limits)
_rate_limits: dict[str, RateLimit] = session.rate_limits


def set_rate_limit(provider: str, *, rpm: float | None = None, tpm: float | None = None,
                   rps: float | None = None, concurrency: int | None = None) -> None:
    """Limit the requests of one provider ("openai", "anthropic", "google" or an endpoint name)
    in every batch of this session."""
    _rate_limits[provider] = RateLimit(rpm, tpm, rps, concurrency)



def _prompt_rows(prompts: Any, template: str | None) -> list[tuple[Any, str, dict[str, Any]]]:
    """(id, prompt, input columns) for a list, a Series, or a DataFrame with a template."""
    try:
        pd = import_pandas()
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(prompts, pd.DataFrame):
        if template is None:
            if "prompt" not in prompts.columns:
                raise ConfigError("A DataFrame of prompts needs template='...{column}...' "
                                  "or a 'prompt' column.")
            template = "{prompt}"
        _check_template(template, list(prompts.columns), "column", "the columns are")
        _check_filled(prompts, template)
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


def _row_inputs(label: Any, inputs: dict[str, Any], prompt: str) -> dict[str, Any]:
    """A row's inputs: its label as prompt_id, its columns, and the prompt sent. A column named
    prompt_id or prompt is kept as input_prompt_id / input_prompt (it was overwritten by the
    label or the filled template); a "prompt" column that is the prompt sent is not repeated."""
    if "prompt_id" in inputs or "prompt" in inputs:
        inputs = {(f"input_{k}" if k in ("prompt_id", "prompt") else k): v for k, v in inputs.items()
                  if not (k == "prompt" and v == prompt)}
    return {"prompt_id": label, **inputs, "prompt": prompt}


def _check_filled(frame: "pd.DataFrame", template: str) -> None:
    """Refuse a frame whose template columns are missing (NaN, None) in some rows, before
    anything is sent: the prompt would say "nan" where the review should be, and be paid for."""
    used = set(missing_names(template, []))  # (every name the template reads)
    columns = [c for c in frame.columns if str(c) in used]
    if not columns:
        return
    blank = frame[columns].isna()  # (a list in a cell, an attachment column say, is not NaN)
    rows = blank.any(axis=1)
    if not rows.any():
        return
    column = next(c for c in columns if blank[c].any())
    labels = list(frame.index[rows])
    shown = ", ".join(map(repr, labels[:5])) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
    raise ConfigError(
        f"template= reads {{{column}}}, which is missing (NaN or None) in {len(labels)} "
        f"row{'s' if len(labels) != 1 else ''} (index {shown}); fill it, e.g. "
        f"df.fillna({{{column!r}: ''}}), or drop those rows, e.g. df.dropna(subset=[{column!r}]). "
        "Nothing was sent.")


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


def _batch_id(jobs: list[Job]) -> str:
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
    re-run with the same id, or with resume=True, only makes the calls not yet done; so does
    the same batch run again after an interrupt in this session (unless refresh=True). cache:
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
    jobs: list[Job] = []
    for (label, prompt, inputs), files in zip(rows, row_files):
        for spec in specs:
            for k in range(int(repeat)):
                plan = _fallback.chain_plan(
                    lambda m, k=k: make_plan(prompt, m, system=system, temperature=temperature,
                                             max_tokens=max_tokens, timeout=timeout, params=params,
                                             sample=k, cache=cache, attach=files, schema=schema,
                                             repair=repair),
                    spec, fallback, fallback_on)
                jobs.append(Job(len(jobs), plan, _call_key(plan, k), _row_inputs(label, inputs, prompt)))
    resume = resume or batch_id is not None
    batch_id = batch_id or _batch_id(jobs)
    # The same batch run again after an interrupt, in this session, goes on where it stopped
    # (as the docs promise: "Run the same cell again"): it made every call anew, billed twice.
    resume = resume or (not refresh and was_interrupted(batch_id))
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
        cell = current_cell()
        for job in jobs:
            for plan in _fallback.plans_of(job.plan):
                plan.cell, plan.batch_id = cell, batch_id
        front = session.front_end
        mode = front.detect_mode(display)
        progress = front.open_progress(len(jobs), mode, batch_id=batch_id) if mode != "none" else None
        return run(jobs, batch_id, resume, concurrency, gate_limits, max_cost, progress, scoring)

    return Pending(start, "batch", ends_cancelled=True)



def __getattr__(name: str) -> Any:
    """last_frame: the rows of the last live batch, even if it was interrupted (kept by batchrun)."""
    if name == "last_frame":
        from . import batchrun

        return batchrun.last_frame
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
