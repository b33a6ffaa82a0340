"""Streaming display cost: a long fast stream into a notebook card, and into a naive widget.

    python benchmarks/bench_display.py           # 10,000 tokens at 2,000 tokens/s (5 s)
    python benchmarks/bench_display.py --quick   # 2,000 tokens at 2,000 tokens/s (1 s)

The real card (`llmcells.display.notebook.NotebookDisplay`, as `ask` opens it) gets a recording
comm instead of a kernel's (like tests/test_display.py); the comm JSON-encodes every message, as
a kernel session would. Its observer is driven from a real asyncio loop in its own thread, the
way the engine drives it: on_start, on_sent, on_status, on_first_token, then on_text at 2,000
tokens/s, on_usage, on_finish
and close(). Three runs with the same driver:

- baseline: a no-op observer (what the driver itself costs);
- card: llmcells' card (throttled repaints: body at <= 20/s, metrics footer twice a second);
- naive: one ipywidgets.HTML whose `value` is set to the whole escaped text on every token.

Figures: update messages per second (the largest count in any 1 s window, and the mean), and
CPU seconds spent on the loop thread (time.thread_time, the deferred repaints included) minus the
baseline's. The card figure is that of a second card: the first card of a process also imports
the Markdown renderer for its final paint (timed on its own row, in a fresh process).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import sys
import threading
import time

try:
    from . import _common as C
except ImportError:  # run as a script
    import _common as C

RATE = 2000.0


class _Comm:
    _n = 0

    def __init__(self, log, **kwargs):
        _Comm._n += 1
        self.comm_id = f"comm-{_Comm._n}"
        self.log = log

    def open(self, *a, **k):
        pass

    def on_msg(self, *a, **k):
        pass

    def close(self, *a, **k):
        pass

    def send(self, data=None, buffers=None, **kwargs):
        json.dumps(data)  # what the kernel's session does with it (before signing and sending)
        self.log.append((time.monotonic(), self.comm_id, data))


def _max_per_second(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


async def _drive(obs, n_tokens: int, finish, cpu: list[float]) -> tuple[float, float]:
    """Drive obs like the engine; returns (t_first_token, t_last_token)."""
    from llmcells.types import Result, Usage

    c0 = time.thread_time()
    obs.on_start(getattr(obs, "info", None))
    obs.on_sent(time.monotonic())
    obs.on_status("waiting")
    await asyncio.sleep(0.05)
    obs.on_first_token(0.05)
    obs.on_status("streaming")
    t0 = time.monotonic()
    text, sent = "", 0
    while sent < n_tokens:
        due = min(n_tokens, int((time.monotonic() - t0) * RATE) + 1)
        while sent < due:
            delta = f"w{sent} "
            text += delta
            obs.on_text(delta)
            sent += 1
        await asyncio.sleep(0.001)
    t1 = time.monotonic()
    usage = Usage(input_tokens=12, output_tokens=n_tokens)
    obs.on_usage(usage)
    result = Result(text=text, model="anthropic:claude-haiku-5-5", provider="anthropic", status="ok",
                    usage=usage, cost_usd=0.00033, latency_s=t1 - t0 + 0.05, ttft_s=0.05)
    obs.on_finish(result)
    finish(result)
    await asyncio.sleep(0.1)  # let any deferred repaint run (there should be none after finish)
    cpu.append(time.thread_time() - c0)
    return t0, t1


def _run_on_loop(coro):
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, name="bench-loop", daemon=True)
    t.start()
    try:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(120)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(5)
        loop.close()


def _first_render_s() -> float:
    """Time of the first render_markdown() call in a fresh process (llmcells already imported)."""
    import os
    import subprocess

    code = ("import time, llmcells.display.markdown as m; t = time.perf_counter(); "
            "m.render_markdown('Some *text*.\\n\\n```python\\nx = 1\\n```\\n'); "
            "print(time.perf_counter() - t)")
    env = dict(os.environ, PYTHONPATH=str(C._SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True, timeout=60)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2,000 tokens instead of 10,000")
    args = ap.parse_args(argv)
    n = 2_000 if args.quick else 10_000

    import comm
    import ipywidgets as w

    import llmcells.display.notebook as nb
    from llmcells.display import open_display
    from llmcells.types import CallInfo, CallObserver

    log: list = []
    saved = comm.create_comm, nb.show, nb.show_static
    comm.create_comm = lambda **kw: _Comm(log, **kw)
    nb.show = lambda obj: None
    nb.show_static = lambda bundle: None
    try:
        info = CallInfo(call_id="c-1", model="claude", model_id="anthropic:claude-haiku-5-5",
                        provider="anthropic", simulated=True)
        figures = {}
        # baseline: the driver alone (once to warm up, then the figure)
        cpu: list[float] = []
        _run_on_loop(_drive(CallObserver(), min(n, 500), lambda r: None, cpu))
        _run_on_loop(_drive(CallObserver(), n, lambda r: None, cpu))
        base_cpu = cpu[-1]

        # llmcells' card, opened as ask() opens it (widgets created on this, the main, thread).
        # A short warm-up card first: the first final paint of a process imports the Markdown
        # renderer (measured apart, in a fresh process).
        for k in range(2):
            handle = open_display("ask", [info], "notebook", prompt="Write a long essay.")
            log.clear()
            t0, t1 = _run_on_loop(_drive(handle.observers[0], n if k else 200,
                                         lambda r: handle.close([r]), cpu))
        times = [t for t, _, d in log if d.get("method") == "update"]
        figures["card"] = (times, cpu[-1] - base_cpu, t1 - t0, handle.observers[0].throttle.paints)
        streaming = [t for t in times if t0 <= t < t1]
        card_streaming_rate = len(streaming) / (t1 - t0)

        # naive: one HTML widget, value = the whole text on every token
        naive = w.HTML(value="")

        class Naive(CallObserver):
            text = ""

            def on_text(self, delta):
                self.text += delta
                naive.value = "<pre>" + html.escape(self.text) + "</pre>"

        log.clear()
        t0, t1 = _run_on_loop(_drive(Naive(), n, lambda r: None, cpu))
        times = [t for t, _, d in log if d.get("method") == "update"]
        figures["naive"] = (times, cpu[-1] - base_cpu, t1 - t0, len(times))
    finally:
        # closed here, while ipywidgets is whole: left to the exit of `python -m benchmarks`,
        # each widget's __del__ printed "Exception ignored ... 'NoneType' object has no
        # attribute 'pop'"
        w.Widget.close_all()
        comm.create_comm, nb.show, nb.show_static = saved

    rows = []
    for name, label in (("card", "llmcells card"), ("naive", "naive widget (value per token)")):
        times, cpu_s, span, paints = figures[name]
        target = (20, "<=") if name == "card" else (None, "<")
        rows.append(C.row(f"{label}: update messages, max in any 1 s", _max_per_second(times), "msg/s",
                          *target,
                          note=(f"{n:,} tokens at {RATE:,.0f}/s over {span:.2f} s: {len(times)} update "
                                f"messages in all, mean {len(times) / max(span, 1e-9):.1f}/s"
                                + (f", {paints} throttled repaints" if name == "card" else ""))))
        rows.append(C.row(f"{label}: CPU on the loop thread", cpu_s, "s",
                          0.2 if name == "card" else None, "<=",
                          note=f"driver baseline {base_cpu:.3f} s subtracted" if name == "card" else None))
    rows.insert(1, C.row("llmcells card: update messages/s while streaming (mean)", card_streaming_rate,
                         "msg/s", 20, "<=", note="between the first and the last token: the start and "
                         "final paints (header, body, footer) excluded"))
    rows.append(C.row("first final paint of a process (imports the Markdown renderer)",
                      _first_render_s(), "s", note="one-time, on the loop thread: mistune and pygments "
                      "are imported for the first card's final Markdown paint (fresh process)"))
    C.print_table(rows)
    return rows


if __name__ == "__main__":
    main()
    sys.exit(0)
