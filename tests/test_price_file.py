"""The price file: a fresh process prices a call from $LLMCELLS_HOME/prices.json without loading
genai-prices, and never takes a price from it that genai-prices' data in use would not give.

Every check runs in fresh processes (as scripts do): in this one genai-prices is already loaded,
and then pricing rightly never reads the file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import run_script

MODEL = ("anthropic", "claude-haiku-5-5")

# Prices one lookup and prints what it got and whether genai-prices was loaded for it.
PRICE = """
import json, sys, warnings
warnings.simplefilter("ignore")
from llmcells import pricing
b = pricing.basis({provider!r}, {model!r}, {tokens}, processing={processing!r})
print(json.dumps({{"basis": b.as_dict() if b else None,
                  "genai": "genai_prices" in sys.modules}}))
"""


def price(home: Path, provider: str = MODEL[0], model: str = MODEL[1], tokens: int = 1000,
          processing: str = "live", before: str = "") -> dict:
    script = before + PRICE.format(provider=provider, model=model, tokens=tokens,
                                   processing=processing)
    return json.loads(run_script(script, home).stdout.strip().splitlines()[-1])


def price_file(home: Path) -> dict:
    return json.loads((home / "prices.json").read_text())


def entries(home: Path) -> dict:
    (group,) = price_file(home)["groups"].values()
    return group["entries"]


def edit_entries(home: Path, change) -> None:
    """Rewrite every entry of the file's one group with change(key, entry)."""
    data = price_file(home)
    for group in data["groups"].values():
        for key, entry in group["entries"].items():
            change(key, entry)
    (home / "prices.json").write_text(json.dumps(data))


def test_a_fresh_process_prices_from_the_file_without_loading_genai_prices(tmp_path):
    first = price(tmp_path)
    assert first["genai"] and first["basis"]["source"] == "genai-prices"
    assert (tmp_path / "prices.json").exists()
    second = price(tmp_path)
    assert second == {"basis": first["basis"], "genai": False}
    # the long-context tier is kept too: the same levels, picked by input size
    long = price(tmp_path, tokens=150_000)
    assert not long["genai"] and long["basis"] == price(tmp_path / "other", tokens=150_000)["basis"]


def test_a_call_in_a_fresh_process_is_priced_and_recorded_as_before_without_genai_prices(tmp_path):
    script = """
import json, sys
import llmcells
llmcells.simulate()
r = llmcells.run(llmcells.ask("Say hi", "anthropic:claude-haiku-5-5", display=False))
row = llmcells.usage().iloc[0]
print(json.dumps({"cost": r.cost_usd, "source": r.price_source, "rates": row["price_rates"],
                  "data_date": row["price_data_date"], "genai": "genai_prices" in sys.modules}))
"""
    got = [json.loads(run_script(script, tmp_path).stdout.strip().splitlines()[-1]) for _ in range(2)]
    assert got[0]["genai"] and not got[1]["genai"]
    for key in ("source", "rates", "data_date"):
        assert got[1][key] == got[0][key]
    assert got[1]["cost"] == pytest.approx(got[0]["cost"]) and got[1]["cost"] > 0


def test_an_unknown_model_is_remembered_as_unknown_and_still_warned_about(tmp_path):
    script = """
import sys, warnings
from llmcells import pricing
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    b = pricing.basis("anthropic", "claude-no-such-model-9")
print(b, "genai" if "genai_prices" in sys.modules else "no-genai", [str(w.message) for w in seen])
"""
    first = run_script(script, tmp_path).stdout
    second = run_script(script, tmp_path).stdout
    assert first.startswith("None genai") and second.startswith("None no-genai")
    assert "No price known for anthropic:claude-no-such-model-9" in second
    # known as unknown at any tier and processing, not only at the one first asked
    other = script.replace('"claude-no-such-model-9")', '"claude-no-such-model-9", processing="batch", service_tier="flex")')
    assert other != script and run_script(other, tmp_path).stdout.startswith("None no-genai")


def test_a_tampered_or_broken_entry_is_ignored_and_the_price_derived_again(tmp_path):
    truth = price(tmp_path)["basis"]

    def bad_rates(key, entry):
        for _, basis in entry["levels"]:
            basis["rates"] = basis["rates"][:3]          # not the six rates pricing writes

    for change in (bad_rates,
                   lambda key, entry: entry["levels"][0][1]["rates"].__setitem__(0, -5),
                   lambda key, entry: entry["levels"][0].__setitem__(0, "many"),
                   lambda key, entry: entry.__setitem__("levels", "nonsense")):
        edit_entries(tmp_path, change)
        got = price(tmp_path)
        assert got == {"basis": truth, "genai": True}
    (tmp_path / "prices.json").write_text("{not json")
    assert price(tmp_path) == {"basis": truth, "genai": True}
    assert price(tmp_path) == {"basis": truth, "genai": False}   # and written anew


