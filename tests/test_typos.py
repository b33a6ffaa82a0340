"""Mistakes caught before anything is sent: a prompt longer than the model's context window (for
every way of calling, as `Chat` does), and a tool function without type hints (one warning)."""

from __future__ import annotations

import warnings

import pytest

import llmcells
from llmcells.errors import ConfigError
from llmcells.tools import ToolHintWarning, as_tool

#: about 1.6M tokens by the estimate: more than any of the default models takes
HUGE = "word " * 1_150_000
#: an active model with a 200k window (the defaults take 1M)
HAIKU4 = "anthropic:claude-haiku-4-5"


@pytest.mark.parametrize("call", [
    lambda: llmcells.ask(HUGE, HAIKU4),
    lambda: llmcells.compare(HUGE, [HAIKU4, "chatgpt"]),
    lambda: llmcells.batch(["short", HUGE], HAIKU4),
    lambda: llmcells.batch([HUGE], HAIKU4, via="provider"),
], ids=["ask", "compare", "batch", "provider job"])
def test_every_call_checks_the_context_window_before_sending(simulated, call):
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert "anthropic:claude-haiku-4-5's context window of 200,000" in message, message
    assert "This prompt is about 1,64" in message and "nothing was sent" in message, message
    assert not simulated.requests
    assert llmcells.usage().empty


def test_the_history_counts_toward_the_window(simulated):
    history = [llmcells.Message("user", HUGE), llmcells.Message("assistant", "ok")]
    with pytest.raises(ConfigError, match="context window of 200,000"):
        llmcells.ask("and now?", HAIKU4, history=history)


def test_a_prompt_that_fits_is_sent(simulated):
    r = llmcells.run(llmcells.ask("word " * 20_000, "claude", display=False))
    assert r.ok and len(simulated.requests) == 1


def test_a_tool_without_type_hints_gets_one_warning():
    def lookup_city(city, days: int = 1) -> str:
        """Weather."""
        return city

    def typed(city: str) -> str:
        return city

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        as_tool(lookup_city)
        as_tool(lookup_city)  # the same function again: no second warning
        as_tool(typed)
    hints = [w for w in seen if issubclass(w.category, ToolHintWarning)]
    assert len(hints) == 1, [str(w.message) for w in seen]
    assert str(hints[0].message).startswith("Tool lookup_city: city has no type hint")
    assert hints[0].filename == __file__  # it points at the user's line, not at llmcells


def test_a_reset_session_warns_of_a_tool_without_type_hints_again():
    from llmcells.session import session

    def lookup_town(town) -> str:
        """Weather."""
        return town

    for _ in range(2):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            as_tool(lookup_town)
            as_tool(lookup_town)
        assert len([w for w in seen if issubclass(w.category, ToolHintWarning)]) == 1
        session.reset()


def test_a_chain_skips_the_models_whose_window_is_too_small(simulated):
    long = "word " * 300_000  # about 430k tokens: too long for claude-haiku-4-5 (200k), not for gpt-6-luna (1.05M)
    r = llmcells.run(llmcells.ask(long, HAIKU4 + "|chatgpt", display=False))
    assert r.ok and r.model == "openai:gpt-6-luna"
    assert [q.provider for q in simulated.requests] == ["openai"]
    with pytest.raises(ConfigError, match="context window of 200,000"):
        llmcells.ask(long, HAIKU4 + "|" + HAIKU4)
