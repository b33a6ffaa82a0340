"""`python -m llmcells serve` as a real process on loopback, driven with httpx: generate, an
incremental SSE stream, compare, health, usage/costs, the token, bad input, and a client that
disconnects mid-stream (the call is cancelled and the ledger says so)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import llmcells
from conftest import missing_cli

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")

from _serve import KEYS, Service

TOKEN = "test-token-123"


@pytest.fixture
def server(fresh_sim, tmp_path):
    """The service in its own process, pointed at the session simulator by base URL."""
    home = Path(os.environ["LLMCELLS_HOME"])
    service = Service(["--token", TOKEN, "--max-body", "20000"],
                      {**fresh_sim.env(), "LLMCELLS_HOME": str(home)}, tmp_path / "serve.log")
    client = httpx.Client(base_url=service.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    yield client, fresh_sim, service
    client.close()
    service.stop()


def test_token_is_required(server):
    client, _, _ = server
    bare = httpx.get(str(client.base_url) + "/v1/health")
    assert bare.status_code == 401 and "Bearer" in bare.json()["error"]
    wrong = httpx.get(str(client.base_url) + "/docs", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.get("/docs").status_code == 200
    assert "/v1/generate" in client.get("/openapi.json").json()["paths"]


def test_generate_compare_health_usage_costs(server):
    client, sim, _ = server
    r = client.post("/v1/generate", json={"prompt": "hello", "model": "claude"}).json()
    assert r["status"] == "ok" and r["model"] == "anthropic:claude-haiku-5-5" and r["text"]
    assert r["usage"]["output_tokens"] > 0
    c = client.post("/v1/compare", json={"prompt": "hi", "models": ["chatgpt", "gemini"]}).json()
    assert [x["model"] for x in c["results"]] == ["openai:gpt-6-luna", "google:gemini-3.5-flash-lite"]
    assert all(x["status"] == "ok" for x in c["results"])
    h = client.get("/v1/health").json()
    # one row per API provider and cloud route, plus one per agent CLI (installed or not)
    assert {row["provider"] for row in h} == {"openai", "anthropic", "google", "bedrock", "azure",
                                              "vertex", "claude-code", "gemini-cli", "codex"}
    missing = {c for c in ("claude-code", "gemini-cli", "codex") if missing_cli(c)}
    routes = {"bedrock", "azure", "vertex"}  # no cloud credentials here: each says what to set
    assert all(not row["reachable"] and row["error"] for row in h if row["provider"] in routes)
    assert all(row["reachable"] for row in h if row["provider"] not in missing | routes)  # an absent CLI is not
    rows = client.get("/v1/usage", params={"group_id": c["group_id"]}).json()
    assert len(rows) == 2
    usage = client.get("/v1/usage").json()
    assert {row["call_id"] for row in usage} >= {r["call_id"]}  # every call is in the ledger
    costs = client.get("/v1/costs", params={"by": "provider"}).json()
    assert {row["provider"] for row in costs} == {"openai", "anthropic", "google"}
    for key in KEYS.values():
        assert key not in json.dumps([r, c, h, usage, costs])


@pytest.mark.slow
def test_chain_over_http(server):
    client, sim, _ = server
    sim.set_down("claude-haiku-5-5", "overloaded")
    r = client.post("/v1/generate", json={"prompt": "x", "model": "claude|chatgpt"}).json()
    assert r["model"] == "openai:gpt-6-luna" and r["status"] == "ok"
    assert [s["status"] for s in r["attempts_by_model"]] == ["error", "ok"]
    with client.stream("POST", "/v1/stream", json={"prompt": "x", "model": "claude|gemini"}) as resp:
        lines = [line for line in resp.iter_lines() if line.startswith(("event: ", "data: "))]
    kinds = [line[7:] for line in lines if line.startswith("event: ")]
    assert kinds[:2] == ["start", "fallback"] and kinds[-1] == "result"
    fell = json.loads(lines[3][6:])
    assert fell == {"from": "anthropic:claude-haiku-5-5", "reason": "overloaded",
                    "to": "google:gemini-3.5-flash-lite"}
    assert json.loads(lines[-1][6:])["model"] == "google:gemini-3.5-flash-lite"


@pytest.mark.slow
def test_stream_arrives_incrementally(server):
    client, sim, _ = server
    sim.set_model("gpt-6-luna", ttft=0.05, tokens_per_s=20, output_tokens=30)  # ~1.5 s
    events = []
    with client.stream("POST", "/v1/stream", json={"prompt": "hi", "model": "chatgpt"}) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((time.monotonic(), kind, json.loads(line[6:])))
    kinds = [k for _, k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "result" and kinds.count("result") == 1
    deltas = [(t, d) for t, k, d in events if k == "delta"]
    assert len(deltas) >= 10
    assert deltas[-1][0] - deltas[0][0] > 0.8  # spread over the stream, not one burst at the end
    result = events[-1][2]
    assert result["status"] == "ok" and result["text"] == "".join(d["text"] for _, d in deltas)


@pytest.mark.slow
def test_client_disconnect_cancels_the_call(server):
    client, sim, _ = server
    sim.set_model("claude-haiku-5-5", ttft=0.05, tokens_per_s=10, output_tokens=200)  # ~20 s
    with client.stream("POST", "/v1/stream", json={"prompt": "long", "model": "claude"}) as resp:
        call_id = None
        for line in resp.iter_lines():
            if line.startswith("data: ") and call_id is None:
                call_id = json.loads(line[6:])["call_id"]
            if line.startswith("event: delta"):
                break  # hang up after the first delta
    t0 = time.monotonic()
    status = None
    while time.monotonic() - t0 < 10:
        rows = llmcells.usage()
        mine = rows[rows.call_id == call_id]
        if len(mine):
            status = mine.status.iloc[0]
            break
        time.sleep(0.2)
    print(f"\ncancelled row written {time.monotonic() - t0:.2f} s after the hang-up")
    assert status == "cancelled"
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("endpoint", ["/v1/generate", "/v1/compare"])
def test_a_hang_up_on_a_json_endpoint_cancels_the_call(server, endpoint):
    # No stream to notice the hang-up on: the service watches the connection itself.
    client, sim, _ = server
    sim.set_model("claude-haiku-5-5", ttft=0.05, tokens_per_s=10, output_tokens=200)  # ~20 s
    prompt = f"hang up on {endpoint}"
    body = {"prompt": prompt, "model": "claude"} if endpoint == "/v1/generate" else \
        {"prompt": prompt, "models": ["claude"]}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 1 s and closes its socket
        client.post(endpoint, json=body, timeout=httpx.Timeout(30, read=1.0))
    t0 = time.monotonic()
    status = None
    while time.monotonic() - t0 < 10:
        rows = llmcells.usage()
        mine = rows[rows.prompt_preview.fillna("").str.startswith(prompt)]
        if len(mine):
            status = mine.status.iloc[-1]
            break
        time.sleep(0.2)
    assert status == "cancelled", status
    assert time.monotonic() - t0 < 5


def test_bad_input_is_a_one_line_4xx(server):
    client, _, _ = server
    cases = [
        (client.post("/v1/generate", content=b"{not json", headers={"content-type": "application/json"}), 400),
        (client.post("/v1/generate", json={"model": "claude"}), 422),
        (client.post("/v1/generate", json={"prompt": "hi", "model": "nosuch"}), 400),
        (client.post("/v1/generate", json={"prompt": "hi", "temperature": 9}), 422),
        (client.post("/v1/generate", json={"prompt": "x" * 30000}), 413),
        (client.post("/v1/stream", json={"prompt": "hi", "model": "claude|"}), 400),
        (client.post("/v1/generate", content=b'"just a string"', headers={"content-type": "application/json"}), 400),
    ]
    for resp, code in cases:
        assert resp.status_code == code, (resp.status_code, resp.text)
        body = resp.json()
        assert set(body) == {"error"} and "\n" not in body["error"] and len(body["error"]) < 300


def test_no_token_is_refused_off_loopback():
    env = {**os.environ, "PYTHONPATH": str(Path(llmcells.__file__).parents[1])}
    env.pop("LLMCELLS_SERVE_TOKEN", None)
    out = subprocess.run([sys.executable, "-m", "llmcells", "serve", "--host", "0.0.0.0", "--no-token"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--no-token works only on a loopback address" in out.stderr


@pytest.mark.parametrize("option", [["--allow-host", "*"], ["--allow-origin", "*"]])
def test_no_token_is_refused_with_any_host_or_origin(option):
    # Without a token the Host and Origin checks are all that keep web pages out: with any Host,
    # a page reaches the port by DNS rebinding, as its own origin; with any Origin, from anywhere.
    env = {**os.environ, "PYTHONPATH": str(Path(llmcells.__file__).parents[1])}
    env.pop("LLMCELLS_SERVE_TOKEN", None)
    import socket

    with socket.socket() as taken:  # (were it to start, it would fail to bind, not run on)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = subprocess.run([sys.executable, "-m", "llmcells", "serve", "--no-token", "--port",
                              str(taken.getsockname()[1]), *option],
                             env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "any web page" in out.stderr, out.stderr


def test_a_non_loopback_address_is_warned_about():
    # Plain HTTP off loopback: the token and every prompt and answer cross the network in clear.
    # (The port is taken, so it stops at binding, having said what it would serve.)
    import socket

    env = {**os.environ, "PYTHONPATH": str(Path(llmcells.__file__).parents[1]),
           "LLMCELLS_SERVE_TOKEN": "warn-token-1234"}
    with socket.socket() as taken:  # bound, never listening: nothing reaches it
        taken.bind(("0.0.0.0", 0))
        out = subprocess.run([sys.executable, "-m", "llmcells", "serve", "--host", "0.0.0.0",
                              "--port", str(taken.getsockname()[1])],
                             env=env, capture_output=True, text=True, timeout=60)
    assert "WARNING: bound to 0.0.0.0" in out.stderr and "TLS" in out.stderr, out.stderr
