"""Provider job progress: one line per provider job (state, counts, elapsed, expiry, cost).

A small ipywidgets HTML block in a notebook, stderr lines in a terminal, in the style of
display/progress.py; it only reads part records and knows nothing about HTTP.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from ..display._format import fmt_cost


def _duration(seconds: float) -> str:
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
        bits.append(f"{_duration(end - start)} elapsed")
    if p.get("expires") and p["state"] not in ("completed", "failed", "expired", "cancelled", "lost"):
        bits.append(f"expires in {_duration(p['expires'] - now)}")
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
                sys.stderr.write(f"job {self.job_id} #{p['part']}: {part_line(p)}\n")
        sys.stderr.flush()

    def close(self, parts: list[dict[str, Any]], interrupted: bool = False) -> None:
        self.update(parts)
        if interrupted:
            sys.stderr.write(f"job {self.job_id}: stopped waiting; the provider jobs go on. "
                             f"llmcells.job({self.job_id!r}) gets them back.\n")
            sys.stderr.flush()


class NotebookJobProgress:
    """An HTML block, one row per provider job, repainted in place."""

    def __init__(self, job_id: str):
        import ipywidgets as w
        from IPython.display import display

        self.job_id = job_id
        self.html = w.HTML(f"job <code>{job_id}</code>: checking…")
        display(self.html)

    def update(self, parts: list[dict[str, Any]]) -> None:
        import html

        rows = "".join(f"<li>{html.escape(part_line(p))}</li>" for p in parts)
        self.html.value = f"job <code>{html.escape(self.job_id)}</code><ul style='margin:0'>{rows}</ul>"

    def close(self, parts: list[dict[str, Any]], interrupted: bool = False) -> None:
        self.update(parts)
        if interrupted:
            self.html.value += ("<b>stopped waiting</b>: the provider jobs go on; "
                                f"<code>llmcells.job('{self.job_id}')</code> gets them back.")


def open_job_progress(job_id: str, mode: str) -> Any:
    """A progress view for a provider job (mode "notebook" or "terminal"), or None."""
    if mode == "notebook":
        try:
            return NotebookJobProgress(job_id)
        except Exception:
            return TerminalJobProgress(job_id)
    if mode == "terminal":
        return TerminalJobProgress(job_id)
    return None
