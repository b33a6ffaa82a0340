"""The cloud routes through their real SDKs against the simulator, with no keys: Azure OpenAI
(`AsyncAzureOpenAI`, deployment URLs, `api-key`), Claude on Vertex AI (`AsyncAnthropicVertex`,
`:streamRawPredict`, bearer token) and Gemini on Vertex AI (google-genai `vertexai=True`,
`:streamGenerateContent`). Each route: a call is ok and priced by the route's own genai-prices
entry (price_source names it); streaming, tools, structured output and attachments; a fault
retried from the route's own headers; and the `route` setting, the price rules, health and the
clear errors for what a route does not have."""

from __future__ import annotations

import hashlib
import json
import math
import urllib.request
import warnings

import pytest
from pydantic import BaseModel

import llmcells
from llmcells import models, pricing
from llmcells.errors import ConfigError
from llmcells.sim.vertex import Claude
from llmcells.types import Usage

# (model id, route, the wire format's provider, the URL piece the request must go to)
ROUTES = [
    ("azure:o4-mini", "azure", "openai", "/openai/deployments/o4-mini/chat/completions?api-version="),
    ("vertex:claude-haiku-5-5", "vertex", "anthropic",
     "/publishers/anthropic/models/claude-haiku-5-5:streamRawPredict"),
    ("vertex:gemini-3.5-flash-lite", "vertex", "google",
     "/publishers/google/models/gemini-3.5-flash-lite:streamGenerateContent"),
]
IDS = [r[0] for r in ROUTES]
# the genai-prices entry each route is priced by: the cloud's own
PRICE_ENTRY = {"azure": "azure", "vertex": "google"}


def ask(prompt, model, **kw):
    return llmcells.run(llmcells.ask(prompt, model, display=False, **kw))


def _route_rate(provider_id: str, model: str) -> tuple[float, float]:
    """(input, output) USD per million tokens from the cloud's own genai-prices entry."""
    from genai_prices.data_snapshot import get_snapshot

    snap = get_snapshot()
    prov = next(p for p in snap.providers if p.id == provider_id)
    entry = next(m for m in prov.models if m.id == model)
    prices = entry.prices if not isinstance(entry.prices, list) else entry.prices[-1].prices
    rate = lambda v: float(getattr(v, "base", v))  # noqa: E731 - a tiered price's base rate
    return rate(prices.input_mtok), rate(prices.output_mtok)


@pytest.fixture
def quick_retries():
    llmcells.configure(retry_initial_wait=0.01, retry_max_wait=0.05)


# ----- a call on each route ------------------------------------------------------------------------


@pytest.mark.parametrize("model,route,wire,url", ROUTES, ids=IDS)
def test_a_call_on_each_route_is_ok_and_priced_for_its_route(simulated, model, route, wire, url):
    r = ask("Say hello", model)
    assert r.ok, r.error
    assert r.provider == route and r.text
    req = simulated.requests[-1]
    assert req.provider == route and url in req.path and req.stream
    # the route's auth: Azure's api-key header, Vertex's bearer token (masked in the log)
    assert req.headers.get("api-key" if route == "azure" else "authorization") == "***"
    # priced from the cloud's own entry, and price_source says whose prices
    assert r.price_source.startswith("genai-prices ") and r.price_source.endswith(f"({route})")
    assert r.price_basis.provider == PRICE_ENTRY[route]
    inp, out = _route_rate(PRICE_ENTRY[route], models.resolve(model).name)
    want = (r.usage.input_tokens * inp + r.usage.output_tokens * out) / 1e6
    assert r.cost_usd == pytest.approx(want) and r.cost_usd > 0
    row = llmcells.ledger.usage().iloc[-1]
    assert row.model == model and row.price_source == r.price_source


def test_azure_responses_api_goes_to_the_resource_responses_url(simulated):
    r = ask("Say hello", "azure:o4-mini", api="responses")
    assert r.ok, r.error
    req = simulated.requests[-1]
    assert req.path.startswith("/openai/responses?api-version=") and req.api == "responses"


