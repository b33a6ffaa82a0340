"""Anthropic's Message Batches through the official SDK (`client.messages.batches`)."""

from __future__ import annotations

from typing import Any

from ..providers._common import field, one_line
from ..providers.anthropic import map_usage, message_body
from ..types import Request
from .drivers import Item, JobStatus, LIMITS, line_error_kind

MAX_REQUESTS, MAX_BYTES = LIMITS["anthropic"]
COUNTS_NOTE = "Anthropic reports no counts until the batch has ended"


def line(client: Any, request: Request, key: str) -> dict[str, Any]:
    """One request of the batch: the live adapter's message parameters, without streaming."""
    params, _ = message_body(request)
    params.pop("stream", None)
    return {"custom_id": key, "params": params}


async def create(client: Any, model: str, lines: list[dict[str, Any]], tag: str) -> str:
    batch = await client.messages.batches.create(requests=lines)
    return batch.id


async def retrieve(client: Any, job_id: str) -> JobStatus:
    b = await client.messages.batches.retrieve(job_id)
    rc = b.request_counts
    expires = b.expires_at.timestamp() if b.expires_at else None
    if b.processing_status != "ended":
        state = "cancelling" if b.processing_status == "canceling" else "running"
        return JobStatus(state, {}, expires, None, b, COUNTS_NOTE)
    total = rc.succeeded + rc.errored + rc.canceled + rc.expired
    counts = {"total": total, "done": rc.succeeded, "failed": rc.errored + rc.canceled + rc.expired}
    state = ("cancelled" if b.cancel_initiated_at is not None else
             "expired" if rc.expired and not rc.succeeded and not rc.errored else "completed")
    return JobStatus(state, counts, expires, None, b,
                     ended=b.ended_at.timestamp() if b.ended_at else None)


async def cancel(client: Any, job_id: str) -> None:
    await client.messages.batches.cancel(job_id)


async def find(client: Any, tag: str, keys: list[str], since: float) -> str | None:
    """Anthropic batches carry no tag: the batch created just after `since` with as many
    requests, and, once it has ended, whose results carry these custom_ids.

    Before a batch ends the only count is `processing`; after, the sum of the outcomes.
    """
    wanted = set(keys)
    found = []
    async for b in client.messages.batches.list(limit=100):
        created = b.created_at.timestamp()
        if created < since - 5:
            break
        rc = b.request_counts
        total = rc.processing + rc.succeeded + rc.errored + rc.canceled + rc.expired
        if total == len(keys) and created <= since + 600:
            found.append((created, b))
    for _, b in sorted(found, key=lambda x: x[0]):
        if b.processing_status == "ended" and b.results_url:
            ids = [r.custom_id async for r in await client.messages.batches.results(b.id)]
            if set(ids) != wanted:
                continue
        return b.id
    return None


async def results(client: Any, status: JobStatus, keys: list[str] | None = None) -> list[Item]:
    items = []
    async for r in await client.messages.batches.results(status.raw.id):
        res = r.result
        if res.type == "succeeded":
            msg = res.message
            text = "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")
            thinking = "".join(b.thinking for b in msg.content if getattr(b, "type", "") == "thinking")
            items.append(Item(r.custom_id, "ok", text=text, reasoning=thinking,
                              usage=map_usage(msg.usage), response_model=msg.model,
                              finish_reason=msg.stop_reason))
        elif res.type == "errored":
            inner = field(res.error, "error")
            message = field(inner, "message") or field(inner, "type") or "errored"
            items.append(Item(r.custom_id, "error", error_kind=line_error_kind(api_type=field(inner, "type")),
                              error=one_line(f"Anthropic batch: {message}")))
        else:  # canceled / expired
            kind = "cancelled" if res.type == "canceled" else "expired"
            items.append(Item(r.custom_id, kind, error_kind=kind,
                              error=f"Anthropic batch: the request was {res.type}."))
    return items
