"""A small HTTP service over the same engine: `python -m llmcells serve [--host] [--port] [--token]`.

FastAPI + uvicorn, an optional extra (`pip install 'llmcells[serve]'`), imported only here.
Endpoints: POST /v1/generate, /v1/stream (server-sent events), /v1/compare; GET /v1/health,
/v1/usage, /v1/costs; the OpenAPI page at /docs. Every call is recorded in the ledger as any other.

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
import ipaddress
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

try:
    import uvicorn
    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from pydantic import BaseModel, Field
except ImportError as _missing:  # pragma: no cover - the hint is the point
    raise ImportError("The HTTP service needs FastAPI and uvicorn: pip install 'llmcells[serve]'"
                      ) from _missing

from . import _loop
from .errors import LLMError, redact
from .types import CallObserver, Result

#: the largest request body accepted, in bytes
MAX_BODY = 1_000_000


# ----- request bodies ----------------------------------------------------------------------------


class CallOptions(BaseModel):
    """Options common to every call."""

    system: str | None = Field(None, description="system prompt")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0, description="seconds the whole call may take")
    params: dict[str, Any] | None = Field(None, description="extra provider-specific request fields")


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


# ----- results as JSON -----------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def result_json(r: Result) -> dict[str, Any]:
    """A Result as JSON-ready data (NaN as null)."""
    row = r.to_row()
    row.update(usage=r.usage.as_dict(), finish_reason=r.finish_reason, simulated=r.simulated,
               attempts_by_model=r.attempts_by_model, reasoning=r.reasoning or None,
               notes=list(r.notes))
    for k in ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
              "reasoning_tokens"):
        row.pop(k, None)
    return _clean(row)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": redact(message).splitlines()[0][:500]}, status_code=status)


# ----- the calls, on the private loop -----------------------------------------------------------


def _plan(body: GenerateBody) -> Any:
    from .config import settings
    from .fallback import chain_plan
    from .calls import make_plan

    def make(model: str) -> Any:
        return make_plan(body.prompt, model, system=body.system, temperature=body.temperature,
                         max_tokens=body.max_tokens, timeout=body.timeout, params=body.params)

    return chain_plan(make, body.model or settings.compare_models[0], body.fallback, body.fallback_on)


async def _run_one(plan: Any, observer: CallObserver | None) -> Result:
    from .engine import run_plans

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
    return _error(499, "The client closed the connection; the call was cancelled.")


class _TooLarge(Exception):
    """A request body over the limit (raised while the app reads it)."""


class _Guard:
    """ASGI middleware: the bearer token (when set) and the body size limit, before any handler.
    Pure ASGI, not BaseHTTPMiddleware, so that streamed responses and disconnects pass through."""

    def __init__(self, app: Any, token: str | None, max_body: int):
        self.app, self.token, self.max_body = app, token, max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.token is not None:
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                response = _error(401, "Missing or wrong token: send 'Authorization: Bearer <token>'.")
                return await response(scope, receive, send)
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return await _error(413, f"The body is over {self.max_body} bytes.")(scope, receive, send)
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge()
            return message

        await self.app(scope, limited, send)


# ----- the app ---------------------------------------------------------------------------------------


def create_app(token: str | None = None, max_body: int = MAX_BODY) -> FastAPI:
    """The ASGI app; token: every request then needs `Authorization: Bearer <token>`."""
    app = FastAPI(title="llmcells", version=_version(),
                  description="ChatGPT, Claude and Gemini behind one small API, with every call "
                              "in the llmcells usage ledger.")

    app.add_middleware(_Guard, token=token, max_body=max_body)

    @app.exception_handler(_TooLarge)
    async def too_large(request: Request, exc: _TooLarge) -> JSONResponse:
        return _error(413, f"The body is over {max_body} bytes.")

    @app.exception_handler(RequestValidationError)
    async def bad_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error(400, "The body is not valid JSON.")
        if tuple(first.get("loc", ())) == ("body",) and first.get("type") != "missing":
            return _error(400, "Send the body as a JSON object, with Content-Type: application/json.")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return _error(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(LLMError)
    async def llm_error(request: Request, exc: LLMError) -> JSONResponse:
        return _error(400, exc.message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"Internal error ({type(exc).__name__}); the call is in the ledger if it ran.")

    @app.post("/v1/generate", summary="One model (or chain), JSON in, Result JSON out")
    async def generate(body: GenerateBody, request: Request) -> Any:
        plan = _plan(body)
        result = await _unless_hung_up(request, _loop.bridge(_run_one(plan, None)))
        return _hung_up() if result is None else result_json(result)

    @app.post("/v1/stream", summary="Server-sent events: delta..., then one result event")
    async def stream(body: GenerateBody) -> StreamingResponse:
        plan = _plan(body)  # bad input fails here, as a 4xx, before the stream starts
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
                yield _sse(kind, data)
            yield _sse("result", result_json(fut.result()))

        return _CallStream(events(), fut, media_type="text/event-stream",
                           headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    @app.post("/v1/compare", summary="One prompt to several models at once")
    async def compare(body: CompareBody, request: Request) -> Any:
        import llmcells

        pending = llmcells.compare(body.prompt, body.models, system=body.system,
                                   temperature=body.temperature, max_tokens=body.max_tokens,
                                   timeout=body.timeout, params=body.params, display=False)
        from ._loop import prepare

        comparison = await _unless_hung_up(request, _loop.bridge(prepare(pending)))
        if comparison is None:
            return _hung_up()
        return {"group_id": comparison.group_id, "results": [result_json(r) for r in comparison]}

    @app.get("/v1/health", summary="The health table: one row per provider and endpoint")
    async def health(timeout: float = Query(3.0, gt=0, le=30)) -> list[dict[str, Any]]:
        from .healthcheck import check_all

        return _clean(await _loop.bridge(check_all(timeout)))

    def _records(frame: Any) -> list[dict[str, Any]]:
        frame = frame.copy()
        for col in frame.columns:
            if str(frame[col].dtype).startswith("datetime"):
                frame[col] = frame[col].astype(str)
        return _clean(json.loads(frame.to_json(orient="records", date_format="iso")))

    @app.get("/v1/usage", summary="Ledger rows, with llmcells.usage()'s filters (limit: the "
                                  "newest N, 100 unless given)")
    async def usage(session: bool = False, since: str | None = None, model: list[str] | None = Query(None),
                    status: list[str] | None = Query(None), group_id: str | None = None,
                    batch_id: str | None = None, limit: int | None = Query(100, ge=1, le=100_000)
                    ) -> list[dict[str, Any]]:
        from .ledger import usage as ledger_usage

        frame = await asyncio.to_thread(ledger_usage, session=session, since=since, model=model,
                                        status=status, group_id=group_id, batch_id=batch_id, limit=limit)
        return _records(frame)

    @app.get("/v1/costs", summary="Costs aggregated, with llmcells.costs()'s keys and filters")
    async def costs(by: list[str] = Query(["model"]), session: bool = False, since: str | None = None,
                    model: list[str] | None = Query(None), status: list[str] | None = Query(None),
                    group_id: str | None = None, batch_id: str | None = None) -> list[dict[str, Any]]:
        from .ledger import costs as ledger_costs

        keys = [k for b in by for k in b.split(",") if k]
        frame = await asyncio.to_thread(ledger_costs, by=keys, session=session, since=since,
                                        model=model, status=status, group_id=group_id, batch_id=batch_id)
        return _records(frame)

    return app


def _version() -> str:
    from . import __version__

    return __version__


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m llmcells serve`: parse the options and run uvicorn until interrupted."""
    p = argparse.ArgumentParser(prog="llmcells serve", description=(
        "Serve llmcells over HTTP: POST /v1/generate, /v1/stream, /v1/compare; GET /v1/health, "
        "/v1/usage, /v1/costs; OpenAPI page at /docs."))
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (needed off loopback)")
    p.add_argument("--simulate", action="store_true", help="answer every provider from the simulator")
    p.add_argument("--max-body", type=int, default=MAX_BODY, help="largest request body, in bytes")
    p.add_argument("--access-log", action="store_true", help="log every request (never keys)")
    args = p.parse_args(argv)
    if not _loopback(args.host) and not args.token:
        print(f"llmcells serve: binding to {args.host} needs --token (every request must then "
              "send it as a Bearer token).", file=sys.stderr)
        return 2
    if args.simulate:
        from ._simulation import simulate

        simulate()
    app = create_app(token=args.token, max_body=args.max_body)
    print(f"llmcells serve: http://{args.host}:{args.port}/docs"
          + (" (token required)" if args.token else ""), file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                access_log=args.access_log, timeout_graceful_shutdown=2)
    return 0
