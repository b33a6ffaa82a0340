"""Agent CLIs as providers: the registry rows, model resolution, options and install hints
(no CLI needed), and the real CLIs against the simulator inside a network namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import llmcells
from conftest import agents_required, missing_cli, need_tools
from llmcells import models, registry
from llmcells.models import ModelSpec
from llmcells.providers import _agents, codex
from llmcells.types import Message, Request

ROOT = Path(__file__).resolve().parents[1]


def test_agent_rows_resolve_to_the_simulator_on_their_apis_route(simulated):
    assert [r.name for r in registry.agents()] == ["claude-code", "gemini-cli", "codex"]
    url = simulated.url
    assert models.resolve("claude-code:sonnet").base_url == url            # ANTHROPIC_BASE_URL
    assert models.resolve("gemini-cli:gemini-3.5-flash").base_url == url   # GOOGLE_GEMINI_BASE_URL
    assert models.resolve("codex:gpt-5.5-codex").base_url == url + "/v1"     # the Responses API
    for alias in ("claude-code", "gemini-cli", "codex"):
        spec = models.resolve(alias)
        assert spec.simulated and spec.provider == alias


def test_agents_are_priced_as_the_api_they_call():
    from llmcells.pricing import price
    from llmcells.types import Usage

    u = Usage(input_tokens=1000, output_tokens=100)

    def cost(provider: str, model: str, usage: Usage) -> float:
        return price(provider, model, usage)[0]

    assert cost("claude-code", "claude-sonnet-4-6", u) == cost("anthropic", "claude-sonnet-4-6", u) > 0
    assert cost("codex", "gpt-5.5-codex", u) == cost("openai", "gpt-5.5-codex", u) > 0
    assert cost("gemini-cli", "gemini-3.5-flash", u) == cost("google", "gemini-3.5-flash", u) > 0


@pytest.mark.parametrize("name,hint", [("gemini-cli", "npm install -g @google/gemini-cli"),
                                       ("codex", "npm install -g @openai/codex")])
def test_a_missing_cli_is_one_line_saying_how_to_install_it(name, hint, monkeypatch, tmp_path,
                                                           simulated):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    r = llmcells.run(llmcells.ask("hi", model=f"{name}:x", display=False))
    assert (r.status, r.error_kind) == ("error", "config")
    assert hint in r.error and "\n" not in r.error
    assert simulated.requests == []  # nothing was sent


def test_a_gemini_cli_model_name_is_never_read_as_an_option(simulated, tmp_path, monkeypatch):
    """The model goes to the CLI as --model=NAME: a name like "--yolo" (auto-approved tools)
    stays the model's name, as the prompt does with --prompt=TEXT."""
    seen = tmp_path / "argv.json"
    fake = tmp_path / "gemini"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\n"
                    f"if sys.argv[1:] == ['--version']: print('0.9.0'); sys.exit()\n"
                    f"open({str(seen)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    llmcells.run(llmcells.ask("hi", model="gemini-cli:--yolo", display=False))
    argv = __import__("json").loads(seen.read_text())
    assert "--model=--yolo" in argv and "--yolo" not in argv, argv


def test_agent_options_are_checked_before_anything_runs(simulated, tmp_path):
    need_tools("codex")
    r = llmcells.run(llmcells.ask("hi", model="codex:gpt-5.5-codex", display=False,
                                  params={"sandbox": "off"}))
    assert r.error_kind == "config" and "cwd= and tools=" in r.error
    r = llmcells.run(llmcells.ask("hi", model="codex:gpt-5.5-codex", display=False,
                                  params={"cwd": str(tmp_path / "nope")}))
    assert r.error_kind == "config" and "is not a folder" in r.error
    assert simulated.requests == []


def test_codex_command_line_keeps_to_llmcells_settings(tmp_path):
    client = _agents.AgentClient("codex", "/bin/codex", "1", "http://127.0.0.1:9/v1", "k")
    joined = " ".join(codex.argv_for(client))
    assert 'base_url="http://127.0.0.1:9/v1"' in joined and "request_max_retries=0" in joined
    assert "stream_max_retries=0" in joined and "analytics.enabled=false" in joined
    spec = ModelSpec("codex", "codex", "gpt-5.5-codex", "codex")
    req = Request(spec=spec, messages=[Message("user", "earlier"), Message("assistant", "reply"),
                                       Message("user", "now")], system="be brief")
    off = codex.thread_params(req, _agents.AgentOptions(cwd=str(tmp_path), tools=False))
    assert off["sandbox"] == "read-only" and off["approvalPolicy"] == "never"
    assert off["developerInstructions"] == "be brief" and off["cwd"] == str(tmp_path)
    assert codex.thread_params(req, _agents.AgentOptions(cwd=str(tmp_path), tools=True))["sandbox"] \
        == "workspace-write"
    prompt = codex.turn_params("t1", req)["input"][0]["text"]
    assert "assistant: reply" in prompt and prompt.endswith("user: now") and "be brief" not in prompt


