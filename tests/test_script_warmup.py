"""A script's simulate() warms no SDK it does not use: its calls import only their own, and a
call that shows nothing imports no display code."""

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


ONE_IMPORTING_THREAD = """
import threading
started = []
_start = threading.Thread.start
def start(self):
    started.append(self.name)
    _start(self)
threading.Thread.start = start
import sys, llmcells
llmcells.simulate()
r = llmcells.run(llmcells.ask("hi", "anthropic:claude-haiku-5-5", display=False))
assert r.ok and r.cost_usd is not None, r.error
print(sorted({name.rsplit("_", 1)[0] for name in started if name.startswith("llmcells")}))
print("genai_prices.data" in sys.modules)
"""


def test_a_scripts_first_call_imports_on_one_thread_besides_the_loop(tmp_path):
    # The first call's pricing and ledger modules are imported on the client builder's thread
    # after its SDK, not on a warm-up thread of their own beside the SDK's import: two threads
    # importing at once contend for the GIL, and a script's first call paid ~70 ms of CPU for it.
    out = run_script(ONE_IMPORTING_THREAD, tmp_path)
    threads, priced = out.stdout.strip().splitlines()[-2:]
    assert "llmcells-warmup" not in threads, threads
    assert "llmcells-clients" in threads, threads
    assert priced == "True"


QUIET = """
import sys, llmcells
llmcells.simulate()
r = llmcells.run(llmcells.ask("hi", "anthropic:claude-haiku-5-5", display=False))
assert r.ok, r.error
r = llmcells.run(llmcells.ask("hi", "anthropic:claude-haiku-5-5"))  # a script's default: nothing shown
assert r.ok, r.error
print("llmcells.display" in sys.modules)
"""


def test_a_script_call_that_shows_nothing_imports_no_display_code(tmp_path):
    out = run_script(QUIET, tmp_path)
    assert out.stdout.strip().splitlines()[-1] == "False"


SIM_TYPES_TAKE_THE_IMPORT_LOCK = """
import sys, time
from llmcells import _imports
from llmcells.sim import validate
with _imports.import_lock:  # as llmcells' warm-up or client builder importing an SDK
    validate.warm_up()
    time.sleep(1.0)
    print("openai" in sys.modules, "anthropic" in sys.modules)
deadline = time.monotonic() + 60
while "anthropic.types.message_create_params" not in sys.modules and time.monotonic() < deadline:
    time.sleep(0.05)
print("anthropic.types.message_create_params" in sys.modules)
"""


def test_the_simulators_type_imports_take_turns_with_llmcells_imports(tmp_path):
    """The strict simulator imports the SDKs' request types in a thread of its own: under the
    lock llmcells' warm-up and client builder import under, else two threads importing one
    package tree can hand one of them a half-initialized module (a notebook's first batch failed
    with "partially initialized module 'httpx' has no attribute 'URL'")."""
    out = run_script(SIM_TYPES_TAKE_THE_IMPORT_LOCK, tmp_path).stdout.strip().splitlines()
    assert out[-2:] == ["False False", "True"], out
