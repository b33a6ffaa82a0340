"""Provider batch jobs: submit a planned batch to the providers' batch APIs, follow, collect, retry.

`submit` is what `llmcells.batch(..., via="provider")` calls with the live batch's own plan (so
each custom_id is the live batch's call key). It estimates the cost at batch prices and checks
max_cost before anything is sent, writes the job to the job store, then creates one provider job
per (provider, model) and size limit, persisting the tag before and the provider's id after each
create. A `JobHandle` polls, collects finished provider jobs into the ledger (idempotently, by a
call id derived from the job, the provider job and the call key) and rebuilds the frame.

Attachments and an output schema go into each request line as the live adapters build them; the
job store keeps the schema as JSON Schema and each attachment's bytes once per job, so that a new
process rebuilds the same requests, validates the answers and adds the field columns.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import store
from ..registry import api_names
from .drivers import FINAL_STATES, LIMITS, Item, JobStatus, driver
from .._log import swallowed
from .._loop import import_pandas
from ..session import session

if TYPE_CHECKING:
    import pandas as pd

    from ..types import Result

#: seconds a provider job may answer 404 after create before it counts as lost
NOT_FOUND_GRACE_S = 120.0
#: how long a provider job's create is tried again after errors that may pass (a 5xx, a 429 or
#: 529, a timeout, a dropped connection), from its first try; then the part fails
CREATE_RETRY_S = 900.0
#: the first wait between checks of a provider job, and the longest (see JobHandle._poll)
POLL_FIRST_S, POLL_MAX_S = 0.25, 30.0
#: the start of a part's error when it can't be followed until the user acts (a key the provider
#: rejects, access denied): waiting would never end
CANNOT_CHECK = "cannot check: "


# ----- clients and plans ------------------------------------------------------------------------


def _spec(model_id: str) -> Any:
    from ..models import resolve

    return resolve(model_id)


def _client(spec: Any) -> Any:
    from ..models import api_key
    from ..providers import ClientOptions, get_provider

    key = api_key(spec)
    cache_key = (spec.adapter, spec.base_url, key)
    client = session.job_clients.get(cache_key)  # in the session: session.reset() drops it
    if client is None:
        client = session.job_clients[cache_key] = get_provider(spec.adapter).make_client(
            ClientOptions(base_url=spec.base_url, api_key=key, read_timeout=300.0))
    return client


def _plan_for(req: dict[str, Any], rich: "_Rich | None" = None, repair: int = 0) -> Any:
    """Rebuild the live CallPlan of a stored request (with its attachments and the job's schema
    when `rich` has them)."""
    from ..calls import make_plan

    r = req["request"]
    return make_plan(req["prompt"], req["model"], system=r.get("system"),
                     temperature=r.get("temperature"), max_tokens=r.get("max_tokens"),
                     timeout=r.get("timeout"), params=r.get("params"), sample=req["sample"],
                     cache=False, attach=rich.attachments(r) if rich else None,
                     schema=rich.schema if rich else None, repair=repair)


def _request_fields(plan: Any) -> dict[str, Any]:
    req = plan.request
    fields = {"system": req.system, "temperature": req.temperature, "max_tokens": req.max_tokens,
              "params": req.extra.get("params"), "timeout": plan.timeout}
    if req.attachments:
        fields["attachments"] = [{"media_type": a.media_type, "name": a.name, "size": a.size,
                                  "sha256": a.sha256, "url": a.url} for a in req.attachments]
    return fields


def _schema_record(schema: Any) -> dict[str, Any] | None:
    """An OutputSchema as the job store keeps it: JSON Schema, never a pydantic class (a new
    process may not have the class, and must validate the same way as this one)."""
    if schema is None:
        return None
    return {"name": schema.name, "json_schema": schema.json_schema, "fields": list(schema.fields)}


class _Rich:
    """A job's output schema and attachment bytes, read once from the job store to rebuild its
    requests. Without bytes (`with_bytes=False`, for collecting) the attachments keep their
    size and hash only, which is all that counting them in a Result needs."""

    def __init__(self, job_id: str, reqs: list[dict[str, Any]], with_bytes: bool = True):
        from ..types import OutputSchema

        record = ((store.get_job(job_id) or {}).get("options") or {}).get("schema")
        self.schema = None if record is None else OutputSchema(
            name=record["name"], json_schema=record["json_schema"], fields=tuple(record["fields"]))
        shas = {ref["sha256"] for r in reqs for ref in r["request"].get("attachments") or ()
                if not ref.get("url")}
        self.blobs = store.get_blobs(job_id, shas) if shas and with_bytes else {}
        self.with_bytes = with_bytes

    def attachments(self, request: dict[str, Any]) -> tuple[Any, ...] | None:
        from ..errors import ConfigError
        from ..types import Attachment

        out = []
        for ref in request.get("attachments") or ():
            data = None
            if not ref.get("url") and self.with_bytes:
                data = self.blobs.get(ref["sha256"])
                if data is None:
                    raise ConfigError(f"The job store has lost the bytes of {ref['name'] or 'an attachment'}"
                                      "; submit the batch again.")
            out.append(Attachment(media_type=ref["media_type"], data=data, url=ref.get("url"),
                                  name=ref.get("name") or "", size=ref["size"], sha256=ref["sha256"]))
        return tuple(out) or None


def _usd(amount: float) -> str:
    """$0.25, $0.0000001 (never $1e-07)."""
    text = f"{amount:.10f}".rstrip("0").rstrip(".")
    return f"${text if text not in ('', '-0') else '0'}"


#: the output tokens an answer is estimated at when the request sets no max_tokens
ESTIMATE_OUTPUT_TOKENS = 400


def _est_one(plan: Any) -> float:
    """The estimated cost of plan's line at batch prices: its prompt at ~4 characters a token,
    and max_tokens (else ESTIMATE_OUTPUT_TOKENS) of output."""
    return _line_cost(plan, plan.request.max_tokens or ESTIMATE_OUTPUT_TOKENS)


def _bound_one(plan: Any) -> float:
    """The most plan's line can cost: every output token its line allows (its max_tokens, or
    the one llmcells sends for the model, e.g. Anthropic's 16,000); inf when the line sets no
    limit (an OpenAI line without max_tokens may answer up to the model's own maximum)."""
    from .. import capabilities

    limit = plan.request.max_tokens or capabilities.of(plan.spec).max_tokens
    return _line_cost(plan, limit) if limit else math.inf


def _line_cost(plan: Any, output_tokens: int) -> float:
    """plan's line at batch prices: its prompt at ~4 characters a token (as BatchEstimator
    counts a prompt), and output_tokens of output."""
    from .. import pricing

    chars = pricing.BatchEstimator.prompt_chars(plan)
    return pricing.estimate_cost(plan.spec.provider, plan.spec.name, chars // 4 + 8,
                                 int(output_tokens), processing="batch")


def _split(spec: Any, items: list[tuple[Any, int]]) -> list[list[tuple[Any, int]]]:
    """Split a model's requests at its API's limits (count and bytes); items are (job, size)."""
    max_requests, max_bytes = LIMITS[spec.adapter]
    groups: list[list[tuple[Any, int]]] = [[]]
    size = 0
    for item in items:
        if groups[-1] and (len(groups[-1]) >= max_requests or size + item[1] > max_bytes):
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += item[1]
    return groups


def _line_size(plan: Any) -> int:
    """Bytes of one request line (a rough count for the split: the prompt, the attachments, the
    schema and an envelope)."""
    req = plan.request
    size = sum(len(m.content.encode()) for m in req.messages) + len((req.system or "").encode())
    for a in req.attachments:
        # In the line an image or a PDF is base64 (4/3 of its bytes), a text file about as much
        # (JSON escapes its newlines and quotes), a URL itself: a large image is what pushes a
        # part over a byte limit.
        size += len(a.url) if a.url else (a.size + 2) // 3 * 4
        size += 200  # the part's own keys, its name and a data: URL's head
    if req.schema is not None:  # the strict form is a little longer than the schema itself
        size += 2 * len(json.dumps(req.schema.json_schema))
    return size + 300


# ----- submitting -------------------------------------------------------------------------------


def submit(jobs: Sequence[Any], batch_id: str, *, max_cost: float | None, display: Any,
           concurrency: int, limits: dict[str, Any], poll_s: float | None = None) -> Any:
    """The Pending that submits a planned batch as provider jobs and returns a JobHandle.

    jobs are batchrun.Job (plan, call_key, inputs). Called from batches.batch(via="provider").
    """
    from ..errors import ConfigError
    from .._loop import Pending

    job_id = f"job_{batch_id}"
    for j in jobs:
        if j.plan.spec.adapter not in LIMITS or j.plan.spec.provider not in api_names():
            raise ConfigError(f"{j.plan.spec.id} has no provider batch API; use via='live' for it.")
    keys = [j.call_key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ConfigError("Two rows of this batch are the same request; give each a distinct prompt "
                          "or sample (repeat=...).")
    options = {"concurrency": concurrency, "limits": {k: vars(v) for k, v in limits.items()},
               "poll_s": poll_s,
               # one schema for the whole batch (batch() takes one)
               "schema": _schema_record(next((j.plan.request.schema for j in jobs
                                              if j.plan.request.schema is not None), None))}

    def start() -> Any:
        from ..models import api_key

        for spec in {j.plan.spec.id: j.plan.spec for j in jobs}.values():
            api_key(spec)  # a missing key: one line now, before anything is written or sent
        existing = store.get_job(job_id)
        if existing is None:
            each = [(j.plan.spec.id, _est_one(j.plan)) for j in jobs]
            models = sorted({m for m, _ in each})
            unpriced = sorted({m for m, x in each if math.isnan(x)})
            if max_cost is not None and unpriced:
                # an unknown price would drop out of the sum and let the job pass max_cost
                raise ConfigError(
                    f"No price is known for {', '.join(unpriced)}, so max_cost={_usd(max_cost)} "
                    f"cannot be checked; nothing was sent. Set one with llmcells.set_price("
                    f"'{unpriced[0]}', input=..., output=...) (USD per million tokens) or drop "
                    f"max_cost.")
            estimate = sum(x for _, x in each if not math.isnan(x))
            _say(f"provider batch {job_id}: {len(jobs):,} requests to {', '.join(models)}; "
                 f"estimated ${estimate:.4f} at batch prices.", display)
            if max_cost is not None and estimate > max_cost:
                raise ConfigError(f"The estimate ${estimate:.4f} at batch prices is over "
                                  f"max_cost={_usd(max_cost)}; nothing was sent.")
            if max_cost is not None:
                # A provider job can't be stopped once sent, as a live batch stops launching:
                # say how far past max_cost its answers' lengths could take it.
                bound = sum(_bound_one(j.plan) for j in jobs)
                if bound > max_cost:
                    most = (f"up to {_usd(bound)} if every answer runs to its max_tokens"
                            if math.isfinite(bound) else "no upper bound (a line sets no max_tokens)")
                    import warnings

                    from ..errors import LLMCellsWarning

                    warnings.warn(
                        f"max_cost={_usd(max_cost)} is checked against the estimate "
                        f"({ESTIMATE_OUTPUT_TOKENS} output tokens an answer where no max_tokens is "
                        f"set); a provider job can't be stopped once sent, and this one has {most}. "
                        "A smaller max_tokens bounds it.", LLMCellsWarning, stacklevel=2)
            _write_job(job_id, batch_id, jobs, estimate, options)
        else:
            _say(f"provider batch {job_id}: reattached to the job created {_ago(existing['created'])} "
                 "ago; nothing is submitted twice.", display)
        return _submit_and_handle(job_id, display)

    return Pending(start, "provider batch")


def _say(text: str, display: Any) -> None:
    if session.front_end.detect_mode(display) != "none":
        print(text)


def _ago(seconds_since: float) -> str:
    seconds = max(0.0, time.time() - seconds_since)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _write_job(job_id: str, batch_id: str, jobs: Sequence[Any], estimate: float,
               options: dict[str, Any]) -> None:
    by_model: dict[str, list[tuple[Any, int]]] = {}
    for j in jobs:
        by_model.setdefault(j.plan.spec.id, []).append((j, _line_size(j.plan)))
    parts, requests = [], []
    rows = {id(j): i for i, j in enumerate(jobs)}
    for model_id, items in by_model.items():
        spec = items[0][0].plan.spec
        for group in _split(spec, items):
            n = len(parts)
            est = sum(x for x in (_est_one(j.plan) for j, _ in group) if not math.isnan(x))
            parts.append({"job_id": job_id, "part": n, "provider": spec.provider, "model_id": model_id,
                          "tag": _tag(job_id, n), "state": "new", "requests": len(group),
                          "estimate": est})
            for j, _ in group:
                requests.append({"call_key": j.call_key, "row": rows[id(j)], "part": n,
                                 "model": model_id, "sample": j.plan.info.sample,
                                 "prompt": j.inputs.get("prompt", j.plan.request.prompt),
                                 "request": _request_fields(j.plan), "inputs": j.inputs})
    # Each attachment's bytes once per job (by sha256), not once per row: a retry through the
    # provider rebuilds its lines from these. Bytes rather than paths: a figure, an image or a
    # DataFrame has no path, and a file on disk may have changed or gone by the time of a retry.
    blobs = {a.sha256: a.data for j in jobs for a in j.plan.request.attachments
             if a.data is not None and not a.url}
    store.create_job(job_id, batch_id, estimate, options, parts, requests, blobs)


def _tag(job_id: str, part: int) -> str:
    """The label a provider job carries (OpenAI metadata, Gemini display name) to be found again;
    random too, so that the same batch sent from two homes is never mistaken for the other."""
    return f"llmcells-{job_id}-p{part}-{uuid.uuid4().hex[:8]}"


async def _submit_and_handle(job_id: str, display: Any) -> "JobHandle":
    await submit_parts(job_id)
    return JobHandle(job_id, display=display)


async def submit_parts(job_id: str) -> None:
    """Create the provider jobs of every part not created yet (reconciling interrupted ones)."""
    for part in store.get_parts(job_id):
        if part["state"] not in ("new", "creating"):
            continue
        spec = _spec(part["model_id"])
        drv = driver(spec.adapter)
        try:
            client = await asyncio.to_thread(_client, spec)
        except Exception as exc:  # e.g. no key in this process: say so, try again next time
            store.update_part(job_id, part["part"], error=_one_line_error(exc, spec))
            continue
        reqs = store.get_requests(job_id, part["part"])
        if part["state"] == "creating":  # a crash between create and persist? look for it first
            try:
                found = await drv.find(client, part["tag"], [r["call_key"] for r in reqs],
                                       part["created"] or 0)
            except Exception as exc:
                # Not "not found": the job may well exist, and creating it again would run (and
                # bill) every request twice. Left in "creating", looked for again next time.
                store.update_part(job_id, part["part"],
                                  error=f"could not check whether it was created: {_one_line_error(exc, spec)}")
                continue
            if found:
                store.update_part(job_id, part["part"], provider_job_id=found, state="submitted",
                                  submitted=part["created"], error=None)
                continue
        rich = _Rich(job_id, reqs)
        lines = [drv.line(client, _plan_for(r, rich).request, r["call_key"]) for r in reqs]
        # Persisted before the create call: if this process dies before the id is written,
        # the next attempt looks for the job by its tag first. (created: the first try's time,
        # which find() looks from, and from which CREATE_RETRY_S runs)
        first = part["created"] or time.time()
        store.update_part(job_id, part["part"], state="creating", created=first)
        try:
            provider_job_id = await drv.create(client, spec.name, lines, part["tag"])
        except Exception as exc:
            mapped, why = _described(exc, spec)
            if mapped is not None and mapped.retryable and time.time() - first < CREATE_RETRY_S:
                # A 5xx, a timeout or a dropped connection may come after the provider made the
                # job: left in "creating", it is looked for by its tag before any new create
                # (made twice, it would run and bill every request twice); a 429 or 529 is
                # tried again the same way.
                store.update_part(job_id, part["part"],
                                  error=f"not created yet ({why}); tried again on the next check")
                continue
            store.update_part(job_id, part["part"], state="failed", finished=time.time(), error=why)
            continue
        store.update_part(job_id, part["part"], provider_job_id=provider_job_id, state="submitted",
                          submitted=time.time(), error=None)


def _mapped(exc: BaseException, spec: Any) -> Any:
    """The LLMError an adapter makes of exc (its kind, message and whether it may pass), or None."""
    from ..providers import get_provider

    try:
        return get_provider(spec.adapter).map_error(exc, spec)
    except Exception as err:
        swallowed("mapping a provider job's error with its adapter (the generic error instead)", err)
        return None


def _described(exc: BaseException, spec: Any) -> tuple[Any, str]:
    """(the adapter's LLMError for exc or None, the one line that says it)."""
    mapped = _mapped(exc, spec)
    if mapped is not None:
        return mapped, mapped.message
    from ..providers._common import one_line

    return None, one_line(f"{type(exc).__name__}: {exc}")


def _one_line_error(exc: BaseException, spec: Any) -> str:
    return _described(exc, spec)[1]


def _status_code(exc: BaseException) -> int | None:
    for name in ("status_code", "code"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    return None


# ----- following and collecting -----------------------------------------------------------------


async def refresh(job_id: str) -> list[dict[str, Any]]:
    """Ask each unfinished provider job for its state; collect the ones that ended."""
    await submit_parts(job_id)
    for part in store.get_parts(job_id):
        if part["collected"] or not part["provider_job_id"]:
            if part["state"] in FINAL_STATES and not part["collected"]:
                await _collect(job_id, part, None)
            continue
        spec = _spec(part["model_id"])
        drv = driver(spec.adapter)
        client = await asyncio.to_thread(_client, spec)
        try:
            status: JobStatus = await drv.retrieve(client, part["provider_job_id"])
        except Exception as exc:
            if _status_code(exc) == 404:
                since = time.time() - (part["submitted"] or time.time())
                if since < NOT_FOUND_GRACE_S:  # just created: not visible everywhere yet
                    store.update_part(job_id, part["part"], error="not visible yet (404 just after create)")
                    continue
                store.update_part(job_id, part["part"], state="lost", finished=time.time(),
                                  error="The provider no longer knows this job (404).")
                await _collect(job_id, {**part, "state": "lost"}, None)
                continue
            store.update_part(job_id, part["part"], error=_check_error(exc, spec, "could not check"))
            continue
        store.update_part(job_id, part["part"], state=status.state, counts=status.counts,
                          expires=status.expires, error=status.error)
        if status.final:
            try:
                await _collect(job_id, {**part, "state": status.state, "error": status.error}, status)
            except Exception as exc:  # nothing was kept: collected again on the next check
                store.update_part(job_id, part["part"],
                                  error=_check_error(exc, spec, "could not collect the results"))
    return store.get_parts(job_id)


def _check_error(exc: BaseException, spec: Any, what: str) -> str:
    """A part's error for a failed check or collection: CANNOT_CHECK when waiting can't mend it
    (the key rejected, access denied), else one that the next check may clear."""
    mapped, why = _described(exc, spec)
    if mapped is not None and not mapped.retryable and mapped.kind in _NEEDS_THE_USER:
        return f"{CANNOT_CHECK}{why}"
    return f"{what}: {why}"


#: error kinds a later check can't mend: the user must act (a key, an account's access or credit)
_NEEDS_THE_USER = ("authentication", "denied", "billing")


def _call_id(job_id: str, part: int, key: str) -> str:
    return hashlib.sha256(f"{job_id}:{part}:{key}".encode()).hexdigest()[:32]


async def _collect(job_id: str, part: dict[str, Any], status: JobStatus | None) -> None:
    """Turn a finished provider job into stored results and ledger rows (once per request)."""
    reqs = store.get_requests(job_id, part["part"])
    spec = _spec(part["model_id"])
    items: list[Item] = []
    if status is not None and part["state"] != "failed":
        drv = driver(spec.adapter)
        client = await asyncio.to_thread(_client, spec)
        items = await drv.results(client, status, [r["call_key"] for r in reqs])
    # Finish time: when the provider says the job ended (batch APIs give no per-request times).
    finished = (status.ended if status is not None and status.ended else None) or time.time()
    submitted = part.get("submitted") or part.get("created") or finished
    finished = max(finished, submitted)
    got = {it.key: it for it in items}
    state = part["state"]
    job = store.get_job(job_id) or {}
    rich = _Rich(job_id, reqs, with_bytes=False)
    results: list[tuple[dict[str, Any], Result]] = []
    for r in reqs:
        it = got.get(r["call_key"])
        if it is None:
            kind = {"expired": "expired", "cancelled": "cancelled"}.get(state, "error")
            why = part.get("error") or {"expired": "the provider job expired before this request ran",
                                        "cancelled": "the provider job was cancelled before this "
                                                     "request ran",
                                        "lost": "the provider job was lost"}.get(state, "no result")
            it = Item(r["call_key"], kind, error_kind=kind if kind != "error" else "batch_failed",
                      error=f"Not run: {why.rstrip('.')}; job.retry_failed() runs it again.")
        call_id = _call_id(job_id, part["part"], r["call_key"])
        result = _result(it, r, spec, job.get("batch_id"), call_id, submitted, finished)
        if rich.schema is not None or r["request"].get("attachments"):
            from ..structured import finish as finish_rich  # as a live call: count, validate

            finish_rich(result, _plan_for(r, rich).request)
        results.append((r, result))
    await asyncio.to_thread(_persist, job_id, part, results, job.get("batch_id"))


def _result(it: Item, req: dict[str, Any], spec: Any, batch_id: str | None, call_id: str,
            submitted: float, finished: float) -> "Result":
    from ..types import Result

    status = {"ok": "ok", "cancelled": "cancelled"}.get(it.status, "error")
    result = Result(model=spec.id, provider=spec.provider, call_id=call_id, sample=req["sample"],
                    simulated=spec.simulated, started_at=submitted, batch_id=batch_id,
                    status=status, text=it.text, reasoning=it.reasoning, usage=it.usage,
                    response_model=it.response_model, finish_reason=it.finish_reason,
                    error_kind=it.error_kind, error=it.error, latency_s=finished - submitted,
                    ttft_s=None, attempts=1 if it.status == "ok" else 0, processing="batch",
                    notes=[it.note] if it.note else [])
    if it.status == "ok":
        from ..pricing import price_result

        price_result(result, spec)   # processing="batch": the one batch price, as reprice()
    else:
        result.cost_usd = 0.0
    return result


_KEEP = ("text", "reasoning", "response_model", "finish_reason", "ttft_s", "latency_s", "status",
         "error_kind", "error", "price_source", "call_id", "started_at", "attempts", "processing", "notes")


def _fields(result: "Result") -> dict[str, Any]:
    data = {k: getattr(result, k) for k in _KEEP}
    data["usage"] = result.usage.as_dict()
    data["cost_usd"] = None if math.isnan(result.cost_usd) else result.cost_usd
    return data


def _persist(job_id: str, part: dict[str, Any], results: list[tuple[dict[str, Any], "Result"]],
             batch_id: str | None) -> None:
    """Store results, write their ledger rows (ignored if already there) and mark the part
    collected; an ok result is also kept for a live resume of the same batch."""
    from .. import ledger
    from .. import store as result_store

    rows = [ledger.row_from_result(res, prompt=req["prompt"], system=req["request"].get("system"))
            for req, res in results]
    ledger.insert_rows(rows)
    store.set_results(job_id, [(req["call_key"], "ok" if res.ok else
                                ("expired" if res.error_kind == "expired" else res.status), _fields(res))
                               for req, res in results])
    if batch_id:
        try:
            result_store.put_many([(result_store.batch_key(batch_id, req["call_key"]), res)
                                   for req, res in results if res.ok], batch_id)
        except Exception as exc:  # only a convenience for a live resume of the same batch
            swallowed("keeping a provider job's answers in the local store", exc)
    # The counts are the rows': a provider's own (Gemini's batchStats of an expired job says 5
    # done where no result came back) would disagree with what the job gives.
    ok = sum(1 for _, res in results if res.ok)
    store.update_part(job_id, part["part"], collected=1, finished=time.time(),
                      counts={"total": len(results), "done": ok, "failed": len(results) - ok})


# ----- the handle -------------------------------------------------------------------------------


def _restore(fields: dict[str, Any] | None, req: dict[str, Any]) -> "Result":
    from ..types import Result, Usage

    spec_id = req["model"]
    from ..registry import parse_id

    provider = parse_id(spec_id)[0]
    if fields is None:
        return Result(model=spec_id, provider=provider, sample=req["sample"], status="pending",
                      processing="batch", latency_s=None)
    data = dict(fields)
    usage = Usage(**data.pop("usage"))
    cost = data.pop("cost_usd")
    status = data.pop("status")
    result = Result(model=spec_id, provider=provider, sample=req["sample"], usage=usage,
                    cost_usd=math.nan if cost is None else cost, **data)
    result.status = status
    return result


class JobHandle:
    """A provider batch job: `await job` (or `job.wait()`) waits with progress and returns the
    frame; `status()`, `cancel()`, `to_frame()`, `retry_failed()`. `llmcells.job(id)` gets one
    back in a new process."""

    def __init__(self, job_id: str, *, display: Any = None, poll_s: float | None = None):
        if store.get_job(job_id) is None:
            from ..errors import ConfigError

            raise ConfigError(f"No provider batch job {job_id!r}; llmcells.jobs() lists them.")
        self.id = job_id
        self.display = display
        self.poll_s = poll_s

    def __repr__(self) -> str:
        parts = store.get_parts(self.id)
        states = ", ".join(f"{p['model_id']} {p['state']}" for p in parts)
        return f"<llmcells provider batch {self.id}: {states}>"

    @property
    def batch_id(self) -> str:
        return (store.get_job(self.id) or {})["batch_id"]

    def _poll(self, parts: list[dict[str, Any]], checks: int) -> float:
        """Seconds before the next check, the checks so far being `checks`: poll_s when set; the
        simulator's jobs, which end in seconds, every 0.25 s; a provider's, from 0.25 s growing
        by half each time up to POLL_MAX_S (a job that ends at once is seen at once, and one that
        takes hours costs a check every 30 s, whatever its base URL: a proxy on 127.0.0.1 is
        no simulator)."""
        if self.poll_s is not None:
            return self.poll_s
        opts = (store.get_job(self.id) or {}).get("options") or {}
        if opts.get("poll_s"):
            return float(opts["poll_s"])
        if all(_spec(p["model_id"]).simulated for p in parts):
            return POLL_FIRST_S
        return min(POLL_MAX_S, POLL_FIRST_S * 1.5 ** checks)

    def parts(self) -> list[dict[str, Any]]:
        """The provider jobs as stored (no request to the providers)."""
        parts = store.get_parts(self.id)
        costs = _part_costs(self.id)
        for p in parts:
            p["cost"] = costs.get(p["part"]) if p["collected"] else p["estimate"]
            if p["provider"] == "anthropic" and p["state"] not in FINAL_STATES:
                from .anthropic_jobs import COUNTS_NOTE

                p["note"] = COUNTS_NOTE
        return parts

    def status(self) -> "pd.DataFrame":
        """Ask the providers now: one row per provider job (state, counts, elapsed, expiry, cost)."""
        from .._loop import run

        run(refresh(self.id))
        return _parts_frame(self.parts())

    async def _wait(self, progress: Any) -> "pd.DataFrame":
        checks = 0
        try:
            while True:
                await refresh(self.id)
                parts = self.parts()
                if progress is not None:
                    progress.update(parts)
                if all(p["collected"] for p in parts):
                    break
                stuck = [p for p in parts if p["state"] == "new" and p.get("error")]
                if stuck:  # e.g. reattached in a process without the key: waiting cannot help
                    from ..errors import ConfigError

                    raise ConfigError(f"{stuck[0]['model_id']} could not be submitted: "
                                      f"{stuck[0]['error']}")
                blind = [p for p in parts if not p["collected"]
                         and (p.get("error") or "").startswith(CANNOT_CHECK)]
                if blind:  # the key was rejected, say: the provider job runs on, unseen
                    from ..errors import ConfigError

                    raise ConfigError(
                        f"{blind[0]['model_id']}'s provider job can't be followed: "
                        f"{blind[0]['error'][len(CANNOT_CHECK):].rstrip('.')}. It keeps running at the "
                        f"provider: mend that, then `await llmcells.job({self.id!r})` collects it.")
                await asyncio.sleep(self._poll(parts, checks))
                checks += 1
        except asyncio.CancelledError:
            if progress is not None:
                progress.close(self.parts(), interrupted=True)
            raise
        if progress is not None:
            progress.close(self.parts())
        return self.to_frame()

    def _progress(self) -> Any:
        front = session.front_end
        return front.open_job_progress(self.id, front.detect_mode(self.display))

    def __await__(self):
        from .._loop import bridge

        return bridge(self._wait(self._progress())).__await__()

    def wait(self) -> "pd.DataFrame":
        """Block until every provider job has ended and its results are collected; the frame."""
        from .._loop import run

        return run(self._wait(self._progress()))

    def cancel(self) -> None:
        """Ask the providers to cancel every unfinished provider job; finished results are kept,
        and `wait()` collects whatever the providers finished before the cancel."""
        from .._loop import run

        async def go() -> None:
            for p in store.get_parts(self.id):
                if p["state"] in FINAL_STATES or not p["provider_job_id"]:
                    if p["state"] == "new":
                        store.update_part(self.id, p["part"], state="cancelled", finished=time.time())
                    continue
                spec = _spec(p["model_id"])
                client = await asyncio.to_thread(_client, spec)
                try:
                    await driver(spec.adapter).cancel(client, p["provider_job_id"])
                except Exception as exc:
                    store.update_part(self.id, p["part"], error=f"cancel: {_one_line_error(exc, spec)}")
                    continue
                store.update_part(self.id, p["part"], state="cancelling")

        run(go())

    def to_frame(self) -> "pd.DataFrame":
        """The same columns as a live batch (with a schema, one column per top-level field);
        rows not done yet have status "pending"."""
        pd = import_pandas()

        from .. import batchrun
        from ..structured import schema_columns

        reqs = store.get_requests(self.id)
        schema = _Rich(self.id, [], with_bytes=False).schema
        records = []
        for req in reqs:
            row = batchrun.frame_inputs(req["inputs"])
            result = _restore(req["result"], req)
            r = result.to_row()
            r.pop("group_id", None)
            if req["result"] is not None:
                r["status"] = req["status"]
            row.update(r)
            if schema is not None:  # validated again from the kept text, as a resumed live row
                row.update(schema_columns(result, schema, row))
            row["resumed"] = False
            row["batch_id"] = self.batch_id
            row["processing"] = req["result"].get("processing", "batch") if req["result"] else "batch"
            records.append(row)
        frame = pd.DataFrame.from_records(records)
        frame.attrs["batch_id"] = self.batch_id
        frame.attrs["job_id"] = self.id
        return frame

    def retry_failed(self, via: str = "live", repair: int = 0) -> Any:
        """Run again only the rows that failed, expired, were cancelled or whose answer does not
        match the schema, with the same attachments and schema.

        via="live": now, through the live engine (rate limits, resume, ledger rows with
        processing="live"); returns the frame. repair=1 (live only) re-asks once more, with the
        validation error, an answer that still does not match. via="provider": as new provider
        jobs of this job; returns this handle (await it).
        """
        from ..errors import ConfigError

        if via not in ("live", "provider"):
            raise ConfigError(f"via must be 'live' or 'provider', not {via!r}.")
        if repair and via != "live":
            raise ConfigError("repair= re-asks at once, which only via='live' can do.")
        todo = [r for r in store.get_requests(self.id) if r["status"] not in ("ok", "pending")]
        if not todo:
            return self.to_frame() if via == "live" else self
        if via == "provider":
            _new_parts(self.id, todo)
            from .._loop import run

            run(submit_parts(self.id))
            return self
        return self._retry_live(todo, repair)

    def _retry_live(self, todo: list[dict[str, Any]], repair: int = 0) -> "pd.DataFrame":
        from .. import batchrun
        from .._loop import run
        job = store.get_job(self.id) or {}
        opts = job.get("options") or {}
        batch_id = job["batch_id"]
        jobs = []
        rich = _Rich(self.id, todo)
        for i, req in enumerate(todo):
            plan = _plan_for(req, rich, repair)
            plan.batch_id = batch_id
            jobs.append(batchrun.Job(i, plan, req["call_key"], req["inputs"]))
        front = session.front_end
        mode = front.detect_mode(self.display)
        progress = front.open_progress(len(jobs), mode, batch_id=batch_id) if mode != "none" else None
        limits = {k: batchrun.RateLimit(**v) for k, v in (opts.get("limits") or {}).items()}
        run(batchrun.run(jobs, batch_id, False, int(opts.get("concurrency") or 16), limits, None,
                         progress))
        store.set_results(self.id, [(j.call_key, "ok" if j.result.ok else j.result.status,
                                     _fields(j.result)) for j in jobs if j.result is not None])
        return self.to_frame()


def _new_parts(job_id: str, todo: list[dict[str, Any]]) -> None:
    """New parts (split at the APIs' limits as at submit) for requests to send again."""
    existing = store.get_parts(job_id)
    n = max((p["part"] for p in existing), default=-1) + 1
    by_model: dict[str, list[dict[str, Any]]] = {}
    for r in todo:
        by_model.setdefault(r["model"], []).append(r)
    rich = _Rich(job_id, todo, with_bytes=False)  # sizes and estimates need no bytes
    for model_id, reqs in by_model.items():
        spec = _spec(model_id)
        plans = [(r, _plan_for(r, rich)) for r in reqs]
        for group in _split(spec, [(item, _line_size(item[1])) for item in plans]):
            est = sum(x for x in (_est_one(plan) for (_, plan), _ in group) if not math.isnan(x))
            store.add_parts([{"job_id": job_id, "part": n, "provider": spec.provider,
                              "model_id": model_id, "tag": _tag(job_id, n), "state": "new",
                              "requests": len(group), "estimate": est}])
            store.assign(job_id, [r["call_key"] for (r, _), _ in group], n)
            n += 1


def _part_costs(job_id: str) -> dict[int, float]:
    return store.part_costs(job_id)


def _parts_frame(parts: list[dict[str, Any]]) -> "pd.DataFrame":
    pd = import_pandas()

    now = time.time()
    rows = []
    for p in parts:
        c = p.get("counts") or {}
        start = p.get("submitted") or p.get("created")
        rows.append({
            "job_id": p["job_id"], "part": p["part"], "provider": p["provider"], "model": p["model_id"],
            "provider_job_id": p["provider_job_id"], "state": p["state"], "requests": p["requests"],
            "done": c.get("done"), "failed": c.get("failed"),
            "age_s": now - start if start else None,
            "expires_in_s": (p["expires"] - now) if p.get("expires") and p["state"] not in FINAL_STATES
            else None,
            "cost_usd": p.get("cost"), "cost_kind": "actual" if p["collected"] else "estimate",
            "note": p.get("note") or p.get("error"),
        })
    return pd.DataFrame.from_records(rows)


def list_jobs() -> "pd.DataFrame":
    """Every provider batch job: one row per provider job (provider, state, counts, age, expiry,
    estimated or actual cost). No request is sent; `job(id).status()` asks the providers."""
    pd = import_pandas()

    parts: list[dict[str, Any]] = []
    for job_id in store.job_ids():
        parts += JobHandle(job_id).parts()
    frame = _parts_frame(parts)
    return frame if len(frame) else pd.DataFrame(columns=["job_id", "part", "provider", "model", "state"])


def get_job(job_id: str, *, display: Any = None) -> JobHandle:
    """The handle of a provider batch job by its id (job_...), its batch id, or a provider job id."""
    if store.get_job(job_id) is None:
        for candidate in store.job_ids():
            if candidate == f"job_{job_id}" or any(p["provider_job_id"] == job_id
                                                    for p in store.get_parts(candidate)):
                job_id = candidate
                break
    return JobHandle(job_id, display=display)
