"""`import llmcells` inside IPython registers the magics; `%load_ext llmcells` before or after it
still works, registers once and prints its hint once; outside IPython the import costs nothing
(IPython is not imported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_SHELL = """
import sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
for cell in sys.argv[1:]:
    r = ip.run_cell(cell)
    print("ERROR" if not r.success else "OK", type(r.error_in_exec or r.error_before_exec).__name__)
print("status", ip.user_ns.get("r").status if "r" in ip.user_ns else None)
"""


def _ipython(*cells: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(PYTHONPATH=str(ROOT / "src"), LLMCELLS_HOME=str(tmp_path / "home"))
    proc = subprocess.run([sys.executable, "-c", _SHELL, *cells], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_import_alone_registers_the_magics(tmp_path):
    out = _ipython("import llmcells", "%llmcells simulate on", "%%chatgpt -o r --no-display\nSay hi",
                   "%load_ext llmcells", tmp_path=tmp_path)
    assert out.count("OK NoneType") == 4, out
    assert "status ok" in out
    from llmcells.display.hints import NO_KEY_HINT

    assert out.count(NO_KEY_HINT.splitlines()[0]) == 1, out  # the import's; %load_ext adds none


def test_load_ext_first_then_import_registers_once(tmp_path):
    out = _ipython("%load_ext llmcells", "import llmcells", "%reload_ext llmcells",
                   "%llmcells simulate on", "%%claude -o r --no-display\nSay hi", tmp_path=tmp_path)
    assert out.count("OK NoneType") == 5 and "status ok" in out, out
    from llmcells.display.hints import NO_KEY_HINT

    assert out.count(NO_KEY_HINT.splitlines()[0]) == 2, out  # once on load, once on reload


def test_no_key_hint_waits_for_the_end_of_the_cell(tmp_path):
    """A cell that imports llmcells and then switches the simulator on (the README's first cell,
    every example notebook's) is not told to run `%llmcells simulate on`; one that doesn't is."""
    from llmcells.display.hints import NO_KEY_HINT

    for cell in ("import llmcells\n%llmcells simulate on", "import llmcells\nllmcells.simulate()"):
        out = _ipython(cell, tmp_path=tmp_path)
        assert NO_KEY_HINT not in out and "OK NoneType" in out, out
    out = _ipython("import llmcells\nx = 1", "%llmcells simulate on", tmp_path=tmp_path)
    assert out.count(NO_KEY_HINT) == 1 and out.index(NO_KEY_HINT) < out.index("Simulator on"), out


def test_without_ipython_the_import_does_not_reach_for_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), LLMCELLS_HOME=str(tmp_path))
    code = "import sys, llmcells; print('IPython' in sys.modules, 'keyring' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.kernel
def test_import_registers_the_magics_in_a_real_kernel(tmp_path):
    """The README's notebook step as typed: `import llmcells`, then a cell magic, in a kernel."""
    from llmcells.testing import Kernel, kernel_env

    env = kernel_env(tmp_path / "home", PYTHONPATH=str(ROOT / "src"))
    with Kernel(tmp_path / "home", env=env) as k:
        k.ok("import llmcells\n%llmcells simulate on")
        k.ok("%%claude -o r --no-display\nSay hi")
        assert k.value("r.status") == "ok"
        k.ok("%load_ext llmcells")  # still fine after the import