def test_the_users_own_keys_and_settings_do_not_reach_a_cli(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "users-token")
    monkeypatch.setenv("CODEX_HOME", "/home/me/.codex")
    monkeypatch.setenv("OPENAI_API_KEY", "users-key")
    env = _agents.clean_env(OPENAI_API_KEY="llmcells-key")
    assert env["OPENAI_API_KEY"] == "llmcells-key"
    assert "ANTHROPIC_AUTH_TOKEN" not in env and "CODEX_HOME" not in env


@pytest.mark.slow
def test_each_cli_against_the_simulator_offline():
    """tests/agents_cli_checks.py (a plain answer, 401, 529, an error mid-stream, an interrupt,
    a batch's process limit; each CLI) inside a network namespace that has only loopback, so a
    CLI can reach nothing but the simulator. Where `unshare -n` is not allowed, the same checks
    run in the normal namespace (said in the output); test_a_cli_reaches_for_no_host_but_the_simulator
    audits the connections themselves."""
    missing = [c for c in ("claude-code", "gemini-cli", "codex") if missing_cli(c)]
    if agents_required() or len(missing) == 3:
        need_tools("claude-code", "gemini-cli", "codex")  # fails (required) or skips (none here)
    checks = str(ROOT / "tests" / "agents_cli_checks.py")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    pytest_cmd = [sys.executable, "-m", "pytest", checks, "-q", "-p", "no:cacheprovider"]
    netns = shutil.which("unshare") and subprocess.run(
        ["unshare", "-n", "true"], capture_output=True).returncode == 0
    if netns:
        cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *pytest_cmd]
    else:
        print("unshare -n is not allowed here: running the CLI checks in this namespace")
        cmd = pytest_cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    failures = [line for line in proc.stdout.splitlines() if line.startswith(("E ", "FAILED", "ERROR"))]
    out = "\n".join(failures)[-6000:] + "\n" + proc.stdout[-1500:] + proc.stderr[-1500:]
    assert proc.returncode == 0, out
    assert f"{6 * (3 - len(missing))} passed" in proc.stdout, out  # six checks per installed CLI


