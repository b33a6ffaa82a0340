"""A script's simulate() warms no SDK it does not use: its calls import only their own."""

from __future__ import annotations

from conftest import run_script

SCRIPT = """
import sys, time, llmcells
llmcells.simulate()
r = llmcells.run(llmcells.ask("hi", "anthropic:claude-haiku-5-5", display=False))
assert r.ok, r.error
time.sleep(1.0)  # a warm-up thread, if one were started, has imported by now
print(sorted(m for m in ("openai", "google.genai") if m in sys.modules))
"""


def test_simulate_in_a_script_imports_only_the_sdk_its_calls_use(tmp_path):
    out = run_script(SCRIPT, tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "[]"
