"""llmcells in a real Jupyter kernel (ipykernel, driven by jupyter_client), with no keys.

a. Interrupting a compare while it waits for its first token, from the three front ends
   (`llmcells.run(...)`, `await llmcells.compare(...)`, `%%compare`): the cell ends within a
   second with one short traceback, no task is left on the private loop, the three calls are
   recorded as cancelled, and the next compare works.
b. Progressive display: the cards of a `%%compare` are repainted while the answers stream (comm
   updates spread over the cell, not all at the end), and every update carries the cell's parent
   header, so it reaches that cell.
c. Every magic in one notebook, run with nbclient: outputs, one UsageError line for bad input
   (the notebook goes on), and the ledger rows that result.

A kernel that cannot start fails these tests; they are never skipped.
"""

from __future__ import annotations

import json
import sqlite3
import time

import nbformat
import pytest
from nbclient import NotebookClient

from llmcells.testing import Kernel, kernel_env, output_text, plain

pytestmark = pytest.mark.kernel

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    k = Kernel(tmp_path_factory.mktemp("kernel-home"))
    try:
        k.ok("%load_ext llmcells\n"
             "import asyncio, llmcells\n"
             "from llmcells import _loop\n"
             "sim = llmcells.simulate()\n"
             "async def _pending():\n"
             "    me = asyncio.current_task()\n"
             "    return len([t for t in asyncio.all_tasks() if t is not me])\n"
             # the first call imports the three SDKs (a second or two): start-up, not under test
             'llmcells.run(llmcells.compare("warm up", display=False))')
        # The first traceback through a library file makes IPython import pygments' lexers and
        # compile the Python lexer (0.4-0.6 s, over 1 s on a busy machine): a one-off cost of any
        # kernel's first such error, not of the interrupt. Pay it here, with a JSON error.
        content, _ = k.execute('import json\njson.loads("{")')
        assert content["ename"] == "JSONDecodeError", content
        yield k
    finally:
        k.close()


# ----- a. interrupting a compare that waits for its first token ----------------------------------

FRONT_ENDS = {
    "llmcells.run": ('c = llmcells.run(llmcells.compare("hi", display=False))',
                     "c = llmcells.run(llmcells.compare('hi again', display=False))\nc"),
    "await": ('c = await llmcells.compare("hi", display=False)',
              "c = await llmcells.compare('hi again', display=False)\nc"),
    "%%compare": ("%%compare\nhi", "%%compare\nhi again"),
}
#: interrupt-to-reply seconds and traceback shapes, for the report at the end of the module
MEASURED: dict[str, dict] = {}


@pytest.mark.parametrize("front", list(FRONT_ENDS))
def test_interrupt_while_waiting_for_the_first_token(kernel, front):
    cell, again = FRONT_ENDS[front]
    kernel.ok('sim.reset()\nsim.inject("slow_first_token", times=None, delay=30)')
    rows_before = kernel.value("len(llmcells.usage())")

    msg_id = kernel.send(cell)
    kernel.wait_started(msg_id)
    time.sleep(1.0)
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    t1, reply = kernel.reply(msg_id, timeout=10)
    seconds = t1 - t0
    content = reply["content"]
    msgs = [m for _, m in kernel.messages(msg_id)]
    errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
    lines = plain(errors[0]["traceback"]) if errors else []
    MEASURED[front] = dict(seconds=seconds, ename=content.get("ename"), lines=lines)

    assert seconds < 1.0, f"the cell ended {seconds:.2f} s after the interrupt"
    assert content["status"] == "error"
    # ipykernel turns SIGINT in an `await` cell into cancelling the cell's task (see
    # ipykernel's _cancel_on_sigint): there llmcells raises a cancellation of its own
    # (`InterruptedAwait`); elsewhere its own KeyboardInterrupt (`Interrupted`). Both show as one line.
    expected = {"InterruptedAwait"} if front == "await" else {"Interrupted"}
    assert content["ename"] in expected, content
    assert len(errors) == 1, errors
    assert lines == ["KeyboardInterrupt: llmcells: interrupted; the requests in flight were cancelled."], lines

    # nothing left on the private loop, the three calls recorded as cancelled
    assert kernel.value("_loop.submit(_pending()).result(timeout=5)") == 0
    statuses = kernel.value(f"list(llmcells.usage().iloc[::-1].iloc[{rows_before}:]['status'])")
    assert statuses == ["cancelled"] * 3, statuses

    # and the next compare works
    kernel.ok("sim.clear_faults()")
    kernel.ok(again)
    assert kernel.value("[r.status for r in _llm]" if front == "%%compare" else
                        "[r.status for r in c]") == ["ok"] * 3


