"""Network hygiene: the simulator listens on loopback only; a full run of ask / compare / batch /
magics against it connects to loopback only; and with no keys and no simulator nothing is sent
at all (not even a DNS lookup)."""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from contextlib import contextmanager

import pytest
from IPython.core.error import UsageError

import llmcells
from llmcells import magics, models
from llmcells.config import settings
from llmcells.sim import Simulator

# ----- an audit hook that records every connection and name lookup while switched on ----------
# (audit hooks can't be removed, so one is installed once and only records inside `watching()`)

_events: list[tuple[str, object]] = []
_on = threading.Event()
_installed = False


def _hook(event: str, args: tuple) -> None:
    if not _on.is_set():
        return
    if event == "socket.connect":
        _events.append(("connect", args[1]))
    elif event == "socket.getaddrinfo":
        _events.append(("getaddrinfo", args[0]))
    elif event == "socket.sendto":
        _events.append(("sendto", args[1]))


@contextmanager
def watching():
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    _events.clear()
    _on.set()
    try:
        yield _events
    finally:
        _on.clear()


def _is_loopback(target: object) -> bool:
    if isinstance(target, tuple):
        target = target[0]
    if isinstance(target, (bytes, bytearray)):
        target = target.decode()
    if not isinstance(target, str):
        return False
    if target == "localhost":
        return True
    try:
        return ipaddress.ip_address(target).is_loopback
    except ValueError:
        return target.startswith("/")  # a Unix socket path is local too


# ----- the simulator's listening socket ---------------------------------------------------------


def test_simulator_listens_on_loopback_only():
    with Simulator() as sim:
        sockets = sim._server._server.sockets
        assert sockets
        for s in sockets:
            host = s.getsockname()[0]
            assert ipaddress.ip_address(host).is_loopback, host
        assert sim.url.startswith("http://127.0.0.1:")
        # nothing answers on the machine's other addresses at that port
        for addr in _non_loopback_addresses():
            with socket.socket() as probe:
                probe.settimeout(0.5)
                assert probe.connect_ex((addr, sim.port)) != 0, f"reachable on {addr}"


def _non_loopback_addresses() -> list[str]:
    found = set()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))     # UDP: selects a route, sends nothing
            found.add(s.getsockname()[0])
    except OSError:
        pass
    return [a for a in found if not ipaddress.ip_address(a).is_loopback]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", ""])
def test_simulator_refuses_a_non_loopback_host(host):
    with pytest.raises(ValueError, match="loopback"):
        Simulator(host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.2"])
def test_simulator_accepts_loopback_hosts(host):
    with Simulator(host=host) as sim:
        assert ipaddress.ip_address(sim._server._server.sockets[0].getsockname()[0]).is_loopback


def test_simulator_command_line_refuses_a_public_host():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "llmcells.sim", "--host", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "loopback" in out.stderr + out.stdout


# ----- every connection of a full run goes to loopback ------------------------------------------


def _full_run(shell) -> list:
    results = []
    for model in ("chatgpt", "openai-responses:gpt-6-luna", "claude", "gemini"):
        results.append(llmcells.run(llmcells.ask("hi", model, display=False)))
    results += list(llmcells.run(llmcells.compare("hi", ["chatgpt", "claude", "gemini"], display=False)))
    df = llmcells.run(llmcells.batch(["a", "b"], models=["chatgpt", "claude", "gemini"], display=False))
    assert set(df["status"]) == {"ok"}
    for magic in ("chatgpt", "claude", "gemini"):
        magics.conversations.clear()
        shell.run_cell_magic(magic, "--no-display", "hi")
        results.append(shell.user_ns["_llm"])
    shell.run_cell_magic("compare", "--no-display", "hi")
    results += list(shell.user_ns["_llm"])
    return results


def test_a_full_run_with_the_simulator_connects_to_loopback_only(simulated, shell):
    with watching() as events:
        results = _full_run(shell)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    connects = [target for what, target in events if what == "connect"]
    assert connects, "no connection was seen: the audit hook is not working"
    assert all(_is_loopback(t) for t in connects), [t for t in connects if not _is_loopback(t)]
    lookups = [target for what, target in events if what == "getaddrinfo"]
    assert all(_is_loopback(t) for t in lookups), lookups
    assert not [t for what, t in events if what == "sendto"]


def test_a_full_run_through_base_url_env_vars_connects_to_loopback_only(fresh_sim, shell,
                                                                        monkeypatch):
    models.set_simulator(None)
    for name, value in fresh_sim.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-network-0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-network-0000")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIzaTestNetwork000000000")
    with watching() as events:
        results = _full_run(shell)
    assert all(r.ok and not r.simulated for r in results), [r.error for r in results if not r.ok]
    targets = [t for what, t in events if what in ("connect", "getaddrinfo", "sendto")]
    assert targets and all(_is_loopback(t) for t in targets), targets


def test_without_keys_or_simulator_nothing_is_sent(shell):
    models.set_simulator(None)
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.1)
    with watching() as events:
        r = llmcells.run(llmcells.ask("hi", "claude", display=False))
        c = llmcells.run(llmcells.compare("hi", ["chatgpt", "openai-responses:gpt-6-luna",
                                                 "claude", "gemini"], display=False))
        df = llmcells.run(llmcells.batch(["a"], models=["chatgpt", "gemini"], display=False))
        for magic in ("chatgpt", "claude", "gemini"):
            with pytest.raises(UsageError, match="API_KEY"):
                shell.run_cell_magic(magic, "--no-display", "hi")
        shell.run_cell_magic("compare", "--no-display", "hi")
        cmp_magic = shell.user_ns["_llm"]
        shell.run_line_magic("llmcells", "models")
    assert (r.status, r.error_kind) == ("error", "missing_key")
    assert [x.error_kind for x in c] == ["missing_key"] * 4
    assert [x.error_kind for x in cmp_magic] == ["missing_key"] * 3
    assert set(df["status"]) == {"error"}
    assert events == [], f"something was sent with no key and no simulator: {events}"
