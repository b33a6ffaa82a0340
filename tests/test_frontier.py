"""The frontier: the Pareto set on fixed frames, the verdict, and a headless PNG."""

from __future__ import annotations

import math

import pandas as pd
import pytest

import llmcells
from llmcells.frontier import frontier, pareto

PNG = b"\x89PNG\r\n\x1a\n"


def frame(rows):
    """A compare-like frame: (model, score, latency, cost) per call."""
    return pd.DataFrame([{"model": m, "status": "ok", "score_exact": s, "latency_s": lat,
                          "cost_usd": c} for m, s, lat, c in rows])


FIXED = frame([
    # model, score, latency, cost: two calls each
    ("cheap-bad", 0.2, 1.0, 0.0001), ("cheap-bad", 0.4, 1.2, 0.0001),
    ("mid-good", 0.8, 0.6, 0.0010), ("mid-good", 0.8, 0.8, 0.0010),
    ("dear-same", 0.8, 0.3, 0.0050), ("dear-same", 0.8, 0.3, 0.0050),   # as good as mid, dearer
    ("dear-worse", 0.5, 2.0, 0.0040), ("dear-worse", 0.7, 2.2, 0.0040),  # dominated by mid
    ("dear-best", 1.0, 3.0, 0.0200), ("dear-best", 1.0, 3.2, 0.0200),
])


def test_pareto_on_points():
    assert pareto([("a", 1, 1), ("b", 2, 2), ("c", 2, 1), ("d", 3, 2), ("e", 0.5, 0.1)]) == ["e", "a", "b"]
    assert pareto([("a", 1, 1), ("b", 1, 1)]) == ["a", "b"]  # equal points dominate neither
    assert pareto([]) == []


def test_the_pareto_set_of_a_fixed_frame():
    f = frontier(FIXED)
    assert f.pareto == ["cheap-bad", "mid-good", "dear-best"]
    t = f.table.set_index("model")
    assert t.loc["cheap-bad", "score"] == pytest.approx(0.3)
    assert t.loc["dear-worse", "cost_usd"] == pytest.approx(0.004)
    assert not t.loc["dear-same", "pareto"] and not t.loc["dear-worse", "pareto"]
    # the verdict: 90% of the best mean score (1.0) by default
    assert f.min_score == 0.9
    assert f.verdict.startswith("cheapest that scores ≥ 0.9 (exact): dear-best ($0.020/call, score 1.00)")
    assert "fastest: dear-same (0.30 s, score 0.80)" in f.verdict
    g = frontier(FIXED, min_score=0.75)
    assert g.verdict.startswith("cheapest that scores ≥ 0.75 (exact): mid-good ($0.0010/call")
    assert "no model scores ≥ 2" in frontier(FIXED, min_score=2).verdict


@pytest.mark.slow
def test_the_plot_renders_headless():
    f = frontier(FIXED)
    png = f.png()
    assert png.startswith(PNG) and len(png) > 10_000
    ax = f.figure.axes[0]
    labels = {t.get_text().split("\n")[0]: t for t in ax.texts}
    assert set(labels) == {"cheap-bad", "mid-good", "dear-same", "dear-worse", "dear-best"}
    assert labels["mid-good"].get_fontweight() == "bold" and labels["dear-same"].get_fontweight() == "normal"
    assert ax.get_xscale() == "log"  # costs span 200x
    assert ax.get_ylabel() == "mean score (exact)"


def test_choosing_a_score_and_errors():
    two = FIXED.assign(score_judge=[10 - 8 * s for s in FIXED.score_exact])
    f = frontier(two, "judge")
    assert f.score == "score_judge"
    assert f.pareto == ["cheap-bad"]  # cheapest and (inverted) best
    with pytest.raises(llmcells.ConfigError, match="No score 'nope'; the scores are: exact, judge"):
        frontier(two, "nope")
    with pytest.raises(llmcells.ConfigError, match="No scores to plot"):
        frontier(FIXED.drop(columns="score_exact"))


def test_unpriced_and_unscored_models_are_named_not_placed():
    rows = FIXED.copy()
    rows.loc[rows.model == "dear-best", "cost_usd"] = math.nan
    rows.loc[rows.model == "cheap-bad", "score_exact"] = math.nan
    f = frontier(rows)
    assert f.pareto == ["mid-good"]
    assert "not placed (price unknown): dear-best" in f.verdict
    assert "not placed (no exact score): cheap-bad" in f.verdict
    assert f.png().startswith(PNG)


