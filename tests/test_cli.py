"""The command line as a new user meets it: `python -m llmcells ...` in a subprocess, with no
provider keys and a private ledger. Every user error is one line on stderr with exit status 2,
never a traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
            "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
            "GOOGLE_GENAI_USE_VERTEXAI")


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    e["LLMCELLS_HOME"] = str(tmp_path / "home")
    return e


def cli(env, *args, stdin=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "llmcells", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def script(env, code, timeout=60):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(p, status=2) -> str:
    assert p.returncode == status, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


# 12 -------------------------------------------------------------------------------------------
def test_help_says_what_happens_without_keys(env):
    top = cli(env, "--help")
    assert top.returncode == 0
    text = " ".join(top.stdout.split())
    assert "ask and compare call the real services and need their API keys" in text
    assert "--simulate" in text and "demo runs anywhere" in text
    assert "run on the built-in simulator" not in text  # the old, wrong promise
    ask = " ".join(cli(env, "ask", "--help").stdout.split())
    assert "API key must be set" in ask and "unless --simulate" in ask


def test_every_option_is_explained_and_costs_by_names_every_key(env):
    from llmcells.__main__ import _parser
    from llmcells.ledger import COST_KEYS

    for command, parser in _parser()[1].items():
        bare = [a.dest for a in parser._actions if not a.help]
        assert not bare, (command, bare)  # `--help` would list them with nothing to say
    by = " ".join(cli(env, "costs", "--help").stdout.split())
    assert all(k in by for k in COST_KEYS), by
    assert "needs their API keys" in " ".join(cli(env, "--help").stdout.split())


def test_keys_alone_lists_them_as_the_magic_does(env):
    p = cli(env, "keys")
    assert p.returncode == 0 and p.stdout == cli(env, "keys", "list").stdout
    assert p.stdout.split()[:2] == ["openai", "not"], p.stdout


def test_ask_without_a_key_is_one_line_and_status_2(env):
    p = cli(env, "ask", "hi")
    assert p.returncode == 2 and "Traceback" not in p.stderr + p.stdout
    assert re.fullmatch(r"✗ openai:gpt-6-luna: No API key for OpenAI: .*--simulate.*\n", p.stdout)


# 13 -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_costs_by_comma_list_and_bad_key(env):
    assert cli(env, "ask", "--simulate", "-m", "claude", "hi").returncode == 0
    p = cli(env, "costs", "--by", "model,day")   # real spend only: the one call was simulated
    assert p.returncode == 0 and "--simulated" in p.stdout and "Traceback" not in p.stderr, p.stderr
    p = cli(env, "costs", "--by", "model,day", "--simulated")
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    head = p.stdout.splitlines()[0].split()
    assert head[:3] == ["model", "day", "calls"] and "cost" in head
    assert "anthropic:claude-haiku-5-5" in p.stdout and "$0.0" in p.stdout
    # a real call of the same model (it failed: no key) is a row apart, and the rows say which
    assert cli(env, "ask", "-m", "claude", "hi").returncode != 0
    p = cli(env, "costs", "--simulated")
    assert p.stdout.splitlines()[0].split()[:3] == ["model", "simulated", "calls"], p.stdout
    rows = [l.split() for l in p.stdout.splitlines()[1:]]
    assert sorted(r[1] for r in rows if r[0] == "anthropic:claude-haiku-5-5") == ["no", "yes"]
    line = one_line_error(cli(env, "costs", "--by", "banana"))
    assert "--by banana" in line and "model,day" in line
    one_line_error(cli(env, "costs", "--by", ","))


# 14 -------------------------------------------------------------------------------------------
def test_ask_with_two_models_is_an_error(env):
    line = one_line_error(cli(env, "ask", "-m", "chatgpt", "-m", "claude", "hi"))
    assert "compare -m chatgpt -m claude" in line


# 15 -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_simulate_banner_lists_only_the_providers_used_after_validation(env):
    p = cli(env, "ask", "--simulate", "-m", "claude", "hi")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "(simulated: anthropic)"
    p = cli(env, "demo", "-m", "claude", "-m", "chatgpt")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].startswith("(simulated: anthropic, openai — set their API keys")
    bad = cli(env, "ask", "--simulate", "-m", "nope:model", "hi")
    one_line_error(bad)
    assert "simulated" not in bad.stdout and bad.stdout == ""


# 16 -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_price_warning_one_line_per_model_only_for_calls_that_happened(env):
    p = cli(env, "compare", "--simulate", "-m", "openai:mystery-1", "-m", "openai:mystery-1",
            "-m", "claude", "hi")
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr and "warnings.warn" not in p.stderr
    assert "PriceWarning" not in p.stderr
    lines = p.stderr.strip().splitlines()
    assert lines == [l for l in lines if l.startswith("llmcells: No price known for openai:mystery-1")]
    assert len(lines) == 1, p.stderr
    # no key, no call, no price warning
    p = cli(env, "compare", "-m", "openai:mystery-2", "hi")
    assert "mystery-2" not in p.stderr and "price" not in p.stderr.lower()


# 17 -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_usage_and_demo_tables_are_compact_and_formatted(env):
    demo = cli(env, "demo")
    assert demo.returncode == 0, demo.stderr
    assert "None" not in demo.stdout and not re.search(r"\d\.\d{7,}", demo.stdout)
    assert demo.stdout.count("Recorded in the usage ledger") == 1
    (head,) = [l for l in demo.stdout.splitlines() if l.startswith("model ") and "tok/s" in l]
    assert head.split() == ["model", "status", "latency", "TTFT", "tok/s", "in→out", "cost"]
    u = cli(env, "usage")
    assert u.returncode == 0, u.stderr
    lines = u.stdout.splitlines()
    # the demo's calls were simulated: their costs are list prices never billed, and say so
    assert lines[0].split() == ["time", "model", "simulated", "status", "in", "out", "cost",
                                "latency", "TTFT"]
    assert len(lines) == 4 and all("$0.0" in l and " yes " in l for l in lines[1:])
    assert max(len(l) for l in lines) < 110
    assert not re.search(r"\d\.\d{7,}", u.stdout)
    one_line_error(cli(env, "usage", "--limit", "0"))


# 18 -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_hung_server_shows_the_wait_on_a_tty(env):
    import pty

    code = ("import llmcells, sys\nfrom llmcells.__main__ import main\n"
            "llmcells.simulate(ttft=2.6)\nsys.exit(main(['ask', '--simulate', '-m', 'claude', 'hi']))\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal on stdout
        os.execvpe(sys.executable, [sys.executable, "-c", code], env)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "waiting for first token… 1 s" in text and "waiting for first token… 2 s" in text, text
    # the waiting line is erased before the answer is written
    answer_at = text.index("Simulated answer")
    assert text.rfind("\x1b[2K", 0, answer_at) > text.rfind("waiting for first token", 0, answer_at)
    # not on a pipe
    p = script(env, code)
    assert p.returncode == 0 and "waiting for first token" not in p.stdout


_HOSTILE = ("\\x1b]8;;http://evil.example\\x07link\\x1b]8;;\\x07 \\x1b[2J\\x1b]0;pwned\\x07"
            "safe\\rEVIL \\u202etxt.exe\\u202c end")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_answers_and_errors_reach_the_terminal_without_control_characters(env):
    """A model's answer (ask, compare, --quiet) and a provider's error in the usage table are
    printed without their control characters: no hyperlink, cleared screen, window title,
    overwritten line or reversed text; the text itself stays, visible."""
    for args in (["ask"], ["ask", "--quiet"], ["compare", "-m", "claude", "-m", "chatgpt"],
                 ["compare", "--quiet", "-m", "claude", "-m", "chatgpt"]):
        code = ("import llmcells, sys\nfrom llmcells.__main__ import main\n"
                f"sim = llmcells.simulate()\nsim.set_model('*', text='{_HOSTILE}')\n"
                f"sys.exit(main({args[:1] + ['--simulate'] + args[1:] + ['hi']!r}))\n")
        p = script(env, code)
        assert p.returncode == 0, p.stderr
        assert not _CONTROLS.search(p.stdout + p.stderr), (args, p.stdout)
        assert "safeEVIL" in p.stdout and "link]8;;" in p.stdout, p.stdout
    from llmcells.__main__ import _fmt_cell

    assert _fmt_cell("error", "Bad request: \x1b[2J\x1b]0;x\x07gone") == "Bad request: [2J]0;xgone"


# 19 -------------------------------------------------------------------------------------------
def test_version(env):
    p = cli(env, "--version")
    assert p.returncode == 0 and re.fullmatch(r"llmcells \d+\.\d+\.\d+\S*\n", p.stdout)


def test_unknown_option_shows_the_subcommands_usage(env):
    p = cli(env, "ask", "--bogus", "hi")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("usage: llmcells ask ")
    assert p.stderr.strip().splitlines()[-1] == "llmcells ask: error: unrecognized arguments: --bogus"
    p = cli(env, "costs", "--limit", "3")
    assert p.stderr.startswith("usage: llmcells costs ") and p.returncode == 2


def test_a_mistyped_option_or_subcommand_gets_the_closest_one(env):
    # as the magics do: `--temprature` names --temperature, `keys lst` names list
    p = cli(env, "ask", "--simulate", "hi", "--temprature", "0")
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1] == (
        "llmcells ask: error: unrecognized arguments: --temprature 0 (did you mean --temperature?)")
    p = cli(env, "keys", "lst")
    assert p.returncode == 2 and p.stderr.strip().endswith("(did you mean list?)"), p.stderr


@pytest.mark.slow
def test_demo_prints_answers_as_they_finish(env):
    code = ("import llmcells, sys\nfrom llmcells.__main__ import main\n"
            "sim = llmcells.simulate()\n"
            "sim.set_model('gpt-6-luna', ttft=1.2)\n"
            "sim.set_model('gemini-3.5-flash-lite', ttft=0.6)\n"
            "sim.set_model('claude-haiku-5-5', ttft=0.0)\n"
            "sys.exit(main(['demo']))\n")
    p = script(env, code)
    assert p.returncode == 0, p.stderr
    order = re.findall(r"^── (\S+)", p.stdout, re.M)
    assert order == ["anthropic:claude-haiku-5-5", "google:gemini-3.5-flash-lite", "openai:gpt-6-luna"]
    fastest = [l for l in p.stdout.splitlines() if "*fastest*" in l]
    assert fastest and fastest[0].startswith("anthropic:claude-haiku-5-5")


def test_magic_with_another_providers_model_and_no_key_hint(env):
    code = ("import sys\nsys.stderr = sys.stdout\n"
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\n"
            "ip.run_cell('%load_ext llmcells')\n"
            "print('---')\n"
            "r = ip.run_cell('%%claude -m gpt-4o\\nhi')\n"
            "print('---')\n"
            "ip.run_cell('%%chatgpt -m claude-sonnet-4-6\\nhi')\n"
            "print('---')\n"
            "ip.run_cell('%%gemini -m o3-mini\\nhi')\n")
    p = script(env, code)
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    load, claude, chatgpt, gemini = [s.strip() for s in (p.stdout + p.stderr).split("---")]
    assert load == ("llmcells: no API key found (OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY); "
                    "run `%llmcells simulate on` to try everything on the built-in simulator.")
    assert len(claude.splitlines()) == 1 and "%%chatgpt -m gpt-4o" in claude
    assert "openai:gpt-4o" in claude
    assert "%%claude -m claude-sonnet-4-6" in chatgpt and len(chatgpt.splitlines()) == 1
    assert "%%chatgpt -m o3-mini" in gemini
    # with a key set there is no hint
    env2 = dict(env, ANTHROPIC_API_KEY="sk-ant-test")
    p = script(env2, "from IPython.core.interactiveshell import InteractiveShell\n"
                     "InteractiveShell.instance().run_cell('%load_ext llmcells')\n")
    assert "no API key" not in p.stdout + p.stderr
