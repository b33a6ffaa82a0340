"""Notebook widgets: one streaming card per call, the comparison grid, and the metrics table.

Every widget is created and displayed on the main thread (in `NotebookDisplay.__init__`); the
private loop thread only sets `value` traits. A card is three HTML widgets (header with model and
status, body with the answer, footer with live metrics) so that a repaint while streaming sends
one message for the body and, at most twice a second, one for the footer. The body shows escaped
pre-wrapped text while streaming and is rendered as Markdown (code highlighted) once, at the end.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from IPython.display import display as _ipy_display

from ..config import settings
from ..types import CallInfo, CallObserver, Result, Usage
from . import _format as F
from . import scores as _scores
from .base import DisplayHandle, match_results, safe
from .markdown import escape, plain_html, render_markdown
from .throttle import Throttle

#: the live metrics line is repainted at most this often (seconds); the body at display_fps
FOOTER_INTERVAL = 0.5
#: while streaming, never send more than this many characters of body per second (long answers
#: are repainted less often)
MAX_BODY_CHARS_PER_S = 1_000_000
#: the height after which an answer scrolls inside its card
CARD_MAX_HEIGHT = "420px"

_GREY, _BLUE, _GREEN, _RED, _ORANGE = "#6e7781", "#0969da", "#1a7f37", "#cf222e", "#9a6700"

def _show(view: object) -> Any:
    """Display view; the returned handle lets close() refresh its text/plain form."""
    return _ipy_display(view, display_id=True)


#: how widgets are shown; tests replace it
show: Callable[[object], Any] = _show


def _frac_fps() -> float:
    try:
        fps = float(settings.display_fps)
    except Exception:
        fps = 20.0
    return fps if fps > 0 and math.isfinite(fps) else 20.0


class _View(w.VBox):
    """The displayed container; its text/plain form (what nbconvert keeps when widgets can't
    render) is a readable summary rather than a widget repr."""

    def __repr__(self) -> str:  # noqa: D105
        owner = getattr(self, "_llmcells_owner", None)
        try:
            return owner.summary() if owner is not None else "llmcells output"
        except Exception:
            return "llmcells output"

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs)
        if isinstance(data, dict):
            data["text/plain"] = repr(self)  # not cut at 110 characters like a widget repr
        return data


class Card(CallObserver):
    """The live view of one call; also its CallObserver."""

    def __init__(self, info: CallInfo, owner: "NotebookDisplay | None" = None, prompt: str = "",
                 markdown: bool = True):
        self.info = info
        self.markdown = markdown
        self.owner = owner
        self.status = "pending"
        self.detail: str | None = None
        self.text = ""
        self.usage: Usage | None = None
        self.result: Result | None = None
        self.t_start: float | None = None
        self.t_status = time.monotonic()
        self.t_first: float | None = None
        self._prompt_tokens = F.estimate_tokens(prompt)
        self._painted_text: str | None = None
        self._footer_at = -math.inf
        self._fps = _frac_fps()

        # no side margins: width 100% plus the widgets' default 2px margin overflows the card
        self.header = w.HTML(value=self._header_html(),
                             layout=w.Layout(width="100%", margin="2px 0"))
        self.body = w.HTML(
            value=self._placeholder("waiting to start…"),
            layout=w.Layout(width="100%", max_height=CARD_MAX_HEIGHT, overflow="auto",
                            margin="4px 0"))
        self.footer = w.HTML(value="&nbsp;", layout=w.Layout(width="100%", margin="2px 0"))
        self.box = w.VBox(
            [self.header, self.body, self.footer],
            layout=w.Layout(border_top="1px solid #d0d7de", border_bottom="1px solid #d0d7de",
                            border_left="1px solid #d0d7de", border_right="1px solid #d0d7de",
                            padding="6px 10px", min_width="280px", width="auto",
                            overflow="hidden"))
        self.throttle = Throttle(self._paint_live, self._interval)
        self.updates = 0  # value messages sent (for tests and diagnostics)

    # ----- CallObserver ------------------------------------------------------------------------

    @safe
    def on_start(self, info: CallInfo) -> None:
        if info is not None:
            self.info = info
        self.t_start = time.monotonic()
        self._set_status("waiting" if self.status == "pending" else self.status)

    @safe
    def on_status(self, status: str, detail: str | None = None) -> None:
        if self.result is not None:
            return
        if status in ("done", "ok"):
            status = "done"
        if status == "streaming" and self.t_first is None:
            self.t_first = time.monotonic()
        self.detail = detail
        self._set_status(status)

    @safe
    def on_text(self, delta: str, text: str | None = None) -> None:
        if self.result is not None:
            return
        self.text = text if text is not None else self.text + (delta or "")
        if self.t_first is None:
            self.t_first = time.monotonic()
        if self.status != "streaming":
            self.status, self.detail, self.t_status = "streaming", None, time.monotonic()
        self.throttle.request()

    @safe
    def on_usage(self, usage: Usage) -> None:
        if self.result is not None:
            return
        self.usage = usage
        if self.t_first is not None:
            self.throttle.request()

    @safe
    def on_finish(self, result: Result) -> None:
        self.finish(result)

    @safe
    def on_tool_call(self, run: Any) -> None:  # [tools hook]: a tool the model asked for has run
        from .tools import tool_markdown

        self.text += tool_markdown(run)
        self.throttle.request()

    @safe
    def on_scores(self, result: Result) -> None:  # [scoring hook]: a judge's scores came in
        self._set(self.footer, self._final_footer_html(result))

    # ----- painting ----------------------------------------------------------------------------

    def finish(self, result: Result) -> None:
        """Paint the final state (always, whatever the throttle)."""
        self.throttle.cancel()
        self.result = result
        self.status = {"ok": "done"}.get(result.status, result.status)
        if result.usage is not None and (result.usage.input_tokens or result.usage.output_tokens):
            self.usage = result.usage
        from .tools import transcript  # [tools hook]: the answer with its tool calls

        text = transcript(result)
        if result.status != "ok" and len(self.text) > len(text):
            text = self.text  # keep the partial answer visible
        self.text = text
        self._set(self.header, self._header_html())
        if text:
            body = render_markdown(text) if self.markdown else plain_html(text)
        else:
            body = self._placeholder("(no answer)" if result.status != "ok" else "(empty answer)")
        self._set(self.body, body)
        self._set(self.footer, self._final_footer_html(result))
        self._painted_text = text

    def _interval(self) -> float:
        # Live repaints get 85% of the message budget: the status changes and the final paint
        # (header, body, footer) must fit in the same second without passing display_fps.
        return max(1.0 / (0.85 * self._fps), len(self.text) / MAX_BODY_CHARS_PER_S)

    def _set(self, widget: w.HTML, value: str) -> None:
        if widget.value != value:
            widget.value = value
            self.updates += 1

    def _set_status(self, status: str) -> None:
        self.status, self.t_status = status, time.monotonic()
        self._set(self.header, self._header_html())
        if status in ("waiting", "retrying") and self.owner is not None:
            self.owner.ensure_ticker()

    def paint_header(self) -> None:
        self._set(self.header, self._header_html())

    def _paint_live(self) -> int:
        """One throttled repaint; returns how many widget messages it sent."""
        if self.result is not None:
            return 0
        before = self.updates
        self._set(self.header, self._header_html())
        if self.text != self._painted_text:
            self._set(self.body, plain_html(self.text))
            self._painted_text = self.text
        now = time.monotonic()
        if now - self._footer_at >= FOOTER_INTERVAL:
            self._footer_at = now
            self._set(self.footer, self._live_footer_html(now))
        return self.updates - before

    @staticmethod
    def _placeholder(text: str) -> str:
        return f'<div style="color:{_GREY};font-style:italic">{escape(text)}</div>'

    def _status_html(self) -> tuple[str, str | None]:
        """(status line, optional message line)."""
        now = time.monotonic()
        s = self.status
        if s == "pending":
            return f'<span style="color:{_GREY}">starting…</span>', None
        if s == "waiting":
            since = self.t_start if self.t_start is not None else self.t_status
            return (f'<span style="color:{_ORANGE}">⏳ waiting for first token… '
                    f'{max(0, now - since):.0f} s</span>'), None
        if s == "retrying":
            wait, code, attempt = F.parse_retry(self.detail)
            if wait is not None:
                left = max(0, math.ceil(wait - (now - self.t_status)))
                label = f"⟳ retrying in {left} s" + (f" ({code})" if code else "") + "…"
                if attempt:
                    label += f" {attempt}"
            else:
                label = "⟳ retrying…"
            title = escape(self.detail or "")
            return f'<span style="color:{_ORANGE}" title="{title}">{escape(label)}</span>', None
        if s == "streaming":
            return f'<span style="color:{_BLUE}">● streaming</span>', None
        if s == "done":
            return f'<span style="color:{_GREEN};font-weight:600">✓ done</span>', None
        msg = F.short_error(self.result) if self.result is not None else (self.detail or "")
        if s == "error":
            return f'<span style="color:{_RED};font-weight:600">✗ error</span>', msg
        if s == "cancelled":
            return f'<span style="color:{_GREY};font-weight:600">■ cancelled</span>', \
                (msg if msg and msg != "cancelled" else None)
        if s == "incomplete":
            return f'<span style="color:{_ORANGE};font-weight:600">⚠ incomplete</span>', msg
        return f'<span style="color:{_GREY}">{escape(s)}</span>', self.detail

    def _header_html(self) -> str:
        info = self.info
        name = f'<code style="font-weight:600;background:none">{escape(info.model_id or info.model)}</code>'
        if info.model and info.model != info.model_id:
            name += f' <span style="color:{_GREY}">({escape(info.model)})</span>'
        if info.sample:
            name += f' <span style="color:{_GREY}">#{info.sample + 1}</span>'
        if info.simulated:
            name += (' <span style="background:#fff8c5;color:#7d4e00;border:1px solid #d4a72c;'
                     'border-radius:8px;padding:0 6px;font-size:11px">simulated</span>')
        name += _scores.replay_badge(self.result)  # [scoring/replay hook]
        status, message = self._status_html()
        # an explicit line-height: an HTML widget's is 28px, which spreads out wrapped lines
        row = ('<div style="display:flex;flex-wrap:wrap;gap:4px 10px;align-items:baseline;'
               'justify-content:space-between;font-size:13px;line-height:1.5">'
               f'<span>{name}</span>{status}</div>')
        if message:
            row += (f'<div style="color:{_RED};font-size:12.5px;line-height:1.4;margin-top:2px;'
                    f'overflow-wrap:anywhere">{escape(message)}</div>')
        return row

    def _live_footer_html(self, now: float) -> str:
        parts = []
        start = self.t_start
        if self.t_first is not None and start is not None:
            parts.append(f"TTFT {F.fmt_seconds(self.t_first - start)}")
        if self.usage is not None and self.usage.output_tokens:
            out, approx = self.usage.output_tokens, ""
        else:
            out, approx = F.estimate_tokens(self.text), "~"
        if self.t_first is not None and now - self.t_first > 0.2 and out:
            parts.append(F.fmt_rate(out / (now - self.t_first)))
        inp = self.usage.input_tokens if self.usage is not None and self.usage.input_tokens else None
        parts.append(f"{inp:,}→{approx}{out:,} tokens" if inp else f"{approx}{out:,} tokens")
        cost = F.live_cost(self.info, inp if inp else self._prompt_tokens, out,
                           self.usage if inp else None)
        if F.known(cost):
            parts.append(("~" if approx or not inp else "") + F.fmt_cost(cost))
        if start is not None:
            parts.append(f"{now - start:.1f} s")
        return self._footer(" · ".join(parts))

    def _final_footer_html(self, result: Result) -> str:
        return self._footer(" · ".join(F.metric_parts(result)))

    @staticmethod
    def _footer(text: str) -> str:
        return f'<div style="color:{_GREY};font-size:12px;line-height:1.4">{escape(text)}</div>'

    def summary(self) -> str:
        head = f"── {self.info.model_id} ──"
        if self.result is not None:
            if self.result.status == "ok":
                return f"{head}\n{self.text}\n{F.metrics_line(self.result, self.info.model_id)}"
            return (f"{head}\n{self.text + chr(10) if self.text else ''}✗ {self.info.model_id}: "
                    f"{F.short_error(self.result)}")
        return f"{head} ({self.status})"


class NotebookDisplay(DisplayHandle):
    """Cards (one, or a grid for compare) and, for compare, the metrics table after close()."""

    mode = "notebook"

    def __init__(self, kind: str, infos: list[CallInfo], *, prompt: str = "", show_now: bool = True,
                 markdown: bool = True):
        self.kind = kind
        self.prompt = prompt
        self.cards = [Card(info, self, prompt, markdown) for info in infos]
        super().__init__(self.cards)
        self._tick_handle: asyncio.TimerHandle | None = None
        self.table = w.HTML(value="", layout=w.Layout(width="100%", margin="6px 0 0 0"))
        if kind == "compare" or len(self.cards) != 1:
            children: list[w.Widget] = []
            if prompt:
                p = " ".join(prompt.split())
                p = p if len(p) <= 160 else p[:159] + "…"
                children.append(w.HTML(
                    value=f'<div style="color:{_GREY};font-size:12px">Prompt: {escape(p)}</div>'))
            self.grid = w.GridBox(
                [c.box for c in self.cards],
                layout=w.Layout(
                    grid_template_columns="repeat(auto-fit, minmax(max(280px, 30%), 1fr))",
                    grid_gap="8px", width="100%"))
            children += [self.grid, self.table]
            self.view = _View(children, layout=w.Layout(width="100%"))
        else:
            self.grid = None
            self.view = _View([self.cards[0].box], layout=w.Layout(width="100%"))
        self.view._llmcells_owner = self
        self._shown = show(self.view) if show_now else None

    # the waiting / retrying counters tick once a second, on the loop, while anyone waits
    def ensure_ticker(self) -> None:
        if self._tick_handle is not None or self.closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._tick_handle = loop.call_later(1.0, self._tick)

    def _tick(self) -> None:
        self._tick_handle = None
        active = False
        for c in self.cards:
            if c.result is None and c.status in ("waiting", "retrying"):
                try:
                    c.paint_header()
                except Exception:
                    pass
                active = True
        if active:
            self.ensure_ticker()

    def close(self, results: list[Result]) -> None:
        try:
            if self._tick_handle is not None:
                self._tick_handle.cancel()
                self._tick_handle = None
            self.closed = True
            matched = match_results([c.info for c in self.cards], results)
            for card, r in zip(self.cards, matched):
                if card.result is None:
                    if r is None:
                        r = Result(text=card.text, model=card.info.model_id, provider=card.info.provider,
                                   status="cancelled", error="cancelled")
                    card.finish(r)
                elif card.throttle.dirty:
                    card.finish(card.result)
            if self.kind == "compare" or len(self.cards) > 1:
                final = [c.result for c in self.cards]
                self.table.value = metrics_table_html([c.info for c in self.cards], final)
        except Exception:
            pass
        try:
            # The output's text/plain was taken when the cards were empty; refresh it, so that a
            # notebook saved and viewed without widgets (nbconvert, a repository viewer) shows
            # the answers and the table rather than "pending".
            if hasattr(self._shown, "update"):
                self._shown.update(self.view)
        except Exception:
            pass

    def summary(self) -> str:
        parts = [c.summary() for c in self.cards]
        if self.closed and (self.kind == "compare" or len(self.cards) > 1):
            from .terminal import table_text

            parts.append(table_text([c.info for c in self.cards], [c.result for c in self.cards]))
        return "\n\n".join(parts)


def metrics_table_html(infos: list[CallInfo], results: list[Result | None]) -> str:
    """A compact table: model, status, latency, TTFT, tokens/s, input/output tokens, cost;
    the fastest (lowest latency) and cheapest (lowest known cost) successful answers in green."""
    rows = [r if r is not None else Result(status="cancelled") for r in results]
    fastest, cheapest = F.pick_best(rows)
    good = f"color:{_GREEN};font-weight:700"
    th = "text-align:{};padding:2px 8px;border-bottom:1px solid #d0d7de;font-weight:600"
    td = "text-align:{};padding:2px 8px;{}"
    heads = [("model", "left"), ("status", "left"), ("latency", "right"), ("TTFT", "right"),
             ("tokens/s", "right"), ("input", "right"), ("output", "right"), ("cost", "right")]
    score_cols = _scores.table_columns(rows)  # [scoring hook]: a column per scorer, best marked
    heads += [(name, "right") for name, _ in score_cols]
    out = ['<table style="border-collapse:collapse;font-size:12.5px;margin-top:4px">',
           "<thead><tr>" + "".join(f'<th style="{th.format(a)}">{h}</th>' for h, a in heads)
           + "</tr></thead><tbody>"]
    status_colour = {"ok": _GREEN, "error": _RED, "incomplete": _ORANGE, "cancelled": _GREY}
    for i, (info, r) in enumerate(zip(infos, rows)):
        model = escape(info.model_id or r.model)
        if info.simulated:
            model += f' <span style="color:{_GREY}">(simulated)</span>'
        lat = F.fmt_seconds(r.latency_s) if F.known(r.latency_s) else "–"
        cost = F.fmt_cost(r.cost_usd) if F.known(r.cost_usd) else "–"
        lat_style = good if i == fastest else ""
        cost_style = good if i == cheapest else ""
        if i == fastest:
            lat = "⚡ " + lat
        if i == cheapest:
            cost = "★ " + cost
        st = r.status
        u = r.usage or Usage()
        cells = [
            (model, "left", ""),
            (escape(st), "left", f"color:{status_colour.get(st, _GREY)}"),
            (lat, "right", lat_style),
            (F.fmt_seconds(r.ttft_s) if F.known(r.ttft_s) else "–", "right", ""),
            (f"{r.tokens_per_s:.0f}" if F.known(r.tokens_per_s) else "–", "right", ""),
            (F.fmt_int(u.input_tokens) if u.input_tokens else "–", "right", ""),
            (F.fmt_int(u.output_tokens) if u.output_tokens else "–", "right", ""),
            (cost, "right", cost_style),
        ]
        cells += [(escape(col[i][0]), "right", good if col[i][1] else "") for _, col in score_cols]
        cls = []
        if i == fastest:
            cls.append("fastest")
        if i == cheapest:
            cls.append("cheapest")
        attr = f' class="{" ".join(cls)}"' if cls else ""
        out.append(f"<tr{attr}>" + "".join(
            f'<td style="{td.format(a, s)}">{v}</td>' for v, a, s in cells) + "</tr>")
    out.append("</tbody></table>")
    if fastest is not None or cheapest is not None:
        legend = []
        if fastest is not None:
            legend.append(f'<span style="{good}">⚡ fastest</span> (lowest latency)')
        if cheapest is not None:
            legend.append(f'<span style="{good}">★ cheapest</span> (lowest known cost)')
        if score_cols:
            legend.append(f'<span style="{good}">▲ best</span> score')
        out.append(f'<div style="color:{_GREY};font-size:11.5px;margin-top:2px">'
                   + " · ".join(legend) + " among successful answers</div>")
    out.append(_scores.summary_html(infos, rows))  # [scoring hook]: repeats: mean [95% interval]
    return "".join(out)
