"""The simulator's asyncio server: routing, auth, faults, pacing, and the `/_sim/*` control API."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import time
from dataclasses import asdict
from types import ModuleType
from typing import Any

from . import anthropic, azure, bedrock, catalog, google, listing, openai, rich, validate, vertex
from . import tools as sim_tools
from .common import Plan, Prompt, Reply, api_key, compact, html_page
from .scripted import scripted_answer
from .http11 import ClientGone, Request, Response, read_request
from .state import Fault, Settings, SimRequest, State
from .text import answer_tokens, count_prompt_tokens, seed_for, split_tokens

log = logging.getLogger(__name__)

_GEMINI_PATH = re.compile(r"^/(v1|v1beta|v1alpha)/models/([^/:]+):(streamGenerateContent|generateContent)$")
_SECRET_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")
_HTTP_FAULTS = ("401", "404", "400", "429", "500", "529", "billing")
_HTML_FAULTS = {"html200": 200, "html502": 502}
_STREAM_FAULTS = ("midstream_error", "cut", "cut_mid_event", "malformed")
# What a server may put on a kept-alive connection after an answer: the rest of a body that was
# longer than its Content-Length.
JUNK = b'{"note": "bytes past the declared end of the body"}\r\n'
# Placeholders for the two halves of U+1F600, replaced by their JSON escapes once the event is
# encoded (a lone surrogate cannot be encoded as UTF-8).
_HIGH, _LOW = "@@sim-high-surrogate@@", "@@sim-low-surrogate@@"
_ESCAPES = {_HIGH.encode(): b"\\ud83d", _LOW.encode(): b"\\ude00"}


def route(method: str, path: str) -> tuple[ModuleType, str, str, str | None] | None:
    """(formatter module, internal api, logged api, model from the path) for a provider URL."""
    if method != "POST":
        return None
    if path == "/v1/chat/completions":
        return openai, "chat", "chat", None
    if path == "/v1/responses":
        return openai, "responses", "responses", None
    if path == "/v1/messages":
        return anthropic, "messages", "messages", None
    match = _GEMINI_PATH.match(path)
    if match:
        api = "stream" if match.group(3) == "streamGenerateContent" else "generate"
        return google, api, "gemini", match.group(2)
    return azure.route(method, path) or vertex.route(method, path)  # the cloud routes


def route_of(module: Any) -> str:
    """The name faults and the request log know a formatter's requests by: a cloud route's
    ("azure", "vertex") or its provider's."""
    return getattr(module, "ROUTE", module.PROVIDER)


def _rates(module: Any, input_tokens: int) -> dict[str, str]:
    """The rate-limit headers of an answer, as the provider (or the cloud route) sends them."""
    return getattr(module, "rate_headers", listing.rate_headers)(module.PROVIDER, input_tokens)


def _masked(req: Request) -> tuple[str, dict[str, str]]:
    headers = {k: ("***" if k in _SECRET_HEADERS else v) for k, v in req.headers.items()}
    return re.sub(r"([?&]key=)[^&]*", r"\1***", req.target), headers


