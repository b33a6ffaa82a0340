"""Model lifecycle: a retired model is refused before anything is sent, with its date and its
replacement; a provider's "not found" for a known retired model says the same; a retiring model
warns once per session; `%llmcells models` shows every model's status; the capability table
answers what each model accepts."""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings

import pytest

import llmcells
from llmcells import capabilities, lifecycle
from llmcells.calls import make_plan
from llmcells.errors import ConfigError, ModelNotFoundError
from llmcells.models import resolve
from llmcells.registry import PROVIDERS
from llmcells.session import session

from test_adapters_unit import _collect, _serve


@pytest.fixture(autouse=True)
def _fresh_warnings():
    session.lifecycle_warned.clear()  # (session.reset() after each test clears it too)
    yield


def test_the_table_reads_and_every_row_has_a_source_and_a_replacement():
    rows = lifecycle.table()
    assert rows["google:gemini-2.5-flash"].retires == dt.date(2026, 12, 1)
    for row in rows.values():
        assert row.source and row.replacement, row.model
        assert lifecycle.lookup(row.replacement).status() == "active", row.model  # no chains
        assert row.replacement.split(":")[0] in PROVIDERS


def test_status_by_date():
    row = lifecycle.lookup("openai:gpt-4.1-mini")
    assert row.status(dt.date(2027, 1, 13)) == "retiring" and row.status(dt.date(2027, 1, 14)) == "retired"
    assert row.label(dt.date(2026, 12, 4)) == "retiring 2027-01-14"
    assert lifecycle.lookup("openai:gpt-6-luna").status() == "active"
    assert lifecycle.lookup("openai-responses:gpt-4.1-mini") == row  # the same model


@pytest.mark.parametrize("model_id, base", [
    ("anthropic:claude-sonnet-4-5-20250929", "anthropic:claude-sonnet-4-5"),   # a dated snapshot
    ("openai:gpt-4.1-nano-2025-04-14", "openai:gpt-4.1-nano"),                 # OpenAI's snapshot date
    ("openai:gpt-5-codex-latest", "openai:gpt-5-codex"),
    ("google:models/gemini-2.5-flash", "google:gemini-2.5-flash"),             # the REST name
])
def test_a_snapshot_of_a_retired_model_is_retired_too(model_id, base):
    # The providers shut a model's dated snapshots down with it; only the base id has a row.
    assert lifecycle.lookup(model_id).status() == "retired"
    assert lifecycle.lookup(model_id).retires == lifecycle.lookup(base).retires
    assert lifecycle.lookup("openai:gpt-6-luna-2026-09-10").status() == "active"


def test_a_retired_snapshot_is_refused_before_anything_is_sent(simulated):
    with pytest.raises(ConfigError) as err:
        llmcells.run(llmcells.ask("hi", model="openai:gpt-4.1-nano-2025-04-14", display=False))
    assert "was retired on 2026-10-23" in str(err.value)
    assert simulated.requests == []


