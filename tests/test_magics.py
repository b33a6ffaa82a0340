"""The magics through a real IPython InteractiveShell, against the simulator."""

from __future__ import annotations

import re


import pytest
from IPython.core.error import UsageError

import llmcells
from llmcells import magics
from llmcells.comparison import Comparison
from llmcells.types import Result


@pytest.fixture
def ip(shell, simulated):
    magics.conversations.clear()
    shell.user_ns.pop("_llm", None)
    return shell


def cell(ip, magic, line="", body="Say hi."):
    ip.run_cell_magic(magic, line + " --no-display", body)
    return ip.user_ns["_llm"]


def last_body(sim):
    return sim.requests[-1].body


@pytest.mark.parametrize("magic,provider,model", [
    ("chatgpt", "openai", "gpt-6-luna"),
    ("claude", "anthropic", "claude-haiku-5-5"),
    ("gemini", "google", "gemini-3.5-flash-lite"),
])
def test_each_provider_magic(ip, simulated, magic, provider, model):
    r = cell(ip, magic)
    assert isinstance(r, Result) and r.ok and r.text
    assert r.model == f"{provider}:{model}"
    assert simulated.requests[-1].provider == provider


def test_options_reach_the_request(ip, simulated):
    r = cell(ip, "claude", '-m claude-sonnet-4-6 -s "Be terse." -t 0.3 --max-tokens 5 -o answer')
    assert ip.user_ns["answer"] is r
    assert r.model == "anthropic:claude-sonnet-4-6"
    body = last_body(simulated)
    assert body["system"] == "Be terse." and body["max_tokens"] == 5
    assert r.usage.output_tokens <= 5
    # Claude takes no temperature: left out, and said so; 5 tokens cut the answer, said too
    assert "temperature" not in body and r.notes == [
        "sent without temperature: claude-sonnet-4-6 doesn't accept it",
        "cut short: the answer reached max_tokens (5); raise max_tokens for the rest"]
    r = cell(ip, "chatgpt", "-m gpt-4.1 -t 0.3")  # a model that takes one
    assert last_body(simulated)["temperature"] == 0.3 and r.notes == []


def test_model_option_takes_ids_and_aliases(ip, simulated):
    assert cell(ip, "chatgpt", "-m gemini").model == "google:gemini-3.5-flash-lite"
    assert cell(ip, "chatgpt", "-m openai-responses:gpt-6-luna").ok
    assert simulated.requests[-1].api == "responses"


def test_compare_magic_positional_models_and_default(ip, simulated):
    c = cell(ip, "compare", "chatgpt google:gemini-3.5-flash")
    assert isinstance(c, Comparison)
    assert [r.model for r in c] == ["openai:gpt-6-luna", "google:gemini-3.5-flash"]
    c = cell(ip, "compare")
    assert [r.provider for r in c] == ["openai", "anthropic", "google"] and all(r.ok for r in c)


def test_repeat_gives_independent_samples(ip, simulated):
    c = cell(ip, "gemini", "-m gemini-3.1-flash-lite -n 3 -t 1")  # (takes a temperature)
    assert isinstance(c, Comparison) and [r.sample for r in c] == [0, 1, 2]
    assert len({r.text for r in c}) == 3
    c = cell(ip, "compare", "chatgpt claude -n 2")
    assert [(r.provider, r.sample) for r in c] == [("openai", 0), ("openai", 1), ("anthropic", 0), ("anthropic", 1)]


def test_continue_carries_the_conversation_and_reset_forgets_it(ip, simulated):
    first = cell(ip, "claude", body="My name is Ada.")
    cell(ip, "claude", "-c", body="What is my name?")
    messages = last_body(simulated)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"] == "My name is Ada." and messages[1]["content"] == first.text
    cell(ip, "claude", "-c", body="And again?")
    assert len(last_body(simulated)["messages"]) == 5
    # without -c a cell is a fresh request
    cell(ip, "claude", body="Fresh.")
    assert len(last_body(simulated)["messages"]) == 1
    ip.run_line_magic("llmcells", "reset")
    cell(ip, "claude", "-c", body="Who am I?")
    assert len(last_body(simulated)["messages"]) == 1


