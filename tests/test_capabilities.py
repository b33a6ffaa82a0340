"""Capability profiles: each provider declares what it takes once, on its registry row; a call
asking for what its provider can't take (attachments, a schema, function tools, a service tier)
is one UnsupportedError line with nothing sent, and every table of providers elsewhere is derived
from the registry."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import llmcells
from llmcells import calls, capabilities, registry
from llmcells.errors import ConfigError, LLMError, UnsupportedError

SRC = Path(llmcells.__file__).parent
AGENTS = [r.name for r in registry.agents()]


def ask(prompt, model, **kw):
    return llmcells.run(llmcells.ask(prompt, model, display=False, **kw))


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "chart.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return path


# ----- one clear error, nothing sent -----------------------------------------------------------


@pytest.mark.parametrize("agent", AGENTS)
def test_attachments_to_an_agent_are_one_clear_error_and_nothing_is_sent(simulated, png, agent):
    # Before: attachments.limits_for raised a bare KeyError: 'codex'.
    with pytest.raises(UnsupportedError) as err:
        ask("Describe the chart.", agent, attach=png)
    msg = str(err.value)
    assert msg.startswith(f"{agent}: attachments aren't supported by this provider")
    assert "\n" not in msg and "KeyError" not in msg
    assert isinstance(err.value, ConfigError) and isinstance(err.value, LLMError)
    assert err.value._render_traceback_() == [f"UnsupportedError: {msg}"]  # one line in a notebook
    assert simulated.requests == []


def test_a_chain_skips_a_model_whose_provider_cannot_take_the_call(simulated, tmp_path):
    from PIL import Image

    path = tmp_path / "dot.png"
    Image.new("RGB", (4, 4), (0, 0, 0)).save(path)
    r = ask("Describe the chart.", "codex|claude", attach=path)
    assert r.ok and r.provider == "anthropic"
    assert [q.provider for q in simulated.requests] == ["anthropic"]


def test_a_schema_for_a_provider_without_structured_output_is_one_clear_error(simulated, monkeypatch):
    plain = dataclasses.replace(registry.PROVIDERS["openai"], caps=registry.Caps(structured="none"))
    monkeypatch.setitem(registry.PROVIDERS, "openai", plain)
    with pytest.raises(UnsupportedError, match=r"^openai: structured output \(schema=\) isn't supported"):
        ask("Name a city.", "chatgpt", schema="city")
    assert simulated.requests == []


@pytest.mark.parametrize("agent", AGENTS)
def test_a_schema_for_an_agent_goes_as_instructions_not_dropped(agent):
    # Before: every registry row counted as native, so an agent got no schema at all and its
    # answer then failed validation as "does not match".
    plan = calls.make_plan("Name a city.", agent, schema="city")
    assert plan.request.extra["schema_mode"] == "instructions"
    assert '"city"' in plan.request.system and "JSON Schema" in plan.request.system


def test_api_providers_keep_native_structured_output():
    for model in ("chatgpt", "claude", "gemini"):
        assert calls.make_plan("Name a city.", model, schema="city").request.extra["schema_mode"] == "native"


def test_function_tools_for_an_agent_are_one_clear_error(simulated):
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    with pytest.raises(UnsupportedError, match=r"^codex: function tools \(tools=\) aren't supported.*"
                                               r"params=\{'tools': True\}"):
        ask("What is 2 + 3?", "codex", tools=[add])
    assert simulated.requests == []


def test_a_service_tier_the_provider_does_not_take_is_one_clear_error(simulated):
    with pytest.raises(UnsupportedError, match="service_tier 'turbo' isn't one it takes"):
        ask("hi", "chatgpt", params={"service_tier": "turbo"})
    assert simulated.requests == []


def test_the_service_tiers_each_provider_takes_pass():
    for model, tier in (("chatgpt", "flex"), ("claude", "standard_only"), ("gemini", "FLEX")):
        assert calls.make_plan("hi", model, params={"service_tier": tier}).request.extra["params"] == \
            {"service_tier": tier}


def test_an_agent_leaves_out_a_temperature_with_a_note():
    plan = calls.make_plan("hi", "codex", temperature=0.2)
    assert plan.request.temperature is None
    assert plan.request.extra["notes"] == ["sent without temperature: gpt-5.5-codex is an agent CLI, "
                                           "which sets its own sampling"]


def test_an_empty_attach_list_is_no_attachment():
    assert calls.make_plan("hi", "codex", attach=[]).request.attachments == ()


# ----- the profiles: declared once, inherited by rows that share them ----------------------------


def test_every_row_has_a_profile_and_an_endpoint_gets_the_endpoint_profile():
    for name, r in registry.PROVIDERS.items():
        assert isinstance(registry.caps(name), registry.Caps), name
        if r.kind == "route":  # a route: its maker's profile, without the maker's batch API
            assert registry.caps(name).batch is None
            assert registry.caps(name).attachments == registry.caps(r.route_of or "").attachments \
                or r.model_adapters, name
            continue
        assert registry.caps(name) is (r.caps or registry.caps(r.like))
    assert registry.caps("openai-responses") is registry.caps("openai")   # a synonym
    assert registry.caps("my-vllm") is registry.ENDPOINT_CAPS
    assert registry.ENDPOINT_CAPS.structured == "instructions"


def test_a_new_row_declares_like_and_shares_that_profile(monkeypatch):
    row = registry.ProviderRow(name="acme", label="Acme", product="Acme", adapter="openai",
                               key_env=("ACME_API_KEY",), base_env="ACME_BASE_URL", sim_path="/v1",
                               alias="acme", default_model="acme-1", sdk_modules=("openai",),
                               like="openai")
    monkeypatch.setitem(registry.PROVIDERS, "acme", row)
    monkeypatch.setitem(registry.PREFIXES, "acme", "acme")
    assert registry.caps("acme") is registry.caps("openai")


def test_per_api_attachment_limits():
    openai = registry.caps("openai")
    assert openai.limits("chat").pdf_urls is False and openai.limits("responses").pdf_urls is True
    assert registry.caps("anthropic").limits("chat") is registry.caps("anthropic").limits()
    for agent in AGENTS:
        assert registry.caps(agent).limits() is None


# ----- derived tables match the registry -------------------------------------------------------


def test_derived_tables_match_the_registry():
    from llmcells import attachments, providers, quotas
    from llmcells.batchjobs import drivers
    from llmcells.sim import state

    assert attachments.LIMITS == {"openai-chat": registry.caps("openai").limits("chat"),
                                  "openai-responses": registry.caps("openai").limits("responses"),
                                  "anthropic": registry.caps("anthropic").limits(),
                                  "google": registry.caps("google").limits()}
    assert drivers.LIMITS == {r.adapter: (r.caps.batch.max_requests, r.caps.batch.max_bytes)
                              for r in registry.PROVIDERS.values() if r.caps and r.caps.batch}
    assert set(drivers.LIMITS) == {"openai", "anthropic", "google"}
    assert quotas.DAY_ZONES == {"google": "America/Los_Angeles"}
    assert registry.api_names() == ("openai", "anthropic", "google")
    assert state.PROVIDERS == registry.api_names() + tuple(r.name for r in registry.routes())
    assert providers.adapter_names() == {r.adapter for r in registry.PROVIDERS.values()}
    for adapter in sorted(providers.adapter_names()):  # each row's adapter module is found by name
        assert providers.get_provider(adapter).name in (adapter, adapter.replace("_", "-"))


def test_the_batch_driver_and_the_health_check_follow_the_profile():
    from llmcells.batchjobs import drivers

    for adapter, api in registry.batch_apis().items():
        assert drivers.driver(adapter).__name__.endswith(f".{api.driver}_jobs")
    assert [registry.caps(n).model_list for n in ("openai", "anthropic", "google")] == \
        ["models", "models", "genai"]
    assert all(registry.caps(a).model_list == "" for a in AGENTS)


#: the modules that held a hard-coded list of providers; the names now come from the registry
DERIVED = ["providers/__init__.py", "pricing.py", "repricing.py", "quotas.py", "healthcheck.py",
           "__main__.py", "batchjobs/drivers.py", "batchjobs/core.py", "sim/state.py",
           "attachments.py", "structured.py", "capabilities.py"]
#: names a module may still hold because they are about that one provider, not a list of them
ABOUT_ONE = {"__main__.py": {"google"},            # Gemini through Vertex AI is not simulated
             "batchjobs/core.py": {"anthropic"}}  # its batch API gives no counts until the end


@pytest.mark.parametrize("module", DERIVED)
def test_no_hard_coded_provider_list_is_left(module):
    """No string in the module's code is a provider's name (docstrings and comments may say one):
    each list or table of providers it held is derived from the registry now."""
    names = set(registry.PROVIDERS) | {r.adapter for r in registry.PROVIDERS.values()}
    tree = ast.parse((SRC / module).read_text("utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and n.body and isinstance(n.body[0], ast.Expr)}
    found = sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                    and isinstance(n.value, str) and id(n) not in docstrings and n.value in names} - ABOUT_ONE.get(module, set()))
    assert found == [], f"{module} names providers in its code: {found}"


def test_require_is_checked_once_when_the_call_is_planned(monkeypatch):
    seen = []
    real = capabilities.require
    monkeypatch.setattr(capabilities, "require", lambda spec, **kw: (seen.append(kw), real(spec, **kw)))
    calls.make_plan("hi", "claude", schema="city")
    assert seen == [{"attach": False, "schema": True, "tools": False, "params": None}]
