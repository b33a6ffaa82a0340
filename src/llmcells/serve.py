"""A small HTTP service over the same engine: `python -m llmcells serve [--host] [--port] [--token]`.

FastAPI + uvicorn, an optional extra (`pip install 'llmcells[serve]'`), imported only here.
Endpoints: POST /v1/generate, /v1/stream (server-sent events), /v1/compare; GET /v1/health,
/v1/usage, /v1/costs; the OpenAPI page at /docs; GET /livez, a liveness probe that needs no token
and says nothing. Every call is recorded in the ledger as any other.

Every request is hostile until checked (docs/security.md). serve_guard.py checks its Host and
Origin (against DNS rebinding and cross-site pages), the token (generated at start unless given),
a per-client rate and concurrency limit and the body (size, JSON, UTF-8); here, its fields: `params` only as the
allowlist of generation parameters (params.py), no agent CLI unless the server allows them, no
timeout beyond the server's. What goes back is scrubbed of keys, credentials and local paths,
and the ledger's prompts and answers stay hidden unless the server exposes them.

Which loop runs the calls? llmcells' private loop, not uvicorn's. The SDK clients are cached
per endpoint and key for the life of the private loop (session.clients), and an httpx client's
connection pool is bound to the loop that first used it; the ledger writer, the batch gates and
cancellation all assume that one loop. Running `execute` on uvicorn's loop would bind a second
set of clients to a second loop, and one shared cache entry used from both loops breaks. So
each handler submits its call to the private loop (`_loop.submit` / `_loop.bridge`) and awaits a
cross-thread future: one thread hop per call (the benchmark measures what that costs), and a
cancelled request (a client gone mid-stream) cancels the future, hence the call, which the
engine records as `cancelled`.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import math
import os
import re
import secrets
import signal
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

try:
    import uvicorn
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as _missing:  # pragma: no cover - the hint is the point
    raise ImportError("The HTTP service needs FastAPI and uvicorn: pip install 'llmcells[serve]'"
                      ) from _missing

from . import _loop
from .errors import LLMError
from .healthcheck import DEFAULT_TIMEOUT_S
from .params import GENERATION_PARAMS, ParamsError, check_params
from .serve_guard import (HEAD_TIMEOUT, MAX_BODY, MAX_CONCURRENT, MAX_CONNECTIONS, RATE_PER_MINUTE,
                          Guard, HideTokens, Policy, digest, error_response, host_name,
                          http_protocol, ip_of, is_loopback, scrub)
from .types import CallObserver, Result

#: the most models one request may name (a compare's models, a chain and its fallbacks), so that
#: one request within the rate limit can't start a hundred calls
MAX_MODELS = 8
#: a model name a client may send, and the provider's model name it resolves to: letters,
#: digits and . _ - + : / @, beginning with a letter or digit. Refused: a name an agent CLI would
#: read as a flag (`gemini-cli:--yolo`), '..' (another path of the provider's API), control
#: characters (a line forged in the server's log), and names longer than any model's
_MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@+-]{0,199}")
#: agent CLIs never served, even with --allow-agents: with its tools "off" the agent could still
#: read the server's files (its keys, ~/.ssh, the ledger's prompts) for whoever asks
_READS_FILES = {"codex": "Codex is not served, even with --allow-agents: it has no switch that "
                         "removes its shell tool, and its read-only sandbox still reads any file "
                         "the server can."}
#: a model name that is a cloud resource's path: a Vertex model in a project of the client's
#: choosing ("projects/P/locations/L/..."), a Bedrock ARN in another account ("arn:aws:..."),
#: each called with the server's credentials
_RESOURCE = re.compile(r"^(?:projects/|arn:)|/locations/", re.I)
#: the Swagger UI files the /docs page loads, each pinned to one release and to its sha384
#: (subresource integrity): the page holds the token, so a changed file on the CDN (a
#: compromised release, a floating "@5" tag moved on) must not run there. The hashes are those
#: of the npm package's files, which the CDN serves unchanged.
_SWAGGER = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5.36.0/"
SWAGGER_UI = {
    "js": (_SWAGGER + "swagger-ui-bundle.js",
           "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+"),
    "css": (_SWAGGER + "swagger-ui.css",
            "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc"),
}
#: where the token comes from when --token is not given
TOKEN_ENV = "LLMCELLS_SERVE_TOKEN"
#: the most ledger rows one /v1/usage request may ask for (each is about 1 KB of JSON, and its
#: making takes a worker thread and memory several times that)
MAX_USAGE_ROWS = 10_000
#: ledger columns that carry what was asked or answered: shown only with --expose-prompts
PROMPT_COLUMNS = ("prompt_preview", "prompt_text", "output_text", "prompt_hash")


class _Refused(Exception):
    """A request the policy refuses: status and a one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# ----- request bodies ----------------------------------------------------------------------------


