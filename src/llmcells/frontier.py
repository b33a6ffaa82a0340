"""The cost-latency-quality frontier: which models are worth it, as a plot and one line of verdict.

    f = llmcells.frontier(frame)     # a compare or batch frame with score columns, or a Comparison
    f                                # in a notebook: the plot (PNG, kept in saved notebooks) and the verdict
    f.pareto, f.table, f.verdict, f.figure, f.save("frontier.png")

Cost per call (x) against mean score (y); marker size is mean latency; the Pareto-optimal models
(no other model is both cheaper and better) are highlighted, joined by a line and labelled.
matplotlib comes with the optional `plot` extra and is imported only here, when called.
"""

from __future__ import annotations

import html
import io
import math
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from ._loop import deferred_interrupts, import_pandas

if TYPE_CHECKING:
    import pandas as pd

#: the default verdict asks for a score within this share of the best mean score
DEFAULT_SHARE = 0.9


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """The names among (name, cost, score) that no other point dominates (one at most as costly
    and at least as good, and strictly better in one); ordered by cost."""
    best = []
    for name, cost, score in points:
        dominated = any((c <= cost and s >= score) and (c < cost or s > score)
                        for n, c, s in points if n != name)
        if not dominated:
            best.append((cost, -score, name))
    return [name for _, _, name in sorted(best)]


def _score_column(table: "pd.DataFrame", score: str | None) -> str:
    names = [c[: -len("_mean")] for c in table.columns
             if c.startswith("score_") and c.endswith("_mean")]
    if not names:
        raise ConfigError("No scores to plot: run compare or batch with score=... "
                          "(e.g. score=llmcells.exact('42')) first.")
    if score is None:
        return names[0]
    wanted = score if score.startswith("score_") else f"score_{score}"
    if wanted not in names:
        raise ConfigError(f"No score {score!r}; the scores are: "
                          f"{', '.join(n[len('score_'):] for n in names)}.")
    return wanted


def _fmt_cost(c: float) -> str:
    """$0.0000072, $0.0031, $1.2000: two significant digits at least, never 1e-06."""
    if not c == c:
        return "cost unknown"
    if c <= 0:
        return "$0"
    decimals = max(2, 1 - math.floor(math.log10(abs(c))))
    return f"${c:,.{decimals}f}"


class Frontier:
    """The frontier of some models: `table` (per model: score, cost, latency, pareto), `pareto`
    (names, cheapest first), `verdict` (one line), `figure` (matplotlib), `png()` and `save()`."""

    def __init__(self, table: "pd.DataFrame", score: str, min_score: float, verdict: str):
        self.table, self.score, self.min_score, self.verdict = table, score, min_score, verdict
        self.pareto = list(table[table["pareto"]].sort_values("cost_usd")["model"])
        self._figure = None

    @property
    def figure(self) -> Any:
        if self._figure is None:
            self._figure = _draw(self)
        return self._figure

    def png(self, dpi: int = 110) -> bytes:
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", transparent=True)
        return buf.getvalue()

    def save(self, path: str, dpi: int = 110) -> None:
        self.figure.savefig(path, dpi=dpi, bbox_inches="tight", transparent=True)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        # two outputs: the plot as image/png (what a saved notebook keeps), the verdict as text
        try:
            png = self.png()
        except ConfigError as err:  # no matplotlib: say how to get the plot, keep the verdict
            print(str(err))
        else:
            display({"image/png": png, "text/plain": f"<frontier plot: {self.score}>"}, raw=True)
        # (a notebook renders a fresh output's Markdown with its raw HTML: a model's or a
        # scorer's name with markup in it is shown as text; `$` is no maths delimiter)
        md = html.escape(self.verdict, quote=False).replace("$", r"\$")
        display({"text/plain": self.verdict, "text/markdown": md}, raw=True)

    def __repr__(self) -> str:
        return self.verdict


