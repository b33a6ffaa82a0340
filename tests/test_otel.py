"""OpenTelemetry spans and metrics (otel.py) through the real SDKs against the simulator, read
back with the OpenTelemetry SDK's in-memory span exporter and metric reader."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import llmcells
from llmcells import otel

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
_EXPORTER = InMemorySpanExporter()
_READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _providers():
    """The global tracer and meter providers, as a user's application would set them (once per
    process: OpenTelemetry allows no second one)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))
    yield


@pytest.fixture
def spans(simulated, monkeypatch):
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    llmcells.configure(otel=True)
    _EXPORTER.clear()
    _READER.get_metrics_data()  # drop what earlier tests recorded (cumulative: read as deltas below)
    yield _EXPORTER
    llmcells.configure(otel=None)


def _chats(exporter):
    otel.flush()
    return [s for s in exporter.get_finished_spans() if s.name.startswith(("chat ", "generate_content "))]


def _points(name):
    otel.flush()
    out = []
    data = _READER.get_metrics_data()
    for rm in (data.resource_metrics if data else []):
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    out += list(m.data.data_points)
    return out


def test_two_model_compare_gives_one_span_per_request_under_one_parent(spans):
    cmp = llmcells.run(llmcells.compare("Say hello", ["chatgpt", "claude"], display=False))
    assert all(r.ok for r in cmp.results)
    chats = _chats(spans)
    assert len(chats) == 2
    by_model = {s.attributes["gen_ai.request.model"]: s for s in chats}
    parent = [s for s in spans.get_finished_spans() if s.name == "llmcells compare"]
    assert len(parent) == 1
    for r in cmp.results:
        bare = r.model.split(":", 1)[1]
        s = by_model[bare]
        assert s.name == f"chat {bare}"
        a = s.attributes
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == {"openai": "openai", "anthropic": "anthropic"}[r.provider]
        # the provider's own token counts, as the Result has them
        assert a["gen_ai.usage.input_tokens"] == r.usage.input_tokens > 0
        assert a["gen_ai.usage.output_tokens"] == r.usage.output_tokens > 0
        assert a["gen_ai.response.model"] == r.response_model
        assert a["gen_ai.response.id"] == r.response_id and r.response_id
        assert tuple(a["gen_ai.response.finish_reasons"]) == (r.finish_reason,)
        assert a["llmcells.cost_usd"] == pytest.approx(r.cost_usd)
        assert "error.type" not in a
        assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
        assert s.parent is not None and s.parent.span_id == parent[0].context.span_id
        assert s.kind == trace.SpanKind.CLIENT


def test_spans_carry_stream_server_and_the_usage_details(spans, simulated):
    """The conventions' gen_ai.request.stream, server.address / server.port, the cache-write and
    reasoning token counts, and Gemini's own operation name, generate_content (all were missing:
    every Gemini span was a "chat")."""
    from urllib.parse import urlsplit

    simulated.set_model("gpt-6-luna", reasoning_tokens=7)
    simulated.set_model("claude-haiku-5-5", cache_write_tokens=5)
    r = llmcells.run(llmcells.ask("Say hello", model="chatgpt", display=False))
    g = llmcells.run(llmcells.ask("Say hello", model="gemini", display=False))
    c = llmcells.run(llmcells.ask("Say hello", model="claude", display=False))
    assert r.ok and g.ok and c.ok and r.usage.reasoning_tokens == 7 and c.usage.cache_write_tokens == 5
    by_model = {s.attributes["gen_ai.request.model"]: s for s in _chats(spans)}
    chat, gemini = by_model["gpt-6-luna"], by_model["gemini-3.5-flash-lite"]
    assert chat.name == "chat gpt-6-luna" and chat.attributes["gen_ai.operation.name"] == "chat"
    assert gemini.name == "generate_content gemini-3.5-flash-lite"
    assert gemini.attributes["gen_ai.operation.name"] == "generate_content"
    sim = urlsplit(simulated.url)
    for s in (chat, gemini):
        assert s.attributes["gen_ai.request.stream"] is True
        assert (s.attributes["server.address"], s.attributes["server.port"]) == (sim.hostname, sim.port)
    assert chat.attributes["gen_ai.usage.reasoning.output_tokens"] == 7
    assert by_model["claude-haiku-5-5"].attributes["gen_ai.usage.cache_creation.input_tokens"] == 5
    import dataclasses

    from llmcells.models import resolve

    live = dataclasses.replace(resolve("anthropic:claude-haiku-5-5"), base_url=None)
    assert otel._server(live) == ("api.anthropic.com", 443)  # no base URL: the API's own host