def test_continue_in_compare_keeps_each_models_own_history(ip, simulated):
    cell(ip, "compare", "chatgpt claude", body="One.")
    cell(ip, "compare", "chatgpt claude -c", body="Two.")
    by_provider = {q.provider: q.body for q in simulated.requests[-2:]}
    assert len(by_provider["openai"]["messages"]) == 3
    assert len(by_provider["anthropic"]["messages"]) == 3


def test_interpolation(ip, simulated):
    ip.user_ns.update(topic="tides", rows=[10, 20])
    cell(ip, "chatgpt", body='About {topic} and {rows[1]}; keep {{missing}} and {"json": 1}.')
    sent = last_body(simulated)["messages"][-1]["content"]
    assert sent == 'About tides and 20; keep {missing} and {"json": 1}.'
    cell(ip, "chatgpt", "--no-interpolate", body="About {topic}.")
    assert last_body(simulated)["messages"][-1]["content"] == "About {topic}."


def test_an_unknown_name_in_a_cell_is_one_line_and_nothing_is_sent(ip, simulated):
    ip.user_ns.update(topic="tides")
    before = len(simulated.requests)
    with pytest.raises(UsageError) as err:
        cell(ip, "chatgpt", body="Tell me about {topc} in one line.")
    message = str(err.value)
    assert "{topc}: no variable 'topc' (did you mean 'topic'?)" in message, message
    assert "--no-interpolate" in message and "\n" not in message
    assert len(simulated.requests) == before


@pytest.mark.parametrize("line,suggestion", [
    ("--temprature 0", "(did you mean --temperature?)"),
    ("--no-interpolte", "(did you mean --no-interpolate?)"),
    ("-f jsn", "(did you mean json?)"),
])
def test_option_typos_get_did_you_mean(ip, simulated, line, suggestion):
    with pytest.raises(UsageError) as err:
        cell(ip, "claude", line)
    assert str(err.value).endswith(suggestion), str(err.value)


@pytest.mark.parametrize("magic,line,alias", [
    ("claude", "-m claud", "claude"),
    ("chatgpt", "-m chatgtp", "chatgpt"),
    ("gemini", '-m "claude|gemni"', "gemini"),
])
def test_a_model_typo_after_dash_m_is_caught_before_sending(ip, simulated, magic, line, alias):
    # a bare name is this provider's model, but a slip of an alias is a typo, not a model to send
    with pytest.raises(UsageError) as err:
        cell(ip, magic, line)
    message = str(err.value)
    assert f"Did you mean {alias}?" in message and "\n" not in message, message
    assert not simulated.requests
    assert cell(ip, "gemini", "-m gemini-3.5-flash").model == "google:gemini-3.5-flash"


def test_help_names_the_cell_magic_and_reads_as_text(ip, simulated, capsys):
    # %%claude? and -h show %%claude (a cell magic), not %claude; printed help has no reST "::"
    assert ip.find_cell_magic("claude").__doc__.startswith("::\n\n  %%claude [-m MODEL]")
    assert "%%compare [-m MODEL]" in ip.find_cell_magic("compare").__doc__
    ip.run_cell_magic("claude", "-h", "hi")
    ip.run_line_magic("llmcells", "help")
    claude, llmcells = capsys.readouterr().out.split("usage: %llmcells [--by BY]")
    assert claude.startswith("usage: %%claude [-m MODEL]") and "::" not in claude.split("Example")[0]
    assert not simulated.requests
    with pytest.raises(UsageError, match=r"See %%compare\? for help\.$"):
        ip.run_cell_magic("compare", '-m "oops', "hi")


def test_llmcells_command_typo_gets_did_you_mean(ip):
    with pytest.raises(UsageError, match=r"Unknown command 'cost' \(did you mean costs\?\)"):
        ip.run_line_magic("llmcells", "cost")