def test_the_simulator_refuses_a_retired_models_snapshot(fresh_sim):
    import httpx2

    with httpx2.Client(base_url=fresh_sim.url, timeout=30) as client:
        r = client.post("/v1/chat/completions", headers={"authorization": "Bearer k"},
                        json={"model": "gpt-4.1-nano-2025-04-14", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_every_default_is_active():
    for row in PROVIDERS.values():
        assert lifecycle.lookup(row.default_id).status() == "active", row.default_id


def test_a_retired_model_is_refused_before_anything_is_sent(simulated):
    with pytest.raises(ConfigError) as err:
        llmcells.run(llmcells.ask("hi", model="google:gemini-2.5-flash", display=False))
    assert str(err.value) == "gemini-2.5-flash was retired on 2026-12-01; use google:gemini-3.5-flash-lite."
    assert simulated.requests == []


@pytest.mark.parametrize("model, line", [
    ("google:gemini-2.0-flash", "gemini-2.0-flash was retired on 2026-06-01; use google:gemini-3.5-flash."),
    ("google:gemini-2.0-flash-lite-001",
     "gemini-2.0-flash-lite-001 was retired on 2026-06-01; use google:gemini-3.5-flash-lite."),
    ("google:gemini-3-pro-preview", "gemini-3-pro-preview was retired on 2026-03-09; use google:gemini-3.8-flash."),
    ("openai:o4-mini", "o4-mini was retired on 2026-10-23; use openai:gpt-6-luna."),
])
def test_models_shut_down_before_today_are_refused_with_their_replacement(simulated, model, line):
    """Models still named in old notebooks and tutorials, shut down in 2026: one line naming the
    replacement, not a request that comes back 404 'unknown model'."""
    with pytest.raises(ConfigError) as err:
        llmcells.run(llmcells.ask("hi", model=model, display=False))
    assert str(err.value) == line
    assert simulated.requests == []


@pytest.mark.parametrize("model", ["openai:gpt-5", "openai:o3", "openai:gpt-4o", "openai:gpt-4.1",
                                   "anthropic:claude-opus-4-5-20251101"])
def test_models_with_a_shutdown_date_are_retiring(model):
    assert lifecycle.lookup(model).status(dt.date(2026, 12, 7)) == "retiring"


def test_the_anthropic_sdks_deprecated_models_are_in_the_table():
    """The installed anthropic SDK warns of these; llmcells must know their dates too."""
    from anthropic._data import DEPRECATED_MODELS

    for name in DEPRECATED_MODELS:
        assert lifecycle.lookup(f"anthropic:{name}").retires is not None, name


def test_the_simulator_answers_404_for_a_shut_down_gemini(fresh_sim):
    import httpx2

    with httpx2.Client(base_url=fresh_sim.url, timeout=30) as client:
        r = client.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                        headers={"x-goog-api-key": "k"},
                        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"


def test_a_cloud_route_is_not_refused_by_the_makers_own_schedule(fresh_sim):
    """Azure and Vertex AI retire models on their own dates: the simulator's check of a direct
    API's shut-down model does not refuse an Azure deployment or a Vertex model of that name."""
    import httpx2

    with httpx2.Client(base_url=fresh_sim.url, timeout=30) as client:
        r = client.post("/openai/deployments/o4-mini/chat/completions?api-version=2024-10-21",
                        headers={"api-key": "k"},
                        json={"model": "o4-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text
        r = client.post("/v1/projects/p/locations/global/publishers/google/models/gemini-2.5-flash:"
                        "generateContent", headers={"authorization": "Bearer t"},
                        json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        assert r.status_code == 200, r.text


def test_a_retiring_model_warns_once_per_session(simulated):
    with pytest.warns(lifecycle.ModelLifecycleWarning, match="gpt-4.1-mini will be retired on 2027-01-14; use openai:gpt-6-luna"):
        make_plan("hi", "openai:gpt-4.1-mini")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_plan("hi", "openai:gpt-4.1-mini")  # no second warning
        r = llmcells.run(llmcells.ask("hi", model="openai:gpt-4.1-mini", display=False))
    assert r.ok


def _not_found():
    return _serve(b'{"error": {"message": "The model does not exist", "type": "invalid_request_error", '
                  b'"code": "model_not_found"}}', status=404, headers={"content-type": "application/json"})


def test_a_providers_not_found_for_a_retired_model_names_the_date_and_the_replacement(monkeypatch):
    # (sent anyway: a Request built by hand skips make_plan's check)
    import test_adapters_unit as unit
    from llmcells.models import ModelSpec

    monkeypatch.setitem(unit.SPECS, "openai", ModelSpec("openai", "openai", "gpt-4.1-nano", "gpt-4.1-nano"))
    _, _, mapped = asyncio.run(_collect("openai", _not_found()))
    assert isinstance(mapped, ModelNotFoundError)
    assert mapped.message == "OpenAI: gpt-4.1-nano was retired on 2026-10-23; use openai:gpt-6-luna."
    # a model listed as retiring that the provider already dropped
    monkeypatch.setitem(unit.SPECS, "openai", ModelSpec("openai", "openai", "gpt-4o-mini", "gpt-4o-mini"))
    _, _, mapped = asyncio.run(_collect("openai", _not_found()))
    assert mapped.message == ("OpenAI: gpt-4o-mini is being retired (listed for 2027-01-14) and its provider "
                              "no longer serves it; use openai:gpt-6-luna.")
    # any other unknown model: the usual message
    monkeypatch.setitem(unit.SPECS, "openai", ModelSpec("openai", "openai", "gpt-nope", "gpt-nope"))
    _, _, mapped = asyncio.run(_collect("openai", _not_found()))
    assert mapped.message.startswith("Unknown model 'gpt-nope'")


def test_llmcells_models_shows_each_models_status(shell, capsys):
    frame = shell.run_line_magic("llmcells", "models")
    rows = frame.set_index("model")
    assert rows.loc["openai:gpt-6-luna", "status"] == "active"
    assert rows.loc["google:gemini-2.5-flash", "status"] == "retired 2026-12-01"
    assert rows.loc["google:gemini-2.5-flash", "use instead"] == "google:gemini-3.5-flash-lite"
    assert rows.loc["openai:gpt-4o-mini", "status"] == "retiring 2027-01-14"
    assert frame[frame.alias == "chatgpt"].model.tolist() == ["openai:gpt-6-luna"]


# ----- capabilities ------------------------------------------------------------------------------


@pytest.mark.parametrize("model, takes", [
    ("anthropic:claude-haiku-5-5", False), ("anthropic:claude-haiku-4-5", False),
    # (models that are not retiring: a shut-down model is refused before its plan is made)
    ("openai:gpt-6-luna", False), ("openai:gpt-5.5-codex", False), ("openai:gpt-6-sol", False),
    ("openai:gpt-4.1", True), ("openai-responses:gpt-4.1", True),
    ("google:gemini-3.5-flash-lite", False), ("google:gemini-4-pro", False),
    ("google:gemini-3.1-flash-lite", True),
])
def test_which_models_take_a_temperature(model, takes):
    spec = resolve(model)
    assert capabilities.of(spec).accepts("temperature") is takes
    plan = make_plan("hi", spec, temperature=0.2)
    assert (plan.request.temperature == 0.2) is takes
    assert bool(plan.request.extra.get("notes")) is not takes


def test_the_notes_name_the_model_and_why():
    plan = make_plan("hi", "gemini", temperature=0.2)
    assert plan.request.extra["notes"] == [
        "sent without temperature: gemini-3.5-flash-lite works best with its default "
        "(Google's advice for Gemini 3.5+)"]


def test_claude_gets_room_for_thinking_by_default():
    assert make_plan("hi", "claude").request.extra["default_max_tokens"] == 16000
    llmcells.configure(anthropic_default_max_tokens=2000)
    assert make_plan("hi", "claude").request.extra["default_max_tokens"] == 2000


def test_an_agent_clis_model_is_checked_as_the_api_model_it_is():
    with pytest.raises(ConfigError, match="claude-sonnet-4-5 was retired on 2026-11-30; use anthropic:claude-sonnet-4-6"):
        make_plan("hi", "claude-code:claude-sonnet-4-5")
    assert make_plan("hi", "claude-code").request.spec.name == "claude-sonnet-4-6"


def test_the_lifecycle_is_read_as_of_llmcells_today(monkeypatch):
    """The suite pins the date (LLMCELLS_TODAY) so that a shutdown date passing can't turn a
    test red; without it the system's date applies, and a wrong value says so and is ignored."""
    from llmcells import lifecycle

    row = lifecycle.lookup("openai:gpt-4o-mini")  # retires 2027-01-14
    monkeypatch.setenv("LLMCELLS_TODAY", "2027-01-14")
    assert row.status() == "retired"
    monkeypatch.setenv("LLMCELLS_TODAY", "2027-01-13")
    assert row.status() == "retiring"
    monkeypatch.setenv("LLMCELLS_TODAY", "soon")
    with pytest.warns(lifecycle.LLMCellsWarning, match="LLMCELLS_TODAY='soon' is not a date"):
        assert lifecycle.current_date() == __import__("datetime").date.today()
