"""OpenTelemetry: every call as spans and metrics in the GenAI semantic conventions, when asked for.

On with `llmcells.configure(otel=True)`, or by the standard environment (OTEL_SERVICE_NAME,
OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER set, and
OTEL_SDK_DISABLED not "true") when opentelemetry-api is installed (`pip install 'llmcells[otel]'`).
Off, this module imports nothing of OpenTelemetry and costs one settings check per call.

What it emits, through the user's tracer and meter providers (the global ones):
- one span per model request, `chat {model}` (`generate_content {model}` for Gemini; kind
  CLIENT), with gen_ai.operation.name, gen_ai.provider.name, gen_ai.request.model and .stream,
  server.address / server.port, gen_ai.response.model, gen_ai.response.id,
  gen_ai.response.finish_reasons, gen_ai.usage.* (input, output, cache read and write,
  reasoning), error.type on a failure, and `llmcells.cost_usd`;
- an `execute_tool {name}` span per tool the model asked for;
- a parent span around a compare, a batch, a chat turn and a fallback chain (`parent()`);
- the histograms gen_ai.client.token.usage and gen_ai.client.operation.duration.

Prompt and answer text go on the spans only when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
is true. Keys never do: nothing here sees one.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import queue
import threading
import time
from typing import Any, Iterator

from ._log import swallowed
from .config import getenvs, settings
from .registry import MAKERS, PROVIDERS, model_name
from .types import CallInfo, CallObserver, Result, ToolCall

_SCOPE = "llmcells"
#: llmcells provider -> gen_ai.provider.name (the conventions' well-known values)
#: (cloud routes by their cloud's value; agent CLIs by the API they call)
_PROVIDER_NAMES = {"openai": "openai", "openai-responses": "openai", "anthropic": "anthropic",
                   "google": "gcp.gemini", "gemini": "gcp.gemini", "mistral": "mistral_ai",
                   "xai": "x_ai", "deepseek": "deepseek", "groq": "groq",
                   "bedrock": "aws.bedrock", "azure": "azure.ai.openai", "vertex": "gcp.vertex_ai",
                   "claude-code": "anthropic", "codex": "openai", "gemini-cli": "gcp.gemini"}
_ENV_ON = ("OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
           "OTEL_TRACES_EXPORTER")
# The buckets the conventions advise for the two histograms
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                  16777216, 67108864]
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                     40.96, 81.92]

_ENV_NAMES = (*_ENV_ON, "OTEL_SDK_DISABLED")
_env_state: tuple[tuple[str, ...], bool] | None = None
_tracer: Any = None
_instruments: Any = None


def installed() -> bool:
    """Whether opentelemetry-api can be imported (checked without importing it)."""
    return importlib.util.find_spec("opentelemetry") is not None


def _env_on() -> bool:
    global _env_state
    values = getenvs(_ENV_NAMES, "")
    if _env_state is not None and _env_state[0] == values:
        return _env_state[1]
    *given, disabled = values
    on = any(v and v.lower() != "none" for v in given) and disabled.lower() != "true" and installed()
    _env_state = (values, on)
    return on


def enabled() -> bool:
    """Whether calls are traced: configure(otel=True), or otel unset and the OTEL_* environment
    asks for it."""
    on = settings.otel
    return _env_on() if on is None else bool(on)


def capture_content() -> bool:
    """The conventions' opt-in for prompt and answer text on spans: true, or the newer
    instrumentations' SPAN_ONLY / SPAN_AND_EVENT (EVENT_ONLY and NO_CONTENT keep spans bare:
    llmcells emits no events)."""
    return os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "").strip().lower(
        ) in ("1", "true", "yes", "on", "span_only", "span_and_event")


def _setup_from_env() -> None:
    """With only OTEL_* variables (no provider set by the user's code): an SDK tracer provider
    exporting where OTEL_TRACES_EXPORTER says (OTLP/HTTP by default), when the SDK and the
    exporter are installed."""
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return  # the user (or opentelemetry-instrument) set one up: use it
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        return
    exporters = [e for e in map(_exporter, _traces_exporters()) if e is not None]
    if not exporters:
        return  # OTEL_TRACES_EXPORTER=none (or nothing it names is installed): no spans leave
    provider = TracerProvider()  # service name and resource from OTEL_* variables
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _traces_exporters() -> list[str]:
    """The exporters OTEL_TRACES_EXPORTER names (comma-separated; "otlp" when unset)."""
    given = os.environ.get("OTEL_TRACES_EXPORTER", "").strip() or "otlp"
    return [n.strip().lower() for n in given.split(",") if n.strip()]


def _exporter(name: str) -> Any:
    """The span exporter OTEL_TRACES_EXPORTER's name means: otlp over the protocol that
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL give (http/protobuf when
    unset, grpc when the gRPC exporter is installed), or console; None for "none", an unknown
    name, or an exporter that is not installed (said once in the log)."""
    import logging

    try:
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter()
        if name == "otlp":
            protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
            if protocol.strip().lower() == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcExporter)

                return GrpcExporter()
            if protocol.strip().lower() == "http/protobuf":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                return OTLPSpanExporter()
            name = f"otlp over {protocol}"
    except ImportError as exc:
        logging.getLogger("llmcells").warning(
            "llmcells: OTEL_TRACES_EXPORTER asks for %s, which is not installed (%s); no spans "
            "are exported there", name, exc)
        return None
    if name != "none":
        logging.getLogger("llmcells").warning(
            "llmcells: OTEL_TRACES_EXPORTER=%s is not an exporter llmcells sets up (otlp, "
            "console, none); no spans are exported there", name)
    return None


def tracer() -> Any:
    """llmcells' tracer from the global tracer provider (made on first use)."""
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        from ._version import __version__

        # OTEL_* variables naming an exporter set one up whether tracing was turned on by them
        # or by configure(otel=True), as long as no code has set a tracer provider
        if _env_on():
            _setup_from_env()
        _tracer = trace.get_tracer(_SCOPE, __version__,
                                   schema_url="https://opentelemetry.io/schemas/1.37.0")
    return _tracer


def _metrics() -> Any:
    global _instruments
    if _instruments is None:
        from opentelemetry import metrics

        from ._version import __version__

        meter = metrics.get_meter(_SCOPE, __version__)
        _instruments = (
            meter.create_histogram("gen_ai.client.token.usage", unit="{token}",
                                   description="Number of input and output tokens used.",
                                   explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS),
            meter.create_histogram("gen_ai.client.operation.duration", unit="s",
                                   description="GenAI operation duration.",
                                   explicit_bucket_boundaries_advisory=_DURATION_BUCKETS),
            meter.create_histogram("gen_ai.client.operation.time_to_first_chunk", unit="s",
                                   description="Time to receive the first chunk, measured from "
                                               "when the client issues the generation request to "
                                               "when the first chunk is received in the response "
                                               "stream.",
                                   explicit_bucket_boundaries_advisory=_DURATION_BUCKETS),
        )
    return _instruments


def _bare(model_id: str) -> str:
    return model_name(model_id)


def _operation(spec: Any) -> str:
    """gen_ai.operation.name: "generate_content" for Gemini's API (directly or on Vertex AI),
    as the conventions name it, else "chat"."""
    adapter = getattr(spec, "adapter", "")
    return "generate_content" if MAKERS.get(adapter, adapter) == "google" else "chat"


def _server(spec: Any) -> tuple[str, int] | None:
    """(server.address, server.port) of the endpoint a call went to: its base URL (a proxy, an
    Azure resource, the simulator), else its API's own host; None when the SDK picks it (a cloud
    region's, an agent CLI's)."""
    base_url = getattr(spec, "base_url", None)
    if not base_url:
        row = PROVIDERS.get(getattr(spec, "provider", ""))
        return (row.api_host, 443) if row is not None and row.api_host else None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(base_url if "//" in base_url else "//" + base_url)
        port = parts.port or (80 if parts.scheme == "http" else 443)
    except ValueError:  # a malformed port: no address rather than a wrong one
        return None
    return (parts.hostname, port) if parts.hostname else None


def provider_name(provider: str) -> str:
    """gen_ai.provider.name of an llmcells provider."""
    return _PROVIDER_NAMES.get(provider, provider)


class SpanObserver(CallObserver):
    """One model request as one `chat {model}` span, plus its metrics. The span is made whole
    when the request ends (start time kept from on_start): one attribute pass instead of two,
    which matters at a budget of 0.1 ms per call."""

    __slots__ = ("plan", "info", "start_ns", "t0")

    def __init__(self, plan: Any = None) -> None:
        self.plan = plan
        self.info: CallInfo | None = None
        self.start_ns = 0
        self.t0 = 0.0

    def on_start(self, info: CallInfo) -> None:
        self.info, self.start_ns, self.t0 = info, time.time_ns(), time.perf_counter()

    def on_finish(self, result: Result) -> None:
        info = self.info
        if info is None:
            return
        self.info = None
        elapsed = time.perf_counter() - self.t0
        model = _bare(info.model_id)
        spec = getattr(self.plan, "spec", None)
        base = {"gen_ai.operation.name": _operation(spec),
                "gen_ai.provider.name": _PROVIDER_NAMES.get(info.provider, info.provider),
                "gen_ai.request.model": model}
        if result.response_model:
            base["gen_ai.response.model"] = result.response_model
        u = result.usage
        # an answer from the cache or a replay used no tokens and streamed nothing: its Result
        # carries the first call's counts, which backends would add up a second time
        reused = bool(result.cached or result.replayed)
        counted = not reused and (result.ok or bool(u.input_tokens or u.output_tokens))
        attrs: dict[str, Any] = {**base, "llmcells.call_id": info.call_id}
        if counted:  # a call that failed before any usage came back has no token counts, not 0s
            attrs["gen_ai.usage.input_tokens"] = int(u.input_tokens or 0)
            attrs["gen_ai.usage.output_tokens"] = int(u.output_tokens or 0)
        ttft = None if reused else result.ttft_s
        if ttft is not None and ttft == ttft:
            attrs["gen_ai.response.time_to_first_chunk"] = float(ttft)
        rid = result.response_id
        if rid:
            attrs["gen_ai.response.id"] = rid
        if result.finish_reason:
            attrs["gen_ai.response.finish_reasons"] = (result.finish_reason,)
        if counted:
            for name, count in (("gen_ai.usage.cache_read.input_tokens", u.cached_input_tokens),
                                ("gen_ai.usage.cache_creation.input_tokens", u.cache_write_tokens),
                                ("gen_ai.usage.reasoning.output_tokens", u.reasoning_tokens)):
                if count:
                    attrs[name] = int(count)
        if not reused:
            attrs["gen_ai.request.stream"] = True  # every request llmcells sends streams
        server = _server(spec)
        if server is not None:
            attrs["server.address"], attrs["server.port"] = server
        if result.cost_usd == result.cost_usd:  # not NaN: the price was known
            attrs["llmcells.cost_usd"] = float(result.cost_usd)
        if info.purpose != "answer":
            attrs["llmcells.purpose"] = info.purpose
        if info.simulated:
            attrs["llmcells.simulated"] = True
        if result.cached or result.replayed:
            attrs["llmcells.cached"] = True
        request = getattr(self.plan, "request", None)
        if request is not None:
            if request.temperature is not None:
                attrs["gen_ai.request.temperature"] = float(request.temperature)
            if request.max_tokens is not None:
                attrs["gen_ai.request.max_tokens"] = int(request.max_tokens)
            if capture_content():
                _content(attrs, request, result)
        error = None
        if not result.ok:
            error = result.error_kind or result.status
            attrs["error.type"] = base["error.type"] = error
            error = (error, (result.error or error)[:200])
        from opentelemetry import context

        # The span and the metrics are made on the telemetry thread (as hooks are): the call
        # only hands over what it knows, with its context (the parent span).
        _submit((f"{base['gen_ai.operation.name']} {model}", context.get_current(), self.start_ns, time.time_ns(), attrs,
                 error, base, elapsed, int(u.input_tokens or 0), int(u.output_tokens or 0),
                 counted, ttft if ttft is not None and ttft == ttft else None))


_queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
_worker: threading.Thread | None = None
_worker_lock = threading.Lock()


def _submit(item: tuple) -> None:
    global _worker
    if _worker is None or not _worker.is_alive():
        with _worker_lock:
            if _worker is None or not _worker.is_alive():
                tracer()  # the provider first (from OTEL_* it registers its own exit hook)
                _worker = threading.Thread(target=_work, name="llmcells-otel", daemon=True)
                _worker.start()
                atexit.register(flush)  # registered after the SDK's exit hook: runs before it
    _queue.put(item)


def _work() -> None:
    while True:
        item = _queue.get()
        if item is None:  # stop()
            return
        try:
            if isinstance(item, threading.Event):
                item.set()
            else:
                _emit(*item)
        except Exception as exc:
            swallowed("recording an OpenTelemetry span", exc)


def _emit(name: str, ctx: Any, start_ns: int, end_ns: int, attrs: dict[str, Any],
          error: tuple[str, str] | None, base: dict[str, Any], elapsed: float, tokens_in: int,
          tokens_out: int, count_tokens: bool, ttft: float | None = None) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    span = tracer().start_span(name, context=ctx, kind=SpanKind.CLIENT, attributes=attrs,
                               start_time=start_ns)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error[1]))
    span.end(end_time=end_ns)
    tokens, duration, first_chunk = _metrics()
    duration.record(elapsed, base)
    if ttft is not None:
        first_chunk.record(ttft, base)
    if count_tokens:
        tokens.record(tokens_in, {**base, "gen_ai.token.type": "input"})
        tokens.record(tokens_out, {**base, "gen_ai.token.type": "output"})


