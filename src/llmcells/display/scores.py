"""How scores and replays look: the pieces that the cards' footers, the metrics tables and the
repeat summaries of both front ends (notebook and terminal) add for them.

Nothing here imports ipywidgets or pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..types import CallInfo, Result
from . import _format as F
from .markdown import escape
from ._format import fmt_score



def replay_badge(result: Result | None) -> str:
    """The header badge of a replayed call (HTML), or ""."""
    if result is None or not result.replayed:
        return ""
    return (' <span class="llmcells-badge" title="answer replayed from the replay file: no '
            'request, $0">replayed</span>')


def score_names(results: Sequence[Result | None]) -> list[str]:
    names: list[str] = []
    for r in results:
        for name in (r.scores if r is not None else {}):
            if name not in names:
                names.append(name)
    return names


def best_rows(results: Sequence[Result | None], name: str) -> set[int]:
    """The rows with the highest known score `name` among ok results (ties all marked); none
    when the scores don't differ (every model scoring 0 is no "best")."""
    vals = [(r.scores.get(name), i) for i, r in enumerate(results)
            if r is not None and r.ok and F.known(r.scores.get(name))]
    if len(results) < 2 or not vals or len({v for v, _ in vals}) < 2:
        return set()
    top = max(v for v, _ in vals)
    return {i for v, i in vals if v == top}


def table_columns(results: Sequence[Result | None]) -> list[tuple[str, list[tuple[str, bool]]]]:
    """For each score: (heading, [(cell text, is best) per row]); best marked with ▲."""
    out = []
    for name in score_names(results):
        best = best_rows(results, name)
        cells = []
        for i, r in enumerate(results):
            value = r.scores.get(name) if r is not None else None
            text = fmt_score(value)
            cells.append((("▲ " + text) if i in best else text, i in best))
        out.append((name, cells))
    return out


def _groups(infos: Sequence[CallInfo], results: Sequence[Result | None]) -> dict[str, list[Result]]:
    groups: dict[str, list[Result]] = {}
    for info, r in zip(infos, results):
        groups.setdefault(info.model_id, [])
        if r is not None and r.ok:
            groups[info.model_id].append(r)
    return groups


def summary_rows(infos: Sequence[CallInfo], results: Sequence[Result | None]) -> list[list[str]]:
    """With repeats: per model, "mean [low, high]" (95% t-interval) of each score, latency and
    cost over its successful samples. Empty when no model has more than one sample."""
    if not any(info.sample for info in infos):
        return []
    from ..scoring import mean_interval

    names = score_names(results)
    rows = [["model", "n", *names, "latency", "cost"]]
    for model, rs in _groups(infos, results).items():
        row = [model, str(len(rs))]
        for name in names:
            m, lo, hi = mean_interval([r.scores.get(name, math.nan) for r in rs])
            row.append(_interval(m, lo, hi, lambda x: f"{x:.2f}"))
        lat = [(r.original or {}).get("latency_s") if r.replayed else r.latency_s for r in rs]
        cost = [(r.original or {}).get("cost_usd") if r.replayed else r.cost_usd for r in rs]
        row.append(_interval(*_nonneg(mean_interval([x for x in lat if F.known(x)])), F.fmt_seconds))
        row.append(_interval(*_nonneg(mean_interval([x for x in cost if F.known(x)])), F.fmt_cost))
        rows.append(row)
    return rows


def _nonneg(interval: tuple[float, float, float]) -> tuple[float, float, float]:
    m, lo, hi = interval
    return m, (max(lo, 0.0) if F.known(lo) else lo), hi


def _interval(m: float, lo: float, hi: float, fmt) -> str:
    if not F.known(m):
        return "–"
    if not F.known(lo):
        return fmt(m)
    return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def summary_html(infos: Sequence[CallInfo], results: Sequence[Result | None]) -> str:
    rows = summary_rows(infos, results)
    if not rows:
        return ""
    out = ['<div class="llmcells-legend">Per model: mean [95% interval] over the successful '
           'samples (replayed calls count with their original cost and latency)</div>',
           '<div class="llmcells-table"><table class="llmcells-metrics llmcells-summary">',
           "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in rows[0]) + "</tr></thead><tbody>"]
    for row in rows[1:]:
        out.append("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def summary_text(infos: Sequence[CallInfo], results: Sequence[Result | None]) -> str:
    rows = summary_rows(infos, results)
    if not rows:
        return ""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(r[c].ljust(widths[c]) for c in range(len(r))).rstrip() for r in rows]
    return "\nper model, mean [95% interval]:\n" + "\n".join(lines)
