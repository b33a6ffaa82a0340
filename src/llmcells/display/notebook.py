"""Notebook widgets: one streaming card per call, the comparison grid, and the metrics table.

Every widget is created and displayed on the main thread (in `NotebookDisplay.__init__`); the
private loop thread only sets `value` traits. A card is three HTML widgets (header with model and
status, body with the answer, footer with live figures) so that a repaint while streaming sends
one message for the body and, at most twice a second, one for the footer. The body is Markdown
while it streams (settled blocks rendered once, the tail re-rendered at each throttled paint).
Styling is one stylesheet of theme CSS variables (style.py). A static HTML copy of the finished
output is published beside the widgets, for saved notebooks viewed without a widget manager.
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
from ..types import CallInfo, CallObserver, Result, RetryInfo, Usage
from . import _format as F
from . import scores as _scores
from .base import DisplayHandle, match_results, safe
from .markdown import StreamingMarkdown, escape, plain_html, render_markdown
from .static import inline_styles, side_by_side
from .style import style_tag
from .rich import card_extras
from .throttle import Throttle
from .._log import swallowed

#: the live metrics line is repainted at most this often (seconds); the body at display_fps
FOOTER_INTERVAL = 0.25
#: while streaming, never send more than this many characters of body per second (long answers
#: are repainted less often)
MAX_BODY_CHARS_PER_S = 1_000_000


def _show(view: object) -> Any:
    """Display view; the returned handle lets close() refresh its text/plain form."""
    return _ipy_display(view, display_id=True)


def _show_static(bundle: dict) -> Any:
    """Display a mime bundle (the static copy); the returned handle lets close() fill it in."""
    return _ipy_display(bundle, raw=True, display_id=True)


#: how widgets and the static copy are shown; tests replace them
show: Callable[[object], Any] = _show
show_static: Callable[[dict], Any] = _show_static


def _frac_fps() -> float:
    try:
        fps = float(settings.display_fps)
    except Exception as exc:
        swallowed("reading display_fps (20 instead)", exc)
        fps = 20.0
    return fps if fps > 0 and math.isfinite(fps) else 20.0


class _View(w.VBox):
    """The displayed container; its text/plain form (what a viewer shows when widgets can't
    render) is a readable summary rather than a widget repr."""

    def __repr__(self) -> str:  # noqa: D105
        owner = getattr(self, "_llmcells_owner", None)
        try:
            return owner.pointer() if owner is not None else "llmcells output"
        except Exception as exc:
            swallowed("naming an output", exc)
            return "llmcells output"

    def _repr_mimebundle_(self, **kwargs):
        data = super()._repr_mimebundle_(**kwargs)
        if isinstance(data, dict):
            data["text/plain"] = repr(self)  # not cut at 110 characters like a widget repr
        return data


def _provider_label(provider: str) -> str:
    from ..registry import row

    found = row(provider)
    return found.label if found else provider


class Card(CallObserver):
    """The live view of one call; also its CallObserver.

    Figures have one definition, the engine's: elapsed time counts from the t0 given to on_sent,
    TTFT is the one given to on_first_token, tokens/s is output tokens over the time since the
    first token. Live token counts, tokens/s and cost are estimates and are marked `~`.
    """

    def __init__(self, info: CallInfo, owner: "NotebookDisplay | None" = None, prompt: str = "",
                 markdown: bool = True):
        self.info = info
        self.markdown = markdown
        self.owner = owner
        self.status = "pending"
        self.detail: str | None = None
        self.retry: RetryInfo | None = None
        self._pieces: list[str] = []  # the answer as it arrived (joined only when needed)
        self._chars = 0
        self.chunks = 0  # text pieces streamed (tokens/s means something only over a few)
        self._tokens = F.TokenCounter(info.provider)
        self._stream = StreamingMarkdown(markdown)
        self._new: list[str] = []     # pieces not yet given to the Markdown renderer
        self._final_text: str | None = None
        self.usage: Usage | None = None
        self.result: Result | None = None
        self.t_start: float | None = None
        self.t0: float | None = None          # the engine's request clock (on_sent)
        self.ttft: float | None = None        # the engine's TTFT (on_first_token)
        self.t_first: float | None = None     # monotonic time of the first token
        self.t_status = time.monotonic()
        self._prompt_tokens = F.estimate_tokens(prompt, info.provider)
        self._footer_at = -math.inf
        self._footer_tokens = 0  # the live count the footer showed last
        self._fps = _frac_fps()

        self.header = w.HTML(value=self._header_html(), layout=w.Layout(width="100%", margin="0"))
        self.body = w.HTML(value=self._placeholder("waiting to start…"),
                           layout=w.Layout(width="100%", margin="0"))
        self.body.add_class("llmcells-body")
        # The answer scrolls inside this box. Its flex direction is column-reverse (style.py), so
        # the browser keeps it scrolled to the end while the answer grows, and leaves it where
        # it is once the user scrolls up; no script needed.
        self.scroll = w.Box([self.body], layout=w.Layout(width="100%", margin="4px 0"))
        self.scroll.add_class("llmcells-scroll")
        self.footer = w.HTML(value="&nbsp;", layout=w.Layout(width="100%", margin="0"))
        self.box = w.VBox([self.header, self.scroll, self.footer],
                          layout=w.Layout(width="auto", min_width="0", overflow="hidden"))
        self.box.add_class("llmcells-card")
        self.throttle = Throttle(self._paint_live, self._interval)
        self.updates = 0  # value messages sent (for tests and diagnostics)

    # ----- the text ----------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The answer so far (joined on demand; the card keeps it as pieces)."""
        if self._final_text is not None:
            return self._final_text
        if len(self._pieces) > 1:
            self._pieces[:] = ["".join(self._pieces)]
        return self._pieces[0] if self._pieces else ""

    # ----- CallObserver ------------------------------------------------------------------------

    @safe
    def on_start(self, info: CallInfo) -> None:
        if info is not None:
            self.info = info
        self.t_start = time.monotonic()
        self._set_status("starting" if self.status == "pending" else self.status)

    @safe
    def on_sent(self, t0: float) -> None:
        self.t0 = t0
        if self.status in ("pending", "starting"):
            self._set_status("waiting")

    @safe
    def on_status(self, status: str, detail: str | None = None) -> None:
        if self.result is not None:
            return
        if status in ("done", "ok"):
            status = "done"
        if status == "retrying" and self.retry is not None:
            return  # on_retry has painted it, with the details as data
        if status != "retrying":
            self.retry = None  # the next attempt has started
        self.detail = detail
        self._set_status(status)

    @safe
    def on_retry(self, retry: RetryInfo) -> None:
        if self.result is not None:
            return
        self.retry = retry
        self._set_status("retrying")

    @safe
    def on_first_token(self, ttft_s: float) -> None:
        self.ttft = ttft_s
        self.t_first = time.monotonic()

    @safe
    def on_text(self, delta: str) -> None:
        if self.result is not None or not delta:
            return
        self._append(delta)
        self.chunks += 1
        self._tokens.feed(delta)
        if self.t_first is None:
            self.t_first = time.monotonic()
        if self.status != "streaming":
            self.status, self.detail, self.retry, self.t_status = ("streaming", None, None,
                                                                  time.monotonic())
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

        if self.result is not None:
            return
        self._append(tool_markdown(run))  # shown live, in its place; not answer tokens
        self.throttle.request()

    def _append(self, text: str) -> None:
        """Add text to what the body shows (painted at the next live repaint)."""
        self._pieces.append(text)
        self._new.append(text)
        self._chars += len(text)

    @safe
    def on_scores(self, result: Result) -> None:  # [scoring hook]: a judge's scores came in
        self._set(self.footer, self._final_footer_html(result))

    # ----- live figures ------------------------------------------------------------------------

    def live_figures(self, now: float | None = None) -> dict:
        """The live estimates: elapsed, ttft, output tokens, tokens/s, input tokens, cost."""
        now = time.monotonic() if now is None else now
        elapsed = now - self.t0 if self.t0 is not None else None
        ttft = self.ttft
        if ttft is None and self.t_first is not None and self.t0 is not None:
            ttft = self.t_first - self.t0
        reported = self.usage.output_tokens if self.usage is not None else 0
        out = F.best_output_tokens(reported, self._tokens.tokens)
        rate = None
        if ttft is not None and elapsed is not None and out:
            span = elapsed - ttft
            rate = F.meaningful_rate(out / span if span > 0 else None, span, self.chunks)
        inp = self.usage.input_tokens if self.usage is not None and self.usage.input_tokens else None
        cost = F.live_cost(self.info, inp if inp else self._prompt_tokens, out,
                           self.usage if inp else None)  # cache reads and writes at their rates
        return dict(elapsed=elapsed, ttft=ttft, output_tokens=out, rate=rate,
                    input_tokens=inp if inp else self._prompt_tokens, input_estimated=not inp,
                    cost=cost)

    @safe
    def on_fallback(self, from_model: str, reason: str, to_model: str) -> None:
        # shown under the model's name until the end: "claude: overloaded → chatgpt"
        step = f"{from_model}: {reason.replace('_', ' ')} → {to_model}"
        self.fallback_note = f"{self.fallback_note} → {to_model}" if getattr(self, "fallback_note", "") \
            and self.fallback_note.endswith(from_model) else step
        self._set_status("waiting")

    # ----- painting ----------------------------------------------------------------------------

    def finish(self, result: Result) -> None:
        """Paint the final state (always, whatever the throttle)."""
        self.throttle.cancel()
        self.result = result
        self.status = {"ok": "done"}.get(result.status, result.status)
        if result.usage is not None and (result.usage.input_tokens or result.usage.output_tokens):
            self.usage = result.usage
        from .tools import transcript  # the answer with its tool calls

        text = transcript(result)
        if result.status != "ok" and self._chars > len(text):
            text = self.text  # keep the partial answer visible
        self._final_text = text
        self._pieces, self._new = [], []
        self._set(self.header, self._header_html())
        self._set(self.body, self.final_body_html())
        self._set(self.footer, self._final_footer_html(result))
        # finished: the box opens to the answer's full height, read from the top (style.py)
        if "llmcells-finished" not in self.box._dom_classes:
            self.box.add_class("llmcells-finished")

    def final_body_html(self) -> str:
        text = self.text
        if text:
            body = render_markdown(text) if self.markdown else plain_html(text)
        else:
            failed = self.result is not None and self.result.status != "ok"
            body = self._placeholder("(no answer)" if failed else "(empty answer)")
        if self.result is not None:  # attachments (thumbnails, chips) and a schema's fields table
            body += card_extras(self.info, self.result)
        return body

    def _interval(self) -> float:
        # Live repaints get 85% of the message budget: the status changes and the final paint
        # (header, body, footer) must fit in the same second without passing display_fps.
        return max(1.0 / (0.85 * self._fps), self._chars / MAX_BODY_CHARS_PER_S)

    def _set(self, widget: w.HTML, value: str) -> None:
        if widget.value != value:
            widget.value = value
            self.updates += 1

    def _set_status(self, status: str) -> None:
        self.status, self.t_status = status, time.monotonic()
        self._set(self.header, self._header_html())
        # the body says what the card waits for (not once streaming: the text is on its way)
        if not self._chars and self.result is None and status != "streaming":
            self._set(self.body, self._placeholder(self._waiting_text()))
        if status in ("starting", "waiting", "retrying") and self.owner is not None:
            self.owner.ensure_ticker()

    def paint_header(self) -> None:
        self._set(self.header, self._header_html())

    def _live_body_html(self) -> str:
        if self._new:
            self._stream.feed(self._new[0] if len(self._new) == 1 else "".join(self._new))
            self._new = []
        return self._stream.html()

    def _paint_live(self) -> int:
        """One throttled repaint; returns how many widget messages it sent."""
        if self.result is not None:
            return 0
        before = self.updates
        self._set(self.header, self._header_html())
        now = time.monotonic()
        # the footer every FOOTER_INTERVAL, or sooner when a burst of text has far outgrown the
        # count it shows (it must not say "~1 tokens" under a paragraph). It is sent before the
        # body: each widget is its own message and the page may draw between them, so the count
        # is never a repaint behind the text it counts.
        grown = self._tokens.tokens >= 2 * self._footer_tokens + 10
        if now - self._footer_at >= FOOTER_INTERVAL or grown:
            self._footer_at, self._footer_tokens = now, self._tokens.tokens
            self._set(self.footer, self._live_footer_html(now))
        if self._new:
            self._set(self.body, self._live_body_html())
        return self.updates - before

    def _waiting_text(self) -> str:
        if self.status == "retrying":
            why = self.retry.message if self.retry is not None and self.retry.message else ""
            return "retrying" + (f" after: {why}" if why else "…")
        if self.status == "waiting":
            return "waiting for the first token…"
        if self.status == "calling":
            return f"calling {self.detail or 'a tool'}…"
        return "waiting to start…"

    @staticmethod
    def _placeholder(text: str) -> str:
        return f'<div class="llmcells-muted" style="font-style:italic">{escape(text)}</div>'

    def status_label(self) -> tuple[str, str, str | None]:
        """(status class, label, optional message line) for the header."""
        now = time.monotonic()
        s = self.status
        if s in ("pending", "starting"):
            return "pending", "starting…", None
        if s == "waiting":
            since = self.t0 if self.t0 is not None else (self.t_start or self.t_status)
            return "waiting", f"⏳ waiting for first token… {max(0, now - since):.0f} s", None
        if s == "retrying":
            if self.retry is not None:
                left = self.retry.wait_s - (now - self.t_status)
                return "retrying", "⟳ " + F.retry_label(self.retry, left, short=True), None
            return "retrying", "⟳ retrying…", None
        if s == "streaming":
            return "streaming", "● streaming", None
        if s == "calling":
            return "streaming", f"⚙ calling {self.detail or 'a tool'}…", None
        if s == "done":
            return "done", "✓ done", None
        msg = F.short_error(self.result) if self.result is not None else (self.detail or "")
        if s == "error":
            return "error", "✗ error", msg
        if s == "cancelled":
            return "cancelled", "■ cancelled", (msg if msg and msg != "cancelled" else None)
        if s == "incomplete":
            return "incomplete", "⚠ incomplete", msg
        return "pending", s, self.detail

    def _header_html(self) -> str:
        """Two rows, the same in every card so that cards line up: the model id and the status;
        then, small, the provider, the name as asked, the sample number and "simulated"."""
        info = self.info
        name = f"<code>{escape(info.model_id or info.model)}</code>"
        cls, label, message = self.status_label()
        full = label  # the status's whole text, as a tooltip (a long one is cut with "…")
        if self.retry is not None and self.status == "retrying":
            left = self.retry.wait_s - (time.monotonic() - self.t_status)
            full = "⟳ " + F.retry_label(self.retry, left) + (
                f": {self.retry.message}" if self.retry.message else "")
        # (the space between name and status shows where a page drops the styles that lay
        # them out, as GitHub does; in the flex row it takes no room)
        row = (f'<div class="llmcells-head"><span class="llmcells-name" '
               f'title="{escape(info.model_id or info.model)}">{name}</span> '
               f'<span class="llmcells-status llmcells-s-{cls}" title="{escape(full)}">'
               f"{escape(label)}</span></div>")
        sub = [escape(_provider_label(info.provider))]
        if info.model and info.model != info.model_id:
            sub.append(f"asked as {escape(info.model)}")
        if info.sample:
            sub.append(f"sample #{info.sample + 1}")
        badge = '<span class="llmcells-badge">simulated</span> ' if info.simulated else ""
        badge += _scores.replay_badge(self.result)
        # the badges come first, so that a long sub line never pushes them out of view
        row += (f'<div class="llmcells-sub llmcells-muted">{badge}{" · ".join(sub)}</div>')
        note = getattr(self, "fallback_note", "")
        if note:  # a model chain moved on: "claude: overloaded → chatgpt", on its own line
            row += (f'<div class="llmcells-note llmcells-muted" title="{escape(note)}">'
                    f"↪ {escape(note)}</div>")
        repair = self._repair_note()
        if repair:
            row += f'<div class="llmcells-note llmcells-muted" title="{escape(repair)}">{escape(repair)}</div>'
        if message:
            row += f'<div class="llmcells-msg" title="{escape(message)}">{escape(message)}</div>'
        return row

    def _repair_note(self) -> str:
        """"repaired after 1 failed answer" when a --repair call ended ok after a retry."""
        r = self.result
        n = getattr(self, "repairs", 0)
        if r is None or not r.ok or not n:
            return ""
        return f"↻ repaired: the first answer failed validation; shown is the answer after {n} repair" \
            + ("s" if n > 1 else "")

    def _live_footer_html(self, now: float) -> str:
        f = self.live_figures(now)
        parts = F.figures(f["elapsed"], f["ttft"], f["rate"], f["input_tokens"],
                          f["output_tokens"] if self._chars else 0, f["cost"], estimated=True,
                          input_estimated=f["input_estimated"])
        return self._footer(" · ".join(parts))

    def _final_footer_html(self, result: Result) -> str:
        from ..agents import card_note  # [agents] an agent CLI's own report, one more line

        note = card_note(result)
        chunks = self.chunks if self.chunks else None  # not streamed here (cached, replayed): unknown
        notes = F.notes_line(result)  # a parameter left out, a refusal... (escaped in _footer)
        return (self._footer(" · ".join(F.metric_parts(result, chunks))) + (self._footer(notes) if notes else "")
                + (self._footer(note) if note else ""))

    @staticmethod
    def _footer(text: str) -> str:
        return f'<div class="llmcells-foot">{escape(text) or "&nbsp;"}</div>'

    def heading(self) -> str:
        return (self.info.model_id or self.info.model) + (" (simulated)" if self.info.simulated else "")

    def summary(self) -> str:
        head = f"── {self.heading()} ──"
        if self.result is not None:
            if self.result.status == "ok":
                return f"{head}\n{self.text}\n{F.metrics_line(self.result, self.info.model_id)}"
            return (f"{head}\n{self.text + chr(10) if self.text else ''}✗ {self.info.model_id}: "
                    f"{F.short_error(self.result)}")
        return f"{head} ({self.status})"

    def static_html(self) -> str:
        """The finished card's content as HTML (header, answer, metrics), for saved notebooks;
        NotebookDisplay puts it in a bordered card and writes its styles inline."""
        return (f"{self._header_html()}"
                f'<div style="margin:4px 0">{self.final_body_html()}</div>'
                f"{self.footer.value}")


