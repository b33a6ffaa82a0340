"""Provider job progress: one line per provider job (state, counts, elapsed, expiry, cost).

A small ipywidgets HTML block in a notebook, stderr lines in a terminal, in the style of
display/progress.py; it only reads part records and knows nothing about HTTP.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from ._format import fmt_cost, terminal_safe
from .._log import swallowed


def duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def part_line(p: dict[str, Any], now: float | None = None) -> str:
    """One provider job as one line of text."""
    now = now or time.time()
    c = p.get("counts") or {}
    total = c.get("total") or p.get("requests") or 0
    if c.get("total"):
        counts = f"{c.get('done', 0)}/{total} done · {c.get('failed', 0)} failed"
    elif p.get("note"):
        counts = f"{total} requests ({p['note']})"
    else:
        counts = f"{total} requests"
    bits = [f"{p['model_id']}", p["state"], counts]
    start = p.get("submitted") or p.get("created")
    if start:
        end = p.get("finished") or now
        bits.append(f"{duration(end - start)} elapsed")
    if p.get("expires") and p["state"] not in ("completed", "failed", "expired", "cancelled", "lost"):
        bits.append(f"expires in {duration(p['expires'] - now)}")
    cost = p.get("cost")
    if cost is not None:
        bits.append(f"{fmt_cost(cost)}" if p.get("collected") else f"est. {fmt_cost(cost)}")
    if p.get("error"):
        bits.append(p["error"])
    return " · ".join(bits)


class TerminalJobProgress:
    """Prints each provider job's line when its state changes (and once at the end)."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        self.shown: dict[int, str] = {}
        self.tty = sys.stderr.isatty()

    def update(self, parts: list[dict[str, Any]]) -> None:
        for p in parts:
            key = (p["state"], (p.get("counts") or {}).get("done") if self.tty else None)
            if self.shown.get(p["part"]) != key:
                self.shown[p["part"]] = key
                sys.stderr.write(terminal_safe(f"job {self.job_id} #{p['part']}: {part_line(p)}") + "\n")
        sys.stderr.flush()

    def close(self, parts: list[dict[str, Any]], interrupted: bool = False) -> None:
        self.update(parts)
        if interrupted:
            sys.stderr.write(f"job {self.job_id}: stopped waiting; the provider jobs go on. "
                             f"llmcells.job({self.job_id!r}) gets them back.\n")
            sys.stderr.flush()


#: states after which a provider job changes no more
FINAL_STATES = ("completed", "failed", "expired", "cancelled", "lost")
_BAR_COLOURS = {"completed": "#1a7f37", "failed": "#cf222e", "expired": "#9a6700",
                "cancelled": "#57606a", "lost": "#cf222e"}


def job_state(parts: list[dict[str, Any]], interrupted: bool = False) -> str:
    """The whole job's state in a few words: "submitting…", "running (1 of 2 jobs ended)",
    "completed", "ended: 1 completed, 1 failed", or "stopped waiting"."""
    if interrupted:
        return "stopped waiting: the provider jobs go on"
    if not parts:
        return "submitting…"
    states = [p.get("state", "") for p in parts]
    ended = [s for s in states if s in FINAL_STATES]
    if len(ended) < len(states):
        return f"running ({len(ended)} of {len(states)} jobs ended)" if len(states) > 1 else "running"
    if len(set(ended)) == 1:
        return ended[0]
    return "ended: " + ", ".join(f"{ended.count(s)} {s}" for s in dict.fromkeys(ended))


def _fraction(p: dict[str, Any]) -> float:
    c = p.get("counts") or {}
    total = c.get("total") or 0
    if p.get("state") == "completed":
        return 1.0
    if not total:
        return 0.0
    return max(0.0, min(1.0, (c.get("done", 0) + c.get("failed", 0)) / total))


def _bar_html(p: dict[str, Any]) -> str:
    """One provider job's bar: a track with the done share filled (inline styles only)."""
    pct = round(100 * _fraction(p))
    colour = _BAR_COLOURS.get(p.get("state", ""), "#0969da")
    return (f'<span style="display:inline-block;width:160px;height:8px;border:1px solid #8c959f;'
            f'border-radius:4px;vertical-align:middle;margin-right:8px;background-color:#eaeef2">'
            f'<span style="display:block;width:{pct}%;height:8px;border-radius:3px;'
            f'background-color:{colour}"></span></span>')


class NotebookJobProgress:
    """An HTML block: the job's state, then a bar and a line per provider job, repainted in
    place; the saved output's text form is the final state."""

    def __init__(self, job_id: str):
        import ipywidgets as w

        from .progress import summary_box

        self.job_id = job_id
        self.parts: list[dict[str, Any]] = []
        self.interrupted = False
        self.html = w.HTML(f"job <code>{html.escape(job_id)}</code>: submitting…")
        self.box = summary_box([self.html], self.text, vertical=True).show()

    def text(self) -> str:
        """The job as plain text: its state, then one line per provider job."""
        lines = [f"job {self.job_id}: {job_state(self.parts, self.interrupted)}"]
        lines += [f"  #{p['part']}: {part_line(p)}" for p in self.parts]
        if self.interrupted:
            lines.append(f"llmcells.job({self.job_id!r}) gets them back.")
        return "\n".join(lines)

    def update(self, parts: list[dict[str, Any]]) -> None:
        self.parts = list(parts)
        rows = "".join(f'<div style="margin:2px 0">{_bar_html(p)}{html.escape(part_line(p))}</div>'
                       for p in parts)
        state = html.escape(job_state(self.parts, self.interrupted))
        self.html.value = f"job <code>{html.escape(self.job_id)}</code>: <b>{state}</b>{rows}"

    def close(self, parts: list[dict[str, Any]], interrupted: bool = False) -> None:
        self.interrupted = interrupted
        self.update(parts)
        if interrupted:
            self.html.value += ("the provider jobs go on; "
                                f"<code>llmcells.job({html.escape(repr(self.job_id))})</code> "
                                "gets them back.")
        self.box.refresh()


def open_job_progress(job_id: str, mode: str) -> Any:
    """A progress view for a provider job (mode "notebook" or "terminal"), or None."""
    if mode == "notebook":
        try:
            return NotebookJobProgress(job_id)
        except Exception as exc:
            swallowed("opening a provider job's notebook progress (the terminal one instead)", exc)
            return TerminalJobProgress(job_id)
    if mode == "terminal":
        return TerminalJobProgress(job_id)
    return None