def test_frontier_of_a_comparison_and_the_magic(simulated, shell):
    c = llmcells.run(llmcells.compare("What is 6 * 7?", ["chatgpt", "claude", "gemini"],
                                      score=llmcells.exact("42"), display=False))
    f = frontier(c)
    # gpt-6-luna answers "42" (score 1); the others do not, and it is also the cheapest here, so
    # it alone is on the frontier
    assert f.table.set_index("model")["score"].to_dict() == {
        "openai:gpt-6-luna": 1.0, "anthropic:claude-haiku-5-5": 0.0, "google:gemini-3.5-flash-lite": 0.0}
    costs = f.table.set_index("model")["cost_usd"]
    assert costs["openai:gpt-6-luna"] < min(costs["anthropic:claude-haiku-5-5"],
                                            costs["google:gemini-3.5-flash-lite"])
    assert f.pareto == ["openai:gpt-6-luna"]
    from_magic = shell.run_line_magic("llmcells", "frontier")
    assert from_magic.pareto == f.pareto and "openai:gpt-6-luna" in from_magic.verdict


def test_frontier_displays_a_png_and_the_verdict(monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    f = frontier(FIXED)
    f._ipython_display_()
    assert shown[0]["image/png"].startswith(PNG)
    assert shown[1]["text/plain"] == f.verdict and "\\$" in shown[1]["text/markdown"]


def test_the_verdicts_markdown_shows_markup_in_a_name_as_text(monkeypatch):
    """A notebook renders a fresh output's Markdown with its raw HTML: a model named with
    markup (a typo, a shared ledger's row) must be shown as text, not run."""
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.figure", None)  # the verdict only
    name = '<img src=x onerror="alert(1)">'
    f = frontier(frame([(name, 1.0, 1.0, 0.001), ("b", 0.5, 2.0, 0.002)]))
    f._ipython_display_()
    md = shown[-1]["text/markdown"]
    assert "<img" not in md and "&lt;img src=x onerror=\"alert(1)\"&gt;" in md, md
    assert shown[-1]["text/plain"] == f.verdict and name in f.verdict


def test_without_matplotlib_the_verdict_and_a_hint(monkeypatch, capsys):
    import sys

    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: shown.append(obj))
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    f = frontier(FIXED)
    f._ipython_display_()
    assert capsys.readouterr().out.strip() == 'The frontier plot needs matplotlib: pip install "llmcells[plot]"'
    assert [s["text/plain"] for s in shown] == [f.verdict]


def _label_boxes(fig):
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    return [t.get_window_extent(renderer) for t in ax.texts]


def test_frontier_labels_do_not_overlap_and_equal_scores_get_a_sensible_axis():
    """Five models close together (similar cost, similar score): no two labels overlap; every
    score 1.0 is drawn on a 0..1 axis, not 0.9..1.1; the background is transparent."""
    pytest.importorskip("matplotlib")
    import pandas as pd

    crowd = pd.DataFrame({"model": [f"openai:gpt-model-{i}" for i in range(5)],
                          "score_exact": [1.0, 0.98, 0.99, 0.97, 1.0],
                          "cost_usd": [0.0010, 0.0011, 0.0012, 0.00105, 0.00115],
                          "latency_s": [1.0, 1.1, 1.2, 1.3, 1.4]})
    f = frontier(crowd)
    boxes = _label_boxes(f.figure)
    assert len(boxes) == 5
    overlaps = [(i, j) for i in range(5) for j in range(i + 1, 5) if boxes[i].overlaps(boxes[j])]
    assert not overlaps, overlaps
    lo, hi = f.figure.axes[0].get_ylim()
    assert lo <= 0.0 and hi >= 1.0  # the whole fraction scale, not 0.9..1.1
    assert f.figure.patch.get_alpha() == 0.0
    png = f.png()
    from PIL import Image
    import io

    img = Image.open(io.BytesIO(png)).convert("RGBA")
    assert img.getpixel((2, 2))[3] == 0  # a transparent corner: no white block on a dark page