@pytest.mark.parametrize("model,route,wire,url", ROUTES, ids=IDS)
def test_streaming_arrives_in_pieces_in_the_route_format(simulated, model, route, wire, url):
    from llmcells import _loop
    from llmcells.calls import make_plan
    from llmcells.engine import execute
    from llmcells.types import CallObserver

    text = "one two three four five six"
    simulated.set_model(models.resolve(model).name, text=text, delta_chars=4)
    pieces: list[str] = []

    class Watch(CallObserver):
        def on_text(self, delta: str) -> None:
            pieces.append(delta)

    r = _loop.run(execute(make_plan("Count", model), Watch()))
    assert r.ok, r.error
    assert r.text == text and "".join(pieces) == text and len(pieces) == 7  # one per 4 characters
    assert r.usage.output_tokens > 0 and r.ttft_s is not None


# ----- tools, structured output, attachments -------------------------------------------------------


def get_weather(city: str) -> dict:
    """Today's weather in a city.

    Args:
        city: the city's name
    """
    return {"city": city, "temp": 21}


@pytest.mark.parametrize("model,route,wire,url", ROUTES, ids=IDS)
def test_a_tool_call_round_trips_on_each_route(simulated, model, route, wire, url):
    r = ask('Weather? call get_weather({"city": "Paris"})', model, tools=[get_weather])
    assert r.ok, r.error
    want = json.dumps(get_weather("Paris"), separators=(",", ":"))
    assert r.text == f"Tool results: get_weather -> {want}" and r.turns == 2
    reqs = simulated.requests
    assert [q.provider for q in reqs] == [route, route] and all(url in q.path for q in reqs)
    assert "tools" in json.dumps(reqs[0].body)


class Person(BaseModel):
    name: str
    age: int


@pytest.mark.parametrize("model,route,wire,url", ROUTES, ids=IDS)
def test_structured_output_on_each_route(simulated, model, route, wire, url):
    r = ask("Who wrote the first program?", model, schema=Person)
    assert r.ok, r.error
    assert isinstance(r.data, Person) and r.data.name


@pytest.mark.parametrize("model,route,wire,url", ROUTES, ids=IDS)
def test_attachments_arrive_intact_on_each_route(simulated, model, route, wire, url, tmp_path):
    from PIL import Image

    png, txt = tmp_path / "chart.png", tmp_path / "notes.txt"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(png, "PNG")
    txt.write_text("revenue: 12.5\n", encoding="utf-8")
    r = ask("What is in the attached files?", model, attach=[png, txt])
    assert r.ok, r.error
    got = simulated.requests[-1].attachments
    assert sorted(a["sha256"] for a in got) == sorted(
        hashlib.sha256(p.read_bytes()).hexdigest() for p in (png, txt))
    assert "image/png" in r.text


# ----- faults, each route's own ---------------------------------------------------------------------


def test_azure_429_is_retried_after_its_retry_after_ms(simulated, quick_retries):
    simulated.inject("429", provider="azure", retry_after_ms=20)
    r = ask("Say hello", "azure:o4-mini")
    assert r.ok and r.attempts == 2, r.error


def test_azure_429_body_and_headers_are_azures(simulated):
    llmcells.configure(max_attempts=2)
    simulated.inject("429", provider="azure", times=None, retry_after_ms=10)
    try:
        r = ask("Say hello", "azure:o4-mini")
    finally:
        simulated.clear_faults()
    assert r.status == "error" and r.error_kind == "rate_limited" and r.attempts == 2
    assert "exceeded token rate limit" in r.error


def test_vertex_gemini_429_is_retried(simulated, quick_retries):
    simulated.inject("429", provider="vertex", model="gemini-3.5-flash-lite")
    r = ask("Say hello", "vertex:gemini-3.5-flash-lite")
    assert r.ok and r.attempts == 2, r.error


