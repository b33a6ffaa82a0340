"""`await job` in a real kernel: progress widget, an interrupt that stops waiting (not the
provider jobs), and a handle that still works afterwards."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("jupyter_client")
import nbformat  # noqa: E402

from llmcells.testing import Kernel, output_text  # noqa: E402  (after the skip: it needs jupyter_client)
pytestmark = pytest.mark.kernel


def _run(k: Kernel, code: str, timeout: float = 90) -> tuple[dict, str, int]:
    """(execute_reply content, text output, widget displays) of one cell.

    Through `Kernel.execute`, which sends the cell again when ipykernel aborted it: after an
    interrupted cell, a cell sent as soon as the error's reply arrives can be aborted unrun."""
    reply, msgs = k.execute(code, timeout)
    outputs = [nbformat.v4.output_from_msg(m) for m in msgs
               if m["msg_type"] in ("stream", "display_data", "execute_result", "error")]
    widgets = sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    return reply, output_text(outputs), widgets


def test_interrupting_await_job_stops_waiting_only(tmp_path):
    with Kernel(tmp_path) as k:
        reply, out, _ = _run(k, "import llmcells\nfrom llmcells.sim.batches import control\n"
                                "sim = llmcells.simulate()\ncontrol(sim).configure(run_s=60)")
        assert reply["status"] == "ok", out
        reply, out, _ = _run(k, 'job = await llmcells.batch([f"q{i}" for i in range(6)], '
                                '["chatgpt", "claude"], via="provider")')
        assert reply["status"] == "ok" and "estimated $" in out, out
        msg_id = k.send("df = await job")
        k.wait_started(msg_id)
        time.sleep(2.0)
        t = time.monotonic()
        k.interrupt()
        _, reply = k.reply(msg_id, timeout=10)
        assert time.monotonic() - t < 3
        assert reply["content"]["status"] == "error"
        reply, out, _ = _run(k, "print(len(control(sim).jobs), [p['state'] for p in job.parts()])")
        assert reply["status"] == "ok" and out.startswith("2 ") and "cancelled" not in out, (reply, out)  # the provider jobs go on
        reply, out, widgets = _run(k, "control(sim).configure(run_s=0.5)\n"
                                      "df = await llmcells.job(job.id)\n"
                                      "print(df.status.value_counts().to_dict())")
        assert reply["status"] == "ok" and "{'ok': 12}" in out and widgets == 1, out
