"""Shared fixtures: the simulator, a private LLMCELLS_HOME, and the recorded cassettes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CASSETTES = ROOT.parent / "shared" / "fixtures" / "cassettes"


def pytest_addoption(parser):
    parser.addoption(
        "--cassettes",
        default=os.environ.get("LLMCELLS_CASSETTES", str(DEFAULT_CASSETTES)),
        help="folder of the recorded provider cassettes (default: ../shared/fixtures/cassettes)",
    )


@pytest.fixture(scope="session")
def cassettes_dir(request) -> Path:
    path = Path(request.config.getoption("--cassettes"))
    if not path.is_dir():
        pytest.skip(f"cassettes folder {path} is absent: set --cassettes or LLMCELLS_CASSETTES to run these")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own ledger and cache folder, and no real keys or endpoints."""
    monkeypatch.setenv("LLMCELLS_HOME", str(tmp_path / "llmcells-home"))
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture(scope="session")
def sim():
    """One simulator on loopback for the whole session; faults are cleared after each test."""
    from llmcells.sim import Simulator

    with Simulator(ttft=0.01, tokens_per_s=2000) as s:
        yield s


@pytest.fixture
def fresh_sim(sim):
    """The session simulator with default settings and no faults or recorded requests."""
    sim.reset()
    yield sim
    sim.reset()


@pytest.fixture(autouse=True)
def _restore_session_state():
    """Settings and the session (aliases, endpoints, prices, rate limits, conversations, clients,
    the simulator switch) are process state: what one test changes must not leak into the next."""
    from llmcells.config import settings
    from llmcells.session import session

    saved = settings.as_dict()
    yield
    settings.update(**saved)
    session.reset()


@pytest.fixture
def simulated(fresh_sim):
    """Every provider routed to the session simulator (as `llmcells.simulate()` does)."""
    from llmcells import models

    models.set_simulator(fresh_sim.url)
    yield fresh_sim
    models.set_simulator(None)


@pytest.fixture(scope="session")
def shell():
    """A real IPython InteractiveShell with the extension loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "llmcells")
    return ip


@pytest.fixture
def roomy_quotas():
    """The simulator's advertised per-minute limits (50 requests for Anthropic) raised out of
    the way: the batch gate honours them, and a 1,000-call fault test would otherwise spend
    minutes waiting for windows to reset (the gate's own tests live in test_quotas.py)."""
    from llmcells import quotas
    from llmcells.sim import listing

    saved = {p: dict(v) for p, v in listing.LIMITS.items()}
    big = 10 ** 9
    listing.set_limits("openai", requests=big, tokens=big)
    listing.set_limits("anthropic", requests=big, tokens=big, input_tokens=big, output_tokens=big)
    quotas.clear()
    yield
    for provider, limits in saved.items():
        listing.LIMITS[provider] = limits
        listing.set_limits(provider)
    quotas.clear()
