"""llmcells' warnings reach a script's user as one line each, not with llmcells' own source."""

from __future__ import annotations

import os
import warnings

from conftest import run_script
from llmcells.errors import LLMCellsWarning
from llmcells.lifecycle import ModelLifecycleWarning
from llmcells.pricing import PriceWarning
from llmcells.tools import ToolHintWarning

SCRIPT = """
import warnings, llmcells
sim = llmcells.simulate()
llmcells.add_endpoint("local", sim.url + "/v1", api_key="local-key")
r = llmcells.run(llmcells.ask("hi", "local:llama3.2", display=False))  # no price known
assert r.ok, r.error
warnings.warn("someone else's warning")
"""


def test_an_unpriced_call_warns_in_one_line_and_other_warnings_keep_their_format(tmp_path):
    out = run_script(SCRIPT, tmp_path)
    lines = out.stderr.strip().splitlines()
    ours = [line for line in lines if "llama3.2" in line]
    assert ours == ["PriceWarning: No price known for local:llama3.2; cost is NaN. Add one with "
                    "llmcells.set_price('local:llama3.2', input=0.0, output=0.0) (USD per million "
                    "tokens)."], out.stderr
    assert not any("llmcells" + os.sep in line or "src/llmcells" in line for line in lines), out.stderr
    # a warning that isn't llmcells' is shown as Python shows it: file, line, category, source
    assert any(line.startswith("<string>:7: UserWarning: someone else's warning") for line in lines), out.stderr


def test_every_llmcells_warning_is_one_line():
    for category in (PriceWarning, ModelLifecycleWarning, ToolHintWarning, LLMCellsWarning):
        assert issubclass(category, UserWarning)  # filters written for UserWarning still apply
        text = warnings.formatwarning("No price known for x; cost is NaN.", category,
                                      "/somewhere/llmcells/pricing.py", 712, "b = basis(...)")
        assert text == f"{category.__name__}: No price known for x; cost is NaN.\n"
