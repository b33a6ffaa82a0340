"""The example notebooks run top to bottom in a real kernel, with no keys (on the simulator).

Every notebook in notebooks/ is executed with nbclient (kernel python3, 60 s per cell) in a kernel
whose environment has no provider keys or endpoints and its own LLMCELLS_HOME. No cell may fail,
and the outputs that matter are checked. (`pytest --nbval-lax notebooks/` runs them too.)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.kernel

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                 "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                 "GOOGLE_GENAI_USE_VERTEXAI")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SIMULATOR_NOTE = "No API keys found: using the built-in simulator (answers are simulated)."


def run_notebook(path: Path, home: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}
    env["LLMCELLS_HOME"] = str(home)
    NotebookClient(nb, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute(env=env)
    return nb


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def cell(nb, start: str):
    """The first code cell whose source starts with `start`."""
    return next(c for c in code_cells(nb) if c.source.lstrip().startswith(start))


def text(c) -> str:
    parts = []
    for o in c.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("display_data", "execute_result"):
            parts.append(o.data.get("text/plain", ""))
    return "\n".join(parts)


def widgets(c) -> int:
    return sum(WIDGET_MIME in o.get("data", {}) for o in c.outputs)


def html(c) -> str:
    return "\n".join(o.data.get("text/html", "") for o in c.outputs
                     if o.output_type in ("display_data", "execute_result"))


def test_the_notebooks_are_there():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names[:3] == ["01-quickstart.ipynb", "02-compare.ipynb", "03-cost-analysis.ipynb"], names


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs_without_keys(path, tmp_path):
    stored = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in code_cells(stored)), "commit the notebooks with their outputs cleared"
    first = code_cells(stored)[0].source
    assert "llmcells.simulate()" in first and "OPENAI_API_KEY" in first, \
        "the first code cell switches the simulator on when no keys are set"

    nb = run_notebook(path, tmp_path / "home")  # raises CellExecutionError if any cell fails
    for c in code_cells(nb):
        assert not [o for o in c.outputs if o.output_type == "error"], c.source
    assert SIMULATOR_NOTE in text(code_cells(nb)[0])
    check = CHECKS.get(path.name)
    if check is not None:
        check(nb)


def check_quickstart(nb) -> None:
    for magic in ("%%chatgpt", "%%claude -s", "%%gemini", "%%claude -o"):
        assert widgets(cell(nb, magic)) == 1, magic  # one streaming card
    out = text(cell(nb, "r = _llm"))
    assert "google:gemini-2.5-flash · ok" in out and "cost $" in out
    assert "Simulated answer" in text(cell(nb, "print(haiku.text)"))
    ask = cell(nb, "r = await llmcells.ask")
    assert widgets(ask) == 1 and "('ok'," in text(ask)


def check_compare(nb) -> None:
    assert widgets(cell(nb, "%%compare\n")) == 1  # one view holding the three cards
    repeat = text(cell(nb, "%%compare chatgpt claude -n 3"))
    assert repeat.count("── openai:gpt-4.1-mini") == 3 and repeat.count("── anthropic:claude-haiku-4-5") == 3
    # the cell's value (c.to_frame()); the display before it has its own table of the three
    frame = "\n".join(o.data.get("text/html", "") for o in cell(nb, "c = await llmcells.compare(").outputs
                      if o.output_type == "execute_result")
    for model in ("openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5", "google:gemini-2.5-flash"):
        assert model in frame
    assert frame.count(">ok<") == 3
    assert "pick:" in text(cell(nb, "ok = df["))
    batch = html(cell(nb, "prompts = ["))
    assert batch.count(">ok<") == 8 and "Define ROC AUC" in batch


def check_costs(nb) -> None:
    usage = cell(nb, "u = llmcells.usage(session=True)")
    assert "15 calls, {'ok': 15}" in text(usage)  # 4 prompts x 3 models, then a compare of 3
    assert html(usage).count(">ok<") == 8  # the .tail(8) shown
    by_model = html(cell(nb, "by_model = "))
    assert all(m in by_model for m in ("openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5",
                                       "google:gemini-2.5-flash"))
    assert "provider" in html(cell(nb, "%llmcells costs --by provider"))
    assert "background" in html(cell(nb, "(by_model.set_index"))  # the in-table bars
    whatif = cell(nb, "import pandas as pd")
    assert "15 successful calls" in text(whatif)
    assert "anthropic:claude-sonnet-4-5" in html(whatif)
    assert not re.search(r">\s*\$?nan", html(whatif), flags=re.I), "a model without a price"


CHECKS = {
    "01-quickstart.ipynb": check_quickstart,
    "02-compare.ipynb": check_compare,
    "03-cost-analysis.ipynb": check_costs,
}