def stop(timeout: float = 5.0) -> None:
    """Record the spans handed over so far, then end the span thread (`%unload_ext llmcells`);
    the next span starts it again."""
    global _worker
    with _worker_lock:
        worker, _worker = _worker, None
    if worker is not None and worker.is_alive():
        _queue.put(None)
        worker.join(timeout)


def flush(timeout: float = 5.0) -> None:
    """Wait until the spans and metrics handed over so far are recorded (tests, scripts' ends)."""
    if _worker is None or not _worker.is_alive():
        return
    done = threading.Event()
    _queue.put(done)
    done.wait(timeout)


def _content(attrs: dict[str, Any], request: Any, result: Result) -> None:
    """The opted-in prompt, system text and answer, as the conventions' JSON attributes."""
    attrs["gen_ai.input.messages"] = _messages_json(request)
    if request.system:
        attrs["gen_ai.system_instructions"] = json.dumps(
            [{"type": "text", "content": request.system}], ensure_ascii=False)
    parts = [{"type": "text", "content": result.text}] if result.text else []
    parts += [_call_part(c) for c in result.tool_calls if isinstance(c, ToolCall)]
    if parts:
        attrs["gen_ai.output.messages"] = json.dumps(
            [{"role": "assistant", "parts": parts, "finish_reason": result.finish_reason or ""}],
            ensure_ascii=False)


