"""The simulator's provider batch APIs (OpenAI Batch, Anthropic Message Batches, Gemini batch mode).

Faithful enough for the official SDKs, with a time-compressed state machine (seconds, not hours):
a job validates for `validate_s`, works through its requests over `run_s` (request i is done at
its own moment, so counts grow while it runs), finalizes for `finalize_s`, then ends. Answers are
the simulator's ordinary answers for the same request body. Faults (`inject`): "validation_failure"
(OpenAI reports it on a later retrieve), "expire" (the job expires with part of its output),
"out_of_order" (results in a shuffled order), "404_after_create" (the new job is not visible for a
moment). A request line with attachments or a schema is answered as the same live call (see
rich.py), and a queued `invalid_json` fault of the simulator breaks one line's JSON. Control:
`control(sim)` in Python, or `POST /_sim/batches/{config,faults,reset}`.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import anthropic as anthropic_fmt
from . import google as google_fmt
from . import openai as openai_fmt
from . import rich
from . import batch_checks
from . import tools as sim_tools
from .common import api_key, compact

BATCH_FAULTS = ("validation_failure", "expire", "out_of_order", "404_after_create",
                # the request-level ones (`_REQUEST_FAULTS`): an answer in place of the API's
                "create_then_500", "create_429", "retrieve_401", "results_503")
#: request-level faults: (the request they strike, the status answered, whether the request is
#: carried out first). create_then_500: the job is made, then a 500 says otherwise (as after a
#: gateway's timeout: the client can't tell whether it exists); create_429: refused, nothing
#: made; retrieve_401: the job's status refused (a revoked key); results_503: its results refused.
_REQUEST_FAULTS = {"create_then_500": ("create", 500, True), "create_429": ("create", 429, False),
                   "retrieve_401": ("retrieve", 401, False), "results_503": ("results", 503, False)}
_OPENAI_BATCH = re.compile(r"^/v1/batches/([^/]+)(/cancel)?$")
_OPENAI_FILE = re.compile(r"^/v1/files/([^/]+)(/content)?$")
_ANTHROPIC_BATCH = re.compile(r"^/v1/messages/batches/([^/]+?)(/cancel|/results)?$")
_GEMINI_CREATE = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):batchGenerateContent$")
_GEMINI_BATCH = re.compile(r"^/(v1|v1beta|v1alpha)/batches/([^/:]+)(:cancel)?$")
_GEMINI_LIST = re.compile(r"^/(v1|v1beta|v1alpha)/batches$")
_GEMINI_UPLOAD = re.compile(r"^/upload/(v1|v1beta|v1alpha)/files$")
_GEMINI_DOWNLOAD = re.compile(r"^/(v1|v1beta|v1alpha)/files/([^/:]+):download$")


@dataclass
class BatchSettings:
    """Timing of every simulated batch job, in seconds."""

    validate_s: float = 0.3
    run_s: float = 2.0
    finalize_s: float = 0.2
    expire_fraction: float = 0.5     # with the "expire" fault: share of requests done by then
    not_found_s: float = 0.6         # with "404_after_create": how long a new job stays invisible


@dataclass
class BatchFault:
    """A queued batch fault for the next `times` jobs of a provider (None: any provider)."""

    fault: str
    provider: str | None = None
    times: int | None = 1


@dataclass
class SimJob:
    """One simulated batch job."""

    id: str
    provider: str
    model: str
    requests: list[tuple[str, Any, str]]    # (custom_id, request body, api)
    created: float                           # wall clock
    faults: set[str]
    meta: dict[str, Any] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    cancelled_at: float | None = None
    results: dict[str, Any] | None = None    # custom_id -> answer (dict) or None when not done

    def clock(self, s: BatchSettings) -> tuple[str, int]:
        """(phase, requests done): phase is validating, failed, running, finalizing, ended,
        expired or cancelled."""
        age = time.time() - self.created
        n = len(self.requests)
        if "validation_failure" in self.faults and age >= s.validate_s:
            return "failed", 0
        if self.cancelled_at is not None:
            return "cancelled", min(n, self._done_at(self.cancelled_at - self.created, s))
        if age < s.validate_s:
            return "validating", 0
        if "expire" in self.faults:
            cut = int(n * s.expire_fraction)
            if age >= s.validate_s + s.run_s * s.expire_fraction:
                return "expired", cut
            return "running", min(cut, self._done_at(age, s))
        done = self._done_at(age, s)
        if done < n:
            return "running", done
        if age < s.validate_s + s.run_s + s.finalize_s:
            return "finalizing", n
        return "ended", n

    def _done_at(self, age: float, s: BatchSettings) -> int:
        if age <= s.validate_s:
            return 0
        n = len(self.requests)
        return min(n, int(n * (age - s.validate_s) / max(s.run_s, 1e-6)))

    def cancel(self, s: BatchSettings) -> None:
        """Cancel the job unless it has already ended."""
        if self.clock(s)[0] in ("validating", "running", "finalizing"):
            self.cancelled_at = time.time()

    def done_ids(self, count: int) -> list[str]:
        """The custom ids of the first `count` requests processed."""
        return [self.requests[i][0] for i in self.order[:count]]


class BatchSim:
    """Every batch job and uploaded file of one simulator, behind one lock."""

    def __init__(self) -> None:
        self.settings = BatchSettings()
        self.faults: list[BatchFault] = []
        self.jobs: dict[str, SimJob] = {}
        self.files: dict[str, tuple[str, bytes, float]] = {}   # id -> (filename, content, created)
        self.uploads: dict[str, bytearray] = {}                 # Gemini resumable uploads in progress
        self.lock = threading.RLock()

    def configure(self, **values: Any) -> None:
        """Change timings (validate_s, run_s, finalize_s, expire_fraction, not_found_s)."""
        with self.lock:
            for name, value in values.items():
                if not hasattr(self.settings, name):
                    raise TypeError(f"unknown batch setting {name!r}")
                setattr(self.settings, name, float(value))

    def inject(self, fault: str, *, provider: str | None = None, times: int | None = 1) -> None:
        """Queue a fault for the next `times` batch jobs (of one provider, or any)."""
        if fault not in BATCH_FAULTS:
            raise ValueError(f"unknown batch fault {fault!r}; expected one of {', '.join(BATCH_FAULTS)}")
        with self.lock:
            self.faults.append(BatchFault(fault, provider, times))

    def reset(self) -> None:
        """Forget every job, file, fault and timing change."""
        with self.lock:
            self.settings = BatchSettings()
            self.faults.clear()
            self.jobs.clear()
            self.files.clear()

    def _take_faults(self, provider: str) -> set[str]:
        taken = set()
        for f in list(self.faults):
            if f.fault not in _REQUEST_FAULTS and f.provider in (None, provider):
                taken.add(f.fault)
                self._spend(f)
        return taken

    def _spend(self, f: BatchFault) -> None:
        """One use of fault f: gone after its `times` (kept for good with times=None)."""
        if f.times is not None:
            f.times -= 1
            if f.times <= 0:
                self.faults.remove(f)

    def take_request_fault(self, kind: str, provider: str) -> str | None:
        """The request-level fault (of _REQUEST_FAULTS) injected for this kind of request of
        provider's batch API, taken once (or kept, with times=None); None when there is none."""
        for f in list(self.faults):
            strikes = _REQUEST_FAULTS.get(f.fault)
            if strikes is None or strikes[0] != kind or f.provider not in (None, provider):
                continue
            self._spend(f)
            return f.fault
        return None

    def new_job(self, prefix: str, provider: str, model: str, requests: list[tuple[str, Any, str]],
                meta: dict[str, Any]) -> SimJob:
        with self.lock:
            faults = self._take_faults(provider)
            job = SimJob(f"{prefix}{secrets.token_hex(12)}", provider, model, requests, time.time(),
                         faults, meta)
            job.order = list(range(len(requests)))
            if "out_of_order" in faults:
                random.Random(job.id).shuffle(job.order)
            self.jobs[job.id] = job
            return job

    def get(self, job_id: str, provider: str) -> SimJob | None:
        job = self.jobs.get(job_id)
        if job is None or job.provider != provider:
            return None
        if "404_after_create" in job.faults and time.time() - job.created < self.settings.not_found_s:
            return None
        return job


