"""A script's simulate() warms no SDK it does not use: its calls import only their own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

SCRIPT = """
import sys, time, llmcells
llmcells.simulate()
r = llmcells.run(llmcells.ask("hi", "anthropic:claude-haiku-5-5", display=False))
assert r.ok, r.error
time.sleep(1.0)  # a warm-up thread, if one were started, has imported by now
print(sorted(m for m in ("openai", "google.genai") if m in sys.modules))
"""


def test_simulate_in_a_script_imports_only_the_sdk_its_calls_use(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env["LLMCELLS_HOME"] = str(tmp_path)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
