"""`await job` in a real kernel: progress widget, an interrupt that stops waiting (not the
provider jobs), and a handle that still works afterwards."""

from __future__ import annotations

import os
import queue
import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
pytestmark = pytest.mark.kernel


def _run(kc, code: str, timeout: float = 90) -> tuple[dict, str, int]:
    """(execute_reply content, text output, widget displays) of one cell."""
    msg_id = kc.execute(code)
    deadline = time.monotonic() + timeout
    while True:
        reply = kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    out, widgets = [], 0
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            break
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(content["text"])
        elif msg["msg_type"] in ("display_data", "execute_result"):
            out.append(content["data"].get("text/plain", ""))
            widgets += "application/vnd.jupyter.widget-view+json" in content["data"]
        elif msg["msg_type"] == "error":
            out.append(f"{content['ename']}: {content['evalue']}")
    return reply["content"], "\n".join(out), widgets


def test_interrupting_await_job_stops_waiting_only(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["LLMCELLS_HOME"] = str(tmp_path)
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", env=env)
    try:
        reply, out, _ = _run(kc, "import llmcells\nfrom llmcells.sim.batches import control\n"
                                 "sim = llmcells.simulate()\ncontrol(sim).configure(run_s=60)")
        assert reply["status"] == "ok", out
        reply, out, _ = _run(kc, 'job = await llmcells.batch([f"q{i}" for i in range(6)], '
                                 '["chatgpt", "claude"], via="provider")')
        assert reply["status"] == "ok" and "estimated $" in out, out
        msg_id = kc.execute("df = await job")
        time.sleep(2.0)
        t = time.monotonic()
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert time.monotonic() - t < 3
        assert reply["content"]["status"] == "error"
        reply, out, _ = _run(kc, "print(len(control(sim).jobs), [p['state'] for p in job.parts()])")
        assert out.startswith("2 ") and "cancelled" not in out, out   # the provider jobs go on
        reply, out, widgets = _run(kc, "control(sim).configure(run_s=0.5)\n"
                                       "df = await llmcells.job(job.id)\n"
                                       "print(df.status.value_counts().to_dict())")
        assert reply["status"] == "ok" and "{'ok': 12}" in out and widgets == 1, out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