def test_vertex_claude_529_is_retried(simulated, quick_retries):
    simulated.inject("529", provider="vertex", model="claude-haiku-5-5")
    r = ask("Say hello", "vertex:claude-haiku-5-5")
    assert r.ok and r.attempts == 2, r.error


@pytest.mark.parametrize("model", ["vertex:gemini-3.5-flash-lite", "vertex:claude-haiku-5-5"])
def test_a_vertex_404_for_a_known_model_speaks_of_the_account_not_a_key(simulated, model):
    """Vertex AI has no API key: its 404 for a model llmcells knows said "check that your key's
    project may use it"."""
    simulated.inject("404", provider="vertex", model=model.partition(":")[2])
    r = ask("hi", model)
    assert r.error_kind == "model_not_found", r.error
    assert "check that your cloud account may use it in its region" in r.error and "key" not in r.error


def test_a_fault_for_the_direct_provider_does_not_touch_its_route(simulated):
    simulated.inject("500", provider="anthropic", times=None)
    try:
        assert ask("Say hello", "vertex:claude-haiku-5-5").ok
    finally:
        simulated.clear_faults()


def _post(url: str, body: dict, headers: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_vertex_without_a_bearer_token_is_401_unauthenticated(fresh_sim):
    url = (f"{fresh_sim.url}/v1/projects/p/locations/global/publishers/anthropic/models/"
           "claude-haiku-5-5:rawPredict")
    body = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}]}
    status, answer = _post(url, body, {"x-api-key": "not-a-google-token"})
    assert status == 401 and answer["error"]["status"] == "UNAUTHENTICATED"
    status, answer = _post(url, body, {"authorization": "Bearer ya29.sim"})
    assert status == 200 and answer["type"] == "message" and answer["model"] == "claude-haiku-5-5"


def test_vertex_claude_refuses_a_direct_api_body(fresh_sim):
    url = (f"{fresh_sim.url}/v1/projects/p/locations/global/publishers/anthropic/models/"
           "claude-haiku-5-5:rawPredict")
    status, answer = _post(url, {"model": "claude-haiku-5-5", "max_tokens": 20,
                            "messages": [{"role": "user", "content": "hi"}]},
                      {"authorization": "Bearer ya29.sim"})
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    with pytest.raises(ValueError):
        Claude.wire_body({"model": "x", "anthropic_version": "vertex-2023-10-16"}, "x")