def test_format_json_parses_the_answer(ip, simulated):
    simulated.set_model("gemini-3.5-flash-lite", text='```json\n{"a": [1, 2]}\n```')
    r = cell(ip, "gemini", "-f json")
    assert r.data == {"a": [1, 2]}


def test_format_code_puts_the_code_in_a_new_cell(ip, simulated):
    simulated.set_model("gpt-6-luna", text="Here:\n```python\nprint('hi')\n```\nDone.")
    ip.rl_next_input = None
    cell(ip, "chatgpt", "-f code")
    assert ip.rl_next_input == "print('hi')"


@pytest.mark.parametrize("magic,line,body,message", [
    ("claude", "", "   \n", "cell is empty"),
    ("claude", "--bogus", "hi", "unrecognized arguments"),
    ("claude", "-m openia:gpt-4o", "hi", "Unknown provider"),
    ("compare", "chatgpt chatgtp", "hi", "Unknown model 'chatgtp'"),
    ("claude", "-t 5", "hi", "between 0 and 2"),
    ("claude", "-n 0", "hi", "repeat"),
    ("claude", "--max-tokens 0", "hi", "max-tokens"),
    ("claude", "-o 1x", "hi", "variable name"),
    ("claude", "-f yaml", "hi", "invalid choice"),
])
def test_bad_input_is_one_usage_error_and_sends_nothing(ip, simulated, magic, line, body, message):
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic(magic, line, body)
    assert simulated.requests == []


def test_missing_key_is_one_line_saying_what_to_do(shell, capsys):
    from llmcells import models

    models.set_simulator(None)
    result = shell.run_cell("%%claude\nhello")
    assert result.error_in_exec is not None or result.error_before_exec is not None
    out = capsys.readouterr()
    text = out.out + out.err
    assert "UsageError" in text and "ANTHROPIC_API_KEY" in text and "simulate" in text
    assert "Traceback" not in text and len(text.strip().splitlines()) == 1


def test_help_reads_well(shell):
    doc = shell.find_cell_magic("compare").__doc__
    assert "side by side" in doc and "--repeat" in doc and "--continue" in doc
    assert "MODEL" in doc
    assert "%llmcells usage" in shell.find_line_magic("llmcells").__doc__


def test_option_help_says_what_each_magic_takes(shell):
    """`%%compare?` describes its own -m (one more model to compare, not "this provider's"), and
    `%llmcells?` names every key costs can be grouped by, as the command line's error does."""
    from llmcells.ledger import COST_KEYS

    compare = shell.find_cell_magic("compare").__doc__
    m_help = re.search(r"-m MODEL, --model MODEL\s+(.*?)\n  -", compare, re.S).group(1)
    assert "this provider" not in m_help and "compare" in m_help, m_help
    assert "this provider's model" in " ".join(shell.find_cell_magic("claude").__doc__.split())
    line = shell.find_line_magic("llmcells").__doc__
    by_help = " ".join(re.search(r"--by BY\s+(.*?)\n  -", line, re.S).group(1).split())
    assert all(re.search(rf"\b{k}\b", by_help) for k in COST_KEYS), by_help


def test_llmcells_line_magic(ip, simulated, capsys):
    frame = ip.run_line_magic("llmcells", "models")
    assert set(frame["alias"]) >= {"chatgpt", "claude", "gemini"}
    assert set(frame["simulated"]) == {"yes"}
    settings = ip.run_line_magic("llmcells", "config temperature=0.5 compare_models=claude,gemini")
    assert settings["temperature"] == 0.5 and settings["compare_models"] == ["claude", "gemini"]
    c = cell(ip, "compare")
    assert [r.provider for r in c] == ["anthropic", "google"]
    with pytest.raises(UsageError, match="Unknown setting"):
        ip.run_line_magic("llmcells", "config colour=blue")
    with pytest.raises(UsageError, match="Unknown command"):
        ip.run_line_magic("llmcells", "frobnicate")
    ip.run_line_magic("llmcells", "help")
    assert "simulate on|off" in capsys.readouterr().out


