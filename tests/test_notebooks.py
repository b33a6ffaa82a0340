"""The example notebooks run top to bottom in a real kernel, with no keys (on the simulator).

Every notebook in notebooks/ is executed with nbclient (kernel python3, 60 s per cell) in a kernel
whose environment has no provider keys or endpoints and its own LLMCELLS_HOME. No cell may fail,
and the outputs that matter are checked. (`pytest --nbval-lax notebooks/` runs them too.)
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from llmcells.testing import output_text

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
    # run in a folder of its own: what a notebook writes beside itself (a replay file) stays
    # out of the repository
    folder = home.parent / "work"
    folder.mkdir(parents=True, exist_ok=True)
    NotebookClient(nb, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute(env=env)
    return nb


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def cell(nb, start: str):
    """The first code cell whose source starts with `start`."""
    return next(c for c in code_cells(nb) if c.source.lstrip().startswith(start))


def text(c) -> str:
    return output_text(c.outputs)


def widgets(c) -> int:
    return sum(WIDGET_MIME in o.get("data", {}) for o in c.outputs)


def html(c) -> str:
    return "\n".join(o.data.get("text/html", "") for o in c.outputs
                     if o.output_type in ("display_data", "execute_result"))


def test_the_notebooks_are_there():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names[:3] == ["01-quickstart.ipynb", "02-compare.ipynb", "03-cost-analysis.ipynb"], names


def test_files_the_notebooks_write_are_not_committed():
    """What a notebook writes beside itself (a chat file, the CSV its hook appends to, a file it
    attaches) is the notebook's own doing: a committed copy is an old run's (calls.csv listed
    retired models first) and grows with every run."""
    written = set()
    for path in NOTEBOOKS.glob("*.ipynb"):
        for c in code_cells(nbformat.read(path, as_version=4)):
            written |= set(re.findall(r'(?:open|Path|\.save)\(\s*"([^"/]+\.\w+)"', c.source))
    assert {"calls.csv", "lisbon.json", "notes.md"} <= written, written
    tracked = subprocess.run(["git", "ls-files", "."], cwd=NOTEBOOKS, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")
    assert not written & {Path(name).name for name in tracked.stdout.split()}


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
    # the first cell's `import llmcells` registered the magics: no cell tells the reader that
    # the extension "is already loaded" and to use %reload_ext
    assert not [c.source for c in code_cells(nb) if "already loaded" in text(c)]
    check = CHECKS.get(path.name)
    if check is not None:
        check(nb)


def check_quickstart(nb) -> None:
    for magic in ("%%chatgpt", "%%claude -s", "%%gemini", "%%claude -o"):
        assert widgets(cell(nb, magic)) == 1, magic  # one streaming card
    out = text(cell(nb, "r = _llm"))
    assert "google:gemini-3.5-flash-lite · ok" in out and "cost $" in out
    assert "Simulated answer" in text(cell(nb, "print(haiku.text)"))
    ask = cell(nb, "r = await llmcells.ask")
    assert widgets(ask) == 1 and "('ok'," in text(ask)


def check_compare(nb) -> None:
    assert widgets(cell(nb, "%%compare\n")) == 1  # one view holding the three cards
    repeat = text(cell(nb, "%%compare chatgpt claude -n 3"))
    assert repeat.count("── openai:gpt-6-luna") == 3 and repeat.count("── anthropic:claude-haiku-5-5") == 3
    # the cell's value (c.to_frame()); the display before it has its own table of the three
    frame = "\n".join(o.data.get("text/html", "") for o in cell(nb, "c = await llmcells.compare(").outputs
                      if o.output_type == "execute_result")
    for model in ("openai:gpt-6-luna", "anthropic:claude-haiku-5-5", "google:gemini-3.5-flash-lite"):
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
    assert all(m in by_model for m in ("openai:gpt-6-luna", "anthropic:claude-haiku-5-5",
                                       "google:gemini-3.5-flash-lite"))
    assert "provider" in html(cell(nb, "%llmcells costs --by provider"))
    assert "background" in html(cell(nb, "(by_model.set_index"))  # the in-table bars
    whatif = cell(nb, "import pandas as pd")
    assert "15 successful calls" in text(whatif)
    assert "anthropic:claude-sonnet-4-6" in html(whatif)
    assert not re.search(r">\s*\$?nan", html(whatif), flags=re.I), "a model without a price"
    # provenance: the last row re-derived by hand from its columns equals the recorded cost
    prov = text(cell(nb, "import json"))
    recorded, by_hand = re.findall(r"recorded \$(\S+), re-derived by hand \$(\S+)", prov)[0]
    assert recorded == by_hand and float(recorded) > 0
    assert "price data: bundled, prices to " in text(cell(nb, "%llmcells prices"))
    # the plots render headless, as PNG kept in the notebook
    for start in ('llmcells.plot_costs(by="day"', 'llmcells.plot_costs(by="model"'):
        pngs = [o for o in cell(nb, start).outputs if "image/png" in o.get("data", {})]
        assert len(pngs) == 1, start
        import base64

        assert base64.b64decode(pngs[0]["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    table = html(cell(nb, "%llmcells costs --whatif gpt-6.1-terra"))
    for column in ("actual_usd", "whatif_usd", "difference_usd", "total"):
        assert column in table
    assert "as a provider batch $" in text(cell(nb, "batch = llmcells.reprice"))


def check_pick_a_model(nb) -> None:
    batch = text(cell(nb, "MODELS = "))
    assert "score_right_number" in batch and "score_exact" in batch
    summary = text(cell(nb, "summary = llmcells.summarize(df)"))
    assert "score_right_number_lo" in summary and summary.count(" 20 ") >= 3  # 20 calls per model
    plot = cell(nb, "llmcells.frontier(df")
    pngs = [o for o in plot.outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 1 and len(pngs[0].data["image/png"]) > 10_000  # kept in the notebook
    assert "cheapest that scores ≥" in text(plot) and "fastest:" in text(plot)
    judged = cell(nb, "%%compare chatgpt claude gemini -n 3 --score grading")
    assert widgets(judged) == 1
    out = text(judged)
    assert out.count("judge 10: matches the reference") == 3 and "per model, mean [95% interval]" in out
    apart = html(cell(nb, 'llmcells.costs(by=["group", "purpose"]'))
    assert ">judge<" in apart and ">answer<" in apart
    again = text(cell(nb, "again = await llmcells.batch("))
    assert "60 of 60 answers replayed, cost $0.000000" in again and "same scores: True" in again
    # 60 + 9 + 2 judged: claude and gemini both answer "The answer is 56.", so their grading is one request
    assert "holds 71 answers" in text(cell(nb, "%llmcells replay status"))


def check_files_and_structured_output(nb) -> None:
    chart = cell(nb, "%%compare chatgpt claude gemini -a fig")
    assert widgets(chart) == 1
    counts = text(cell(nb, "[(r.model, r.status, r.attachments_count"))
    assert counts.count("'ok', 1,") == 3
    assert "I received 3 attachment(s)" in text(cell(nb, "from pathlib import Path"))
    assert "does not take image/gif" in text(cell(nb, "gif = "))
    assert "first 500 of 800 rows" in text(cell(nb, "import pandas as pd"))
    assert "Person(name='example name', age=42)" in text(cell(nb, "p.data"))
    agree = cell(nb, "%%compare chatgpt claude gemini --schema Person")
    assert "agree" in html(agree) or "agree" in text(agree)
    rows = cell(nb, "bios = ")
    assert "40 rows, {'ok': 40}" in text(rows) and "example name" in html(rows)
    assert "attachment_bytes" in html(cell(nb, "llmcells.usage(session=True)"))


def check_provider_jobs(nb) -> None:
    submit = text(cell(nb, "prompts = ["))
    assert "estimated $" in submit and "at batch prices" in submit and "job_" in submit
    status = html(cell(nb, "job.status()"))
    assert "Anthropic reports no counts" in status or ">completed<" in status  # (cut at 50 chars)
    waited = cell(nb, "df = await job")
    assert widgets(waited) == 1 and html(waited).count(">ok<") == 15
    again = cell(nb, "again = await")
    assert "reattached" in text(again) and "True" in text(again)
    assert html(again).count(">completed<") == 3 and ">actual<" in html(again)
    usage = html(cell(nb, "u = llmcells.usage"))
    assert ">batch<" in usage and "anthropic:claude-haiku-5-5" in usage
    retry = text(cell(nb, "from llmcells.sim.batches"))
    assert "{'ok': 5, 'expired': 5}" in retry and "{'ok': 10}" in retry


def check_agents(nb) -> None:
    from conftest import need_tools

    # The notebook ran without errors above; its answers need the three CLIs (.ci/run installs
    # them, and LLMCELLS_REQUIRE_AGENTS=1 there makes a missing one a failure)
    need_tools("claude-code", "gemini-cli", "codex")
    models = text(cell(nb, "%llmcells models"))
    for cli in ("Claude Code 2.", "Gemini CLI 0.", "Codex 0."):
        assert cli in models, models  # installed, with its version
    assert widgets(cell(nb, "%%compare claude-code")) == 1  # one view holding the four cards
    frame = html(cell(nb, "c.to_frame()"))
    for model in ("claude-code:claude-sonnet-4-6", "gemini-cli:gemini-3.5-flash", "codex:gpt-5.5-codex",
                  "anthropic:claude-haiku-5-5"):
        assert model in frame
    assert frame.count(">ok<") == 4 and not re.search(r">\s*nan\s*<", frame), "a cost not known"
    agent = text(cell(nb, "{k: r.agent[k]"))
    assert "'cli': 'codex'" in agent and "'tools': False" in agent and "agent-work" in agent
    # (Gemini CLI may answer from the model its own router picks: a gemini-3 model)
    assert "('ok', 'gemini-3." in text(cell(nb, "r = await llmcells.ask"))
    usage = html(cell(nb, "u = llmcells.usage(session=True)"))
    assert usage.count(">ok<") == 6  # four compared, %%agent, ask


def check_tools_and_chats(nb) -> None:
    first = cell(nb, "r = await llmcells.ask(")
    assert widgets(first) == 1
    out = text(first)
    assert 'get_weather({"city":"Paris"}) -> {"city":"Paris","temp":21,"unit":"C","sky":"clear"}' in out
    assert "local_time" in out and "turns: 2" in out
    assert "3 messages" not in out
    assert "2 ledger rows; summed cost matches: True" in text(cell(nb, "for m in r.messages"))
    assert "ok | KeyError: 'holidays' | Tool results: lookup -> Error: KeyError: 'holidays'" in \
        text(cell(nb, "def lookup"))
    # the cell's value (c.to_frame()); the display before it has its own table of the three
    value = "\n".join(o.data.get("text/html", "") for o in
                      cell(nb, "c = await llmcells.compare('call get_weather").outputs
                      if o.output_type == "execute_result")
    assert value.count(">ok<") == 3
    assert widgets(cell(nb, "%%gemini --tools my_tools")) == 1
    saved = text(cell(nb, "print(chat.turns"))
    assert "2 turns, 4 messages" in saved and "the fork has 3 turns; the original still 2" in saved
    assert "nothing was sent" in text(cell(nb, "small = llmcells.Chat"))
    chats = html(cell(nb, "%llmcells chats"))
    assert ">recipes<" in chats
    hooked = text(cell(nb, "c = await llmcells.compare('call get_weather({\"city\": \"Rome\"})'"))
    assert hooked.count(",ok,") == 6  # two requests (tool call, answer) for each of 3 models
    assert hooked.count("llm.tool_s") == 3 and hooked.count("llm.ttft_s") == 3


CHECKS = {
    "04-files-and-structured-output.ipynb": check_files_and_structured_output,
    "05-tools-and-chats.ipynb": check_tools_and_chats,
    "01-quickstart.ipynb": check_quickstart,
    "06-agents.ipynb": check_agents,
    "02-compare.ipynb": check_compare,
    "03-cost-analysis.ipynb": check_costs,
    "07-pick-a-model.ipynb": check_pick_a_model,
    "08-provider-batch-jobs.ipynb": check_provider_jobs,
}


def test_pick_a_model_reruns_for_free_after_a_restart(tmp_path):
    """07 run twice in the same folder (a new kernel each time, its own simulator on a new
    port): the second run replays every call, at $0."""
    import sqlite3

    path = NOTEBOOKS / "07-pick-a-model.ipynb"
    home = tmp_path / "home"
    run_notebook(path, home)
    nb = run_notebook(path, home)
    for c in code_cells(nb):
        assert not [o for o in c.outputs if o.output_type == "error"], c.source
    with sqlite3.connect(home / "ledger.sqlite") as db:
        runs = db.execute("SELECT count(*), sum(replayed), sum(cost_usd), sum(latency_s) FROM calls "
                          "GROUP BY session_id ORDER BY min(ts)").fetchall()
    (calls1, replayed1, cost1, _), (calls2, replayed2, cost2, time2) = runs
    assert calls1 == calls2 == 138 and replayed1 == 60  # the in-notebook re-run of the batch
    assert replayed2 == 138 and cost2 == 0 and cost1 > 0 and time2 < 1.0
    assert "cheapest that scores ≥" in text(cell(nb, "llmcells.frontier(df"))
