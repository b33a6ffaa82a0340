"""Shared fixtures: the simulator, a private LLMCELLS_HOME, the recorded cassettes, the two
test tiers (`slow` is deselected unless asked for), the parallel run (pytest-xdist) and the
optional agent CLIs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASSETTES = ROOT / "tests" / "fixtures" / "cassettes"

# No test may read or write the user's real OS keyring: keyring (when installed) reads this
# before it picks a backend, and llmcells.keys treats the null backend as "no keyring".
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"

# The lifecycle table is read as of one day (lifecycle.current_date), so that a model's shutdown
# date passing never turns a test red that names it; every process the tests start inherits it.
os.environ["LLMCELLS_TODAY"] = "2026-12-07"

#: markers that put a test in the slow tier on their own
SLOW_MARKERS = ("kernel", "browser")


#: worker processes for a run of the whole suite (pytest-xdist); most tests wait on sockets,
#: subprocesses and kernels, so three keep two cores busy. LLMCELLS_TEST_WORKERS overrides it.
WORKERS = 3

#: modules whose tests must not run at the same time as each other (one xdist worker runs them
#: one after the other): they time things, or start servers, browsers or agent CLIs that each
#: take a core or more. Modules with a module-scoped fixture get a group of their own (below).
SERIAL = ("test_browser", "test_ledger_pg", "test_agents", "test_benchmarks_smoke")


def pytest_addoption(parser):
    parser.addoption("--all", action="store_true",
                     help="run the slow tier too (real kernels, the browser, long loops); same as -m ''")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist turns -n into its workers
def pytest_cmdline_main(config):
    """`python -m pytest` on the whole suite runs in WORKERS processes (pytest-xdist, tests of a
    group on one worker); naming files or tests, or -n / --dist / -p no:xdist, keeps one process."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    if hasattr(config, "workerinput"):
        # a worker reads its options from the command line, where --dist set here is not
        if config.workerinput.get("llmcells_loadgroup"):
            config.option.loadgroup = True
        return
    if config.option.numprocesses is not None or config.option.dist != "no":
        return  # the user chose
    if config.getoption("usepdb") or config.option.collectonly:
        return
    # folders (the default `tests`, or named) are a suite; a file or a test id is a few tests,
    # where starting workers would cost more than it saves
    suite = all("::" not in a and Path(config.invocation_params.dir, a).is_dir() for a in config.args)
    workers = int(os.environ.get("LLMCELLS_TEST_WORKERS") or WORKERS)
    if suite and workers > 1:
        config.option.numprocesses = workers
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tell each pytest-xdist worker that the run is --dist loadgroup (see pytest_cmdline_main)."""
    node.workerinput["llmcells_loadgroup"] = node.config.getvalue("dist") == "loadgroup"


def pytest_configure(config):
    if config.getoption("--all"):
        config.option.markexpr = ""


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("xdist_group"):
            continue
        module = item.module.__name__.rpartition(".")[2] if item.module else ""
        if module in SERIAL:
            item.add_marker(pytest.mark.xdist_group("serial"))
        elif _module_scoped(item):
            # one worker runs the whole module, so its kernel or server starts once
            item.add_marker(pytest.mark.xdist_group(module))


@pytest.hookimpl(tryfirst=True)  # before the worker sends its tests' ids to the controller
def pytest_collection_finish(session):
    """pytest-xdist 3.8 writes a test's group into `item._nodeid`, which pytest 9 no longer reads
    (the id is `item._id`): without this, --dist loadgroup spreads a group over every worker."""
    if not hasattr(session.config, "workerinput") or not session.config.getvalue("loadgroup"):
        return
    from _pytest.nodeid import coerce_node_id

    for item in session.items:
        grouped = getattr(item, "_nodeid", None)
        if isinstance(grouped, str) and grouped != item.nodeid and hasattr(item, "_id"):
            item._id = coerce_node_id(grouped)


def _module_scoped(item) -> bool:
    """Whether the test uses a module-scoped fixture (a kernel, a server, a shared result)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs)


@pytest.fixture(scope="session")
def cassettes_dir() -> Path:
    """The real provider recordings kept in the repository (tests/fixtures/README.md)."""
    assert CASSETTES.is_dir(), f"{CASSETTES} is missing from the checkout"
    return CASSETTES


# ----- optional agent CLIs --------------------------------------------------------------------

def run_script(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    """script run by `python -c` in a fresh process, as a user's script: this checkout's
    llmcells, no provider key or base URL from the environment, its ledger under home; it must
    exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["LLMCELLS_HOME"] = str(home)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


def agents_required() -> bool:
    """LLMCELLS_REQUIRE_AGENTS=1 (set by .ci/run after installing them): a missing CLI fails."""
    return os.environ.get("LLMCELLS_REQUIRE_AGENTS", "") not in ("", "0")


def missing_cli(name: str) -> str | None:
    """Why the agent CLI `name` (claude-code, gemini-cli, codex) cannot run here, or None."""
    import llmcells
    from llmcells.providers import get_provider
    from llmcells.providers.base import ClientOptions

    row = llmcells.registry.row(name)
    try:
        get_provider(row.adapter).make_client(ClientOptions(base_url=None, api_key="x"))
    except llmcells.LLMError as exc:
        return str(exc)
    return None


def need_tools(*clis: str, programs: tuple[str, ...] = ()) -> None:
    """Skip (one line saying what to install) when an agent CLI or a program the test needs is
    missing, unless LLMCELLS_REQUIRE_AGENTS=1, where it fails and shows .ci/run's install log."""
    import shutil

    why = [f"{c}: {m.removesuffix(' (then run the cell again).')}" for c in clis if (m := missing_cli(c))]
    why += [f"{p} is not installed" for p in programs if not shutil.which(p)]
    if not why:
        return
    if agents_required():
        log = os.environ.get("LLMCELLS_AGENTS_INSTALL_LOG")
        said = Path(log).read_text()[-1500:] if log and Path(log).is_file() else ""
        pytest.fail("; ".join(why) + " (.ci/run installs it)" + (f"\nthe install said:\n{said}" if said else ""))
    pytest.skip("; ".join(why) + " (optional; LLMCELLS_REQUIRE_AGENTS=1 makes this a failure)")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own ledger and cache folder, and no real keys or endpoints."""
    monkeypatch.setenv("LLMCELLS_HOME", str(tmp_path / "llmcells-home"))
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GOOGLE_GEMINI_BASE_URL",
                "GOOGLE_GENAI_USE_VERTEXAI", "ANTHROPIC_BEDROCK_BASE_URL", "AWS_BEARER_TOKEN_BEDROCK",
                "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "GOOGLE_CLOUD_PROJECT",
                "GOOGLE_CLOUD_LOCATION", "LLMCELLS_ROUTE", "LLMCELLS_AZURE_MODELS"):
        monkeypatch.delenv(var, raising=False)
    # AWS's credential chain never asks an instance-metadata address (not loopback) in a test
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
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
    from llmcells.sim import ratelimits as listing  # (the simulator's advertised limits)

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
