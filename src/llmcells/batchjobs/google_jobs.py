"""Gemini batch mode through the official SDK (`client.aio.batches`), inline requests.

Each request carries its call key in `metadata.key`, and answers are matched by it (and by
position when a server leaves it out). The file route (above ~20 MB) is not implemented yet:
larger jobs are split into several inline jobs instead.
"""

from __future__ import annotations

import json
from typing import Any

from ..providers._common import one_line
from ..providers.google import _config, _contents, _map_usage, _name
from ..types import Request
from .drivers import LIMITS, Item, JobStatus

MAX_REQUESTS, MAX_BYTES = LIMITS["google"]
EXPIRY_S = 48 * 3600             # Gemini's batch jobs run for at most 48 hours
_STATES = {"JOB_STATE_PENDING": "validating", "JOB_STATE_QUEUED": "validating",
           "JOB_STATE_RUNNING": "running", "JOB_STATE_SUCCEEDED": "completed",
           "JOB_STATE_FAILED": "failed", "JOB_STATE_CANCELLING": "cancelling",
           "JOB_STATE_CANCELLED": "cancelled", "JOB_STATE_EXPIRED": "expired",
           "JOB_STATE_PARTIALLY_SUCCEEDED": "completed"}


def line(client: Any, request: Request, key: str) -> dict[str, Any]:
    """One inlined request: the live adapter's contents and config."""
    item: dict[str, Any] = {"contents": _contents(request), "metadata": {"key": key}}
    config = _config(request)
    if config:
        item["config"] = config
    return item


async def create(client: Any, model: str, lines: list[dict[str, Any]], tag: str) -> str:
    job = await client.aio.batches.create(model=model, src=lines, config={"display_name": tag})
    return job.name


async def _stats(client: Any, name: str) -> dict[str, int]:
    """batchStats (string counts), which this SDK's BatchJob does not keep: read it raw."""
    try:
        resp = await client.aio._api_client.async_request("get", name, {}, None)
        stats = (json.loads(resp.body or "{}").get("metadata") or {}).get("batchStats") or {}
    except Exception:
        return {}
    total = int(stats.get("requestCount") or 0)
    if not total:
        return {}
    return {"total": total, "done": int(stats.get("successfulRequestCount") or 0),
            "failed": int(stats.get("failedRequestCount") or 0)}


async def retrieve(client: Any, job_id: str) -> JobStatus:
    job = await client.aio.batches.get(name=job_id)
    state = _STATES.get(_name(job.state), "running")
    created = job.create_time.timestamp() if job.create_time else None
    error = one_line(job.error.message) if getattr(job, "error", None) and job.error.message else None
    if state == "failed" and error is None:
        error = "Gemini reported the batch as failed."
    counts = await _stats(client, job_id)
    return JobStatus(state, counts, created + EXPIRY_S if created else None, error, job)


async def cancel(client: Any, job_id: str) -> None:
    await client.aio.batches.cancel(name=job_id)


async def find(client: Any, tag: str, n_requests: int, since: float) -> str | None:
    seen = 0
    async for job in await client.aio.batches.list(config={"page_size": 100}):
        if job.display_name == tag:
            return job.name
        seen += 1
        if seen >= 1000:
            break
    return None


async def results(client: Any, status: JobStatus, keys: list[str]) -> list[Item]:
    dest = status.raw.dest
    items = []
    for i, r in enumerate((dest.inlined_responses if dest else None) or []):
        key = (r.metadata or {}).get("key") or (keys[i] if i < len(keys) else None)
        if key is None:
            continue
        if r.error is not None or r.response is None:
            message = getattr(r.error, "message", None) or "no answer"
            items.append(Item(key, "error", error_kind="bad_request",
                              error=one_line(f"Gemini batch: {message}")))
            continue
        resp = r.response
        cand = resp.candidates[0] if resp.candidates else None
        parts = (cand.content.parts if cand and cand.content else None) or []
        text = "".join(p.text for p in parts if p.text and not p.thought)
        thoughts = "".join(p.text for p in parts if p.text and p.thought)
        items.append(Item(key, "ok", text=text, reasoning=thoughts, usage=_map_usage(resp.usage_metadata),
                          response_model=resp.model_version,
                          finish_reason=_name(cand.finish_reason) if cand and cand.finish_reason else None))
    return items
