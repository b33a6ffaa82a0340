"""OpenAI's Batch API through the official SDK: a JSONL file of requests (`client.files`), one
batch per file (`client.batches`), results read from the output and error files."""

from __future__ import annotations

import json
from typing import Any

import openai

from .._log import swallowed
from ..providers._common import one_line
from ..providers.openai import chat_body, map_usage, responses_body
from ..types import Request
from .drivers import Item, JobStatus, LIMITS, line_error_kind

MAX_REQUESTS, MAX_BYTES = LIMITS["openai"]
TAG_KEY = "llmcells_tag"
_STATES = {"validating": "validating", "in_progress": "running", "finalizing": "finalizing",
           "completed": "completed", "failed": "failed", "expired": "expired",
           "cancelling": "cancelling", "cancelled": "cancelled"}


def _url(request: Request) -> str:
    return "/v1/responses" if request.spec.api == "responses" else "/v1/chat/completions"


def line(client: Any, request: Request, key: str) -> dict[str, Any]:
    """One JSONL line: the body the live adapter would send, without streaming."""
    if request.spec.api == "responses":
        body, _ = responses_body(request)
    else:
        body, _ = chat_body(request)
        body.pop("stream_options", None)
    body.pop("stream", None)
    return {"custom_id": key, "method": "POST", "url": _url(request), "body": body}


async def create(client: Any, model: str, lines: list[dict[str, Any]], tag: str) -> str:
    """Upload the file and create the batch; returns the batch id."""
    data = "".join(json.dumps(x, separators=(",", ":"), ensure_ascii=False) + "\n" for x in lines).encode()
    uploaded = await client.files.create(file=(f"{tag}.jsonl", data), purpose="batch")
    try:
        batch = await client.batches.create(input_file_id=uploaded.id, endpoint=lines[0]["url"],
                                            completion_window="24h", metadata={TAG_KEY: tag})
    except openai.APIStatusError as exc:
        # A 4xx refused it: no batch was made, and the file (kept by OpenAI until deleted, and
        # uploaded anew by each try) is of no use. After a 5xx or a timeout a batch may hold it.
        if 400 <= exc.status_code < 500:
            try:
                await client.files.delete(uploaded.id)
            except Exception as err:
                swallowed("deleting the input file of a refused OpenAI batch", err)
        raise
    return batch.id


async def retrieve(client: Any, job_id: str) -> JobStatus:
    b = await client.batches.retrieve(job_id)
    counts = {}
    if b.request_counts is not None and b.request_counts.total:
        rc = b.request_counts
        counts = {"total": rc.total, "done": rc.completed, "failed": rc.failed}
    error = None
    if b.errors is not None and b.errors.data:
        e = b.errors.data[0]
        where = f" (line {e.line})" if e.line else ""
        error = one_line(f"validation failed{where}: {e.message or e.code}")
    ended = b.completed_at or b.failed_at or b.expired_at or b.cancelled_at
    return JobStatus(_STATES.get(b.status, b.status), counts, float(b.expires_at or 0) or None, error, b,
                     ended=float(ended) if ended else None)


async def cancel(client: Any, job_id: str) -> None:
    await client.batches.cancel(job_id)


async def find(client: Any, tag: str, keys: list[str], since: float) -> str | None:
    """The batch created with this tag (for a crash between create and persist)."""
    seen = 0
    async for b in client.batches.list(limit=100):
        if (b.metadata or {}).get(TAG_KEY) == tag:
            return b.id
        seen += 1
        if seen >= 1000 or b.created_at < since - 3600:
            break
    return None


def _text(body: dict[str, Any]) -> tuple[str, str | None]:
    """(answer text, finish reason) of a Chat Completions or Responses body."""
    if "choices" in body:
        choice = (body.get("choices") or [{}])[0]
        return (choice.get("message") or {}).get("content") or "", choice.get("finish_reason")
    parts = [c.get("text", "") for item in body.get("output") or [] if item.get("type") == "message"
             for c in item.get("content") or [] if c.get("type") == "output_text"]
    return "".join(parts), body.get("status")


async def results(client: Any, status: JobStatus, keys: list[str] | None = None) -> list[Item]:
    """Every request the output and error files report (a partial output too)."""
    b = status.raw
    items: list[Item] = []
    for file_id in (b.output_file_id, b.error_file_id):
        if not file_id:
            continue
        content = await client.files.content(file_id)
        for raw in content.text.splitlines():
            if not raw.strip():
                continue
            rec = json.loads(raw)
            key, resp, err = rec.get("custom_id"), rec.get("response") or {}, rec.get("error")
            body = resp.get("body") or {}
            if resp.get("status_code") == 200 and not err:
                text, finish = _text(body)
                items.append(Item(key, "ok", text=text, usage=map_usage(body.get("usage") or {}),
                                  response_model=body.get("model"), finish_reason=finish))
                continue
            err = err or body.get("error") or {}
            code = str(err.get("code") or "")
            kind = ("expired" if code == "batch_expired" else
                    "cancelled" if code == "batch_cancelled" else "error")
            items.append(Item(key, kind, error_kind=kind if kind != "error" else
                              line_error_kind(status=resp.get("status_code")),
                              error=one_line(f"OpenAI batch: {err.get('message') or code}")))
    return items