class NotebookDisplay(DisplayHandle):
    """Cards (one, or a grid for compare) and, for compare, the metrics table after close().

    Below the widgets sits a static copy (text/html + text/plain) that close() fills in with the
    finished cards: a saved notebook then shows the answers in nbconvert's HTML and repository
    viewers whether or not the widget state was saved (an offline page can't load the widget
    manager). While the widgets are live their stylesheet hides the static copy.
    """

    mode = "notebook"

    def __init__(self, kind: str, infos: list[CallInfo], *, prompt: str = "", show_now: bool = True,
                 markdown: bool = True):
        self.kind = kind
        self.prompt = prompt
        self.cards = [Card(info, self, prompt, markdown) for info in infos]
        super().__init__(self.cards)
        self._tick_handle: asyncio.TimerHandle | None = None
        self.style = w.HTML(value=style_tag(), layout=w.Layout(display="none"))
        self.table = w.HTML(value="", layout=w.Layout(width="100%", margin="6px 0 0 0"))
        self.table.add_class("llmcells-wide")  # scrolls sideways inside the output (style.py)
        children: list[w.Widget] = [self.style]
        if self.many:
            if prompt:
                children.append(w.HTML(value=self._prompt_html(),
                                       layout=w.Layout(width="100%", margin="0")))
            self.grid = w.GridBox([c.box for c in self.cards],
                                  layout=w.Layout(grid_template_columns=grid_columns(len(self.cards)),
                                                  grid_gap="8px", width="100%"))
            children += [self.grid, self.table]
        else:
            self.grid = None
            children.append(self.cards[0].box)
        self.view = _View(children, layout=w.Layout(width="100%"))
        self.view.add_class("llmcells-view")
        self.view._llmcells_owner = self
        self._shown = show(self.view) if show_now else None
        self._static = show_static(self.static_bundle()) if show_now else None

    @property
    def many(self) -> bool:
        return self.kind == "compare" or len(self.cards) != 1

    def _prompt_html(self) -> str:
        p = " ".join(self.prompt.split())
        p = p if len(p) <= 160 else p[:159] + "…"
        return f'<div class="llmcells-prompt">Prompt: {escape(p)}</div>'

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
            if c.result is None and c.status in ("starting", "waiting", "retrying"):
                try:
                    c.paint_header()
                except Exception as exc:
                    swallowed("painting a card's header", exc)
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
                elif (r is not None and r.call_id != card.result.call_id
                      and card.result.error_kind == "invalid_output"):
                    # the call was answered again (repair=1): show the answer that counts
                    card.repairs = getattr(card, "repairs", 0) + 1
                    card.finish(r)
                elif card.throttle.dirty:
                    card.finish(card.result)
            from ..session import current_cell

            cell = current_cell()
            for c in self.cards:  # the card shows it: the cell's value needn't show it again
                if c.result is not None and cell is not None:
                    c.result.__dict__["_card_cell"] = cell
            if self.many:
                final = [c.result for c in self.cards]
                self.table.value = metrics_table_html([c.info for c in self.cards], final,
                                                      [c.chunks or None for c in self.cards])
        except Exception as exc:
            swallowed("painting the final cards", exc)
        # The outputs' text/plain and the static copy were taken when the cards were empty;
        # refresh them so a saved notebook shows the answers wherever it is viewed.
        for handle, obj in ((self._shown, self.view), (self._static, None)):
            try:
                if hasattr(handle, "update"):
                    if obj is None:
                        handle.update(self.static_bundle(), raw=True)
                    else:
                        handle.update(obj)
            except Exception as exc:
                swallowed("updating an output's static copy", exc)

    def pointer(self) -> str:
        """The widget output's text form: one line naming the models while the calls run; empty
        once they ended (the static copy right below holds the answers, so a viewer without
        widgets shows them once, with no extra line)."""
        names = ", ".join(c.heading() for c in self.cards)
        if not self.closed:
            return f"llmcells {self.kind}: {names}"
        return ""

    def summary(self) -> str:
        parts = [c.summary() for c in self.cards]
        if self.closed and self.many:
            from .terminal import table_text

            parts.append(table_text([c.info for c in self.cards], [c.result for c in self.cards]))
        return "\n\n".join(parts)

    def static_html(self) -> str:
        """The finished output as standalone HTML (cards side by side, table) with inline styles
        only and no <style> block, so that it reads the same where stylesheets are stripped
        (an untrusted notebook in JupyterLab, GitHub); the live view's stylesheet hides it."""
        if not self.closed:
            return '<div class="llmcells-static"></div>'
        if self.many:
            cards = side_by_side([c.static_html() for c in self.cards])
            if self.prompt:
                cards = self._prompt_html() + cards
            cards += f'<div class="llmcells-table">{self.table.value}</div>'
        else:
            cards = f'<div class="llmcells-card">{self.cards[0].static_html()}</div>'
        return inline_styles(f'<div class="llmcells-static">{cards}</div>')

    def static_bundle(self) -> dict:
        # text/plain is what a terminal front end (jupyter console) prints: no control characters
        return {"text/html": self.static_html(),
                "text/plain": F.terminal_safe(self.summary()) if self.closed else ""}