def test_metrics_token_usage_and_duration(spans):
    r = llmcells.run(llmcells.ask("Say hello", model="gemini", display=False))
    assert r.ok
    tokens = _points("gen_ai.client.token.usage")
    kinds = {p.attributes["gen_ai.token.type"]: p for p in tokens
             if p.attributes["gen_ai.request.model"] == r.model.split(":", 1)[1]}
    assert kinds["input"].sum >= r.usage.input_tokens and kinds["output"].sum >= r.usage.output_tokens
    assert kinds["input"].attributes["gen_ai.provider.name"] == "gcp.gemini"
    durations = _points("gen_ai.client.operation.duration")
    assert durations and all(p.count >= 1 for p in durations)


@pytest.mark.filterwarnings("ignore::llmcells.pricing.PriceWarning")
def test_cloud_routes_and_agent_clis_use_the_conventions_provider_names(spans):
    """gen_ai.provider.name takes the conventions' well-known values: a cloud route is its cloud
    (aws.bedrock, azure.ai.openai, gcp.vertex_ai), not llmcells' route name."""
    want = {"bedrock:us.anthropic.claude-haiku-5-5": "aws.bedrock",
            "azure:gpt-6-luna": "azure.ai.openai", "vertex:gemini-3.5-flash-lite": "gcp.vertex_ai",
            "vertex:claude-haiku-5-5": "gcp.vertex_ai", "claude-code": "anthropic"}
    got = {}
    for model, name in want.items():
        spans.clear()
        r = llmcells.run(llmcells.ask("hi", model=model, display=False))
        assert r.ok, (model, r.error)
        (s,) = _chats(spans)
        got[model] = s.attributes["gen_ai.provider.name"]
    assert got == want
    assert {otel.provider_name(p) for p in ("codex", "gemini-cli")} == {"openai", "gcp.gemini"}


def test_an_error_sets_error_type_and_status(spans, simulated):
    simulated.inject("400", provider="anthropic", times=1)
    r = llmcells.run(llmcells.ask("hello", model="claude", display=False))
    assert not r.ok
    (s,) = _chats(spans)
    assert s.attributes["error.type"] == r.error_kind
    assert s.status.status_code == trace.StatusCode.ERROR
    # it failed before any usage came back: no token counts (not zeros), on the span or in metrics
    assert "gen_ai.usage.input_tokens" not in s.attributes
    assert "gen_ai.usage.output_tokens" not in s.attributes
    assert not [p for p in _points("gen_ai.client.token.usage")
                if p.attributes.get("error.type") == r.error_kind]


def test_a_streamed_answer_records_its_time_to_first_chunk(spans):
    """gen_ai.response.time_to_first_chunk on the span and the
    gen_ai.client.operation.time_to_first_chunk histogram (seconds), as the conventions ask of a
    streamed call."""
    r = llmcells.run(llmcells.ask("Say hello", model="claude", display=False))
    assert r.ok and r.ttft_s is not None
    (s,) = _chats(spans)
    assert s.attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(r.ttft_s)
    points = [p for p in _points("gen_ai.client.operation.time_to_first_chunk")
              if p.attributes["gen_ai.request.model"] == r.model.split(":", 1)[1]]
    assert points and points[0].count >= 1 and points[0].sum >= r.ttft_s


def test_a_cached_answer_counts_no_tokens(spans):
    """An answer from llmcells' cache made no request: its span says so and carries no token
    counts nor time to first chunk, and the token histogram is not fed the first call's
    tokens again (a dashboard summing them would double the spend)."""
    def output_tokens():  # (the reader is cumulative: earlier tests' points are in it)
        return sum(p.sum for p in _points("gen_ai.client.token.usage")
                   if p.attributes["gen_ai.request.model"] == "gpt-6-luna"
                   and p.attributes["gen_ai.token.type"] == "output")

    before = output_tokens()
    llmcells.configure(cache=True)
    try:
        first = llmcells.run(llmcells.ask("Cache me", model="chatgpt", display=False))
        again = llmcells.run(llmcells.ask("Cache me", model="chatgpt", display=False))
    finally:
        llmcells.configure(cache=False)
    assert not first.cached and again.cached and again.usage.output_tokens > 0
    fresh, hit = _chats(spans)
    assert hit.attributes["llmcells.cached"] is True
    assert fresh.attributes["gen_ai.usage.output_tokens"] == first.usage.output_tokens
    for name in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                 "gen_ai.response.time_to_first_chunk"):
        assert name not in hit.attributes
    assert first.model == "openai:gpt-6-luna"
    assert output_tokens() - before == first.usage.output_tokens