def frontier(data: Any, score: str | None = None, *, min_score: float | None = None) -> Frontier:
    """The frontier of a compare or batch: cost per call vs mean score, latency as marker size.

    data: a frame with score_<name> columns (Comparison.to_frame(), a batch frame), a
    Comparison, Results, or a summarize() table. score: which scorer (default: the first).
    min_score: the score the verdict asks for (default: 90% of the best mean score).
    Replayed calls count with their original cost and latency.
    """
    pd = import_pandas()

    from .scoring import summarize

    table = data if isinstance(data, pd.DataFrame) and "calls" in data.columns \
        and any(c.endswith("_mean") for c in data.columns) else summarize(data)
    col = _score_column(table, score)
    t = pd.DataFrame({"model": table["model"], "score": table[f"{col}_mean"],
                      "score_lo": table.get(f"{col}_lo"), "score_hi": table.get(f"{col}_hi"),
                      "cost_usd": table["cost_usd_mean"], "latency_s": table["latency_s_mean"]})
    known = t.dropna(subset=["score", "cost_usd"])
    names = set(pareto([(r.model, r.cost_usd, r.score) for r in known.itertuples()]))
    t["pareto"] = t["model"].isin(names)
    if min_score is None:
        top = known["score"].max() if len(known) else math.nan
        min_score = round(top * DEFAULT_SHARE, 2) if top == top else math.nan
    return Frontier(t.reset_index(drop=True), col, float(min_score), _verdict(t, col, min_score))


def _verdict(t: "pd.DataFrame", col: str, min_score: float) -> str:
    name = col[len("score_"):]
    good = t[(t["score"] >= min_score) & t["cost_usd"].notna()].sort_values("cost_usd")
    parts = []
    if len(good):
        g = good.iloc[0]
        parts.append(f"cheapest that scores ≥ {min_score:g} ({name}): {g.model} "
                     f"({_fmt_cost(g.cost_usd)}/call, score {g.score:.2f})")
    else:
        parts.append(f"no model scores ≥ {min_score:g} ({name})")
    fast = t.dropna(subset=["latency_s"]).sort_values("latency_s")
    if len(fast):
        f = fast.iloc[0]
        scored = f", score {f.score:.2f}" if f.score == f.score else ""
        parts.append(f"fastest: {f.model} ({f.latency_s:.2f} s{scored})")
    best = t.dropna(subset=["score"]).sort_values("score", ascending=False)
    if len(best):
        b = best.iloc[0]
        parts.append(f"best score: {b.model} ({b.score:.2f})")
    unpriced = t[t["cost_usd"].isna()]["model"].tolist()
    if unpriced:
        parts.append(f"not placed (price unknown): {', '.join(unpriced)}")
    unscored = t[t["score"].isna() & t["cost_usd"].notna()]["model"].tolist()
    if unscored:
        parts.append(f"not placed (no {name} score): {', '.join(unscored)}")
    return "; ".join(parts) + "."


def _draw(f: Frontier) -> Any:
    try:
        # every matplotlib module the plot uses, imported whole: a Ctrl-C inside a first import
        # would break it for the session
        with deferred_interrupts():
            import matplotlib.backends.backend_agg  # noqa: F401 - (each used below, by a from-import)
            import matplotlib.ticker  # noqa: F401
            import matplotlib.transforms  # noqa: F401
            from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError('The frontier plot needs matplotlib: pip install "llmcells[plot]"') from None
    t = f.table.dropna(subset=["score", "cost_usd"]).copy()
    # tiny per-call costs read better per 1,000 or per million calls
    top_cost = float(t["cost_usd"].max()) if len(t) else 0.0
    per, unit = (1, "call") if top_cost >= 0.01 else (1_000, "1,000 calls") if top_cost >= 1e-5 \
        else (1_000_000, "million calls")
    t["cost_usd"] = t["cost_usd"] * per
    fig = Figure(figsize=(7.2, 4.4))
    ax = fig.add_subplot()
    lat = t["latency_s"].fillna(t["latency_s"].median() if t["latency_s"].notna().any() else 1.0)
    top = float(lat.max()) if len(lat) and lat.max() > 0 else 1.0
    sizes = 80 + 520 * (lat / top)
    others, best = t[~t["pareto"]], t[t["pareto"]]
    if len(others):
        ax.scatter(others["cost_usd"], others["score"], s=sizes[others.index], color="#afb8c1",
                   edgecolor="#6e7781", zorder=2, label="dominated")
    ax.scatter(best["cost_usd"], best["score"], s=sizes[best.index], color="#2da44e",
               edgecolor="#116329", zorder=3, label="Pareto-optimal")
    line = best.sort_values("cost_usd")
    ax.plot(line["cost_usd"], line["score"], color="#2da44e", lw=1.2, ls="--", zorder=1)
    if t["score_lo"].notna().any():
        err = [(t["score"] - t["score_lo"]).clip(lower=0).fillna(0),
               (t["score_hi"] - t["score"]).clip(lower=0).fillna(0)]
        ax.errorbar(t["cost_usd"], t["score"], yerr=err, fmt="none", ecolor="#57606a",
                    elinewidth=0.8, capsize=3, zorder=1)
    costs = t["cost_usd"][t["cost_usd"] > 0]
    if len(costs) > 1 and costs.max() / costs.min() > 20:
        ax.set_xscale("log")
    ax.margins(x=0.3, y=0.2)
    if len(t):
        ax.set_ylim(*score_limits(float(t["score"].min()), float(t["score"].max())))
    if f.min_score == f.min_score:
        ax.axhline(f.min_score, color="#bf8700", lw=0.8, ls=":", zorder=0)
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    if ax.get_xscale() != "log":
        ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _fmt_cost(x) if x > 0 else "$0"))
    ax.set_xlabel(f"cost per {unit} (USD)")
    ax.set_ylabel(f"mean score ({f.score[len('score_'):]})")
    ax.set_title("Cost vs score (marker size: mean latency; bars: 95% interval)", fontsize=10.5)
    ax.grid(alpha=0.25, color=_INK)
    legend = ax.legend(loc="lower right", fontsize=8, markerscale=0.5, frameon=False)
    _transparent(fig, ax, legend)
    fig.tight_layout()
    _place_labels(fig, ax, t)  # after the layout: the label boxes are measured where they end up
    return fig