class CallOptions(BaseModel):
    """Options common to every call. Unknown fields are refused by name."""

    model_config = ConfigDict(extra="forbid")

    system: str | None = Field(None, description="system prompt")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0, description="seconds the whole call may take (at most "
                                                          "the server's limit)")
    params: dict[str, Any] | None = Field(
        None, description="generation parameters in the provider's own names (any other key is "
                          "refused): " + ", ".join(GENERATION_PARAMS))


class GenerateBody(CallOptions):
    """One prompt to one model (or a chain, "claude|chatgpt")."""

    prompt: str = Field(..., min_length=1)
    model: str | None = Field(None, description="alias, provider:model, or a chain 'claude|chatgpt'")
    fallback: list[str] | None = Field(None, description="models to try next")
    fallback_on: list[str] | None = Field(None, description="error kinds that also move a chain on")


class CompareBody(CallOptions):
    """One prompt to several models (each may be a chain)."""

    prompt: str = Field(..., min_length=1)
    models: list[str] | None = Field(None, description="default: the configured compare models")


def _admit(policy: Policy, body: CallOptions, names: list[str]) -> dict[str, Any]:
    """The body's params through the allowlist, its timeout within the server's, and every model
    it names (chains included) a plain name, resolved, and refused if an agent CLI the server
    does not allow.
    Returns the checked params."""
    from .config import settings
    from .fallback import split
    from .models import resolve
    from .registry import PROVIDERS

    _check_text(body.model_dump(exclude_none=True))
    params = check_params(body.params)
    limit = policy.max_timeout or settings.timeout
    if body.timeout is not None and body.timeout > limit:
        raise _Refused(422, f"timeout: at most {limit:g} seconds on this server.")
    names = split(names)
    if len(names) > MAX_MODELS:
        raise _Refused(422, f"At most {MAX_MODELS} models per request (this one names {len(names)}).")
    for name in names:
        plain = _MODEL_NAME.fullmatch(name)
        spec = resolve(name) if plain else None
        if spec is None or not _MODEL_NAME.fullmatch(spec.name) or ".." in spec.name:
            raise _Refused(400, f"{name[:60]!r} is not a model name here: letters, digits and "
                                ". _ - + : / @, beginning with a letter or digit, at most 200.")
        # the name as the client wrote it: the server's own aliases and routes may name one
        if _RESOURCE.search(name.partition(":")[2]):
            raise _Refused(400, f"{name[:60]!r}: a model by name here, not a cloud resource path "
                                "(projects/..., arn:...), which would run the call in a project "
                                "or account of the client's choosing.")
        row = PROVIDERS.get(spec.provider)
        if row is not None and row.kind == "agent" and not policy.allow_agents:
            raise _Refused(403, f"{name}: agent CLIs are off in this service (the server may be "
                                "started with --allow-agents).")
        if spec.provider in _READS_FILES:
            raise _Refused(403, f"{name}: {_READS_FILES[spec.provider]}")
    return params


