"""Fuzzed request bodies against the service as a real process (hypothesis): whatever a client
sends to /v1/generate, /v1/stream or /v1/compare, the answer is never a 500, never a traceback,
and every error has the documented {"error": one line} shape."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings, strategies as st

from _serve import Service

from llmcells.params import GENERATION_PARAMS

TOKEN = "fuzz-token-0000"

_leaf = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats()
         | st.text(max_size=30))
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
_models = st.sampled_from(["claude", "chatgpt", "gemini", "claude|chatgpt", "chatgpt|", "claude-code",
                           "codex:gpt-5-codex", "gemini-cli", "nosuch", "openai:", "|", "x" * 300,
                           "openai-responses:gpt-5-mini", "google:models/gemini-2.5-flash"]) \
    | st.text(max_size=20)
_param_keys = st.sampled_from([*GENERATION_PARAMS, "http_options", "base_url", "extra_headers",
                               "extra_body", "timeout", "tools", "cwd", "api_key"]) | st.text(max_size=15)
_params = st.dictionaries(_param_keys, _json | st.sampled_from(
    [1, 0.5, "low", ["x"], {"effort": "low"}, {"type": "enabled", "budget_tokens": 1024}]), max_size=3)


def _mostly(proper: st.SearchStrategy) -> st.SearchStrategy:
    """Values of the field's own type, three times in four; any JSON otherwise."""
    return st.one_of(proper, proper, proper, _json)


_fields = {
    "prompt": _mostly(st.text(max_size=40)),
    "model": _mostly(_models),
    "models": _mostly(st.lists(_models, max_size=3)),
    "fallback": _mostly(st.lists(_models, max_size=2)),
    "fallback_on": _mostly(st.lists(st.sampled_from(["overloaded", "all", "nosuch", "timeout"]), max_size=2)),
    "system": _mostly(st.text(max_size=20)),
    "temperature": _mostly(st.floats(0, 2) | st.floats()),
    "max_tokens": _mostly(st.integers(1, 500) | st.integers(-5, 10 ** 12)),
    "timeout": _mostly(st.floats(1, 60) | st.floats()),
    "params": _mostly(_params),
}
_objects = st.fixed_dictionaries({"prompt": st.text(min_size=1, max_size=40) | _fields["prompt"]},
                                 optional={k: v for k, v in _fields.items() if k != "prompt"}) \
    | st.dictionaries(st.sampled_from([*_fields, "base_url", "stream"]) | st.text(max_size=10),
                      _json, max_size=5) \
    | st.fixed_dictionaries({"prompt": st.text(min_size=1, max_size=40),
                             "model": st.sampled_from(["claude-code", "codex", "gemini-cli:x",
                                                       "claude|claude-code"])},
                            optional={"params": _params})


@st.composite
def _requests(draw) -> tuple[str, bytes, str]:
    endpoint = draw(st.sampled_from(["/v1/generate", "/v1/stream", "/v1/compare"]))
    kind = draw(st.sampled_from(["object"] * 6 + ["json", "bytes", "text"]))
    if kind == "object":
        body = json.dumps(draw(_objects)).encode()
    elif kind == "json":
        body = json.dumps(draw(_json)).encode()
    elif kind == "bytes":
        body = draw(st.binary(max_size=80))
    else:
        body = draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
    ctype = draw(st.sampled_from(["application/json"] * 8 + [
        "application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded"]))
    return endpoint, body, ctype


def _check(resp: httpx.Response, endpoint: str) -> None:
    assert resp.status_code != 500 and resp.status_code < 500, resp.text
    assert "Traceback" not in resp.text
    if resp.status_code >= 400:
        body = resp.json()
        assert set(body) == {"error"} and isinstance(body["error"], str), body
        assert body["error"] and "\n" not in body["error"] and len(body["error"]) <= 500
        return
    assert resp.status_code == 200
    if endpoint == "/v1/stream":
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[7:] for line in resp.text.splitlines() if line.startswith("event: ")]
        assert events[0] == "start" and events[-1] == "result", resp.text[-500:]
    elif endpoint == "/v1/compare":
        assert {"group_id", "results"} <= set(resp.json())
    else:
        assert "status" in resp.json()


def test_fuzzed_bodies_never_break_the_error_shape(fresh_sim, tmp_path):
    home = Path(os.environ["LLMCELLS_HOME"])
    service = Service(["--token", TOKEN, "--max-body", "4000", "--rate-limit", "0"],
                      {**fresh_sim.env(), "LLMCELLS_HOME": str(home)}, tmp_path / "serve.log")
    client = httpx.Client(base_url=service.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=60)
    statuses: dict[int, int] = {}

    @settings(max_examples=250, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(_requests())
    def check(request: tuple[str, bytes, str]) -> None:
        endpoint, body, ctype = request
        headers = {"content-type": ctype} if ctype else {}
        resp = client.post(endpoint, content=body, headers=headers)
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        _check(resp, endpoint)

    try:
        check()
    finally:
        client.close()
        log = service.stop()
    print("\nstatuses seen:", dict(sorted(statuses.items())))
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]
    # the fuzz reached past the checks too: answers, refusals and each kind of bad input
    assert {200, 400, 403, 415, 422} <= set(statuses), statuses