#: the ink of axes, ticks and titles: a mid grey that reads on a light and on a dark page (the
#: figure's background is transparent, so the notebook's theme shows through)
_INK = "#7d8590"


def _transparent(fig: Any, ax: Any, legend: Any = None) -> None:
    fig.patch.set_alpha(0.0)
    ax.set_facecolor("none")
    for spine in ax.spines.values():
        spine.set_color(_INK)
    ax.tick_params(colors=_INK)
    for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
        text.set_color(_INK)
    if legend is not None:
        for text in legend.get_texts():
            text.set_color(_INK)


def score_limits(lo: float, hi: float) -> tuple[float, float]:
    """The y range for scores lo..hi: scores that look like fractions (0..1) get the whole
    0..1 scale when they are close together (every score 1.0 is not drawn on 0.9..1.1);
    otherwise the points decide the range (long interval bars are cut)."""
    if 0 <= lo and hi <= 1 and hi - lo < 0.5:
        return -0.05, 1.12
    if hi == lo:
        pad = max(abs(hi) * 0.25, 1.0)
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.35
    return lo - pad, hi + pad


#: where a label may go around its point, in points from it, tried in this order
_OFFSETS = [(9, 6), (9, -22), (-9, 6), (-9, -22), (9, 20), (9, -36), (-9, 20), (-9, -36),
            (9, 34), (9, -50), (-9, 34), (-9, -50), (9, 48), (9, -64)]


def _place_labels(fig: Any, ax: Any, t: "pd.DataFrame") -> None:
    """Label each point where its label overlaps no label placed before it (a simple repel:
    the first free place of a few around the point; the least crowded one if none is free)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from matplotlib.transforms import Bbox

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    # the points are in the way too (a square around each marker)
    placed: list[Any] = []
    for x, y in ax.transData.transform(t[["cost_usd", "score"]].to_numpy(dtype=float)):
        placed.append(Bbox.from_extents(x - 8, y - 8, x + 8, y + 8))
    placed.append(ax.title.get_window_extent(renderer))
    # the best scores first: they get the places nearest their points
    for r in t.sort_values(["pareto", "score"], ascending=False).itertuples():
        text = f"{r.model}\n{r.latency_s:.2f} s" if r.latency_s == r.latency_s else r.model
        best, best_hits = None, None
        for dx, dy in _OFFSETS:
            label = ax.annotate(text, (r.cost_usd, r.score), textcoords="offset points",
                                xytext=(dx, dy), ha="left" if dx > 0 else "right", fontsize=8.5,
                                fontweight="bold" if r.pareto else "normal",
                                color="#116329" if r.pareto else "#424a53",
                                bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none",
                                          alpha=0.85))
            box = label.get_window_extent(renderer).expanded(1.04, 1.1)
            hits = sum(box.overlaps(other) for other in placed)
            if not (frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)):
                hits += 0.5  # outside the plot (over the title or the ticks): a last resort
            if best_hits is None or hits < best_hits:
                if best is not None:
                    best[0].remove()
                best, best_hits = (label, box), hits
            else:
                label.remove()
            if hits == 0:
                break
        placed.append(best[1])


def command(words: list[str], *, min_score: float | None = None) -> Frontier:
    """`%llmcells frontier [SCORE]`: the frontier of the last scored compare or batch."""
    from . import scoring

    if not scoring.last_results:
        raise ConfigError("Nothing scored yet: run %%compare --score VAR, or compare/batch with "
                          "score=..., then %llmcells frontier.")
    return frontier(scoring.last_results, words[0] if words else None, min_score=min_score)