def test_content_only_on_opt_in(spans, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    r = llmcells.run(llmcells.ask("Say hello", model="claude", system="Be brief.", display=False))
    (s,) = _chats(spans)
    msgs = json.loads(s.attributes["gen_ai.input.messages"])
    assert msgs[-1]["parts"][0]["content"] == "Say hello"
    assert json.loads(s.attributes["gen_ai.system_instructions"])[0]["content"] == "Be brief."
    out = json.loads(s.attributes["gen_ai.output.messages"])
    assert out[0]["parts"][0]["content"] == r.text


@pytest.mark.parametrize("value, captured", [("SPAN_ONLY", True), ("span_and_event", True),
                                             ("EVENT_ONLY", False), ("NO_CONTENT", False)])
def test_content_follows_the_newer_capture_modes(spans, monkeypatch, value, captured):
    """The enum that the upstream GenAI instrumentations now read from the same variable: a team
    that set SPAN_ONLY for them gets the texts on llmcells' spans too (no events: EVENT_ONLY
    adds nothing)."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", value)
    llmcells.run(llmcells.ask("Say hello", model="claude", display=False))
    (s,) = _chats(spans)
    assert ("gen_ai.input.messages" in s.attributes) is captured
    assert ("gen_ai.output.messages" in s.attributes) is captured


def test_no_key_on_any_span(spans, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-abcdef1234567890")
    llmcells.run(llmcells.ask("Say hello", model="chatgpt", display=False))
    otel.flush()
    dumped = "".join(s.to_json() for s in spans.get_finished_spans())
    assert "sk-secret" not in dumped and "abcdef1234567890" not in dumped


def test_tool_calls_get_execute_tool_spans(spans):
    def get_weather(city: str) -> dict:
        """The weather in a city."""
        return {"city": city, "temp": 21}

    r = llmcells.run(llmcells.ask('call get_weather({"city": "Paris"})', model="chatgpt",
                                  tools=[get_weather], display=False))
    assert r.ok
    otel.flush()
    names = [s.name for s in spans.get_finished_spans()]
    assert "execute_tool get_weather" in names
    assert len(_chats(spans)) == 2  # the request asking for the tool, then the answer
    tool = next(s for s in spans.get_finished_spans() if s.name == "execute_tool get_weather")
    assert tool.attributes["gen_ai.tool.name"] == "get_weather"
    assert "gen_ai.tool.call.arguments" not in tool.attributes  # content: opt-in only


def test_opted_in_content_of_a_tool_exchange_follows_the_conventions(spans, monkeypatch):
    """With content captured, the tool calls the model asked for are `tool_call` parts of its
    output message (not a missing or empty answer), and the next request's input holds them and
    the tool's result as a `tool_call_response` part."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")

    def get_weather(city: str) -> dict:
        """The weather in a city."""
        return {"city": city, "temp": 21}

    r = llmcells.run(llmcells.ask('call get_weather({"city": "Paris"})', model="chatgpt",
                                  tools=[get_weather], display=False))
    assert r.ok
    asking, answering = _chats(spans)
    (out,) = json.loads(asking.attributes["gen_ai.output.messages"])
    call = next(p for p in out["parts"] if p["type"] == "tool_call")
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"} and call["id"]
    inputs = json.loads(answering.attributes["gen_ai.input.messages"])
    parts = [p for m in inputs for p in m["parts"]]
    assert any(p["type"] == "tool_call" and p["id"] == call["id"] for p in parts)
    (reply,) = [p for p in parts if p["type"] == "tool_call_response"]
    assert reply["id"] == call["id"] and "21" in reply["response"]
    assert all(p.get("content") != "" for p in parts)


def test_fallback_chain_and_batch_have_parent_spans(spans, simulated):
    simulated.inject("400", provider="anthropic", times=1)
    spans.clear()
    r = llmcells.run(llmcells.ask("hi", model="claude", fallback=["chatgpt"], fallback_on=["bad_request"],
                                  display=False))
    assert r.ok
    otel.flush()
    names = [s.name for s in spans.get_finished_spans()]
    assert "llmcells fallback" in names
    spans.clear()
    df = llmcells.run(llmcells.batch(["a", "b", "c"], ["chatgpt"], display=False))
    assert len(df) == 3
    (parent,) = [s for s in spans.get_finished_spans() if s.name == "llmcells batch"]
    chats = _chats(spans)
    assert len(chats) == 3 and all(c.parent.span_id == parent.context.span_id for c in chats)


def test_chat_turn_has_a_parent_span(spans):
    chat = llmcells.Chat("chatgpt")
    llmcells.run(chat.send("hello", display=False))
    (turn,) = [s for s in spans.get_finished_spans() if s.name == "llmcells chat_turn"]
    (c,) = _chats(spans)
    assert c.parent.span_id == turn.context.span_id


def test_off_imports_no_opentelemetry(tmp_path):
    """Tracing off: llmcells itself imports nothing of OpenTelemetry during a compare (the
    anthropic SDK imports opentelemetry on its own, so the test watches who imports)."""
    code = ("import builtins, sys\n"
            "seen = []\n"
            "real = builtins.__import__\n"
            "def watch(name, *a, **k):\n"
            "    if name.startswith('opentelemetry'):\n"
            "        seen.append(sys._getframe(1).f_code.co_filename)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = watch\n"
            "import llmcells\n"
            "llmcells.simulate()\n"
            "r = llmcells.run(llmcells.compare('hi', ['chatgpt', 'claude', 'gemini'], display=False))\n"
            "assert all(x.ok for x in r.results)\n"
            "print(len(seen), sorted({f for f in seen if '/llmcells/' in f}))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(PYTHONPATH=str(ROOT / "src"), LLMCELLS_HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    count, ours = out.stdout.strip().splitlines()[-1].split(" ", 1)
    assert ours == "[]"
    assert int(count) > 0  # the watch works: the anthropic SDK's own import was seen


@pytest.mark.parametrize("turn_on", ["", "llmcells.configure(otel=True)\n"],
                         ids=["environment-alone", "configure-otel-true"])
def test_otel_environment_alone_exports_over_otlp_http(tmp_path, turn_on):
    """OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_SERVICE_NAME (no provider set by the script), alone
    or with configure(otel=True): llmcells sets up the SDK with the OTLP/HTTP exporter, and a
    receiver on loopback gets the spans as protobuf."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="no OTLP/HTTP exporter")
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest, ExportTraceServiceResponse)

    got: list = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/v1/traces":
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                got.append(req)
            out = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        code = ("import llmcells\n"
                "llmcells.simulate()\n" + turn_on +
                "r = llmcells.run(llmcells.compare('hi', ['chatgpt', 'gemini'], display=False))\n"
                "assert all(x.ok for x in r.results)\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(PYTHONPATH=str(ROOT / "src"), LLMCELLS_HOME=str(tmp_path),
                   OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{httpd.server_port}",
                   OTEL_SERVICE_NAME="llmcells-test", OTEL_METRICS_EXPORTER="none")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
    finally:
        httpd.shutdown()
    spans = [(rs.resource, s) for req in got for rs in req.resource_spans
             for ss in rs.scope_spans for s in ss.spans]
    names = sorted(s.name for _, s in spans)
    assert names == ["chat gpt-6-luna", "generate_content gemini-3.5-flash-lite", "llmcells compare"]
    service = {a.key: a.value.string_value for a in spans[0][0].attributes}["service.name"]
    assert service == "llmcells-test"
    chat = next(s for _, s in spans if s.name == "chat gpt-6-luna")
    attrs = {a.key: a.value for a in chat.attributes}
    assert attrs["gen_ai.usage.output_tokens"].int_value > 0


@pytest.mark.parametrize("env, want", [
    ({}, ["OTLPSpanExporter(opentelemetry.exporter.otlp.proto.http.trace_exporter)"]),
    ({"OTEL_TRACES_EXPORTER": "console"}, ["ConsoleSpanExporter(opentelemetry.sdk.trace.export)"]),
    ({"OTEL_TRACES_EXPORTER": "none"}, []),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, []),   # no gRPC exporter here: nothing, not HTTP
], ids=["otlp-http", "console", "none", "grpc-not-installed"])
def test_the_traces_exporter_follows_otel_traces_exporter(tmp_path, env, want):
    """The provider llmcells sets up from the environment exports where OTEL_TRACES_EXPORTER
    and OTEL_EXPORTER_OTLP_PROTOCOL say: never OTLP/HTTP when they ask for none, the console
    or gRPC."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="no OTLP/HTTP exporter")
    if "OTEL_EXPORTER_OTLP_PROTOCOL" in env and importlib.util.find_spec(
            "opentelemetry.exporter.otlp.proto.grpc") is not None:
        pytest.skip("the gRPC exporter is installed")
    code = ("from opentelemetry import trace\n"
            "from llmcells import otel\n"
            "otel.tracer()\n"
            "p = trace.get_tracer_provider()\n"
            "procs = getattr(getattr(p, '_active_span_processor', None), '_span_processors', ())\n"
            "print([f'{type(x.span_exporter).__name__}({type(x.span_exporter).__module__})' "
            "for x in procs])\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    base.update(PYTHONPATH=str(ROOT / "src"), LLMCELLS_HOME=str(tmp_path),
                OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_SERVICE_NAME="t", **env)
    out = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == repr(want)