def _check_text(body: dict[str, Any]) -> None:
    """Refuse a string that is not Unicode text: JSON may write a lone surrogate ("\\ud800"),
    which no provider takes (the SDK fails to encode it after the call has begun, and the ledger
    gets an error row), so it gets the 422 of invalid UTF-8 now, with nothing sent. (A loop, not
    recursion: a body may nest lists as deep as the JSON parser goes.)"""
    todo: list[tuple[str, Any]] = [(key, value) for key, value in body.items()]
    while todo:
        where, value = todo.pop()
        if isinstance(value, dict):
            todo += [(where, k) for k in value] + [(f"{where}.{k}", v) for k, v in value.items()]
        elif isinstance(value, list):
            todo += [(f"{where}.{i}", v) for i, v in enumerate(value)]
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                where = where.encode("utf-8", "backslashreplace").decode()[:80]  # a key may be one
                raise _Refused(422, f"{where}: not valid Unicode text (a lone surrogate, such as "
                                    "\\ud800).") from None


# ----- results as JSON -----------------------------------------------------------------------------

#: fields that are the model's own words, passed through as they are
_VERBATIM = frozenset({"text", "reasoning", "output_text", "prompt_preview", "prompt_text"})


def _clean(value: Any, key: str | None = None) -> Any:
    """JSON-ready data: NaN and infinities as null, every string but the model's words scrubbed."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, str):
        return value if key in _VERBATIM else scrub(value)
    if isinstance(value, dict):
        return {k: _clean(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v, key) for v in value]
    return value


def result_json(r: Result) -> dict[str, Any]:
    """A Result as JSON-ready data (NaN as null, no key, credential or local path)."""
    row = r.to_row()
    row.update(usage=r.usage.as_dict(), finish_reason=r.finish_reason, simulated=r.simulated,
               attempts_by_model=r.attempts_by_model, reasoning=r.reasoning or None,
               notes=list(r.notes))
    for k in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
              "reasoning_tokens"):
        row.pop(k, None)
    return _clean(row)


# ----- the calls, on the private loop -----------------------------------------------------------


def _plan(body: GenerateBody, policy: Policy) -> Any:
    """The CallPlan of a generate or stream request, once the policy has admitted it."""
    from .config import settings
    from .fallback import chain_plan
    from .calls import make_plan

    model = body.model or settings.compare_models[0]
    params = _admit(policy, body, [model, *(body.fallback or [])])

    def make(name: str) -> Any:
        return make_plan(body.prompt, name, system=body.system, temperature=body.temperature,
                         max_tokens=body.max_tokens, timeout=body.timeout, params=params or None)

    return chain_plan(make, model, body.fallback, body.fallback_on)


async def _run_one(plan: Any, observer: CallObserver | None) -> Result:
    from .pipeline import run_plans

    results = await run_plans([plan], [observer])
    return results[0]


class _Feed(CallObserver):
    """Moves one call's events from the private loop to the request's loop, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self.loop, self.queue = loop, queue

    def _put(self, item: tuple[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def on_text(self, delta: str) -> None:
        self._put(("delta", {"text": delta}))

    def on_fallback(self, from_model: str, reason: str, to_model: str) -> None:
        self._put(("fallback", {"from": from_model, "reason": reason, "to": to_model}))


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class _CallStream(StreamingResponse):
    """A streamed response tied to a call: when the client disconnects (seen at once, not at the
    next write), or the stream ends in any way, the call's future is cancelled if still running,
    so that the engine stops the model call and records it as `cancelled`."""

    def __init__(self, content: Any, fut: Any, **kw: Any):
        super().__init__(content, **kw)
        self.fut = fut

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        stream = asyncio.ensure_future(self.stream_response(send))
        watch = asyncio.ensure_future(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait({stream, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not self.fut.done():
                self.fut.cancel()
            for task in (stream, watch):
                task.cancel()
            await asyncio.gather(stream, watch, return_exceptions=True)
            await self.body_iterator.aclose()


async def _until_disconnect(request: Request) -> None:
    """Return when the client hangs up. (Called once the body is read: receive() then waits
    for the disconnect, or for ever.)"""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _pinned(page: str) -> str:
    """FastAPI's Swagger page with each of its CDN files bound to its hash (see SWAGGER_UI)."""
    for url, sri in SWAGGER_UI.values():
        page = page.replace(f'"{url}"', f'"{url}" integrity="{sri}" crossorigin="anonymous"')
    return page


async def _unless_hung_up(request: Request, call: Any) -> Any:
    """Await call (a coroutine bridging to the private loop); if the client hangs up first, the
    call is cancelled (the engine records it as cancelled, as for a stream) and None is returned."""
    task = asyncio.ensure_future(call)
    watch = asyncio.ensure_future(_until_disconnect(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()  # bridge() cancels the run and waits for its ledger rows
        await asyncio.gather(task, watch, return_exceptions=True)
    return None if task.cancelled() else task.result()


def _hung_up() -> JSONResponse:
    """The answer to a request whose client hung up (nobody reads it; 499, as nginx logs it)."""
    return error_response(499, "The client closed the connection; the call was cancelled.")


# ----- the app ---------------------------------------------------------------------------------------


def create_app(token: str | None = None, max_body: int = MAX_BODY, *,
               policy: Policy | None = None) -> FastAPI:
    """The ASGI app under policy (by default: token, if given, and max_body; loopback Hosts
    only, no agent CLIs, no prompts in /v1/usage). With a token every request but the liveness
    probe needs `Authorization: Bearer <token>`."""
    policy = policy or Policy(token=token, max_body=max_body)
    app = FastAPI(title="llmcells", version=_version(), docs_url=None, redoc_url=None,
                  description="ChatGPT, Claude and Gemini behind one small API, with every call "
                              "in the llmcells usage ledger. Every request needs the bearer token "
                              "printed when the service started (Authorize, above).")

    app.add_middleware(Guard, policy=policy)

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return error_response(400, "The body is not valid JSON.")
        if tuple(first.get("loc", ())) == ("body",) and first.get("type") != "missing":
            return error_response(400, "Send the body as a JSON object.")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")[:80] or "body"
        if first.get("type") == "extra_forbidden":
            return error_response(400, f"Unknown field {where!r}.")
        return error_response(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(ParamsError)
    async def refused_params(request: Request, exc: ParamsError) -> JSONResponse:
        return error_response(400 if exc.unknown else 422, str(exc))

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> JSONResponse:
        return error_response(exc.status, exc.message)

    @app.exception_handler(LLMError)
    async def llm_error(request: Request, exc: LLMError) -> JSONResponse:
        return error_response(400, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: "No such endpoint.", 405: "Method not allowed here."}.get(
            exc.status_code, str(exc.detail))
        return error_response(exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"Internal error ({type(exc).__name__}); the call is in the ledger if it ran.")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> Any:
        from fastapi.openapi.docs import get_swagger_ui_html

        # The page fetches the schema with the token it was opened with (?token=...): the
        # server's own token, never the query's text, goes into the page.
        given = request.query_params.get("token")
        query = ""
        if given is not None and policy.token is not None and \
                hmac.compare_digest(digest(given), digest(policy.token)):
            query = "?token=" + quote(policy.token, safe="")
        page = get_swagger_ui_html(openapi_url="/openapi.json" + query, title="llmcells",
                                   swagger_js_url=SWAGGER_UI["js"][0], swagger_css_url=SWAGGER_UI["css"][0],
                                   swagger_favicon_url="data:,",
                                   swagger_ui_parameters={"persistAuthorization": False})
        return HTMLResponse(_pinned(bytes(page.body).decode()))

    @app.post("/v1/generate", summary="One model (or chain), JSON in, Result JSON out")
    async def generate(body: GenerateBody, request: Request) -> Any:
        plan = _plan(body, policy)
        result = await _unless_hung_up(request, _loop.bridge(_run_one(plan, None)))
        return _hung_up() if result is None else result_json(result)

    @app.post("/v1/stream", summary="Server-sent events: delta..., then one result event")
    async def stream(body: GenerateBody) -> StreamingResponse:
        plan = _plan(body, policy)  # bad input fails here, as a 4xx, before the stream starts
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        fut = _loop.submit(_run_one(plan, _Feed(loop, queue)))
        fut.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, ("end", None)))

        async def events() -> Any:
            yield _sse("start", {"model": plan.spec.id, "call_id": plan.info.call_id})
            while True:
                kind, data = await queue.get()
                if kind == "end":
                    break
                yield _sse(kind, data if kind == "delta" else _clean(data))
            yield _sse("result", result_json(fut.result()))

        return _CallStream(events(), fut, media_type="text/event-stream",
                           headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    @app.post("/v1/compare", summary="One prompt to several models at once")
    async def compare(body: CompareBody, request: Request) -> Any:
        from . import api
        from .config import settings

        params = _admit(policy, body, list(body.models or settings.compare_models))
        pending = api.compare(body.prompt, body.models, system=body.system,
                                   temperature=body.temperature, max_tokens=body.max_tokens,
                                   timeout=body.timeout, params=params or None, display=False)
        from ._loop import prepare

        comparison = await _unless_hung_up(request, _loop.bridge(prepare(pending)))
        if comparison is None:
            return _hung_up()
        return {"group_id": comparison.group_id, "results": [result_json(r) for r in comparison]}

    @app.get("/v1/health", summary="The health table: one row per provider and endpoint")
    async def health(timeout: float = Query(DEFAULT_TIMEOUT_S, ge=DEFAULT_TIMEOUT_S, le=30)
                     ) -> list[dict[str, Any]]:
        from .healthcheck import check_all

        # Not under the default deadline: a provider that does not list its models within the
        # check's deadline is "down" for every call this process makes next (fallback chains
        # try it last for DOWN_TTL_S), so a client's short deadline would let it mark healthy
        # providers down and send other clients' chains to the models it chose.

        return _clean(await _loop.bridge(check_all(timeout)))

    def _records(frame: Any) -> Response:
        """The frame's rows as a JSON response: no prompt columns unless exposed, paths as file
        names, every string scrubbed. (Called on a worker thread: for thousands of rows this is
        seconds of work, which on uvicorn's loop would stall every other client.)"""
        frame = frame.copy()
        if not policy.expose_prompts:
            frame = frame.drop(columns=[c for c in PROMPT_COLUMNS if c in frame.columns])
        for col in frame.columns:
            if str(frame[col].dtype).startswith("datetime"):
                frame[col] = frame[col].astype(str)
        if "path" in frame.columns:  # the notebook or script of each call: its name, no folder
            frame["path"] = frame["path"].map(
                lambda p: re.split(r"[\\/]", p)[-1] if isinstance(p, str) else p)
        rows = _clean(json.loads(frame.to_json(orient="records", date_format="iso")))
        return Response(json.dumps(rows, ensure_ascii=False, allow_nan=False,
                                   separators=(",", ":")).encode("utf-8"),
                        media_type="application/json")

    @app.get("/v1/usage", response_model=list[dict[str, Any]],
             summary=f"Ledger rows, with llmcells.usage()'s filters (limit: the newest N, 100 "
                     f"unless given, at most {MAX_USAGE_ROWS:,}); no prompts unless the server was "
                     "started with --expose-prompts")
    async def usage(session: bool = False, since: str | None = None, model: list[str] | None = Query(None),
                    status: list[str] | None = Query(None), group_id: str | None = None,
                    batch_id: str | None = None,
                    limit: int | None = Query(100, ge=1, le=MAX_USAGE_ROWS)) -> Response:
        from .ledger import usage as ledger_usage

        def rows() -> Response:
            return _records(ledger_usage(session=session, since=since, model=model, status=status,
                                         group_id=group_id, batch_id=batch_id, limit=limit))
        return await asyncio.to_thread(rows)

    @app.get("/v1/costs", response_model=list[dict[str, Any]],
             summary="Costs aggregated, with llmcells.costs()'s keys and filters (simulated calls "
                     "left out unless include_simulated)")
    async def costs(by: list[str] = Query(["model"]), session: bool = False, since: str | None = None,
                    model: list[str] | None = Query(None), status: list[str] | None = Query(None),
                    group_id: str | None = None, batch_id: str | None = None,
                    include_simulated: bool = False) -> Response:
        from .ledger import costs as ledger_costs

        keys = [k for b in by for k in b.split(",") if k]

        def rows() -> Response:
            return _records(ledger_costs(by=keys, session=session, since=since, model=model,
                                         status=status, group_id=group_id, batch_id=batch_id,
                                         include_simulated=include_simulated))
        return await asyncio.to_thread(rows)

    schema = app.openapi()
    schema.setdefault("components", {})["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer"}}
    schema["security"] = [{"bearer": []}]
    return app


def _version() -> str:
    from ._version import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmcells serve", description=(
        "Serve llmcells over HTTP: POST /v1/generate, /v1/stream, /v1/compare; GET /v1/health, "
        "/v1/usage, /v1/costs; OpenAPI page at /docs; GET /livez needs no token. See "
        "docs/security.md."))
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", help=f"the bearer token every request must send (default: "
                                   f"${TOKEN_ENV}, else one generated and printed at start)")
    p.add_argument("--no-token", action="store_true",
                   help="no token at all (loopback only: any local process may then call)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also serve requests whose Host is NAME (repeatable; '*' for any, e.g. "
                        "behind a proxy that checks it)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="let pages from ORIGIN (e.g. https://app.example) call the service "
                        "(repeatable)")
    p.add_argument("--allow-agents", action="store_true",
                   help="serve agent CLI models (claude-code:, gemini-cli:), with the server's own "
                        "options (no tools, a fresh folder); never codex:, which can read files "
                        "with its tools off")
    p.add_argument("--expose-prompts", action="store_true",
                   help="show the ledger's prompts and answers in /v1/usage")
    p.add_argument("--simulate", action="store_true", help="answer every provider from the simulator")
    p.add_argument("--max-body", type=_number(int, 1), default=MAX_BODY, help="largest request body, in bytes")
    p.add_argument("--max-timeout", type=_number(float, 0, above=True), default=None,
                   help="longest call a client may ask for, in seconds (default: the configured "
                        "timeout)")
    p.add_argument("--rate-limit", type=_number(float, 0), default=RATE_PER_MINUTE, metavar="N",
                   help=f"requests per minute per client (default {RATE_PER_MINUTE}; 0: no limit)")
    p.add_argument("--max-concurrent", type=_number(int, 0), default=MAX_CONCURRENT, metavar="N",
                   help=f"requests running at once per client (default {MAX_CONCURRENT}; 0: no limit)")
    p.add_argument("--max-connections", type=_number(int, 0), default=MAX_CONNECTIONS, metavar="N",
                   help=f"connections open at once per client (default {MAX_CONNECTIONS}; 0: no "
                        f"limit); each must send a request's head within {HEAD_TIMEOUT:g} s")
    p.add_argument("--access-log", action="store_true", help="log every request (never keys or tokens)")
    return p


def _number(kind: type, least: float, above: bool = False) -> Any:
    """An argparse type: a kind (int or float) of at least `least` (above it, with above=True).
    A negative limit would refuse every request, and nothing would say why."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value < least or (above and value == least):
            raise argparse.ArgumentTypeError(f"must be {'more than' if above else 'at least'} {least:g}, not {text}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m llmcells serve`: parse the options and run uvicorn until interrupted."""
    args = _parser().parse_args(argv)
    say = lambda line: print(f"llmcells serve: {line}", file=sys.stderr, flush=True)  # noqa: E731
    loopback = is_loopback(args.host)
    if args.no_token and (args.token or os.environ.get(TOKEN_ENV)):
        say(f"--no-token and a token (--token or ${TOKEN_ENV}) contradict each other.")
        return 2
    if args.no_token and not loopback:
        say(f"--no-token works only on a loopback address, not {args.host}: a token is needed "
            "when other machines can reach the port.")
        return 2
    if args.no_token and "*" in (*args.allow_host, *args.allow_origin):
        # any Host: a page of any site reaches the port by DNS rebinding, as its own origin;
        # any Origin: a page of any site calls it from the browser. Without a token, every web
        # page open on this machine could spend the keys and read the answers.
        say("--no-token can't go with --allow-host '*' or --allow-origin '*': any web page open "
            "on this machine could then call the service. Use a token, or name the host or origin.")
        return 2
    if args.token is not None:
        token, source = args.token.strip(), "--token"
    elif os.environ.get(TOKEN_ENV):
        token, source = os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    elif args.no_token:
        token, source = None, None
    else:
        token, source = secrets.token_urlsafe(24), None
    if token is not None and len(token) < 8:
        say("the token must have at least 8 characters.")
        return 2
    if args.simulate:
        from ._simulation import simulate

        simulate()
    policy = Policy(token=token, bound_host=args.host, allow_hosts=tuple(args.allow_host),
                    allow_origins=tuple(o.rstrip("/") for o in args.allow_origin),
                    allow_agents=args.allow_agents, expose_prompts=args.expose_prompts,
                    max_body=args.max_body, max_timeout=args.max_timeout,
                    rate_per_minute=args.rate_limit, max_concurrent=args.max_concurrent,
                    max_connections=args.max_connections)
    app = create_app(policy=policy)
    bound = ip_of(host_name(args.host))
    shown = "127.0.0.1" if bound is not None and bound.is_unspecified else \
        f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{shown}:{args.port}"
    say(f"serving on {url}" + ("" if loopback else f" (bound to {args.host})"))
    if token is None:
        say("WARNING: no token (--no-token): any process on this machine may call the service, "
            "and spend your keys.")
        say(f"try: curl {url}/v1/health")
    elif source is None:
        say("the token, generated for this run (set --token or $LLMCELLS_SERVE_TOKEN to choose one):")
        say(f"try: curl -H 'Authorization: Bearer {token}' {url}/v1/health")
        say(f"or open {url}/docs?token={token}")
    else:
        say(f"the token is the one given by {source}.")
        shown_token = "<token>" if source == "--token" else f"${TOKEN_ENV}"
        say(f"try: curl -H \"Authorization: Bearer {shown_token}\" {url}/v1/health")
    if not loopback:
        say(f"WARNING: bound to {args.host}: other machines can reach the port, over plain HTTP "
            "(the token, prompts and answers travel unencrypted); put a TLS proxy in front.")
    if args.allow_agents:
        say("agent CLIs are allowed (--allow-agents), with the server's options: no tools, a "
            "fresh folder per call.")
    # proxy_headers=False: the client is the connection's address, never an X-Forwarded-For it
    # wrote itself (uvicorn trusts one from 127.0.0.1 by default, so every local process could
    # pick its own address, and with it a fresh rate-limit bucket per request)
    # http: h11 with a per-client cap on open connections and a deadline for each request's
    # head (serve_guard.http_protocol), so that connections that never finish a request can't
    # use up the server's file descriptors
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            access_log=args.access_log, timeout_graceful_shutdown=2,
                            proxy_headers=False, http=http_protocol(policy))
    access = logging.getLogger("uvicorn.access")  # configured by uvicorn.Config just above
    access.addFilter(HideTokens())
    if args.access_log:
        access.setLevel(logging.INFO)  # its lines are INFO: log_level="warning" hid them all
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler it
    # found: Python's default one ended the process at once, without its exit handlers, so the
    # agent CLIs' private folders (their transcripts of clients' prompts) stayed in the temp
    # folder. This handler ends it as an exit does, with the signal's exit status.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    uvicorn.Server(config).run()
    return 0


def _exit_on_signal(signum: int, frame: Any) -> None:
    """End the process as an exit does (exit handlers run), with the status a signal gives."""
    sys.exit(128 + signum)
