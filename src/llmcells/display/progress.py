"""Batch progress: one compact widget in a notebook, one tqdm-style line in a terminal.

Both read a tally (total, done, failed, inflight, cost, started, stopped) and repaint through
the same Throttle as the cards, so a batch of thousands of calls sends a few updates a second.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from ..config import settings
from ._format import fmt_cost
from .throttle import Throttle
from .._log import swallowed


def _summary(t: Any) -> tuple[str, str]:
    """(counts, speed) texts of a tally."""
    elapsed = max(1e-9, time.monotonic() - t.started)
    rate = t.done / elapsed
    left = t.total - t.done
    eta = f"ETA {left / rate:.0f} s" if rate > 0 and left > 0 and t.stopped is None else ""
    counts = f"{t.done}/{t.total} done · {t.failed} failed · {t.inflight} in flight"
    speed = " · ".join(x for x in (f"{rate:.1f} calls/s", fmt_cost(t.cost), eta) if x)
    return counts, speed


class TerminalProgress:
    """A single stderr line, rewritten in place on a terminal and printed at the end otherwise."""

    def __init__(self, total: int, batch_id: str):
        self.batch_id = batch_id
        self.tally: Any = None
        self.tty = sys.stderr.isatty()
        self.throttle = Throttle(self._paint, lambda: 1.0 / max(1.0, settings.display_fps / 4))

    def _paint(self) -> None:
        if self.tally is not None and self.tty:
            counts, speed = _summary(self.tally)
            sys.stderr.write(f"\rbatch {self.batch_id}: {counts} · {speed}\x1b[K")
            sys.stderr.flush()

    def update(self, tally: Any) -> None:
        self.tally = tally
        self.throttle.request()

    def close(self, tally: Any, interrupted: bool = False) -> None:
        self.throttle.cancel()
        counts, speed = _summary(tally)
        end = " · interrupted (resume with the same batch_id)" if interrupted else ""
        stop = f"\n{tally.stopped}" if tally.stopped else ""
        sys.stderr.write(f"\rbatch {self.batch_id}: {counts} · {speed}{end}\x1b[K{stop}\n"
                         if self.tty else f"batch {self.batch_id}: {counts} · {speed}{end}{stop}\n")
        sys.stderr.flush()


_SummaryBox = None


def summary_box(children: list, summary: Any, vertical: bool = False) -> Any:
    """A widget box, and below it a static copy of `summary()` (text/plain, and escaped
    text/html in a `.llmcells-static` block), as the cards have: a saved notebook shows the
    summary wherever it is read (nbconvert's HTML with or without the widget state, an untrusted
    notebook, GitHub), and a live one shows it once, since the box's stylesheet hides the copy
    while the widgets are live. The box's own text form is one line while it runs and empty once
    final, so that a viewer without widgets shows the summary once, not its repr
    ("HBox(children=(IntProgress(...").

    Display it with summary_box(...).show() and call .refresh() once its state is final."""
    global _SummaryBox
    if _SummaryBox is None:
        import ipywidgets as w

        class SummaryBox(w.Box):
            def _summary_text(self) -> str:
                try:
                    return self._llmcells_summary()
                except Exception as exc:
                    swallowed("summarising a progress view", exc)
                    return "llmcells progress"

            def _repr_mimebundle_(self, **kwargs):
                data = super()._repr_mimebundle_(**kwargs)
                if isinstance(data, dict):
                    data["text/plain"] = "" if self._llmcells_final else self._summary_text()
                return data

            def static_bundle(self) -> dict:
                """The static copy: the summary as text, and as HTML the live view hides."""
                text = self._summary_text()
                return {"text/plain": text,
                        "text/html": ('<div class="llmcells-static"><pre style="white-space:pre-wrap;'
                                      f'margin:0">{html.escape(text)}</pre></div>')}

            def show(self):
                from IPython.display import display

                self._llmcells_handle = display(self, display_id=True)
                self._llmcells_static = display(self.static_bundle(), raw=True, display_id=True)
                return self

            def refresh(self):
                self._llmcells_final = True
                box, copy = (getattr(self, name, None) for name in ("_llmcells_handle", "_llmcells_static"))
                try:
                    if box is not None:
                        box.update(self)
                    if copy is not None:
                        copy.update(self.static_bundle(), raw=True)
                except Exception as exc:  # the live view is painted already: only the saved form
                    swallowed("updating a progress view's saved form", exc)

        _SummaryBox = SummaryBox
    import ipywidgets as w

    from .style import style_tag

    # the cards' stylesheet (hidden itself): while the widgets are live, the copy below is hidden
    sheet = w.HTML(value=style_tag(), layout=w.Layout(display="none"))
    box = _SummaryBox([sheet, *children], layout=w.Layout(
        display="flex", flex_flow="column" if vertical else "row",
        align_items="center" if not vertical else "stretch"))
    box._llmcells_summary = summary
    box._llmcells_final = False
    return box


class NotebookProgress:
    """An IntProgress bar and one HTML line, created on the main thread, updated from the loop."""

    def __init__(self, total: int, batch_id: str):
        import ipywidgets as w

        self.batch_id = batch_id
        self.total = total
        self.tally: Any = None
        self.end = ""
        self.bar = w.IntProgress(min=0, max=max(1, total), value=0, bar_style="info",
                                 layout=w.Layout(width="260px"))
        self.label = w.HTML(f"batch <code>{html.escape(batch_id)}</code>: starting {total} calls…")
        self.box = summary_box([self.bar, self.label], self.text).show()
        self.throttle = Throttle(self._paint, lambda: 2.0 / max(1.0, settings.display_fps))

    def text(self) -> str:
        """The progress as one line of plain text (the output's text form)."""
        if self.tally is None:
            return f"batch {self.batch_id}: starting {self.total} calls…"
        counts, speed = _summary(self.tally)
        return f"batch {self.batch_id}: {counts} · {speed}{self.end}"

    def _paint(self) -> None:
        if self.tally is None:
            return
        counts, speed = _summary(self.tally)
        self.bar.value = self.tally.done
        self.label.value = (f"batch <code>{html.escape(self.batch_id)}</code>: "
                            f"{html.escape(counts)} · {html.escape(speed)}")

    def update(self, tally: Any) -> None:
        self.tally = tally
        self.throttle.request()

    def close(self, tally: Any, interrupted: bool = False) -> None:
        self.tally = tally
        self.throttle.flush()
        if interrupted:
            self.bar.bar_style = "warning"
            self.end = " · interrupted: run it again with the same batch_id to resume"
            self.label.value += " · <b>interrupted</b>: run it again with the same batch_id to resume"
        elif tally.stopped:
            self.bar.bar_style = "warning"
            self.end = f" · {tally.stopped}"
            self.label.value += f" · <b>{html.escape(str(tally.stopped))}</b>"
        else:
            self.bar.bar_style = "danger" if tally.failed else "success"
        self.box.refresh()  # the saved output's text form: the final state


def open_progress(total: int, mode: str, *, batch_id: str) -> Any:
    """A progress view for a batch of `total` calls (mode "notebook" or "terminal"), or None."""
    if mode == "notebook":
        try:
            return NotebookProgress(total, batch_id)
        except Exception as exc:  # no widgets: fall back to text
            swallowed("opening a batch's notebook progress (the terminal one instead)", exc)
            return TerminalProgress(total, batch_id)
    if mode == "terminal":
        return TerminalProgress(total, batch_id)
    return None