#: the narrowest a card may get before the grid stacks the cards, one per row
MIN_CARD_PX = 300


def grid_columns(n: int, gap_px: int = 8) -> str:
    """Cards side by side (up to three a row) when each gets MIN_CARD_PX, otherwise one per row:
    never a 2 + 1 grid with an empty slot. Pure CSS: the column minimum is a third (or half) of
    the width when the row fits, and 100% when it doesn't (the "max(a, min(100%, (t - 100%) * big))"
    switch)."""
    cols = max(1, min(n, 3))
    if cols == 1:
        return "minmax(0, 1fr)"
    need = cols * MIN_CARD_PX + (cols - 1) * gap_px
    share = f"(100% - {(cols - 1) * gap_px}px) / {cols}"
    return (f"repeat(auto-fill, minmax(max(calc({share}), "
            f"min(100%, calc(({need}px - 100%) * 999))), 1fr))")


def _rate_cell(r: Result, chunks: int | None) -> str:
    rate = F.result_rate(r, chunks)
    if rate is not None:
        return f"{rate:.0f}"
    return "—" if r.usage is not None and r.usage.output_tokens else "–"


def metrics_table_html(infos: list[CallInfo], results: list[Result | None],
                       chunks: list[int | None] | None = None) -> str:
    """A compact table: model, status, latency, TTFT, tokens/s, input/output tokens, cost;
    the fastest (lowest latency) and cheapest (lowest known cost) successful answers marked."""
    rows = [r if r is not None else Result(status="cancelled") for r in results]
    fastest, cheapest = F.pick_best(rows)
    heads = ["model", "status", "latency", "TTFT", "tokens/s", "input", "output", "cost"]
    score_cols = _scores.table_columns(rows)  # a column per scorer, the best marked
    heads += [escape(name) for name, _ in score_cols]
    # model and status read from the left, the figures from the right: written on the cells
    # too, as the static copy of a saved notebook has no stylesheet to say it (static.py)
    left = ' style="text-align:left"'
    out = ['<div class="llmcells-table"><table class="llmcells-metrics">',
           "<thead><tr>" + "".join(f"<th{left if i < 2 else ''}>{h}</th>" for i, h in enumerate(heads))
           + "</tr></thead><tbody>"]
    status_cls = {"ok": "done", "error": "error", "incomplete": "incomplete",
                  "cancelled": "cancelled"}
    for i, (info, r) in enumerate(zip(infos, rows)):
        model = escape(info.model_id or r.model)
        if info.simulated:
            model += ' <span class="llmcells-muted">(simulated)</span>'
        lat = F.fmt_seconds(r.latency_s) if F.known(r.latency_s) else "–"
        cost = F.fmt_cost(r.cost_usd) if F.known(r.cost_usd) else "–"
        lat_cls = ' class="llmcells-best"' if i == fastest else ""
        cost_cls = ' class="llmcells-best"' if i == cheapest else ""
        if i == fastest:
            lat = "⚡ " + lat
        if i == cheapest:
            cost = "★ " + cost
        st = r.status
        u = r.usage or Usage()
        cells = [
            (model, left),
            (escape(st), f' class="llmcells-s-{status_cls.get(st, "pending")}"{left}'),
            (lat, lat_cls),
            (F.fmt_seconds(r.ttft_s) if F.known(r.ttft_s) else "–", ""),
            (_rate_cell(r, chunks[i] if chunks else None), ""),
            (F.fmt_int(u.input_tokens) if u.input_tokens else "–", ""),
            (F.fmt_int(u.output_tokens) if u.output_tokens else "–", ""),
            (cost, cost_cls),
        ]
        cells += [(escape(col[i][0]), ' class="llmcells-best"' if col[i][1] else "") for _, col in score_cols]
        cls = []
        if i == fastest:
            cls.append("fastest")
        if i == cheapest:
            cls.append("cheapest")
        attr = f' class="{" ".join(cls)}"' if cls else ""
        out.append(f"<tr{attr}>" + "".join(f"<td{c}>{v}</td>" for v, c in cells) + "</tr>")
    out.append("</tbody></table></div>")
    if fastest is not None or cheapest is not None:
        legend = []
        if fastest is not None:
            legend.append('<span class="llmcells-best">⚡ fastest</span> (lowest latency)')
        if cheapest is not None:
            legend.append('<span class="llmcells-best">★ cheapest</span> (lowest known cost)')
        if any(best for _, col in score_cols for _, best in col):
            legend.append('<span class="llmcells-best">▲ best</span> score')
        out.append('<div class="llmcells-legend">' + " · ".join(legend)
                   + " among successful answers</div>")
    out.append(_scores.summary_html(infos, rows))  # with repeats: mean [95% interval]
    return "".join(out)
