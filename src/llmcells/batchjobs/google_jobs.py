"""Gemini batch mode through the official SDK (`client.aio.batches`): inline requests up to
about 20 MB, and above that the file route (a JSONL file uploaded with `client.aio.files`, results
downloaded from the job's responses file).

Each request carries its call key (`metadata.key` inline, `key` in a file), and answers are
matched by it (and by position when a server leaves it out).
"""

from __future__ import annotations

import io
import json
from typing import Any

from ..providers._common import one_line
from ..providers.google import ending, enum_name, map_usage, prompt_blocked, request_config, request_contents
from ..types import Request
from .drivers import Item, JobStatus, LIMITS, line_error_kind
from .._log import swallowed

MAX_REQUESTS, MAX_BYTES = LIMITS["google"]
INLINE_BYTES = 20 * 1000 * 1000  # above this, the file route
EXPIRY_S = 48 * 3600             # Gemini's batch jobs run for at most 48 hours
_STATES = {"JOB_STATE_PENDING": "validating", "JOB_STATE_QUEUED": "validating",
           "JOB_STATE_RUNNING": "running", "JOB_STATE_SUCCEEDED": "completed",
           "JOB_STATE_FAILED": "failed", "JOB_STATE_CANCELLING": "cancelling",
           "JOB_STATE_CANCELLED": "cancelled", "JOB_STATE_EXPIRED": "expired",
           "JOB_STATE_PARTIALLY_SUCCEEDED": "completed"}


def line(client: Any, request: Request, key: str) -> dict[str, Any]:
    """One inlined request: the live adapter's contents and config."""
    item: dict[str, Any] = {"contents": request_contents(request), "metadata": {"key": key}}
    config = request_config(request)
    if config:
        item["config"] = config
    return item


def _rest(item: dict[str, Any], api: Any = None) -> dict[str, Any]:
    """An inlined request as the REST GenerateContentRequest a batch file line carries: the
    SDK's own converter of an inlined request (what it sends inline), so tools, tool config,
    the system instruction and the service tier sit at the top of the request and the generation
    settings in generationConfig, and an attachment's bytes are base64 text. api: the client's
    API client (only whether it is Vertex AI is read; the file route is the Developer API's)."""
    from types import SimpleNamespace

    from google.genai import _common as genai_common
    from google.genai import batches as genai_batches
    from google.genai import types as genai_types

    inlined = genai_types.InlinedRequest.model_validate(item)
    wire = genai_batches._InlinedRequest_to_mldev(api or SimpleNamespace(vertexai=False), inlined)
    wire = genai_common.encode_unserializable_types(genai_common.convert_to_dict(wire))
    return {"key": item["metadata"]["key"], "request": wire["request"]}


