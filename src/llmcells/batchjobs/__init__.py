"""Provider batch jobs: `llmcells.batch(..., via="provider")` runs a batch on OpenAI's Batch API,
Anthropic's Message Batches and Gemini's batch mode (half the price, no rate limits to babysit),
and survives a restart.

    job = await llmcells.batch(prompts, ["chatgpt", "claude", "gemini"], via="provider")
    # attach= and schema= as in a live batch; the frame gets the schema's field columns
    df = await job                     # waits with progress; job.wait() from a script
    job.status(); job.cancel(); job.to_frame(); job.retry_failed(via="live")
    llmcells.jobs()                    # every job: provider, state, counts, age, expiry, cost
    job = llmcells.job("job_...")      # the handle back, in a new kernel
"""

from __future__ import annotations

from typing import Any

from .core import JobHandle, get_job, list_jobs, submit

__all__ = ["JobHandle", "jobs", "job", "submit"]


def jobs() -> Any:
    """Every provider batch job, one row per provider job: provider, model, state, counts, age,
    time to expiry and the estimated (or, once collected, actual) cost. Sends no request."""
    return list_jobs()


def job(job_id: str, *, display: Any = None) -> JobHandle:
    """The handle of a provider batch job (its id `job_...`, its batch id, or a provider's job id),
    e.g. in a new kernel after a restart; `await` it to wait and collect."""
    return get_job(job_id, display=display)