def test_vertex_claude_takes_only_its_own_anthropic_version(fresh_sim, simulated):
    """Vertex AI's Claude body names `anthropic_version` "vertex-2023-10-16"; the installed
    anthropic SDK would put its API version date there, so the adapter sends Vertex's own."""
    url = (f"{fresh_sim.url}/v1/projects/p/locations/global/publishers/anthropic/models/"
           "claude-haiku-5-5:rawPredict")
    body = {"max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
    status, answer = _post(url, {**body, "anthropic_version": "2026-10-21"},
                           {"authorization": "Bearer ya29.sim"})
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    r = ask("Say hello", "vertex:claude-haiku-5-5")
    assert r.ok, r.error
    assert simulated.requests[-1].path.endswith("/models/claude-haiku-5-5:streamRawPredict")


def test_azure_wants_its_api_key_header_and_api_version(fresh_sim):
    url = f"{fresh_sim.url}/openai/deployments/o4-mini/chat/completions"
    body = {"model": "o4-mini", "messages": [{"role": "user", "content": "hi"}]}
    status, _ = _post(url, body, {"api-key": "k"})
    assert status == 404  # no api-version: Azure's "Resource not found"
    status, answer = _post(url + "?api-version=2024-10-21", body, {})
    assert status == 401 and answer["error"]["code"] == "401"
    status, answer = _post(url + "?api-version=2024-10-21", body, {"api-key": "k"})
    assert status == 200 and answer["choices"][0]["message"]["content"]
    # streamed, the first chunk is Azure's prompt filter verdict: no choices, no model
    req = urllib.request.Request(url + "?api-version=2024-10-21", method="POST",
                                 data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"content-type": "application/json", "api-key": "k"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        first = json.loads(resp.read().split(b"\n\n")[0].removeprefix(b"data: "))
    assert first["choices"] == [] and first["model"] == "" and first["prompt_filter_results"]


def test_azure_refuses_an_unknown_api_version_and_the_v1_api_needs_none(fresh_sim):
    """A malformed api-version is Azure's 400 "API version not supported"; the v1 API
    (`/openai/v1/...`) takes none."""
    url = f"{fresh_sim.url}/openai/deployments/o4-mini/chat/completions"
    body = {"model": "o4-mini", "messages": [{"role": "user", "content": "hi"}]}
    for bad in ("latest", "2024-10-21x", "v1"):
        status, answer = _post(url + f"?api-version={bad}", body, {"api-key": "k"})
        assert status == 400, bad
        assert answer["error"] == {"code": "BadRequest", "message": "API version not supported"}
    status, answer = _post(f"{fresh_sim.url}/openai/v1/responses", {"model": "o4-mini", "input": "hi"},
                           {"api-key": "k"})
    assert status == 200 and answer["object"] == "response"


# ----- the route setting -----------------------------------------------------------------------------


def test_an_alias_is_pointed_at_a_route_with_one_setting(simulated):
    assert models.resolve("claude").provider == "anthropic"
    llmcells.configure(route={"claude": "vertex", "chatgpt": "azure"})
    assert models.resolve("claude").id == "vertex:claude-haiku-5-5"
    assert models.resolve("claude").adapter == "vertex_anthropic"
    assert models.resolve("chatgpt").id == "azure:gpt-6-luna"
    assert models.resolve("gemini").provider == "google"  # not routed
    assert models.resolve("anthropic:claude-haiku-5-5").provider == "anthropic"  # an id is as written
    r = ask("Say hello", "claude")
    assert r.ok and r.provider == "vertex" and simulated.requests[-1].provider == "vertex"


def test_the_route_setting_from_the_environment_and_as_text(simulated, monkeypatch):
    monkeypatch.setenv("LLMCELLS_ROUTE", "gemini=vertex")
    assert models.resolve("gemini").id == "vertex:gemini-3.5-flash-lite"
    assert models.resolve("gemini").adapter == "vertex_google"
    llmcells.configure(route="gemini=direct")  # the setting wins over the environment
    assert models.resolve("gemini").provider == "google"
    with pytest.raises(ConfigError, match="not a cloud route"):
        llmcells.configure(route={"claude": "nowhere"})
        models.resolve("claude")
    llmcells.configure(route={"chatgpt": "vertex"})
    with pytest.raises(ConfigError, match="Vertex AI serves claude-"):
        models.resolve("chatgpt")
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        llmcells.configure(route="claude")


def test_a_fallback_chain_crosses_routes(simulated):
    simulated.inject("500", provider="vertex", times=None)
    try:
        r = ask("Say hello", "vertex:claude-haiku-5-5", fallback=["azure:o4-mini"])
    finally:
        simulated.clear_faults()
    assert r.ok and r.provider == "azure", r.error
    assert [a["model"] for a in r.attempts_by_model][:2] == ["vertex:claude-haiku-5-5", "azure:o4-mini"]


# ----- prices per route -------------------------------------------------------------------------------


def test_a_route_price_unknown_to_genai_prices_is_nan_with_one_warning(simulated):
    # genai-prices' azure entry lists no gpt-6-luna (only a fallback to OpenAI's table): the
    # direct price is not passed off as Azure's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r1 = ask("Say hello", "azure:gpt-6-luna")
        r2 = ask("Say hello again", "azure:gpt-6-luna")
    assert r1.ok and r2.ok
    assert math.isnan(r1.cost_usd) and math.isnan(r2.cost_usd) and r1.price_source is None
    price_warnings = [w for w in caught if issubclass(w.category, pricing.PriceWarning)]
    assert len(price_warnings) == 1 and "azure:gpt-6-luna" in str(price_warnings[0].message)
    direct = ask("Say hello", "openai:gpt-6-luna")
    assert direct.cost_usd > 0  # the direct route has its price


def test_an_azure_deployment_is_priced_as_the_model_it_serves(simulated, monkeypatch):
    monkeypatch.setenv("LLMCELLS_AZURE_MODELS", "prod-chat=o4-mini")
    r = ask("Say hello", "azure:prod-chat")
    assert r.ok and simulated.requests[-1].path.startswith("/openai/deployments/prod-chat/")
    inp, out = _route_rate("azure", "o4-mini")
    assert r.cost_usd == pytest.approx((r.usage.input_tokens * inp + r.usage.output_tokens * out) / 1e6)
    assert r.price_basis.model == "o4-mini" and r.price_source.endswith("(azure)")


def test_vertex_claude_is_priced_by_vertex_not_anthropic():
    usage = Usage(input_tokens=1000, output_tokens=1000)
    cost, basis = pricing.price("vertex", "claude-haiku-5-5", usage)
    assert basis.provider == "google" and cost > 0
    # a Claude model only Anthropic's table has is unknown on Vertex
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        cost, basis = pricing.price("vertex", "claude-sonnet-5", usage)
    assert pricing.price("anthropic", "claude-sonnet-5", usage)[1] is not None
    assert basis is None and math.isnan(cost)  # (the genai-prices google entry falls back to anthropic's)


@pytest.mark.parametrize("location", ["us-east5", "eu"])
def test_claude_on_a_regional_vertex_endpoint_costs_ten_percent_more(simulated, monkeypatch, location):
    """From Claude Sonnet 4.5 on, a regional (or multi-region) Vertex AI endpoint costs 10% more
    than the global one, whose price genai-prices lists: such a call was priced at the global rate.
    Older Claude models and Gemini keep one price."""
    monkeypatch.delenv("CLOUD_ML_REGION", raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "global")
    flat = ask("Say hello", "vertex:claude-haiku-5-5")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", location)
    regional = ask("Say hello", "vertex:claude-haiku-5-5")
    assert flat.ok and regional.ok and regional.usage == flat.usage
    assert regional.cost_usd == pytest.approx(flat.cost_usd * 1.1)
    assert regional.price_source.endswith(", +10% regional endpoint (vertex)"), regional.price_source
    assert "+10%" not in flat.price_source
    rows = llmcells.ledger.usage().set_index("call_id")
    assert rows.loc[regional.call_id].cost_usd == pytest.approx(regional.cost_usd)
    older = ask("Say hello", "vertex:claude-opus-4-1@20250805")
    gemini = ask("Say hello", "vertex:gemini-3.5-flash-lite")
    assert "+10%" not in older.price_source and "+10%" not in gemini.price_source


# ----- what a route has and has not -------------------------------------------------------------------


def test_health_and_models_show_each_route(simulated):
    df = llmcells.run(llmcells.health())
    rows = {r.provider: r for r in df.itertuples()}
    for route in ("azure", "vertex"):
        assert rows[route].reachable and rows[route].simulated and rows[route].n_models > 0, rows[route]
    assert "gemini-3.5-flash-lite" in rows["vertex"].models
    status = {r["provider"]: r for r in models.route_status()}
    assert status["azure"]["configured"] and status["vertex"]["status"] == "simulated"


def test_routes_unconfigured_say_what_to_set(monkeypatch):
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent-gcloud")
    status = {r["provider"]: r for r in models.route_status()}
    assert not status["vertex"]["configured"] and "GOOGLE_CLOUD_PROJECT" in status["vertex"]["status"]
    assert not status["azure"]["configured"] and "AZURE_OPENAI_ENDPOINT" in status["azure"]["status"]


def test_azure_without_an_endpoint_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k-azure-test-0000")
    r = ask("Say hello", "azure:o4-mini")
    assert r.status == "error" and "AZURE_OPENAI_ENDPOINT" in r.error and "k-azure-test" not in r.error


def test_azure_without_a_key_names_entra_id_sign_in_too(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://resource.openai.azure.com")
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(models, "_has_module", lambda name: False)  # (azure-identity not installed)
    monkeypatch.setenv("LLMCELLS_HOME", str(__import__("tempfile").mkdtemp()))  # no stored key
    r = ask("Say hello", "azure:prod-chat")
    assert r.status == "error" and r.error_kind == "missing_key", r.error
    assert "AZURE_OPENAI_API_KEY" in r.error and "pip install 'llmcells[cloud]' to sign in with Entra ID" in r.error


def test_an_azure_deployment_that_refuses_temperature_says_how_to_name_its_model(monkeypatch):
    """A deployment's name says nothing of its model, so a reasoning model's deployment was sent
    a temperature and its 400 said only "Unsupported parameter"; the line now says how to name
    the model, after which llmcells sends what it accepts."""
    import httpx2

    from llmcells.errors import LLMError
    from llmcells.providers.azure import ADAPTER
    from llmcells.providers.base import ClientOptions, Request
    from llmcells.types import Message

    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://resource.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k-azure-test-0000")
    refusal = {"error": {"message": "Unsupported parameter: 'temperature' is not supported with this model.",
                         "type": "invalid_request_error", "param": "temperature", "code": "unsupported_parameter"}}

    def handler(request):
        return httpx2.Response(400, json=refusal)

    client = ADAPTER.make_client(ClientOptions(
        base_url="https://resource.openai.azure.com", api_key="k-azure-test-0000",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler))))
    spec = models.resolve("azure:prod-reasoner")

    async def go():
        try:
            async for _ in ADAPTER.stream(client, Request(spec=spec, messages=[Message("user", "hi")],
                                                          temperature=0.2)):
                pass
        except Exception as exc:  # noqa: BLE001 - the mapped error is what is checked
            return ADAPTER.map_error(exc, spec)

    err = llmcells.run(go())
    assert isinstance(err, LLMError) and err.kind == "bad_request"
    assert "Unsupported parameter" in err.message
    assert 'LLMCELLS_AZURE_MODELS="prod-reasoner=o4-mini"' in err.message and "\n" not in err.message
    assert "k-azure-test" not in err.message


def test_provider_batch_jobs_are_a_clear_error_on_a_route(simulated):
    with pytest.raises(ConfigError, match="no provider batch API"):
        llmcells.run(llmcells.batch(["a", "b"], ["azure:o4-mini"], via="provider", display=False))


def test_routes_add_no_magic_and_no_alias():
    from llmcells.magics import LLMMagics

    assert "azure" not in models.aliases() and "vertex" not in models.aliases()
    cells = LLMMagics(shell=None).magics["cell"]
    assert {"chatgpt", "claude", "gemini"} <= set(cells) and "" not in cells



def test_quotas_come_from_each_route_own_headers(simulated):
    from llmcells import quotas

    assert ask("Say hello", "azure:o4-mini").ok
    seen = quotas.latest("azure", "o4-mini")
    assert seen is not None and 999 in seen.values(), seen  # Azure's x-ratelimit-remaining-requests
    assert ask("Say hello", "vertex:gemini-3.5-flash-lite").ok
    assert quotas.latest("vertex") is None  # Vertex AI sends no rate-limit headers


def test_llmcells_models_lists_the_routes_and_a_routed_magic_uses_its_route(shell, simulated):
    frame = shell.run_line_magic("llmcells", "models")
    routes = frame[frame["alias"].isin(["azure:MODEL", "vertex:MODEL"])]
    assert list(routes["provider"]) == ["Azure OpenAI", "Vertex AI"]
    assert set(routes["simulated"]) == {"yes"} and "claude-*" in routes.iloc[1]["model"]
    shell.run_line_magic("llmcells", "config route=claude=vertex")
    shell.run_cell_magic("claude", "--no-display", "Say hi.")
    assert shell.user_ns["_llm"].provider == "vertex" and simulated.requests[-1].provider == "vertex"


@pytest.mark.parametrize("model,route,wire,url", ROUTES, ids=IDS)
def test_cache_and_reasoning_usage_on_each_route(simulated, model, route, wire, url):
    simulated.set_model(models.resolve(model).name, cached_input_tokens=40, reasoning_tokens=7,
                        cache_write_tokens=0 if wire != "anthropic" else 12)
    r = ask("Say hello", model)
    assert r.ok, r.error
    assert r.usage.cached_input_tokens == 40 and r.usage.reasoning_tokens == 7
    if wire == "anthropic":
        assert r.usage.cache_write_tokens == 12
    # the cached tokens are priced at the route's cache-read rate: cheaper than uncached ones
    full = pricing.price(route, models.resolve(model).name,
                         Usage(input_tokens=r.usage.input_tokens, output_tokens=r.usage.output_tokens,
                               cache_write_tokens=r.usage.cache_write_tokens))[0]
    assert r.cost_usd < full


def test_no_key_hint_is_quiet_when_a_route_is_set_up(monkeypatch, capsys):
    from llmcells.display.hints import no_key_hint

    assert no_key_hint()  # nothing set up: the hint
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-project")
    assert not no_key_hint()
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k-azure-test-0000")
    assert not no_key_hint()


@pytest.mark.parametrize("model", ["vertex:claude-haiku-5-5", "vertex:gemini-3.5-flash-lite"])
def test_a_vertex_connection_error_names_the_vertex_host(model, monkeypatch):
    import httpx2

    from llmcells.providers import get_provider

    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    spec = models.resolve(model)
    err = get_provider(spec.adapter).map_error(httpx2.ConnectError("refused"), spec)
    assert "europe-west4-aiplatform.googleapis.com" in err.message, err.message
    assert "anthropic.com" not in err.message and "generativelanguage" not in err.message


def test_vertex_gemini_answers_as_vertex_does(fresh_sim):
    """Vertex AI's generateContent answer names its traffic type (ON_DEMAND) and when it was
    made, and no Gemini API service tier (as the recorded Vertex answers do); streamed too."""
    import httpx2

    base = f"{fresh_sim.url}/v1/projects/p/locations/global/publishers/google/models/gemini-3.5-flash-lite"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with httpx2.Client(timeout=10, headers={"authorization": "Bearer ya29.sim"}) as client:
        r = client.post(f"{base}:generateContent", json=body)
        assert r.status_code == 200 and "x-gemini-service-tier" not in r.headers
        usage = r.json()["usageMetadata"]
        assert usage["trafficType"] == "ON_DEMAND" and "serviceTier" not in usage
        assert r.json()["createTime"].endswith("Z")
        r = client.post(f"{base}:streamGenerateContent?alt=sse", json=body)
        chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
        assert chunks and all(c["usageMetadata"]["trafficType"] == "ON_DEMAND" for c in chunks)
        assert "x-gemini-service-tier" not in r.headers
    # the Gemini API's own answer keeps its serviceTier
    with httpx2.Client(timeout=10, headers={"x-goog-api-key": "k"}) as client:
        r = client.post(f"{fresh_sim.url}/v1beta/models/gemini-3.5-flash-lite:generateContent", json=body)
        assert r.json()["usageMetadata"]["serviceTier"] == "standard" and "trafficType" not in r.json()["usageMetadata"]


def test_vertex_gemini_through_llmcells_reads_its_traffic_type(simulated):
    r = ask("Say hello", "vertex:gemini-3.5-flash-lite")
    assert r.ok and r.usage.output_tokens > 0 and r.service_tier is None