def test_config_with_a_name_alone_shows_that_setting(ip):
    # what a newcomer types to read one setting; a slip gets the closest name
    ip.run_line_magic("llmcells", "config temperature=0.5")
    try:
        assert ip.run_line_magic("llmcells", "config temperature timeout") == {
            "temperature": 0.5, "timeout": 600.0}
        with pytest.raises(UsageError, match=r"Unknown setting 'temprature' \(did you mean temperature\?\)"):
            ip.run_line_magic("llmcells", "config temprature")
    finally:
        ip.run_line_magic("llmcells", "config temperature=none")


def test_usage_and_costs_tables_from_the_magic(ip, simulated):
    cell(ip, "compare", "chatgpt claude")
    usage = ip.run_line_magic("llmcells", "usage --session")
    assert len(usage) >= 2 and {"status", "cost_usd", "model"} <= set(usage.columns)
    costs = ip.run_line_magic("llmcells", "costs --by provider --simulated")
    assert {"openai", "anthropic"} <= set(costs["provider"])
    # real spend only by default: simulated calls are not counted
    assert ip.run_line_magic("llmcells", "costs --by provider --session").empty
    # the last 20 calls, as the command line shows (the whole ledger was one styled table in the
    # notebook and its saved file); -n 0 shows them all
    llmcells.run(llmcells.batch([f"p{i}" for i in range(25)], models=["chatgpt"], display=False))
    assert len(ip.run_line_magic("llmcells", "usage --session")) == 20
    assert len(ip.run_line_magic("llmcells", "usage --session -n 3")) == 3
    assert len(ip.run_line_magic("llmcells", "usage --session -n 0")) == 27


def test_simulate_switch(shell, capsys):
    shell.run_line_magic("llmcells", "simulate on --ttft 0.01 --tps 5000")
    try:
        shell.run_cell_magic("claude", "--no-display", "hi")
        assert shell.user_ns["_llm"].ok and shell.user_ns["_llm"].simulated
    finally:
        shell.run_line_magic("llmcells", "simulate off")
    assert "Simulator off" in capsys.readouterr().out
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY"):
        shell.run_cell_magic("claude", "--no-display", "hi")


def test_help_option_prints_the_help_and_sends_nothing(ip, simulated, capsys):
    ip.run_cell_magic("claude", "--help", "a prompt")
    ip.run_cell_magic("compare", "-h", "a prompt")
    out = capsys.readouterr().out
    assert "Ask Claude" in out and "side by side" in out and "--continue" in out
    assert simulated.requests == []


def test_a_bare_model_name_is_refused_only_where_its_makers_models_dont_run(ip):
    """Agent CLIs run their maker's models, cloud routes their makers', an endpoint any name:
    `%%claude-code -m claude-opus-4-1` was refused as "a model of Anthropic, not of Claude Code"."""
    from llmcells.models import foreign_model_hint

    for provider, name in [("claude-code", "claude-opus-4-1"), ("gemini-cli", "gemini-3.5-pro"),
                           ("codex", "o3"), ("bedrock", "claude-opus-4-1"), ("azure", "gpt-4o"),
                           ("vertex", "gemini-3.5-flash"), ("vertex", "claude-opus-4-1"),
                           ("local", "gpt-oss-20b"), ("anthropic", "claude-opus-4-1")]:
        assert foreign_model_hint(provider, name) is None, (provider, name)
    with pytest.raises(UsageError, match="'gpt-5' is a model of OpenAI, not of Claude Code: use %%chatgpt -m gpt-5"):
        cell(ip, "claude-code", "-m gpt-5")
    with pytest.raises(UsageError, match="'o3-mini' is a model of OpenAI, not of Google Gemini"):
        cell(ip, "gemini", "-m o3-mini")