# ----- b. the cards repaint while the answers stream -----------------------------------------------


def test_compare_cards_update_while_streaming(kernel):
    kernel.ok("sim.reset()\nsim.configure(ttft=0.2, tokens_per_s=40, output_tokens=60)")
    try:
        msg_id = kernel.send("%%compare\nTell me about tides.")
        t_sent = time.monotonic()
        t_reply, reply = kernel.reply(msg_id, timeout=30)
        assert reply["content"]["status"] == "ok", reply["content"]
        msgs = kernel.messages(msg_id)
    finally:
        kernel.ok("sim.reset()")

    # messages of other cells (or of none) must not carry this cell's widgets
    opened = {m["content"]["comm_id"]: m["content"]["data"]["state"].get("_model_name")
              for _, m in msgs if m["msg_type"] == "comm_open"}
    html = {cid for cid, model in opened.items() if model == "HTMLModel"}
    assert len(html) >= 9, opened  # a header, a body and a footer per card
    stray = [m for _, m in kernel.iopub if m["msg_type"] == "comm_msg"
             and m["content"]["comm_id"] in opened and m["parent_header"].get("msg_id") != msg_id]
    assert not stray, f"{len(stray)} widget updates reached another cell"
    shown = [m for _, m in msgs if m["msg_type"] == "display_data"]
    assert shown and WIDGET_MIME in shown[0]["content"]["data"]

    updates = [(t, m) for t, m in msgs if m["msg_type"] == "comm_msg"
               and m["content"]["data"].get("method") == "update" and m["content"]["comm_id"] in html]
    duration = t_reply - t_sent
    before_end = [t for t, _ in updates if t < t_reply - 0.1 * duration]
    bodies: dict[str, list[int]] = {}
    for _, m in updates:
        value = m["content"]["data"]["state"].get("value", "")
        bodies.setdefault(m["content"]["comm_id"], []).append(len(value))
    growing = [cid for cid, sizes in bodies.items() if len(set(sizes)) >= 4]
    MEASURED["progressive"] = dict(
        duration=duration, updates=len(updates), before_end=len(before_end),
        first=(updates[0][0] - t_sent) if updates else None,
        spread=(max(before_end) - min(before_end)) if before_end else 0.0,
        growing=len(growing))

    assert duration > 1.2, f"the compare took {duration:.2f} s: the simulator was not slowed down"
    assert len(before_end) >= 5, MEASURED["progressive"]
    assert updates[0][0] - t_sent < 0.5 * duration, MEASURED["progressive"]
    assert max(before_end) - min(before_end) > 0.5 * duration, MEASURED["progressive"]
    assert len(growing) >= 3, "each card's answer should be repainted several times as it grows"


# ----- c. every magic in one notebook --------------------------------------------------------------

MAGIC_CELLS = [
    ("%load_ext llmcells", {}),
    ("%llmcells simulate on", {}),
    ("import llmcells\nsim = llmcells.simulate()\n"
     "sim.set_model(\"gemini-3.5-flash-lite\", text='{\"a\": 1}')", {}),
    ("%%chatgpt\nSay hello in French.", {}),
    ("%%claude -o r\nSay hello in German.", {}),
    ("assert r.ok and r.model == 'anthropic:claude-haiku-5-5', (r.status, r.error)\n"
     "print('r:', r.model, r.status)", {}),
    ("%%gemini -f json\nReturn a JSON object.", {}),
    ("assert _llm.data == {'a': 1}, _llm.text\nprint('json:', _llm.data)", {}),
    ("%%compare -n 2\nName a colour.", {}),
    ("assert [r.status for r in _llm] == ['ok'] * 6\nprint('compare:', len(_llm))", {}),
    ("%%claude -c\nAnd in Italian?", {}),
    ("last = [q for q in sim.requests if q.provider == 'anthropic'][-1]\n"
     "print('claude messages:', len(last.body['messages']))", {}),
    ("%%claude --temperature 9\nThis must not be sent.", {"tags": ["raises-exception"]}),
    ("%llmcells usage", {}),
    ("%llmcells costs", {}),
    ("%llmcells models", {}),
    ("%llmcells reset", {}),
    ("import json\nu = llmcells.usage()\n"
     "print('LEDGER', json.dumps({'rows': len(u), 'by_model': u['model'].value_counts().to_dict(), "
     "'statuses': sorted(set(u['status']))}))", {}),
]