def control(sim: Any) -> BatchSim:
    """The batch side of a running `Simulator` (or of its State): timings, faults, jobs."""
    state = getattr(sim, "_state", sim)
    found = getattr(state, "batch_sim", None)
    if found is None:
        found = BatchSim()
        state.batch_sim = found
    return found


# ----- answers ------------------------------------------------------------------------------

_ERRORED = "__errored__"  # marks a line's answer that is an error (Anthropic's "errored" result)


def _answer(server: Any, module: Any, api: str, body: dict[str, Any], model: str | None) -> Any:
    """The simulator's ordinary non-streamed answer body for one request: with attachments or a
    schema, the answer a live call gets (an instance of the schema; broken JSON when an
    `invalid_json` fault is queued, which one request line consumes, as one live call does)."""
    prompt = module.parse(api, body, model)
    if module is anthropic_fmt and server.state.strict and batch_checks.catalog.status(
            "anthropic", prompt.model) == "retired":  # the line errors, as the live call would
        return {_ERRORED: {"type": "error", "error": {"type": "not_found_error",
                                                      "message": f"model: {prompt.model}"}}}
    turn = sim_tools.turn(module.PROVIDER, api, body)
    if turn is not None and turn.calls:  # a line that should call a tool gets the tool call
        plan = server._plan(api, prompt, server.state.resolve(prompt.model))
        plan.tokens = ["x"] * sim_tools.usage_counts(prompt.text, turn.calls)[1]
        plan.truncated = False
        return sim_tools.body(module.PROVIDER, api, plan, turn.calls)
    prompt.rich = rich.inspect(module.PROVIDER, api, body)
    # Only invalid_json applies to a line: the transport faults are about live connections.
    fault = server.state.take_fault(module.PROVIDER, prompt.model, kinds=("invalid_json",))
    prompt.rich.invalid_json = fault is not None
    settings = server.state.resolve(prompt.model)
    plan = server._plan(api, prompt, settings)
    if module is openai_fmt:
        return openai_fmt.chat_body(plan) if api == "chat" else openai_fmt.responses_body(plan)
    return json.loads(module.complete(plan).body)


