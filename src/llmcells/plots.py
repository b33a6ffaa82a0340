"""Pictures of the ledger: cost over time stacked by model, and cost per call against latency.

matplotlib is an optional extra (`pip install 'llmcells[plot]'`), imported only when a plot is
drawn. Figures are drawn without pyplot (no global state, no second copy shown by the inline
backend) and shown as PNG, so they stay in saved notebooks and render with no display at all.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from ._loop import deferred_interrupts, import_pandas

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_costs", "CostPlot"]

_INSTALL = "plot_costs needs matplotlib: pip install 'llmcells[plot]' (or pip install matplotlib)."


class CostPlot:
    """A drawn figure: shown as PNG in notebooks; `.figure` is the matplotlib Figure."""

    def __init__(self, figure: Any):
        self.figure = figure

    def _repr_png_(self) -> bytes:
        return self.png()

    def png(self, dpi: int = 100) -> bytes:
        """The figure as PNG bytes."""
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        return buf.getvalue()

    def savefig(self, *args: Any, **kwargs: Any) -> None:
        """As matplotlib's Figure.savefig."""
        self.figure.savefig(*args, **kwargs)

    def __repr__(self) -> str:
        return "<llmcells cost plot>"


def _matplotlib() -> Any:
    try:
        with deferred_interrupts():  # (a Ctrl-C inside its first import would break it for the session)
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(_INSTALL) from None
    return Figure, FigureCanvasAgg


def plot_costs(by: str = "day", frame: "pd.DataFrame | None" = None, *,
               include_simulated: bool = False, include_cached: bool = False,
               **filters: Any) -> CostPlot:
    """Two panels: cost over time stacked by model (by="day": a bar per UTC day; by="model":
    cumulative cost over time), and each call's cost against its latency, one colour per model
    (medians as large dots).

    frame: rows of llmcells.usage() (default: the ledger, with filters as for usage()). Real
    spend only unless include_simulated / include_cached, as in llmcells.costs().
    """
    if by not in ("day", "model"):
        raise ConfigError(f"plot_costs(by={by!r}): use 'day' or 'model'.")
    Figure, FigureCanvasAgg = _matplotlib()
    pd = import_pandas()
    import numpy as np  # (loaded by pandas)

    if frame is None:
        from .ledger import usage

        frame = usage(**filters)
    df = frame
    if "simulated" in df.columns and not include_simulated:
        df = df[~df["simulated"].astype(bool)]
    if "cached" in df.columns and not include_cached:
        df = df[~df["cached"].astype(bool)]
    df = df[df["cost_usd"].notna()]
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, width_ratios=[1.4, 1])
    if df.empty:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no priced calls yet", ha="center", va="center",
                    transform=ax.transAxes, color="grey")
            ax.set_xticks([])
            ax.set_yticks([])
        return CostPlot(fig)

    models = list(df.groupby("model")["cost_usd"].sum().sort_values(ascending=False).index)
    colours = {m: f"C{i % 10}" for i, m in enumerate(models)}
    ts = pd.to_datetime(df["ts"], utc=True)

    if by == "day":
        day = ts.dt.floor("D").dt.tz_localize(None)
        table = df.assign(day=day).pivot_table(index="day", columns="model", values="cost_usd",
                                               aggfunc="sum", fill_value=0.0)
        table = table.reindex(columns=models)
        labels = [d.strftime("%Y-%m-%d") for d in table.index]
        x = np.arange(len(table))
        bottom = np.zeros(len(table))
        for m in models:
            values = table[m].to_numpy()
            left.bar(x, values, bottom=bottom, color=colours[m], label=m, width=0.7)
            bottom += values
        left.set_xticks(x, labels, rotation=30 if len(x) > 4 else 0, ha="right" if len(x) > 4 else "center")
        left.set_title("Cost per day, by model")
    else:
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        order = np.argsort(ts.to_numpy(), kind="stable")
        t = ts.dt.tz_localize(None).to_numpy()[order]
        costs = df["cost_usd"].to_numpy()[order]
        names = df["model"].to_numpy()[order]
        # from zero just before the first call to the total just after the last
        span = (t[-1] - t[0]) if len(t) > 1 else np.timedelta64(60, "s")
        pad = max(span / 50, np.timedelta64(1, "s"))
        t = np.concatenate([[t[0] - pad], t, [t[-1] + pad]])
        per_model = []
        for m in models:
            steps = np.cumsum(np.where(names == m, costs, 0.0))
            per_model.append(np.concatenate([[0.0], steps, steps[-1:]]))
        left.stackplot(t, *per_model, labels=models, colors=[colours[m] for m in models], step="post")
        locator = AutoDateLocator()
        left.xaxis.set_major_locator(locator)
        left.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        left.set_title("Cumulative cost over time, by model")
        bottom = np.sum([p[-1] for p in per_model])
    left.set_ylabel("USD")
    left.set_ylim(0, float(np.max(bottom)) * 1.4 or 1.0)   # headroom for the legend
    left.legend(loc="upper left", fontsize=8, frameon=False)

    for m in models:
        part = df[df["model"] == m]
        lat = part["latency_s"].to_numpy(dtype=float)
        cost = part["cost_usd"].to_numpy(dtype=float)
        right.scatter(lat, cost, s=14, alpha=0.45, color=colours[m])
        ok = ~np.isnan(lat)
        if ok.any():
            right.scatter([np.median(lat[ok])], [np.median(cost[ok])], s=120, color=colours[m],
                          edgecolor="black", linewidth=0.8, label=m, zorder=3)
    right.set_xlabel("latency (s)")
    right.set_ylabel("USD per call")
    right.set_title("Cost per call vs latency")
    right.legend(fontsize=8, frameon=False)
    return CostPlot(fig)