def test_a_price_kept_for_another_day_or_another_identity_is_not_used(tmp_path):
    truth = price(tmp_path)["basis"]
    today = int(time.time() // 86400)
    assert {e["day"] for e in entries(tmp_path).values()} == {today}  # the data has dated prices

    def yesterday_at_ten_times(key, entry):
        entry["day"] = today - 1
        for _, basis in entry["levels"]:
            basis["rates"] = [r * 10 for r in basis["rates"]]

    edit_entries(tmp_path, yesterday_at_ten_times)
    assert price(tmp_path) == {"basis": truth, "genai": True}

    # the same entries under another identity (another genai-prices, another llmcells)
    data = price_file(tmp_path)
    (ident, group), = data["groups"].items()
    for entry in group["entries"].values():
        for _, basis in entry["levels"]:
            basis["rates"] = [r * 10 for r in basis["rates"]]
    data["groups"] = {ident.replace("|", "|0.0.0-other|", 1): group}
    (tmp_path / "prices.json").write_text(json.dumps(data))
    assert price(tmp_path) == {"basis": truth, "genai": True}
    # the other identity's group is kept beside this one's (two environments, one home)
    assert len(price_file(tmp_path)["groups"]) == 2


def test_prices_from_updated_or_custom_data_are_neither_read_from_nor_written_to_the_file(tmp_path):
    bundled = price(tmp_path)["basis"]
    # a custom snapshot with the model at other prices: genai-prices is loaded to set it, so the
    # file is not read, and what that data gives is not written
    custom = """
import copy
from decimal import Decimal
from genai_prices import data_snapshot, types
from genai_prices.data import providers
mine = copy.deepcopy(providers)
model = next(m for p in mine if p.id == "anthropic" for m in p.models if m.id == "claude-haiku-5-5")
model.prices, model.price_variants = types.ModelPrice(input_mtok=Decimal(7), output_mtok=Decimal(70)), []
data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=mine, from_auto_update=False))
"""
    before = json.dumps(price_file(tmp_path), sort_keys=True)
    got = price(tmp_path, before=custom)
    assert got["genai"] and got["basis"]["data_date"].startswith("custom")
    assert got["basis"]["rates"][0] == 7.0 != bundled["rates"][0]
    assert json.dumps(price_file(tmp_path), sort_keys=True) == before
    assert price(tmp_path) == {"basis": bundled, "genai": False}


def test_a_batch_price_by_the_half_rule_is_kept_with_its_note(tmp_path):
    # claude-3-haiku: genai-prices lists no batch price for it, and no dates (kept for good)
    first = price(tmp_path, model="claude-3-haiku", processing="batch")
    second = price(tmp_path, model="claude-3-haiku", processing="batch")
    assert second == {"basis": first["basis"], "genai": False}
    assert first["basis"]["processing"] == "batch" and first["basis"]["note"] == ", 50% batch rule"
    live = price(tmp_path, model="claude-3-haiku")
    assert not live["genai"]
    assert first["basis"]["rates"] == [r / 2 for r in live["basis"]["rates"]]
    assert {e["day"] for e in entries(tmp_path).values()} == {None}


def test_a_home_where_the_file_cannot_be_written_still_prices(tmp_path):
    (tmp_path / "prices.json").mkdir()      # the name taken by a folder: nothing can be written
    truth = price(tmp_path / "clean")["basis"]
    assert price(tmp_path) == {"basis": truth, "genai": True}
    assert price(tmp_path) == {"basis": truth, "genai": True}


def test_many_models_priced_in_one_process_are_all_kept_for_the_next(tmp_path):
    # past the first few entries a process writes at once, the rest are written as it exits
    script = """
import json, sys, warnings
warnings.simplefilter("ignore")
from llmcells import pricing
from genai_prices.data_snapshot import get_snapshot
names = [m.id for p in get_snapshot().providers if p.id == "openai" for m in p.models][:40]
print(json.dumps({n: pricing.basis("openai", n).as_dict() for n in names
                  if pricing.basis("openai", n) is not None}))
"""
    first = json.loads(run_script(script, tmp_path).stdout.strip().splitlines()[-1])
    assert len(first) > 30
    again = """
import json, sys
from llmcells import pricing
names = %r
print(json.dumps({"bases": {n: pricing.basis("openai", n).as_dict() for n in names},
                  "genai": "genai_prices" in sys.modules}))
""" % sorted(first)
    second = json.loads(run_script(again, tmp_path).stdout.strip().splitlines()[-1])
    assert second == {"bases": first, "genai": False}


def test_the_file_keeps_only_the_entries_kept_last_past_its_limit(tmp_path):
    script = """
import json, warnings
warnings.simplefilter("ignore")
from llmcells import pricing, price_file
price_file.MAX_ENTRIES = 10
from genai_prices.data_snapshot import get_snapshot
names = [m.id for p in get_snapshot().providers if p.id == "openai" for m in p.models][:30]
for n in names:
    pricing.basis("openai", n)
print(json.dumps(names))
"""
    names = json.loads(run_script(script, tmp_path).stdout.strip().splitlines()[-1])
    kept = [json.loads(key)[1] for key in entries(tmp_path)]
    assert len(kept) == 10 and kept == names[-10:]


def test_data_replaced_after_a_price_came_from_the_file_is_used_at_once(tmp_path):
    price(tmp_path)   # the file has the model now
    script = """
import copy, json, sys
from decimal import Decimal
from llmcells import pricing
before = pricing.basis("anthropic", "claude-haiku-5-5")
loaded = "genai_prices" in sys.modules
from genai_prices import data_snapshot, types
from genai_prices.data import providers
mine = copy.deepcopy(providers)
model = next(m for p in mine if p.id == "anthropic" for m in p.models if m.id == "claude-haiku-5-5")
model.prices, model.price_variants = types.ModelPrice(input_mtok=Decimal(7), output_mtok=Decimal(70)), []
data_snapshot.set_custom_snapshot(data_snapshot.DataSnapshot(providers=mine, from_auto_update=False))
after = pricing.basis("anthropic", "claude-haiku-5-5")
print(json.dumps({"loaded": loaded, "before": before.rates[0], "after": after.rates[0],
                  "date": after.data_date}))
"""
    got = json.loads(run_script(script, tmp_path).stdout.strip().splitlines()[-1])
    assert not got["loaded"] and got["before"] != 7.0
    assert got["after"] == 7.0 and got["date"].startswith("custom")