def _call_part(call: ToolCall) -> dict[str, Any]:
    """A tool call the model asked for, as the conventions' `tool_call` part."""
    try:
        arguments = json.loads(call.arguments_json or "{}")
    except (ValueError, RecursionError):
        arguments = call.arguments_json
    return {"type": "tool_call", "id": call.id, "name": call.name, "arguments": arguments}


def _parts(message: Any) -> list[dict[str, Any]]:
    """One message's parts as the conventions write them: a tool's result is a
    `tool_call_response`, the calls an assistant turn made are `tool_call` parts."""
    if message.role == "tool":
        return [{"type": "tool_call_response", "id": message.tool_call_id,
                 "response": message.content}]
    parts = [{"type": "text", "content": message.content}] if message.content else []
    return parts + [_call_part(c) for c in message.tool_calls]


def _messages_json(request: Any) -> str:
    return json.dumps([{"role": m.role, "parts": _parts(m)} for m in request.messages],
                      ensure_ascii=False)


def observer(plan: Any = None) -> SpanObserver:
    """A fresh span observer for one model request (hooks.observe adds it when enabled())."""
    return SpanObserver(plan)


def tool_span(name: str, arguments: str, duration_s: float, preview: str,
              error: str | None) -> None:
    """An `execute_tool {name}` span for a tool that has just run (in the caller's context)."""
    if not enabled():
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    end = time.time_ns()
    attrs: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name,
                             "gen_ai.tool.type": "function"}
    if capture_content():
        attrs["gen_ai.tool.call.arguments"] = arguments
        attrs["gen_ai.tool.call.result"] = preview
    span = tracer().start_span(f"execute_tool {name}", kind=SpanKind.INTERNAL, attributes=attrs,
                               start_time=end - int(max(duration_s, 0.0) * 1e9))
    if error:
        span.set_attribute("error.type", "tool_error")
        span.set_status(Status(StatusCode.ERROR, error[:200]))
    span.end(end_time=end)


@contextlib.contextmanager
def _span(name: str, attrs: dict[str, Any]) -> Iterator[Any]:
    with tracer().start_as_current_span(name, attributes=attrs) as span:
        yield span


def parent(kind: str, *, when: bool = True, **attrs: Any) -> Any:
    """A context manager: the parent span of a compare, batch, chat turn or fallback chain
    (`llmcells {kind}`), current while the block runs; a no-op when tracing is off (or not
    `when`)."""
    if not when or not enabled():
        return contextlib.nullcontext()
    clean = {f"llmcells.{k}": v for k, v in attrs.items() if v is not None}
    return _span(f"llmcells {kind}", clean)