def _parse(module: ModuleType, api: str, raw: bytes, path_model: str | None) -> tuple[Any, Prompt | None]:
    """(parsed JSON body, prompt); the prompt is None when the body is unusable."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return raw.decode("utf-8", "replace"), None
    try:
        if isinstance(body, dict) and hasattr(module, "wire_body"):  # a cloud route's own body
            body = module.wire_body(body, path_model)
        return body, module.parse(api, body, path_model) if isinstance(body, dict) else None
    except (ValueError, TypeError, AttributeError):
        return body, None


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    if delay > 0:
        await asyncio.sleep(delay)


def _decorate(event: bytes, kind: str | None) -> bytes:
    """An encoded SSE event as the fault `kind` sends it (unchanged for other faults)."""
    if kind == "split_surrogate":
        for placeholder, escape in _ESCAPES.items():
            event = event.replace(placeholder, escape)
        return event
    if kind not in ("sse_comments", "sse_event_ping", "sse_no_space"):
        return event
    sep = b"\r\n" if event.endswith(b"\r\n") else b"\n"
    if kind == "sse_comments":
        return b": ping" + sep + sep + event
    if kind == "sse_event_ping":
        return b"event: ping" + sep + b'data: {"type": "ping"}' + sep + sep + event
    return re.sub(rb"(^|\n)(data|event): ", rb"\1\2:", event)


class SimServer:
    """Serves the three providers' APIs on one loopback port."""

    def __init__(self, state: State, host: str, port: int, *, warm_types: bool = True) -> None:
        self.state = state
        self.warm_types = warm_types
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        """Start listening; returns the bound port."""
        if self.state.strict and self.warm_types:
            validate.warm_up()
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # --- connections ------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    break
                resp = Response(writer, req.keep_alive)
                try:
                    await self._dispatch(req, resp)
                except (ClientGone, ConnectionError):
                    raise
                except Exception:
                    log.exception("simulator: error while answering %s %s", req.method, req.path)
                    if resp.started:
                        resp.abort()
                    else:
                        await resp.send(500, {"content-type": "application/json"},
                                        compact({"error": {"message": "simulator bug"}}).encode())
                if not resp.keep_alive or writer.is_closing():
                    break
        except (ClientGone, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _dispatch(self, req: Request, resp: Response) -> None:
        from . import batches  # provider batch APIs: their own module

        if batches.handles(req):
            await batches.dispatch(self, req, resp)
            return
        if req.path.startswith("/_sim/"):
            status, body = self._control(req)
            await resp.send(status, {"content-type": "application/json"}, compact(body).encode())
            return
        if bedrock.handles(req):  # [routes] Bedrock: the Anthropic request inside, answered as Bedrock
            inner = await bedrock.translate(req, resp, strict=self.state.strict)
            if inner is not None:
                await self._generate(inner[0], inner[1], anthropic, "messages", "bedrock", inner[2])
            return
        for cloud in (azure, vertex):  # a cloud route's model list
            listed = cloud.listing(req.method, req.path, cloud.api_key(req))
            if listed is not None:
                await resp.send(listed.status, listed.headers, listed.body)
                return
        listed = listing.answer(req.method, req.path, req.headers, req.query, api_key(req))
        if listed is not None:  # a model list (GET /v1/models, /v1beta/models)
            await resp.send(listed.status, listed.headers, listed.body)
            return
        found = route(req.method, req.path)
        if found is None:
            body = {"error": {"message": f"Unknown request URL: {req.method} {req.path}.",
                              "type": "invalid_request_error", "param": None, "code": "unknown_url"}}
            await resp.send(404, {"content-type": "application/json"}, compact(body).encode())
            return
        await self._generate(req, resp, *found)

    # --- generation -------------------------------------------------------------------------
    async def _generate(self, req: Request, resp: Response, module: ModuleType, api: str,
                        logged_api: str, path_model: str | None) -> None:
        early = getattr(module, "precheck", lambda _req: None)(req)  # e.g. Azure's api-version
        if early is not None:
            await resp.send(early.status, early.headers, early.body)
            return
        body, prompt = _parse(module, api, req.body, path_model)
        key = getattr(module, "api_key", api_key)(req)  # a cloud route's own auth header
        refused = "401" if not key or key.startswith("invalid") else None
        refusal = None
        if refused is None and self.state.strict:  # what the real API refuses (sim/validate.py)
            model = path_model or (str(body.get("model", "")) if isinstance(body, dict) else "")
            # (by the route's own id: Azure and Vertex AI retire models on their own schedules)
            if model and catalog.status(route_of(module), model) == "retired":
                refused = "404"
            else:
                refusal = (validate.request_size(len(req.body), module.PROVIDER)
                           or validate.check(api, body, path_model, prompt.text if prompt else "",
                                             req.headers))
        elif refused is None and prompt is None:
            refused = "400"
        if prompt is None:
            prompt = Prompt(path_model or (str(body.get("model", "")) if isinstance(body, dict) else ""),
                            api == "stream", "", None)
        fault = None if refused or refusal else self.state.take_fault(route_of(module), prompt.model)
        path, headers = _masked(req)
        prompt.rich = rich.inspect(module.PROVIDER, api, body)  # attachments and schema
        prompt.rich.invalid_json = fault is not None and fault.fault == "invalid_json"
        logged = SimRequest(time.monotonic(), time.time(), route_of(module), logged_api, path,
                            prompt.model, prompt.stream, headers, body, fault.fault if fault else None,
                            attachments=prompt.rich.attachments)
        self.state.record(logged)
        # --- tools (sim/tools.py): a directed tool call, or an answer quoting tool results ---
        tool_turn = None if refused or refusal else sim_tools.turn(module.PROVIDER, api, body)
        if refusal is not None:
            await self._send(resp, module.refuse(refusal, api), None)
        elif tool_turn is not None and tool_turn.calls and fault is None:
            await self._tool_calls(resp, module, api, prompt, tool_turn.calls,
                                   thinking=validate.claude_thinks(body))
        else:
            # (the answer after tool results quotes them, unless a schema asks for its JSON)
            quoted = tool_turn.text if tool_turn is not None and prompt.rich.schema is None else None
            await self._answer(req, resp, module, api, prompt, key, refused, fault, text=quoted)
        # --- end tools ---
        if not resp.gone:  # (a client that left raises ClientGone above)
            logged.completed = time.monotonic()

    async def _answer(self, req: Request, resp: Response, module: ModuleType, api: str,
                      prompt: Prompt, key: str, refused: str | None, fault: Fault | None,
                      text: str | None = None) -> None:

        def fail(name: str) -> Reply:
            return module.error(name, prompt.model, api=api, stream=prompt.stream, key=key,
                                retry_after=fault.retry_after if fault else None)

        if refused:
            await self._send(resp, fail(refused), None)
        elif fault is not None and fault.fault == "drop":
            resp.abort()
        elif fault is not None and fault.fault in _HTTP_FAULTS:
            await self._send(resp, fail(fault.fault), fault)
        elif fault is not None and fault.fault in _HTML_FAULTS:
            await self._send(resp, html_page(_HTML_FAULTS[fault.fault]), fault)
        else:
            settings = self.state.resolve(prompt.model)
            if text is not None:  # the answer quoting tool results (sim/tools.py)
                settings = dataclasses.replace(settings, text=text)
            plan = self._plan(api, prompt, settings)
            if prompt.stream:
                await self._stream(resp, module, plan, settings, fault)
            else:
                await self._complete(resp, module, plan, settings, fault, fail)

    def _plan(self, api: str, prompt: Prompt, settings: Settings) -> Plan:
        count = self.state.next_count()
        salt = count if (prompt.temperature or 0) > 0 else None
        # The answer quotes the latest user turn (the user's own words, not an agent CLI's
        # headers); a judge's prompt or a sum is looked for there first, then in the whole prompt.
        quoted = prompt.latest or prompt.text
        scripted = None if settings.text is not None else (
            rich.answer(prompt.rich, quoted) or scripted_answer(prompt.model, quoted)
            or (scripted_answer(prompt.model, prompt.text) if quoted != prompt.text else None))
        if settings.text is not None and settings.delta_chars:
            n = max(int(settings.delta_chars), 1)
            tokens = [settings.text[i:i + n] for i in range(0, len(settings.text), n)]
        elif settings.text is not None:
            tokens = split_tokens(settings.text)
        elif scripted is not None:  # a judge's grading prompt, an arithmetic question
            tokens = split_tokens(scripted)
        else:
            tokens = answer_tokens(prompt.model, seed_for(prompt.model, prompt.key, salt),
                                   settings.output_tokens, quoted)
            if settings.delta_chars:
                text, n = "".join(tokens), max(int(settings.delta_chars), 1)
                tokens = [text[i:i + n] for i in range(0, len(text), n)]
        truncated = prompt.max_tokens is not None and len(tokens) > prompt.max_tokens
        if truncated:
            tokens = tokens[:max(int(prompt.max_tokens or 0), 0)]
        return Plan(api, prompt.model, tokens, truncated, count_prompt_tokens(prompt.text),
                    cached_tokens=settings.cached_input_tokens,
                    cache_write_tokens=settings.cache_write_tokens,
                    reasoning_tokens=settings.reasoning_tokens, include_usage=prompt.include_usage,
                    service_tier=prompt.service_tier or "default")

    async def _tool_calls(self, resp: Response, module: ModuleType, api: str, prompt: Prompt,
                          calls: list, *, thinking: bool = False) -> None:
        """A turn that ends in tool calls: streamed, or one JSON body (sim/tools.py writes both);
        with Claude's thinking on, it thinks (a signed thinking block) before the calls."""
        settings = self.state.resolve(prompt.model)
        plan = self._plan(api, prompt, settings)
        plan.thinking = thinking and module.PROVIDER == "anthropic"
        _, n_out = sim_tools.usage_counts(prompt.text, calls)
        plan.tokens, plan.truncated = ["x"] * n_out, False
        # Streamed, a turn over the request's max tokens is cut while calling (sim/tools.py);
        # Gemini sends its calls whole, and a whole body has no cut-off JSON to send.
        if prompt.stream and module.PROVIDER != "google" and prompt.max_tokens is not None \
                and n_out > prompt.max_tokens:
            plan.tokens, plan.truncated = ["x"] * max(int(prompt.max_tokens), 1), True
        ttft, interval = self._timing(settings, None)
        rate = _rates(module, plan.input_tokens)
        if not prompt.stream:
            await asyncio.sleep(ttft)
            body = sim_tools.complete(module.PROVIDER, api, plan, calls)
            await resp.send(200, {**module.headers(False), **rate}, body)
            return
        await resp.start_chunked(200, {**module.headers(True), **rate})
        events = sim_tools.events(module.PROVIDER, api, plan, calls)
        await asyncio.sleep(ttft)
        for event in events:
            await resp.chunk(event)
            if interval:
                await asyncio.sleep(interval)
        await resp.end()

    @staticmethod
    def _timing(settings: Settings, fault: Fault | None) -> tuple[float, float]:
        """(seconds before the first token, seconds between tokens)."""
        ttft = max(settings.ttft or 0.0, 0.0)
        if fault is not None and fault.fault == "slow_first_token":
            ttft += fault.delay
        tps = settings.tokens_per_s
        return ttft, (1.0 / tps if tps and tps > 0 else 0.0)

    async def _send(self, resp: Response, reply: Reply, fault: Fault | None) -> None:
        headers = dict(reply.headers)
        if fault is not None and fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        if fault is not None and fault.retry_after_ms is not None:
            headers["retry-after-ms"] = str(fault.retry_after_ms)
        await resp.send(reply.status, headers, reply.body)

    async def _complete(self, resp: Response, module: ModuleType, plan: Plan, settings: Settings,
                        fault: Fault | None, fail: Any) -> None:
        ttft, interval = self._timing(settings, fault)
        await asyncio.sleep(ttft + interval * len(plan.tokens))
        kind = fault.fault if fault is not None else None
        if kind == "midstream_error":
            await self._send(resp, fail("500"), None)
            return
        reply = module.complete(plan)
        reply.headers = {**reply.headers, **_rates(module, plan.input_tokens)}
        if kind in ("cut", "cut_mid_event"):
            await resp.send_truncated(200, reply.headers, reply.body)
            return
        if kind == "malformed":
            reply.body = reply.body[: len(reply.body) // 2]
        if kind == "junk_after_body":
            await resp.send(reply.status, reply.headers, reply.body, trailing=JUNK)
            return
        if kind == "drop_after_terminal":  # the whole body, then a reset instead of the next request
            await self._send(resp, reply, None)
            await resp.reset()
            return
        await self._send(resp, reply, None)

    async def _stream(self, resp: Response, module: ModuleType, plan: Plan, settings: Settings,
                      fault: Fault | None) -> None:
        fmt = module.stream(plan)
        kind = fault.fault if fault is not None else None
        if kind == "junk_after_body":
            await self._stream_with_junk(resp, module, fmt, plan, settings)
            return
        await resp.start_chunked(200, {**module.headers(True), **_rates(module, plan.input_tokens)})

        async def send(event: bytes) -> None:
            await resp.chunk(_decorate(event, kind))

        opening = fmt.open()
        if kind == "reset_after_start":
            for event in opening[:1] or [fmt.delta("")]:  # Gemini has no start event
                await send(event)
            await resp.reset()
            return
        for event in opening:
            await send(event)
        ttft, interval = self._timing(settings, fault)
        first = asyncio.get_running_loop().time() + ttft
        stop_at = fault.after_tokens if fault is not None and kind in _STREAM_FAULTS else None
        split_at = fault.after_tokens if kind == "split_surrogate" else None
        for i, token in enumerate(plan.tokens):
            await _sleep_until(first + i * interval)
            if i == stop_at:
                await self._break(resp, fmt, fault, lambda: fmt.delta(token))
                return
            if i == split_at:
                await send(fmt.delta(_HIGH))
                await send(fmt.delta(_LOW))
            await send(fmt.delta(token))
        if stop_at is not None:
            await self._break(resp, fmt, fault, lambda: fmt.close()[0])
            return
        for event in fmt.close():
            await send(event)
        if kind == "drop_after_terminal":
            await resp.reset()
        else:
            await resp.end()

    async def _stream_with_junk(self, resp: Response, module: ModuleType, fmt: Any, plan: Plan,
                                settings: Settings) -> None:
        """The stream framed by a Content-Length (as some proxies send it) that is shorter than
        what follows: junk comes after the last event, in the same write."""
        opening = fmt.open()
        deltas = [fmt.delta(token) for token in plan.tokens]
        closing = fmt.close()
        events = opening + deltas + closing
        await resp.start_fixed(200, module.headers(True), sum(len(e) for e in events))
        ttft, interval = self._timing(settings, None)
        first = asyncio.get_running_loop().time() + ttft
        for event in opening:
            await resp.raw(event)
        for i, event in enumerate(deltas):
            await _sleep_until(first + i * interval)
            await resp.raw(event)
        for event in closing[:-1]:
            await resp.raw(event)
        await resp.raw(closing[-1] + JUNK)

    @staticmethod
    async def _break(resp: Response, fmt: Any, fault: Any, next_event: Any) -> None:
        """End a stream the way `fault` says, instead of sending `next_event()` and the rest
        (made only when half of it is sent: making an event uses up a sequence number)."""
        if fault.fault == "cut_mid_event":
            event = next_event()
            await resp.raw(b"%x\r\n" % len(event) + event[: len(event) // 2])
            resp.abort()
            return
        if fault.fault == "midstream_error":
            await resp.chunk(fmt.error())
        elif fault.fault == "malformed":
            await resp.chunk(fmt.malformed())
        await resp.end()

    # --- control API ------------------------------------------------------------------------
    def _control(self, req: Request) -> tuple[int, Any]:
        try:
            body = json.loads(req.body) if req.body else {}
            name = req.path[len("/_sim/"):].strip("/")
            if req.method == "GET" and name == "requests":
                return 200, [r.to_dict() for r in self.state.snapshot()]
            if req.method == "GET" and name == "health":
                return 200, {"ok": True}
            if req.method == "POST" and name == "faults":
                for item in body if isinstance(body, list) else [body]:
                    self.state.inject(Fault(**item))
                return 200, {"ok": True, "faults": len(self.state.faults)}
            if req.method == "DELETE" and name == "faults":
                self.state.clear_faults()
                return 200, {"ok": True}
            if req.method == "POST" and name == "config":
                if "model" in body:
                    body = dict(body)
                    self.state.set_model(body.pop("model"), Settings(**body))
                else:
                    unknown = set(body) - {"ttft", "tokens_per_s", "output_tokens"}
                    if unknown:
                        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
                    self.state.configure(**body)
                return 200, {"ok": True, "config": asdict(self.state.globals)}
            if req.method == "POST" and name == "reset":
                self.state.reset()
                return 200, {"ok": True}
        except (ValueError, TypeError) as exc:
            return 400, {"error": {"message": str(exc)}}
        return 404, {"error": {"message": f"unknown control endpoint {req.method} {req.path}"}}
