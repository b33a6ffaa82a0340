"""A model chain in a real Jupyter kernel: the card says why it moved on, `_llm` is the
answering model's Result, and the ledger has one row per attempt."""

from __future__ import annotations

import json

import pytest

from test_kernel import Kernel

pytestmark = pytest.mark.kernel


def test_chain_card_in_a_real_kernel(tmp_path):
    k = Kernel(tmp_path / "home")
    try:
        k.ok("%load_ext llmcells\nimport llmcells\nsim = llmcells.simulate()\n"
             "llmcells.configure(max_attempts=1)\nsim.set_down('claude-haiku-5-5', 'overloaded')")
        content, msgs = k.execute("%%claude -m claude|chatgpt\nSay hi.")
        assert content["status"] == "ok", content
        wire = json.dumps([m["content"] for m in msgs], ensure_ascii=False)
        assert "anthropic:claude-haiku-5-5: overloaded → openai:gpt-6-luna" in wire
        assert k.value("_llm.model") == "openai:gpt-6-luna"
        assert k.value("list(llmcells.usage(group_id=_llm.group_id).status)") == ["ok", "error"]
    finally:
        k.close()
