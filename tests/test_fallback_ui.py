"""Where the user sees a chain: the card and the terminal say why it moved on; the magics take
`A|B` (in -m and in %%compare entries); %llmcells health and quota."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from llmcells import magics
from llmcells.config import settings
from llmcells.display import open_display
from llmcells.types import CallInfo, Result


def _info(model_id: str) -> CallInfo:
    return CallInfo(call_id=f"c-{model_id}", model=model_id, model_id=model_id,
                    provider=model_id.split(":")[0], simulated=True)


def test_card_says_why_the_chain_moved_on():
    h = open_display("ask", [_info("anthropic:claude-haiku-5-5")], "notebook")
    card = h.observers[0]
    card.on_start(card.info)
    card.on_fallback("anthropic:claude-haiku-5-5", "overloaded", "openai:gpt-6-luna")
    card.on_start(_info("openai:gpt-6-luna"))
    assert "anthropic:claude-haiku-5-5: overloaded → openai:gpt-6-luna" in card.header.value
    assert "openai:gpt-6-luna" in card.header.value
    card.on_fallback("openai:gpt-6-luna", "rate_limited", "google:gemini-3.5-flash-lite")
    assert "overloaded → openai:gpt-6-luna → google:gemini-3.5-flash-lite" in card.header.value
    r = Result(text="hi", model="google:gemini-3.5-flash-lite", status="ok", latency_s=0.1)
    card.on_finish(r)
    h.close([r])
    assert "overloaded → openai:gpt-6-luna" in card.header.value  # kept on the finished card


def test_terminal_says_why_the_chain_moved_on(capsys):
    h = open_display("ask", [_info("anthropic:claude-haiku-5-5")], "terminal")
    o = h.observers[0]
    o.on_start(o.info)
    o.on_fallback("anthropic:claude-haiku-5-5", "overloaded", "openai:gpt-6-luna")
    assert capsys.readouterr().out == "↪ anthropic:claude-haiku-5-5: overloaded → openai:gpt-6-luna\n"


@pytest.fixture
def ip(shell, simulated):
    magics.conversations.clear()
    settings.update(max_attempts=1)
    return shell


def test_magic_model_chain(ip, simulated):
    simulated.set_down("claude-haiku-5-5", "overloaded")
    ip.run_cell_magic("claude", "-m claude|chatgpt --no-display", "Say hi.")
    r = ip.user_ns["_llm"]
    assert r.ok and r.model == "openai:gpt-6-luna" and len(r.attempts_by_model) == 2
    # a bare name in a chain is the magic's provider's model, as with -m alone
    ip.run_cell_magic("claude", "-m claude-sonnet-4-6|gemini --no-display", "Say hi.")
    assert ip.user_ns["_llm"].model == "anthropic:claude-sonnet-4-6"


def test_magic_chain_with_a_missing_key_moves_on(ip, simulated):
    from llmcells import models

    models.set_simulator(simulated.url, providers=["openai"])
    ip.run_cell_magic("claude", "-m claude|chatgpt --no-display", "Say hi.")
    assert ip.user_ns["_llm"].model == "openai:gpt-6-luna"
    with pytest.raises(UsageError, match="No API key"):  # alone, a missing key stops the cell
        ip.run_cell_magic("claude", "--no-display", "Say hi.")


def test_compare_magic_chain_entries(ip, simulated):
    simulated.set_down("gpt-6-luna", "rate_limited")
    ip.run_cell_magic("compare", "chatgpt|gemini claude --no-display", "Say hi.")
    c = ip.user_ns["_llm"]
    assert [r.model for r in c] == ["google:gemini-3.5-flash-lite", "anthropic:claude-haiku-5-5"]
    with pytest.raises(UsageError, match="Unknown model"):
        ip.run_cell_magic("compare", "chatgpt|nosuch --no-display", "Say hi.")


def test_llmcells_health_and_quota_commands(ip, simulated):
    frame = ip.run_line_magic("llmcells", "health")
    apis = frame[frame.provider.isin(["openai", "anthropic", "google"])]
    assert len(apis) == 3 and apis.reachable.all()
    agents = frame[frame.provider.isin(["claude-code", "gemini-cli", "codex"])]
    assert len(agents) == 3 and agents.simulated.all()  # one row per agent CLI, installed or not
    ip.run_cell_magic("chatgpt", "--no-display", "Say hi.")
    q = ip.run_line_magic("llmcells", "quota")
    assert "openai" in set(q.provider) and q.requests_limit.notna().any()
