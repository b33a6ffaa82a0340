"""An interrupt while tools run, in a real Jupyter kernel: for each provider path, a cell that
awaits a call whose model asked for a long async tool and a long sync tool is interrupted; the
cell ends within a second, the async tool was cancelled, no task keeps running, and the next
cell works. (The sync tool's thread can't be killed; nothing waits for it.)"""

from __future__ import annotations

import time

import pytest

from llmcells.testing import Kernel

pytestmark = pytest.mark.kernel

PATHS = ["chatgpt", "openai-responses:gpt-6-luna", "claude", "gemini"]

SETUP = '''
import asyncio, time, llmcells
from llmcells import _loop
sim = llmcells.simulate(ttft=0.02, tokens_per_s=400)
state = {}

async def long_async(n: int) -> str:
    """Takes long."""
    state["started"] = time.monotonic()
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        state["cancelled"] = True
        state["cancelled_at"] = time.monotonic()
        raise
    return "never"

def long_sync(n: int) -> str:
    """Takes long, in a thread."""
    time.sleep(5)
    return "late"

async def _pending():
    me = asyncio.current_task()
    return len([t for t in asyncio.all_tasks() if t is not me])

# every path warm (SDK imports, clients, the responses types), so the tools start at once
llmcells.run(llmcells.compare("warm up", ["chatgpt", "openai-responses:gpt-6-luna", "claude", "gemini"],
                              display=False))
'''


WARM_TOOLS = """
def quick(n: int) -> int:
    'Quick.'
    return n

r = await llmcells.ask('call quick({"n": 1})', tools=[quick])
assert r.ok, r.error
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    k = Kernel(tmp_path_factory.mktemp("tools-kernel-home"))
    try:
        content, _ = k.execute("%load_ext llmcells\n" + SETUP, timeout=120)
        assert content["status"] == "ok", content
        # a first call with tools and a card: what a notebook's first such call imports and
        # builds (the schema, the widgets, the Markdown renderer) is a one-off cost, not the
        # interrupt's
        content, _ = k.execute(WARM_TOOLS, timeout=120)
        assert content["status"] == "ok", content
        yield k
    finally:
        k.close()


@pytest.mark.parametrize("model", PATHS)
def test_interrupt_while_tools_run_in_a_kernel(kernel, model):
    kernel.execute("state.clear()")
    msg_id = kernel.kc.execute(
        f"r = await llmcells.ask('call long_async({{\"n\": 1}}) call long_sync({{\"n\": 2}})', "
        f"model={model!r}, tools=[long_async, long_sync])")
    kernel.wait_started(msg_id)
    time.sleep(1.0)  # the tools are running by now
    t0 = time.monotonic()
    kernel.km.interrupt_kernel()
    _, reply = kernel.reply(msg_id, timeout=10)
    seconds = time.monotonic() - t0
    kernel.messages(msg_id, quiet=0.1)  # the cell's last messages, then let a late SIGINT land
    time.sleep(0.4)
    print(f"{model}: the cell ended {seconds:.3f} s after the interrupt")
    assert reply["content"]["status"] == "error"
    seen = kernel.value("state.get('cancelled_at', 0)") - t0
    print(f"  the async tool saw the cancellation {seen:.3f} s after the interrupt")
    assert seconds < 1.0, f"the cell took {seconds:.2f} s to end"
    assert kernel.value("state.get('cancelled')") is True
    assert kernel.value("_loop.submit(_pending()).result(timeout=5)") == 0
    assert kernel.value("llmcells.api.last.status") == "cancelled"
    content, _ = kernel.execute('r = llmcells.run(llmcells.ask("again", "claude", display=False)); '
                                'assert r.ok, r.error')
    assert content["status"] == "ok"