def _base64_size(value: Any) -> str:
    """json.dumps' stand-in for an attachment's bytes: as long as the base64 the SDK sends."""
    if isinstance(value, (bytes, bytearray)):
        return "x" * ((len(value) + 2) // 3 * 4)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def create(client: Any, model: str, lines: list[dict[str, Any]], tag: str) -> str:
    size = sum(len(json.dumps(x, ensure_ascii=False, default=_base64_size).encode()) for x in lines)
    src: Any = lines
    if size > INLINE_BYTES:
        data = ("\n".join(json.dumps(_rest(x), ensure_ascii=False) for x in lines) + "\n").encode()
        uploaded = await client.aio.files.upload(
            file=io.BytesIO(data), config={"mime_type": "jsonl", "display_name": tag})
        src = uploaded.name
    job = await client.aio.batches.create(model=model, src=src, config={"display_name": tag})
    return job.name


async def _raw(client: Any, name: str) -> tuple[dict[str, int], str | None]:
    """(batchStats, the operation's error message) of a batch job, which this SDK's BatchJob
    does not keep (its parser copies neither): read raw. batchStats' counts are strings."""
    try:
        resp = await client.aio._api_client.async_request("get", name, {}, None)
        body = json.loads(resp.body or "{}")
    except Exception as exc:
        swallowed("reading a Gemini batch job's batchStats (no counts shown)", exc)
        return {}, None
    body = body if isinstance(body, dict) else {}
    stats = (body.get("metadata") or {}).get("batchStats") or {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    message = error.get("message") if isinstance(error.get("message"), str) else None
    try:
        total = int(stats.get("requestCount") or 0)
        counts = {"total": total, "done": int(stats.get("successfulRequestCount") or 0),
                  "failed": int(stats.get("failedRequestCount") or 0)} if total else {}
    except (TypeError, ValueError, AttributeError):  # counts that are no numbers: none shown
        counts = {}
    return counts, message


async def retrieve(client: Any, job_id: str) -> JobStatus:
    job = await client.aio.batches.get(name=job_id)
    state = _STATES.get(enum_name(job.state), "running")
    created = job.create_time.timestamp() if job.create_time else None
    counts, raw_error = await _raw(client, job_id)
    error = one_line(job.error.message) if getattr(job, "error", None) and job.error.message else None
    if state == "failed" and error is None:
        error = (one_line(f"Gemini: {raw_error}") if raw_error
                 else "Gemini reported the batch as failed")
    return JobStatus(state, counts, created + EXPIRY_S if created else None, error, job,
                     ended=job.end_time.timestamp() if job.end_time else None)


async def cancel(client: Any, job_id: str) -> None:
    await client.aio.batches.cancel(name=job_id)


async def find(client: Any, tag: str, keys: list[str], since: float) -> str | None:
    seen = 0
    async for job in await client.aio.batches.list(config={"page_size": 100}):
        if job.display_name == tag:
            return job.name
        seen += 1
        if seen >= 1000:
            break
    return None


def _from_file_line(rec: dict[str, Any]) -> Item:
    """One line of a responses file: {"key", "response"} (REST JSON) or {"key", "error"}."""
    key = str(rec.get("key"))
    resp = rec.get("response")
    if not resp or rec.get("error"):
        error = rec.get("error") if isinstance(rec.get("error"), dict) else {}
        message = error.get("message") or "no answer"
        return Item(key, "error", error_kind=line_error_kind(grpc=error.get("code")),
                    error=one_line(f"Gemini batch: {message}"))
    cand = (resp.get("candidates") or [{}])[0]
    parts = (cand.get("content") or {}).get("parts") or []
    return _item(key, resp.get("promptFeedback") or {}, cand.get("finishReason"), cand.get("finishMessage"),
                 text="".join(p.get("text", "") for p in parts if not p.get("thought")),
                 reasoning="".join(p.get("text", "") for p in parts if p.get("thought")),
                 called=any("functionCall" in p for p in parts),
                 usage=map_usage(resp.get("usageMetadata") or {}), response_model=resp.get("modelVersion"))


def _item(key: str, feedback: dict[str, Any], reason: Any, message: Any, *, text: str, reasoning: str,
          called: bool, **answer: Any) -> Item:
    """One answered request's Item, ended as a live call's stream ends: a blocked prompt or a
    finishReason that leaves no usable answer is an error; one that stops it short, a note."""
    if feedback.get("blockReason"):
        err = prompt_blocked(feedback, "google")
        return Item(key, "error", error_kind=err.kind, error=err.message, **answer)
    failed, note = ending(str(reason), message, bool(text) or called, "google") if reason else (None, None)
    if failed is not None:
        return Item(key, "error", finish_reason=reason, error_kind=failed.kind, error=failed.message, **answer)
    return Item(key, "ok", text=text, reasoning=reasoning, finish_reason=reason, note=note, **answer)


async def results(client: Any, status: JobStatus, keys: list[str]) -> list[Item]:
    dest = status.raw.dest
    if dest is not None and dest.file_name:
        data = await client.aio.files.download(file=dest.file_name)
        return [_from_file_line(json.loads(x)) for x in data.decode().splitlines() if x.strip()]
    items = []
    for i, r in enumerate((dest.inlined_responses if dest else None) or []):
        key = (r.metadata or {}).get("key") or (keys[i] if i < len(keys) else None)
        if key is None:
            continue
        if r.error is not None or r.response is None:
            message = getattr(r.error, "message", None) or "no answer"
            items.append(Item(key, "error", error_kind=line_error_kind(grpc=getattr(r.error, "code", None)),
                              error=one_line(f"Gemini batch: {message}")))
            continue
        resp = r.response
        cand = resp.candidates[0] if resp.candidates else None
        parts = (cand.content.parts if cand and cand.content else None) or []
        feedback = resp.prompt_feedback
        blocked = feedback.block_reason if feedback is not None else None
        items.append(_item(
            key, {"blockReason": enum_name(blocked), "blockReasonMessage": feedback.block_reason_message}
            if blocked else {}, enum_name(cand.finish_reason) if cand and cand.finish_reason else None,
            cand.finish_message if cand else None,
            text="".join(p.text for p in parts if p.text and not p.thought),
            reasoning="".join(p.text for p in parts if p.text and p.thought),
            called=any(p.function_call is not None for p in parts),
            usage=map_usage(resp.usage_metadata), response_model=resp.model_version))
    return items