def _results(server: Any, sim: BatchSim, job: SimJob, done: int) -> dict[str, Any]:
    """Answers of the first `done` processed requests, computed once and kept."""
    if job.results is None:
        job.results = {}
    module = {"openai": openai_fmt, "anthropic": anthropic_fmt, "google": google_fmt}[job.provider]
    for i in job.order[:done]:
        cid, body, api = job.requests[i]
        if cid not in job.results:
            job.results[cid] = _answer(server, module, api, body, job.model or None)
    return job.results


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z")


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, compact(body).encode()


def _body(req: Any) -> Any:
    """The JSON body of a request (None when it isn't JSON: batch_checks refuses it)."""
    try:
        return json.loads(req.body or b"{}")
    except ValueError:
        return None


def _refuse(provider: str, refusal: Any) -> tuple[int, dict[str, str], bytes]:
    from .validate import error_body

    request_id = "req_011C" + secrets.token_hex(10)
    return _json(refusal.status, error_body(provider, refusal, request_id))


def _error(status: int, message: str, provider: str) -> tuple[int, dict[str, str], bytes]:
    if provider == "anthropic":  # (the error type the real API gives each status)
        kind = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                429: "rate_limit_error"}.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return _json(status, {"type": "error", "error": {"type": kind, "message": message}})
    if provider == "google":
        kind = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED"}.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return _json(status, {"error": {"code": status, "message": message, "status": kind}})
    return _json(status, {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                    "code": None}})


# ----- OpenAI ---------------------------------------------------------------------------------


