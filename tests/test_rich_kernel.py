"""Rich requests in a real Jupyter kernel (ipykernel via jupyter_client), with no keys:
`%%compare chatgpt claude gemini -a fig` with a matplotlib figure reaches all three providers
with the same PNG bytes, and `%%claude --schema Person -o p` leaves a Person in p.data.
A kernel that cannot start fails these tests; they are never skipped."""

from __future__ import annotations

import pytest

from llmcells.testing import Kernel, stream_text

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    k = Kernel(tmp_path_factory.mktemp("rich-home"))
    try:
        k.ok("%load_ext llmcells\n"
             "import llmcells, hashlib\n"
             "sim = llmcells.simulate()\n"
             "import matplotlib\n"
             "matplotlib.use('Agg')\n"
             "import matplotlib.pyplot as plt\n"
             "fig, ax = plt.subplots(figsize=(3, 2))\n"
             "ax.bar(['a', 'b', 'c'], [3, 5, 2])\n"
             "from pydantic import BaseModel\n"
             "class Person(BaseModel):\n"
             "    name: str\n"
             "    age: int\n")
        yield k
    finally:
        k.close()


def test_compare_three_models_with_a_figure(kernel):
    kernel.ok("sim.reset()")
    content, msgs = kernel.execute("%%compare chatgpt claude gemini -a fig -o c\n"
                                   "What does the attached chart show?", timeout=90)
    assert content["status"] == "ok", content
    assert kernel.value("[r.status for r in c]") == ["ok", "ok", "ok"]
    assert kernel.value("sorted(r.provider for r in c)") == ["anthropic", "google", "openai"]
    # the same PNG (the figure rendered once) reached every provider, byte for byte
    want = kernel.value("llmcells.attachments.attachment(fig).sha256")
    sent = kernel.value("[[a['sha256'] for a in r.attachments] for r in sim.requests]")
    assert sent == [[want]] * 3
    assert kernel.value("[r.attachments_count for r in c]") == [1, 1, 1]
    assert all("image/png" in t for t in kernel.value("[r.text for r in c]"))


def test_claude_with_a_schema_fills_p_data(kernel):
    content, msgs = kernel.execute("%%claude --schema Person -o p\nWho wrote the first program?",
                                   timeout=60)
    assert content["status"] == "ok", content
    assert kernel.value("type(p.data).__name__") == "Person"
    assert kernel.value("p.data.model_dump()") == {"name": "example name", "age": 42}


def test_compare_with_a_schema_shows_per_field_agreement(kernel):
    content, msgs = kernel.execute("%%compare chatgpt gemini --schema Person -o c2\nWho?", timeout=60)
    assert content["status"] == "ok", content
    shown = "".join(m["content"].get("data", {}).get("text/plain", "") for m in msgs
                    if m["msg_type"] == "display_data")
    assert "agree" in shown and "name" in shown and "age" in shown
    assert kernel.value("bool(c2.agreement()['agree'].all())") is True


def test_a_bad_attach_is_one_line(kernel):
    content, msgs = kernel.execute("%%claude -a no_such_var\nhi")
    assert content["status"] == "error" and content["ename"] == "UsageError"
    assert "no variable 'no_such_var'" in content["evalue"]
    assert stream_text(msgs) == "" or "Traceback" not in stream_text(msgs)
