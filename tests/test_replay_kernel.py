"""Replay in a real kernel: a notebook of ten calls, run, restarted and run again, makes no
request the second time (the simulator's request log says so), takes well under a second of call
time, shows the same text with a "replayed" mark and costs $0; changing one prompt makes exactly
one request.

The simulator runs in this test process; the kernels reach it through the providers' own
base-URL variables (as with a real endpoint), with made-up keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from llmcells.testing import output_text

pytestmark = pytest.mark.kernel

PROVIDER_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                 "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                 "GOOGLE_GENAI_USE_VERTEXAI")

CALLS = [  # ten calls: five magics, a compare of three, two awaits
    "%%chatgpt -o r1\nName three rivers.",
    "%%chatgpt -o r2\nName three lakes.",
    "%%claude -o r3\nName three mountains.",
    "%%claude -o r4 -t 0\nName three deserts.",
    "%%gemini -o r5\nName three islands.",
    "%%compare chatgpt claude gemini -o c6\nName three forests.",
    "r9 = await llmcells.ask('Name three seas.', model='gemini')",
    "r10 = await llmcells.ask('Name three capes.', model='chatgpt')",
]
REPORT = """\
texts = [r1.text, r2.text, r3.text, r4.text, r5.text, *[r.text for r in c6], r9.text, r10.text]
flags = [r1, r2, r3, r4, r5, *c6, r9, r10]
u = llmcells.usage(session=True)
print("REPORT " + json.dumps({
    "texts": texts, "replayed": [r.replayed for r in flags],
    "calls": len(u), "cost": float(u.cost_usd.sum()), "replayed_rows": int(u.replayed.sum()),
    "call_time": float(u.latency_s.sum()),
    "original_cost": float(u.original_cost_usd.sum()),
}))"""


def notebook(calls: list[str]) -> nbformat.NotebookNode:
    cells = ["%load_ext llmcells\nimport json, llmcells", "%llmcells replay on path=answers.jsonl",
             *calls, REPORT]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


def run(nb: nbformat.NotebookNode, env: dict[str, str], folder: Path) -> tuple[dict, nbformat.NotebookNode]:
    """Run the notebook in a new kernel (a restart) and return its REPORT."""
    NotebookClient(nb, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute(env=env)
    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    line = next(x for x in out.splitlines() if x.startswith("REPORT "))
    return json.loads(line[len("REPORT "):]), nb


def plain_outputs(nb: nbformat.NotebookNode) -> str:
    return "\n".join(output_text(c.get("outputs", [])) for c in nb.cells)


def test_a_restarted_notebook_replays_for_free(fresh_sim, tmp_path):
    fresh_sim.configure(ttft=0.3)  # every real call takes a while
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARS}
    env.update(fresh_sim.env(), LLMCELLS_HOME=str(tmp_path / "home"),
               OPENAI_API_KEY="sk-test-000", ANTHROPIC_API_KEY="sk-ant-test-000",
               GOOGLE_API_KEY="AIza-test-000")
    folder = tmp_path / "project"
    folder.mkdir()

    first, _ = run(notebook(CALLS), env, folder)
    assert len(fresh_sim.requests) == 10
    assert first["replayed"] == [False] * 10 and first["cost"] > 0 and first["call_time"] >= 3.0
    assert len((folder / "answers.jsonl").read_text().splitlines()) == 10

    second, nb = run(notebook(CALLS), env, folder)  # a new kernel: "Restart & Run All"
    assert len(fresh_sim.requests) == 10, "the second run made requests"
    assert second["texts"] == first["texts"]
    assert second["replayed"] == [True] * 10 and second["replayed_rows"] == 10
    assert second["cost"] == 0.0 and second["original_cost"] == pytest.approx(first["cost"])
    assert second["call_time"] < 1.0, second["call_time"]
    shown = plain_outputs(nb)
    assert shown.count("↺ replayed (originally") == 10  # every card says so
    MEASURED.update(first_call_time=first["call_time"], second_call_time=second["call_time"])

    changed = list(CALLS)
    changed[1] = "%%chatgpt -o r2\nName four lakes."
    third, _ = run(notebook(changed), env, folder)
    assert len(fresh_sim.requests) == 11, "exactly one new request"
    assert fresh_sim.requests[-1].body["messages"][-1]["content"].strip() == "Name four lakes."
    assert third["replayed"] == [True] + [False] + [True] * 8
    assert third["texts"][:1] == first["texts"][:1] and third["texts"][2:] == first["texts"][2:]


MEASURED: dict[str, float] = {}


def teardown_module(module):
    if MEASURED:
        print(f"\nreplay in a kernel: call time {MEASURED['first_call_time']:.2f} s for 10 calls, "
              f"{MEASURED['second_call_time']:.3f} s replayed")