@pytest.mark.kernel
def test_compare_of_the_three_agents_and_claude_in_a_real_kernel(tmp_path):
    """`%%compare claude-code gemini-cli codex claude` in a real kernel: four cards (the three
    agents' with the agent line), four ok ledger rows."""
    need_tools("claude-code", "gemini-cli", "codex")
    from llmcells.testing import Kernel, kernel_env

    models = ["claude-code", "gemini-cli", "codex", "claude"]
    env = kernel_env(tmp_path / "home", PYTHONPATH=str(ROOT / "src"),
                     PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with Kernel(tmp_path / "home", env=env) as k:
        k.ok("%load_ext llmcells\nimport llmcells\nsim = llmcells.simulate()")
        msg_id = k.send("%%compare " + " ".join(models) + " -o c\nSay hello.")
        _, reply = k.reply(msg_id, timeout=240)
        assert reply["content"]["status"] == "ok", reply["content"]
        msgs = k.messages(msg_id)
        values: dict[str, str] = {}  # each HTML widget's last value
        for _, m in msgs:
            if m["msg_type"] == "comm_open":
                values[m["content"]["comm_id"]] = m["content"]["data"]["state"].get("value", "")
            elif m["msg_type"] == "comm_msg" and "value" in m["content"]["data"].get("state", {}):
                values[m["content"]["comm_id"]] = m["content"]["data"]["state"]["value"]
        ids = ["claude-code:claude-sonnet-4-6", "gemini-cli:gemini-3.5-flash", "codex:gpt-5.5-codex",
               "anthropic:claude-haiku-5-5"]
        for model_id in ids:
            assert any(model_id in v for v in values.values()), f"no card for {model_id}"
        notes = [v for v in values.values() if "adds its own system prompt" in v]
        assert len(notes) == 3, notes  # one agent line per agent card, none on claude's
        assert all(s in " ".join(notes) for s in ("claude 2.", "gemini 0.", "codex 0."))
        assert k.value("[r.status for r in c]") == ["ok"] * 4
        rows = k.value("list(map(tuple, llmcells.usage()[['model', 'status']].values.tolist()))")
        assert sorted(rows) == sorted((m, "ok") for m in ids), rows


_AUDIT = """
import sys, llmcells
sim = llmcells.simulate()
r = llmcells.run(llmcells.ask("Say hello", model=sys.argv[1], display=False))
print(r.status, len(sim.requests))
"""


@pytest.mark.slow
@pytest.mark.parametrize("model", ["claude-code:claude-sonnet-4-6", "gemini-cli:gemini-3.5-flash",
                                   "codex:gpt-5.5-codex"])
def test_a_cli_reaches_for_no_host_but_the_simulator(model, tmp_path):
    """One answer with every connect/sendto of the CLI's process tree traced (strace -f): none
    may go anywhere but loopback, not even a DNS query (this is what found Codex's analytics
    and OTel metrics, sent to ab.chatgpt.com, now switched off)."""
    need_tools(model.split(":")[0], programs=("strace",))
    strace = shutil.which("strace")
    trace = tmp_path / "trace"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([strace, "-f", "-qq", "-e", "trace=connect,sendto", "-o", str(trace),
                           sys.executable, "-c", _AUDIT, model], env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.stdout.split() == ["ok", "1"], proc.stdout + proc.stderr[-2000:]
    calls = [line for line in trace.read_text().splitlines()
             if ("connect(" in line or "sendto(" in line) and "sa_family=AF_INET" in line]
    assert calls, "the trace saw no connection at all: it did not trace the CLI"
    elsewhere = [line for line in calls if '"127.0.0.1"' not in line and '"::1"' not in line]
    assert not elsewhere, "\n".join(elsewhere[:5])


def test_the_agent_magics_as_typed_in_a_cell(shell, simulated, tmp_path):
    """`%%codex`, `%%agent gemini-cli --cwd DIR` and `%%agent --allow-tools` through IPython's own cell
    parsing (the magic names have a hyphen); a non-agent in %%agent is one UsageError line."""
    need_tools("codex", "gemini-cli")
    shell.run_cell("%%codex -o r_codex --no-display\nSay hi")
    r = shell.user_ns["r_codex"]
    assert r.ok and r.model == "codex:gpt-5.5-codex" and r.agent["tools"] is False
    shell.user_ns["folder"] = str(tmp_path)
    shell.run_cell("%%agent gemini-cli:gemini-3.5-flash --cwd {folder} --allow-tools -o r_gem --no-display\nSay hi")
    r = shell.user_ns["r_gem"]
    assert r.ok and r.model == "gemini-cli:gemini-3.5-flash"
    assert r.agent["cwd"] == str(tmp_path) and r.agent["tools"] is True
    result = shell.run_cell("%%agent chatgpt\nSay hi")
    assert "takes an agent" in str(result.error_in_exec)


@pytest.mark.parametrize("model", ["claude-code", "gemini-cli", "codex"])
@pytest.mark.slow
def test_a_prompt_that_looks_like_an_option_is_sent_as_the_prompt(model, simulated):
    """`--version` as the whole prompt (Gemini CLI once read it as its own option and exited)."""
    need_tools(model)
    r = llmcells.run(llmcells.ask("--version", model=model, display=False))
    assert r.ok, r.error
    assert "--version" in str(simulated.requests[-1].body)


@pytest.mark.slow
def test_claude_code_with_tools_off_reads_no_file_or_folder_the_prompt_mentions(simulated, tmp_path):
    """With tools=[] and max_turns=1 the CLI still read a file or folder named `@path` in the
    prompt, anywhere the process could, and sent it to the model with the prompt: a service
    started with --allow-agents read its host's files (a key file, ~/.ssh) for any client."""
    need_tools("claude-code")
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-0042")
    for prompt in (f"Summarize @{secret} please", f"List @{tmp_path}/ please"):
        r = llmcells.run(llmcells.ask(prompt, model="claude-code", display=False))
        assert r.ok, r.error
        sent = json.dumps([q.body for q in simulated.requests])
        assert "TOPSECRET-0042" not in sent and "secret.txt" not in sent.replace(str(secret), ""), prompt


def test_no_agent_cli_gets_another_providers_key_or_the_services_token(monkeypatch, tmp_path):
    from llmcells.providers import _agents, claude_code

    private = {"OPENAI_API_KEY": "sk-other", "GOOGLE_API_KEY": "AIza-other",
               "AZURE_OPENAI_API_KEY": "az-other", "AWS_SECRET_ACCESS_KEY": "aws-other",
               "LLMCELLS_SERVE_TOKEN": "service-token"}
    for name, value in private.items():
        monkeypatch.setenv(name, value)
    client = _agents.AgentClient("claude-code", "claude", "2.1.0", None, "sk-ant-own")
    env = claude_code._env(client, str(tmp_path))  # (the SDK adds it to this process's own)
    assert {name: env.get(name) for name in private} == dict.fromkeys(private, "")
    assert env["ANTHROPIC_API_KEY"] == "sk-ant-own"
    assert not set(private) & set(_agents.clean_env(GEMINI_API_KEY="g-own"))


@pytest.mark.slow
def test_claude_codes_silent_non_streaming_retry_is_never_shown_as_ok(simulated, monkeypatch):
    """With its fallback switched back on, Claude Code answers a broken stream by asking again
    without streaming and reports success; the adapter sees that the answer it reports is not
    the one streamed and says the answer is incomplete (with the switch off, as shipped, the
    CLI reports the error itself: test_an_error_mid_stream_is_reported_never_spliced)."""
    need_tools("claude-code")
    from llmcells.config import settings
    from llmcells.providers import claude_code

    env = dict(claude_code.PRIVACY_ENV)
    env.pop("CLAUDE_CODE_DISABLE_NONSTREAMING_FALLBACK")
    monkeypatch.setattr(claude_code, "PRIVACY_ENV", env)
    settings.update(max_attempts=1)
    simulated.inject("midstream_error", provider="anthropic", times=1, after_tokens=5)
    r = llmcells.run(llmcells.ask("Say hello", model="claude-code:claude-sonnet-4-6", display=False))
    assert [q.stream for q in simulated.requests] == [True, False]  # the CLI asked again
    assert (r.status, r.error_kind) == ("incomplete", "incomplete"), (r.status, r.error)
    assert r.text.count("Simulated answer") == 1


def test_an_agent_cli_error_reads_the_one_status_table():
    """An API error an agent CLI reports is classed by errors.kind_of_status, as the SDK adapters'
    are (a 503 is a server error everywhere, a 403 is 'denied'), and its kind is a ledger kind."""
    from llmcells import errors

    spec = models.resolve("claude-code:sonnet")
    for status in (400, 401, 402, 403, 404, 408, 409, 418, 429, 500, 503, 529, None):
        err = _agents.api_error(spec, status, "nope sk-secret-0000000")
        kind = errors.kind_of_status(status)
        expected = {"denied": "authentication"}.get(kind, kind)
        assert err.kind == expected and err.status_code == status, (status, err)
        assert "\n" not in err.message and "sk-secret" not in err.message
    assert type(_agents.api_error(spec, 503, "busy")).__name__ == "ServerError"
    assert _agents.api_error(spec, 529, "busy").kind == "overloaded"
    # a 529 passed on by a CLI as a 503 that says so is still an overload (as Google words it)
    assert _agents.api_error(spec, 503, "The model is overloaded. Try later.").kind == "overloaded"


def test_gemini_cli_thinking_tokens_are_output():
    """The CLI's stream-json `result` stats (StreamJsonFormatter.convertToStreamStats) sum each
    answer's promptTokenCount (input_tokens, cached included), candidatesTokenCount
    (output_tokens, thoughts left out) and totalTokenCount (total_tokens, thoughts included);
    there is no thoughts field. The thoughts are billed as output."""
    from llmcells.providers import gemini_cli

    stats = {"total_tokens": 64_901 + 900 + 2_400, "input_tokens": 64_901, "output_tokens": 900,
             "cached": 16_273, "input": 48_628, "duration_ms": 5_000, "tool_calls": 0}
    u = gemini_cli._usage(stats)
    assert (u.input_tokens, u.cached_input_tokens) == (64_901, 16_273)
    assert (u.output_tokens, u.reasoning_tokens) == (3_300, 2_400)
    # a CLI that says how many thoughts there were is taken at its word
    u = gemini_cli._usage({**stats, "thoughts": 2_000})
    assert (u.output_tokens, u.reasoning_tokens) == (2_900, 2_000)
    # no total given: nothing is invented
    u = gemini_cli._usage({"input_tokens": 10, "output_tokens": 5, "cached": 0})
    assert (u.output_tokens, u.reasoning_tokens) == (5, 0)