def _multipart(req: Any) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name -> (filename, content)."""
    ctype = req.headers.get("content-type", "")
    m = re.search(r'boundary="?([^";]+)"?', ctype)
    if not m:
        return {}
    boundary = b"--" + m.group(1).encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in req.body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        disp = head.decode("latin-1")
        name = re.search(r'name="([^"]*)"', disp)
        filename = re.search(r'filename="([^"]*)"', disp)
        if name:
            fields[name.group(1)] = (filename.group(1) if filename else None,
                                     content[:-2] if content.endswith(b"\r\n") else content)
    return fields


def _openai_file(file_id: str, name: str, size: int, created: float) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(created),
            "filename": name, "purpose": "batch", "status": "processed", "expires_at": None,
            "status_details": None}


def _openai_batch(server: Any, sim: BatchSim, job: SimJob) -> dict[str, Any]:
    phase, done = job.clock(sim.settings)
    s, t0, n = sim.settings, job.created, len(job.requests)
    status = {"validating": "validating", "failed": "failed", "running": "in_progress",
              "finalizing": "finalizing", "ended": "completed", "expired": "expired",
              "cancelled": "cancelled"}[phase]
    if phase == "cancelled" and time.time() - (job.cancelled_at or 0) < 0.2:
        status = "cancelling"
    body: dict[str, Any] = {
        "id": job.id, "object": "batch", "endpoint": job.meta["endpoint"], "errors": None,
        "input_file_id": job.meta["input_file_id"], "completion_window": "24h", "status": status,
        "output_file_id": None, "error_file_id": None, "created_at": int(t0),
        "in_progress_at": int(t0 + s.validate_s) if phase not in ("validating", "failed") else None,
        "expires_at": int(t0 + 86400), "finalizing_at": None, "completed_at": None,
        "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
        "request_counts": {"total": 0 if phase in ("validating", "failed") else n,
                           "completed": done, "failed": 0},
        "metadata": job.meta.get("metadata") or None, "model": job.model or None, "usage": None,
    }
    if phase == "failed":
        body["failed_at"] = int(t0 + s.validate_s)
        body["errors"] = {"object": "list", "data": job.meta.get("errors") or [{
            "code": "invalid_request", "line": 1, "param": "body.model",
            "message": "The simulator was asked to fail validation of this batch."}]}
    if phase in ("ended", "expired", "cancelled") and status != "cancelling":
        results = _results(server, sim, job, done)
        if phase == "ended":
            body["finalizing_at"] = int(t0 + s.validate_s + s.run_s)
            body["completed_at"] = int(t0 + s.validate_s + s.run_s + s.finalize_s)
        elif phase == "expired":
            body["expired_at"] = int(t0 + s.validate_s + s.run_s * s.expire_fraction)
        else:
            body["cancelling_at"] = body["cancelled_at"] = int(job.cancelled_at or t0)
        body["request_counts"]["failed"] = n - done if phase != "ended" else 0
        if done and "output_file_id" not in job.meta:
            lines = []
            for cid in job.done_ids(done):
                lines.append(compact({"id": f"batch_req_{secrets.token_hex(12)}", "custom_id": cid,
                                      "response": {"status_code": 200,
                                                   "request_id": secrets.token_hex(16),
                                                   "body": results[cid]}, "error": None}))
            job.meta["output_file_id"] = _add_file(sim, f"{job.id}_output.jsonl",
                                                   ("\n".join(lines) + "\n").encode())
        if n - done and phase != "ended" and "error_file_id" not in job.meta:
            code = "batch_expired" if phase == "expired" else "batch_cancelled"
            done_set = set(job.done_ids(done))
            lines = [compact({"id": f"batch_req_{secrets.token_hex(12)}", "custom_id": cid,
                              "response": None,
                              "error": {"code": code, "message": f"This request was not run: {code}."}})
                     for cid, _, _ in job.requests if cid not in done_set]
            job.meta["error_file_id"] = _add_file(sim, f"{job.id}_error.jsonl",
                                                  ("\n".join(lines) + "\n").encode())
        body["output_file_id"] = job.meta.get("output_file_id")
        body["error_file_id"] = job.meta.get("error_file_id")
    return body


def _add_file(sim: BatchSim, name: str, content: bytes) -> str:
    file_id = f"file-{secrets.token_hex(11)}"
    sim.files[file_id] = (name, content, time.time())
    return file_id


def _openai(server: Any, sim: BatchSim, req: Any) -> tuple[int, dict[str, str], bytes] | None:
    path, method = req.path, req.method
    if path == "/v1/files" and method == "POST":
        fields = _multipart(req)
        if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"batch":
            return _error(400, "Send a file with purpose=batch (multipart/form-data).", "openai")
        name, content = fields["file"]
        file_id = _add_file(sim, name or "input.jsonl", content)
        return _json(200, _openai_file(file_id, name or "input.jsonl", len(content), time.time()))
    m = _OPENAI_FILE.match(path)
    if m and method == "DELETE" and not m.group(2):  # as OpenAI's DELETE /v1/files/{file_id}
        if sim.files.pop(m.group(1), None) is None:
            return _error(404, f"No such File object: {m.group(1)}", "openai")
        return _json(200, {"id": m.group(1), "object": "file", "deleted": True})
    if m and method == "GET":
        found = sim.files.get(m.group(1))
        if found is None:
            return _error(404, f"No such File object: {m.group(1)}", "openai")
        if m.group(2):
            return 200, {"content-type": "application/octet-stream"}, found[1]
        return _json(200, _openai_file(m.group(1), found[0], len(found[1]), found[2]))
    if path == "/v1/batches" and method == "POST":
        body = _body(req)
        if server.state.strict or not isinstance(body, dict):
            refusal = batch_checks.create("openai", body)
            if refusal is not None:
                return _refuse("openai", refusal)
        found = sim.files.get(body.get("input_file_id", ""))
        if found is None:
            return _error(400, f"Invalid input_file_id: {body.get('input_file_id')!r}.", "openai")
        endpoint = body.get("endpoint", "/v1/chat/completions")
        lines, refusal = batch_checks.openai_lines(found[1], endpoint)
        if refusal is not None:
            return _refuse("openai", refusal)
        requests = [(item["custom_id"], item["body"], "responses" if item["url"].endswith("/responses")
                     else "chat") for item in lines]
        model = next((str(item["body"].get("model", "")) for item in lines), "")
        errors = batch_checks.openai_bodies(lines) if server.state.strict else []
        job = sim.new_job("batch_", "openai", model, requests,
                          {"endpoint": endpoint, "input_file_id": body["input_file_id"],
                           "metadata": body.get("metadata"), "errors": errors})
        if errors:
            job.faults.add("validation_failure")
        return _json(200, _openai_batch(server, sim, job))
    if path == "/v1/batches" and method == "GET":
        jobs = sorted((j for j in sim.jobs.values() if j.provider == "openai"),
                      key=lambda j: -j.created)
        after = req.query.get("after")
        if after:
            ids = [j.id for j in jobs]
            jobs = jobs[ids.index(after) + 1:] if after in ids else []
        limit = int(req.query.get("limit", 20))
        page = [_openai_batch(server, sim, j) for j in jobs[:limit]]
        return _json(200, {"object": "list", "data": page,
                           "first_id": page[0]["id"] if page else None,
                           "last_id": page[-1]["id"] if page else None,
                           "has_more": len(jobs) > limit})
    m = _OPENAI_BATCH.match(path)
    if m:
        job = sim.get(m.group(1), "openai")
        if job is None:
            return _error(404, f"No batch found with id '{m.group(1)}'.", "openai")
        if m.group(2) and method == "POST":
            job.cancel(sim.settings)
        return _json(200, _openai_batch(server, sim, job))
    return None


# ----- Anthropic ------------------------------------------------------------------------------


def _anthropic_batch(server: Any, sim: BatchSim, job: SimJob, host: str) -> dict[str, Any]:
    phase, done = job.clock(sim.settings)
    n = len(job.requests)
    ended = phase in ("ended", "expired", "cancelled", "failed")
    status = "ended" if ended else "in_progress"
    if phase == "cancelled" and time.time() - (job.cancelled_at or 0) < 0.2:
        status = "canceling"
        ended = False
    counts = {"processing": n, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if ended:  # Anthropic reports counts only once the batch has ended
        counts = {"processing": 0, "succeeded": done, "errored": 0,
                  "canceled": n - done if phase == "cancelled" else 0,
                  "expired": n - done if phase in ("expired", "failed") else 0}
    return {"id": job.id, "type": "message_batch", "processing_status": status,
            "request_counts": counts, "ended_at": _iso(time.time()) if ended else None,
            "created_at": _iso(job.created), "expires_at": _iso(job.created + 86400),
            "archived_at": None, "cancel_initiated_at": _iso(job.cancelled_at),
            "results_url": f"http://{host}/v1/messages/batches/{job.id}/results" if ended else None}


def _anthropic(server: Any, sim: BatchSim, req: Any) -> tuple[int, dict[str, str], bytes] | None:
    path, method = req.path, req.method
    host = req.headers.get("host", "127.0.0.1")
    if path == "/v1/messages/batches" and method == "POST":
        body = _body(req)
        refusal = batch_checks.create("anthropic", body, strict=server.state.strict)
        if refusal is not None:
            return _refuse("anthropic", refusal)
        items = body.get("requests") or []
        requests = [(it["custom_id"], it["params"], "messages") for it in items]
        ids = [r[0] for r in requests]
        if len(set(ids)) != len(ids):
            return _error(400, "custom_id values must be unique within a batch", "anthropic")
        job = sim.new_job("msgbatch_", "anthropic", "", requests, {})
        return _json(200, _anthropic_batch(server, sim, job, host))
    if path == "/v1/messages/batches" and method == "GET":
        jobs = sorted((j for j in sim.jobs.values() if j.provider == "anthropic"), key=lambda j: -j.created)
        after = req.query.get("after_id")
        if after:
            ids = [j.id for j in jobs]
            jobs = jobs[ids.index(after) + 1:] if after in ids else []
        limit = int(req.query.get("limit", 20))
        page = [_anthropic_batch(server, sim, j, host) for j in jobs[:limit]]
        return _json(200, {"data": page, "has_more": len(jobs) > limit,
                           "first_id": page[0]["id"] if page else None,
                           "last_id": page[-1]["id"] if page else None})
    m = _ANTHROPIC_BATCH.match(path)
    if m:
        job = sim.get(m.group(1), "anthropic")
        if job is None:
            return _error(404, f"Batch {m.group(1)} not found.", "anthropic")
        phase, done = job.clock(sim.settings)
        if m.group(2) == "/cancel" and method == "POST":
            job.cancel(sim.settings)
        elif m.group(2) == "/results":
            if phase not in ("ended", "expired", "cancelled", "failed"):
                return _error(400, f"Batch {job.id} has not ended yet.", "anthropic")
            results = _results(server, sim, job, done)
            done_ids = job.done_ids(done)
            left = "canceled" if phase == "cancelled" else "expired"
            lines = [compact({"custom_id": cid, "result": {"type": "errored", "error": results[cid][_ERRORED]}
                              if _ERRORED in results[cid] else {"type": "succeeded", "message": results[cid]}})
                     for cid in done_ids]
            done_set = set(done_ids)
            lines += [compact({"custom_id": cid, "result": {"type": left}})
                      for cid, _, _ in job.requests if cid not in done_set]
            # `\n` only: the SDK's JSONL decoder breaks on a CRLF split across chunks.
            return 200, {"content-type": "application/binary"}, ("\n".join(lines) + "\n").encode()
        return _json(200, _anthropic_batch(server, sim, job, host))
    return None


# ----- Gemini ---------------------------------------------------------------------------------

_GEMINI_STATES = {"validating": "BATCH_STATE_PENDING", "running": "BATCH_STATE_RUNNING",
                  "finalizing": "BATCH_STATE_RUNNING", "ended": "BATCH_STATE_SUCCEEDED",
                  "failed": "BATCH_STATE_FAILED", "expired": "BATCH_STATE_EXPIRED",
                  "cancelled": "BATCH_STATE_CANCELLED"}


def _gemini_operation(server: Any, sim: BatchSim, job: SimJob) -> dict[str, Any]:
    phase, done = job.clock(sim.settings)
    n = len(job.requests)
    state = _GEMINI_STATES[phase]
    meta: dict[str, Any] = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": f"models/{job.model}", "displayName": job.meta.get("displayName", ""),
        "createTime": _iso(job.created), "updateTime": _iso(time.time()),
        "batchStats": {"requestCount": str(n), "pendingRequestCount": str(n - done)},
        "state": state, "name": f"batches/{job.id}",
    }
    if done:
        meta["batchStats"]["successfulRequestCount"] = str(done)
    op: dict[str, Any] = {"name": f"batches/{job.id}", "metadata": meta}
    if phase in ("ended", "failed", "expired", "cancelled"):
        meta["endTime"] = _iso(time.time())
        op["done"] = True
        if phase == "ended" or (phase == "cancelled" and done):
            results = _results(server, sim, job, done)
            done_set = set(job.done_ids(done))
            inlined = []
            for cid, _, _ in job.requests:  # Gemini keeps the input order
                if cid in done_set:
                    inlined.append({"response": results[cid], "metadata": {"key": cid}})
                elif phase == "cancelled":
                    inlined.append({"error": {"code": 1, "message": "Cancelled."}, "metadata": {"key": cid}})
            if job.meta.get("file_route"):
                if "responsesFile" not in job.meta:
                    lines = [compact({"key": it["metadata"]["key"],
                                      **{k: v for k, v in it.items() if k != "metadata"}}) for it in inlined]
                    name = f"files/batch-{secrets.token_hex(8)}"
                    sim.files[name] = (name, ("\n".join(lines) + "\n").encode(), time.time())
                    job.meta["responsesFile"] = name
                meta["output"] = {"responsesFile": job.meta["responsesFile"]}
            else:
                meta["output"] = {"inlinedResponses": {"inlinedResponses": inlined}}
            op["response"] = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main."
                                       "GenerateContentBatchOutput", **meta["output"]}
        if phase == "failed":
            op["error"] = {"code": 3, "message": "The simulator was asked to fail this batch."}
    return op


def _gemini_file(name: str, size: int, created: float, mime: str = "jsonl") -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "sizeBytes": str(size), "createTime": _iso(created),
            "updateTime": _iso(created), "expirationTime": _iso(created + 48 * 3600),
            "state": "ACTIVE", "source": "UPLOADED"}


def _gemini_upload(sim: BatchSim, req: Any) -> tuple[int, dict[str, str], bytes]:
    """The resumable upload protocol: a start request gives an upload URL; chunks follow."""
    command = req.headers.get("x-goog-upload-command", "")
    if command == "start":
        upload_id = secrets.token_hex(10)
        sim.uploads[upload_id] = bytearray()
        host = req.headers.get("host", "127.0.0.1")
        return 200, {"content-type": "application/json", "x-goog-upload-status": "active",
                     "x-goog-upload-url": f"http://{host}{req.path}?upload_id={upload_id}"}, b"{}"
    upload_id = req.query.get("upload_id", "")
    if upload_id not in sim.uploads:
        return _error(404, "No such upload.", "google")
    data = sim.uploads[upload_id]
    data[int(req.headers.get("x-goog-upload-offset", len(data))):] = req.body
    if "finalize" not in command:
        return 200, {"content-type": "application/json", "x-goog-upload-status": "active"}, b"{}"
    del sim.uploads[upload_id]
    name = f"files/{secrets.token_hex(8)}"
    sim.files[name] = (name, bytes(data), time.time())
    return 200, {"content-type": "application/json", "x-goog-upload-status": "final"}, \
        compact({"file": _gemini_file(name, len(data), time.time())}).encode()


def _gemini(server: Any, sim: BatchSim, req: Any) -> tuple[int, dict[str, str], bytes] | None:
    path, method = req.path, req.method
    if _GEMINI_UPLOAD.match(path) and method == "POST":
        return _gemini_upload(sim, req)
    m = _GEMINI_DOWNLOAD.match(path)
    if m and method == "GET":
        found = sim.files.get(f"files/{m.group(2)}")
        if found is None:
            return _error(404, f"File files/{m.group(2)} not found.", "google")
        return 200, {"content-type": "application/octet-stream"}, found[1]
    m = _GEMINI_CREATE.match(path)
    if m and method == "POST":
        whole = _body(req)
        refusal = batch_checks.create("google", whole, strict=server.state.strict, files=sim.files,
                                      model=m.group(2))
        if refusal is not None:
            return _refuse("google", refusal)
        body = whole.get("batch") or {}
        source = body.get("inputConfig") or {}
        meta = {"displayName": body.get("displayName", "")}
        if source.get("fileName"):  # the file route: JSONL of {"key", "request"}
            found = sim.files.get(source["fileName"])
            if found is None:
                return _error(400, f"File {source['fileName']} not found.", "google")
            items = [json.loads(x) for x in found[1].decode().splitlines() if x.strip()]
            requests = [(str(it.get("key", i)), it.get("request") or {}, "generate")
                        for i, it in enumerate(items)]
            meta["file_route"] = True
        else:
            items = (source.get("requests") or {}).get("requests") or []
            requests = [(str((it.get("metadata") or {}).get("key", i)), it.get("request") or {}, "generate")
                        for i, it in enumerate(items)]
        if not requests:
            return _error(400, "The batch has no requests.", "google")
        job = sim.new_job("", "google", m.group(2), requests, meta)
        return _json(200, _gemini_operation(server, sim, job))
    if _GEMINI_LIST.match(path) and method == "GET":
        jobs = sorted((j for j in sim.jobs.values() if j.provider == "google"), key=lambda j: -j.created)
        start = int(req.query.get("pageToken") or 0)
        size = int(req.query.get("pageSize") or 50)
        page = jobs[start:start + size]
        body = {"operations": [_gemini_operation(server, sim, j) for j in page]}
        if start + size < len(jobs):
            body["nextPageToken"] = str(start + size)
        return _json(200, body)
    m = _GEMINI_BATCH.match(path)
    if m:
        job = sim.get(m.group(2), "google")
        if job is None:
            return _error(404, f"Batch batches/{m.group(2)} not found.", "google")
        if m.group(3) and method == "POST":
            job.cancel(sim.settings)
            return _json(200, {})
        if method == "DELETE":
            sim.jobs.pop(job.id, None)
            return _json(200, {})
        return _json(200, _gemini_operation(server, sim, job))
    return None


# ----- dispatch -------------------------------------------------------------------------------


def _control(sim: BatchSim, req: Any) -> tuple[int, dict[str, str], bytes]:
    name = req.path[len("/_sim/batches/"):].strip("/")
    try:
        body = json.loads(req.body or b"{}")
        if req.method == "POST" and name == "config":
            sim.configure(**body)
            return _json(200, {"ok": True})
        if req.method == "POST" and name == "faults":
            for item in body if isinstance(body, list) else [body]:
                sim.inject(item.pop("fault"), **item)
            return _json(200, {"ok": True})
        if req.method == "POST" and name == "reset":
            sim.reset()
            return _json(200, {"ok": True})
        if req.method == "GET" and name == "jobs":
            return _json(200, [{"id": j.id, "provider": j.provider, "model": j.model,
                                "requests": len(j.requests), "faults": sorted(j.faults)}
                               for j in sim.jobs.values()])
    except (ValueError, TypeError, KeyError) as exc:
        return _json(400, {"error": {"message": str(exc)}})
    return _json(404, {"error": {"message": f"unknown control endpoint {req.method} {req.path}"}})


def handles(req: Any) -> bool:
    """True for a request this module answers (a batch endpoint or its control API)."""
    p = req.path
    return (p.startswith("/_sim/batches/") or p == "/v1/files" or p.startswith("/v1/files/")
            or p.startswith("/v1/batches") or p.startswith("/v1/messages/batches")
            or p.startswith("/upload/")
            or bool(_GEMINI_CREATE.match(p) or _GEMINI_BATCH.match(p) or _GEMINI_LIST.match(p)
                    or _GEMINI_DOWNLOAD.match(p)))


async def dispatch(server: Any, req: Any, resp: Any) -> None:
    """Answer one batch request on the simulator `server`."""
    sim = control(server.state)
    if req.path.startswith("/_sim/batches/"):
        await resp.send(*_control(sim, req))
        return
    key = api_key(req)
    # OpenAI and Gemini (v1) share /v1/batches: Gemini's SDK sends x-goog-api-key, OpenAI's a bearer.
    if req.path.startswith("/v1/messages"):
        provider = "anthropic"
    elif ("x-goog-api-key" in req.headers or "key" in req.query or _GEMINI_CREATE.match(req.path)
          or req.path.startswith("/upload/")):
        provider = "google"
    else:
        provider = "openai"
    if (not key and not req.query.get("upload_id")) or key.startswith("invalid"):
        await resp.send(*_error(401, "invalid api key", provider))
        return
    handler = {"openai": _openai, "anthropic": _anthropic, "google": _gemini}[provider]
    with sim.lock:
        kind = _request_kind(provider, req)
        fault = sim.take_request_fault(kind, provider) if kind else None
        strikes = _REQUEST_FAULTS.get(fault) if fault else None
        answer = handler(server, sim, req) if strikes is None or strikes[2] else None
        if strikes is not None:
            answer = _error(strikes[1], f"The simulator was asked to answer {strikes[1]} ({fault}).", provider)
    if answer is None:
        answer = _error(404, f"Unknown request URL: {req.method} {req.path}.", provider)
    await resp.send(*_with_request_id(provider, *answer))


def _request_kind(provider: str, req: Any) -> str | None:
    """"create", "retrieve" or "results" for the batch API request req, else None."""
    path, method = req.path, req.method
    if provider == "openai":
        if method == "POST" and path == "/v1/batches":
            return "create"
        m = _OPENAI_BATCH.match(path)
        if method == "GET" and m and not m.group(2):
            return "retrieve"
        m = _OPENAI_FILE.match(path)
        return "results" if method == "GET" and m and m.group(2) else None
    if provider == "anthropic":
        if method == "POST" and path == "/v1/messages/batches":
            return "create"
        m = _ANTHROPIC_BATCH.match(path)
        if method == "GET" and m:
            return "results" if m.group(2) == "/results" else "retrieve" if not m.group(2) else None
        return None
    if method == "POST" and _GEMINI_CREATE.match(path):
        return "create"
    m = _GEMINI_BATCH.match(path)
    if method == "GET" and m and not m.group(3):
        return "retrieve"
    return "results" if method == "GET" and _GEMINI_DOWNLOAD.match(path) else None


def _with_request_id(provider: str, status: int, headers: dict[str, str],
                     body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Every answer carries a request id, as the real APIs' do: `x-request-id` (OpenAI),
    `request-id` (Anthropic, also in an error body); Gemini's answers have none."""
    headers = dict(headers)
    if provider == "openai":
        headers.setdefault("x-request-id", f"req_{secrets.token_hex(16)}")
    elif provider == "anthropic":
        request_id = "req_011C" + secrets.token_hex(10)
        if status >= 400:
            try:
                parsed = json.loads(body)
                request_id = parsed.get("request_id") or request_id
                parsed["request_id"] = request_id
                body = compact(parsed).encode()
            except (ValueError, AttributeError):
                pass
        headers.setdefault("request-id", request_id)
    return status, headers, body