def _text(cell) -> str:
    return output_text(cell.outputs)


def test_every_magic_in_one_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src, metadata=meta) for src, meta in MAGIC_CELLS]
    home = tmp_path / "home"
    client = NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=kernel_env(home))
    cells = {src: cell for (src, _), cell in zip(MAGIC_CELLS, nb.cells)}

    def cell(prefix: str):
        return next(c for s, c in cells.items() if s.startswith(prefix))

    for src, c in cells.items():
        errors = [o for o in c.outputs if o.output_type == "error"]
        if src.startswith("%%claude --temperature"):
            continue
        assert not errors, f"{src!r}: {errors}"

    assert "Simulator on" in _text(cell("%llmcells simulate on"))
    for magic in ("%%chatgpt", "%%claude -o", "%%gemini", "%%compare", "%%claude -c"):
        outputs = cell(magic).outputs
        assert any(WIDGET_MIME in o.get("data", {}) for o in outputs), (magic, outputs)
    assert "r: anthropic:claude-haiku-5-5 ok" in _text(cell("assert r.ok"))
    assert "json: {'a': 1}" in _text(cell("assert _llm.data"))
    assert "compare: 6" in _text(cell("assert [r.status"))
    # -c sent the earlier exchange (the compare's first claude sample) with the new question
    assert "claude messages: 3" in _text(cell("last = "))

    # IPython shows a UsageError as one stderr line (no traceback); the cell fails (hence the
    # raises-exception tag) and the cells after it ran, as checked above and below.
    bad = cell("%%claude --temperature").outputs
    assert _text(cell("%%claude --temperature")).splitlines() == [
        "UsageError: -t/--temperature must be between 0 and 2, not 9."], bad

    usage_out = cell("%llmcells usage").outputs
    assert usage_out and "text/html" in usage_out[0].data and "call_id" in usage_out[0].data["text/html"]
    assert "cost_usd" in _text(cell("%llmcells costs"))
    models = _text(cell("%llmcells models"))
    assert "simulator on" in models and "anthropic:claude-haiku-5-5" in models
    assert "Forgot all conversations." in _text(cell("%llmcells reset"))

    expected = {"openai:gpt-6-luna": 3, "anthropic:claude-haiku-5-5": 4, "google:gemini-3.5-flash-lite": 3}
    line = next(x for x in _text(cell("import json")).splitlines() if x.startswith("LEDGER "))
    seen = json.loads(line[len("LEDGER "):])
    assert seen == {"rows": 10, "by_model": seen["by_model"], "statuses": ["ok"]}, seen
    assert seen["by_model"] == expected
    # and the same from the SQLite file itself, as the kernel left it
    with sqlite3.connect(home / "ledger.sqlite") as db:
        rows = db.execute("SELECT model, status, simulated, COUNT(*) FROM calls "
                          "GROUP BY model, status, simulated").fetchall()
    assert sorted(rows) == sorted((m, "ok", 1, n) for m, n in expected.items()), rows


def test_report():
    """Not a check: prints what the interrupt and display tests measured (pytest -s)."""
    for front, m in MEASURED.items():
        if front == "progressive":
            print(f"\nprogressive: {m}")
        else:
            print(f"\n{front}: interrupt -> reply {m['seconds']:.3f} s, {m['ename']}, "
                  f"{len(m['lines'])} traceback lines:\n" + "\n".join(m["lines"]))


def test_simulate_on_in_a_notebook_warms_what_the_first_compare_needs_and_nothing_else(tmp_path):
    """`%llmcells simulate on` warms, while the user types, the three API SDKs a first %%compare
    needs; not the agent CLIs' libraries (the Claude agent SDK brings MCP and a grammar parser:
    seconds of import) nor the cloud routes' (boto3), which it never uses. A %%compare run
    straight after it waited for those imports, and its cards showed them as the models' time
    to first token."""
    with Kernel(tmp_path / "home") as k:
        k.ok("%load_ext llmcells\n%llmcells simulate on")
        warmed = k.value("__import__('llmcells.warmup').warmup.wait(120) or sorted(m for m in "
                         "('openai', 'anthropic', 'google.genai', 'claude_agent_sdk', 'boto3') "
                         "if m in __import__('sys').modules)")
    assert warmed == ["anthropic", "google.genai", "openai"]
