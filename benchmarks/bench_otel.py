"""OpenTelemetry's cost per call: what tracing on adds to each model request (target < 0.1 ms).

    python benchmarks/bench_otel.py           # 20,000 calls' events, best of 3 rounds
    python benchmarks/bench_otel.py --quick   # 2,000, 1 round

Tracing hands each finished request's data to a telemetry thread, which makes the span and
records the metrics through the SDK: the first figure is what the call itself pays, the second
all the CPU, the thread's included. The engine's per-call path for tracing is `hooks.observe(observer, plan)` and the events it
relays (on_start, on_sent, on_first_token, on_usage, on_finish); this drives exactly that path
with a real finished Result, with tracing off and on, and reports the difference per call. On:
the OpenTelemetry SDK's TracerProvider with a BatchSpanProcessor (what an application exporting
to a collector uses; its exporter here drops the spans so that no network time is counted) and
a MeterProvider with an in-memory reader, both set as the global providers.

Then end to end: sequential `llmcells.ask` calls against the simulator (in its own process),
alternating blocks of tracing off and on; the median of the blocks' differences per call.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C  # type: ignore[no-redef]


def _providers() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans):  # noqa: D102
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def _events(n: int) -> float:
    """Seconds for n calls' observer events through hooks.observe."""
    from llmcells import hooks
    from llmcells.models import resolve
    from llmcells.types import CallInfo, CallObserver, Request, Result, Usage

    spec = resolve("chatgpt")
    info = CallInfo(call_id="c" * 32, model="chatgpt", model_id=spec.id, provider=spec.provider,
                    group_id="g1")

    class Plan:
        request = Request(spec=spec, messages=[], temperature=0.2, max_tokens=100)

    result = Result(text="hello there", model=spec.id, provider=spec.provider,
                    response_model="gpt-4.1-mini-2025-04-14", response_id="chatcmpl-1",
                    usage=Usage(input_tokens=12, output_tokens=32), cost_usd=0.0001,
                    finish_reason="stop", latency_s=0.2, ttft_s=0.05)
    plan = Plan()
    t = time.perf_counter()
    for _ in range(n):
        obs = hooks.observe(CallObserver(), plan)
        obs.on_start(info)
        obs.on_sent(0.0)
        obs.on_first_token(0.05)
        obs.on_usage(result.usage)
        obs.on_finish(result)
    return time.perf_counter() - t


def _e2e(blocks: int, per: int) -> float:
    """Median extra seconds per sequential simulated call with tracing on."""
    import llmcells

    diffs = []

    async def go(n: int) -> None:
        for i in range(n):
            await llmcells.ask(f"hi {i}", model="chatgpt", display=False)

    for _ in range(blocks):
        llmcells.configure(otel=False)
        t = time.perf_counter()
        llmcells.run(go(per))
        off = time.perf_counter() - t
        llmcells.configure(otel=True)
        t = time.perf_counter()
        llmcells.run(go(per))
        on = time.perf_counter() - t
        diffs.append((on - off) / per)
    llmcells.configure(otel=None)
    return statistics.median(diffs)


_OFF_IMPORTS = """
import builtins, sys
import httpx, openai, anthropic  # before the watch: a background import racing it can fail
ours = []
real = builtins.__import__
def watch(name, *a, **k):
    if name.startswith("opentelemetry") and "/llmcells/" in sys._getframe(1).f_code.co_filename:
        ours.append(name)
    return real(name, *a, **k)
builtins.__import__ = watch
import llmcells
llmcells.simulate()
r = llmcells.run(llmcells.compare("hi", ["chatgpt", "claude"], display=False))
assert all(x.ok for x in r.results), [x.error for x in r.results]
print(len(ours))
"""


def _off_imports() -> int:
    """How many imports of opentelemetry llmcells itself makes during a compare with tracing
    off, in a fresh process without OTEL_* variables (the SDKs' own imports not counted)."""
    import os
    import subprocess
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    with C.temp_home():
        env["LLMCELLS_HOME"] = os.environ["LLMCELLS_HOME"]
        out = subprocess.run([sys.executable, "-c", _OFF_IMPORTS], env=env, capture_output=True,
                             text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(out.stderr[-1000:])
    return int(out.stdout.split()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n, rounds = (2_000, 1) if args.quick else (20_000, 3)
    import llmcells

    _providers()
    llmcells.configure(otel=False)
    _events(500)
    off = min(_events(n) for _ in range(rounds))
    llmcells.configure(otel=True)
    from llmcells import otel

    _events(500)
    otel.flush()
    on = total = math.inf
    for _ in range(rounds):
        t = time.perf_counter()
        on = min(on, _events(n))
        otel.flush(timeout=600)
        total = min(total, time.perf_counter() - t)
    llmcells.configure(otel=None)
    per_ms = (on - off) / n * 1000
    t = time.perf_counter()
    for _ in range(1_000_000):
        pass
    loop_ns = (time.perf_counter() - t) * 1000
    rows = [C.row("OTel per call, on the call's path (hand-over to the telemetry thread)", per_ms,
                  "ms", 0.1),
            C.row("OTel per call, all CPU (the SDK's span and 3 histogram records too)",
                  (total - off) / n * 1000, "ms",
                  note="the SDK's work runs on llmcells' telemetry thread, off the event loop"),
            C.row("call events with tracing off", off / n * 1000, "ms"),
            C.row("imports of opentelemetry by llmcells during a compare, tracing off",
                  _off_imports(), "", 0, "<=",
                  note="a fresh process without OTEL_* variables; the anthropic SDK's own "
                       "import of it is not counted"),
            C.row("machine speed: one empty Python loop turn", loop_ns, "ns",
                  note="about 12-15 ns on an idle recent x86 core: a larger figure means a busy "
                       "machine, and the per-call figures scale with it")]
    if args.quick:  # end to end needs many calls to rise above the machine's noise
        return rows
    with C.temp_home(), C.SimProcess(ttft=0.0, tps=0.0) as sim:
        from llmcells import models

        models.set_simulator(sim.url)
        e2e = _e2e(7, 100) * 1000
        rows.append(C.row("OTel per sequential simulated call, end to end (median of blocks)", e2e,
                          "ms", note="end to end is noisy on a shared machine; the row above is "
                                     "the measure of what tracing adds"))
    return rows


if __name__ == "__main__":
    C.print_table(main(sys.argv[1:]))
