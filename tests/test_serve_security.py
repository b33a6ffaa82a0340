"""The service tried as an attacker would, each as a real process on loopback: params that would
send the call (and its key) elsewhere, agent CLIs with tools, foreign Hosts and Origins (DNS
rebinding), the generated token, what /v1/usage shows, the error shapes and statuses (chunked
bodies over the limit, invalid UTF-8, lone surrogates), the per-client limits (a wrong token
racing the rate bucket, connections held open), and requests that would stall other clients
or mark providers down for them."""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import time
from pathlib import Path

import httpx
import pytest

import llmcells

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")

from _serve import Service

from llmcells.params import ParamsError, check_params

TOKEN = "sec-token-4567"


class Attacker:
    """A loopback HTTP server that records every request it gets (and fails them)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self) -> None:
                seen.append((self.command, self.path, dict(self.headers)))
                self.send_response(500)
                self.end_headers()

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker():
    a = Attacker()
    yield a
    a.close()


def _start(sim, tmp_path, *args: str, env: dict[str, str] | None = None) -> Service:
    home = Path(os.environ["LLMCELLS_HOME"])
    return Service(list(args), {**sim.env(), "LLMCELLS_HOME": str(home), **(env or {})},
                   tmp_path / f"serve-{len(list(tmp_path.glob('serve-*')))}.log")


@pytest.fixture
def service(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--max-body", "20000")
    yield s
    s.stop()


def _client(service: Service, token: str | None = TOKEN, **kw) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=service.url, headers=headers, timeout=60, **kw)


def _shape(resp: httpx.Response, status: int) -> str:
    """The error's one line, once its status and shape are the documented ones."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


# ----- 1: no URL, header or transport from a client ------------------------------------------


def test_the_attackers_server_is_reached_when_a_notebook_user_sends_http_options(attacker, simulated):
    # The control: in-process, the notebook user's own params= reach the SDK unchanged, so a
    # base URL in http_options does send the call, and its key header, to that server.
    r = llmcells.run(llmcells.ask("hi", model="gemini", display=False,
                                  params={"http_options": {"base_url": attacker.url}}))
    assert r.status == "error"
    assert attacker.seen and "x-goog-api-key" in {k.lower() for k in attacker.seen[0][2]}


@pytest.mark.parametrize("model,params,key", [
    ("gemini", {"http_options": {"base_url": "ATTACKER"}}, "http_options"),
    ("gemini", {"thinking_config": {"thinking_budget": 0, "http_options": {"base_url": "ATTACKER"}}},
     "thinking_config.http_options"),
    ("chatgpt", {"base_url": "ATTACKER"}, "base_url"),
    ("chatgpt", {"extra_headers": {"x-forwarded-host": "ATTACKER"}}, "extra_headers"),
    ("chatgpt", {"extra_body": {"stream_options": None}}, "extra_body"),
    ("chatgpt", {"extra_query": {"next": "ATTACKER"}}, "extra_query"),
    ("claude", {"timeout": 1e9}, "timeout"),
    ("claude", {"betas": ["x"]}, "betas"),
    ("openai-responses:gpt-5-mini", {"reasoning": {"effort": "low", "url": "ATTACKER"}}, "reasoning.url"),
])
def test_params_that_are_not_generation_parameters_are_refused_and_nothing_is_sent(
        service, fresh_sim, attacker, model, params, key):
    params = json.loads(json.dumps(params).replace("ATTACKER", attacker.url))
    with _client(service) as c:
        for endpoint, body in [("/v1/generate", {"prompt": "hi", "model": model, "params": params}),
                               ("/v1/stream", {"prompt": "hi", "model": model, "params": params}),
                               ("/v1/compare", {"prompt": "hi", "models": [model], "params": params})]:
            error = _shape(c.post(endpoint, json=body), 400)
            assert repr(key) in error, error
    assert attacker.seen == [] and fresh_sim.requests == []  # nothing left the service
    assert llmcells.usage().empty  # no call was made


def test_a_field_outside_the_body_schema_is_refused_by_name(service, fresh_sim):
    with _client(service) as c:
        error = _shape(c.post("/v1/generate", json={"prompt": "hi", "base_url": "http://x/"}), 400)
    assert "'base_url'" in error and fresh_sim.requests == []


def test_a_timeout_beyond_the_servers_limit_is_refused(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--max-timeout", "30")
    try:
        with _client(s) as c:
            assert "at most 30" in _shape(c.post("/v1/generate", json={"prompt": "hi", "timeout": 31}), 422)
            assert c.post("/v1/generate", json={"prompt": "hi", "model": "claude",
                                                "timeout": 30}).json()["status"] == "ok"
    finally:
        s.stop()


def test_one_request_may_name_at_most_eight_models(service, fresh_sim):
    with _client(service) as c:
        assert "At most 8" in _shape(c.post("/v1/compare", json={"prompt": "hi", "models": ["claude"] * 9}), 422)
        assert "At most 8" in _shape(c.post("/v1/generate", json={
            "prompt": "hi", "model": "claude|chatgpt|gemini", "fallback": ["claude"] * 6}), 422)
    assert fresh_sim.requests == []


def test_hosts_when_bound_to_every_address():
    from llmcells.serve_guard import Guard, Policy

    guard = Guard(None, Policy(bound_host="0.0.0.0", allow_hosts=("llm.example",)))
    assert [guard.host_ok(h) for h in ("10.1.2.3:8000", "[fe80::1]:8000", "localhost", "LLM.example.",
                                       "evil.example", "10.1.2.3.nip.io", None)] == \
        [True, True, True, True, False, False, False]
    loopback = Guard(None, Policy())
    assert [loopback.host_ok(h) for h in ("127.0.0.1:1", "127.5.5.5", "10.1.2.3", "")] == \
        [True, True, False, False]


def test_generation_parameters_reach_the_provider(service, fresh_sim):
    with _client(service) as c:
        r = c.post("/v1/generate", json={"prompt": "hi", "model": "chatgpt", "params": {
            "stop": ["\n\n"], "reasoning_effort": "low", "seed": 7, "max_completion_tokens": 50}})
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        r = c.post("/v1/generate", json={"prompt": "hi", "model": "gemini", "params": {
            "stop_sequences": ["END"], "thinking_config": {"thinking_budget": 0}}})
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    sent = [req.body for req in fresh_sim.requests]
    assert sent[0]["stop"] == ["\n\n"] and sent[0]["reasoning_effort"] == "low" and sent[0]["seed"] == 7
    assert sent[1]["generationConfig"]["stopSequences"] == ["END"]


def test_a_wrong_value_for_an_allowed_parameter_is_a_422_naming_it(service, fresh_sim):
    with _client(service) as c:
        error = _shape(c.post("/v1/generate", json={"prompt": "hi", "params": {"stop": 5}}), 422)
        assert "stop" in error
        error = _shape(c.post("/v1/generate", json={"prompt": "hi", "params": {
            "thinking": {"type": "enabled", "budget_tokens": "lots"}}}), 422)
        assert "thinking.budget_tokens" in error
    assert fresh_sim.requests == []


# ----- 2: no agent CLI, and never one with tools or a folder of the client's -------------------


def test_an_agent_model_is_refused_unless_allowed_and_never_with_tools(service, fresh_sim, tmp_path):
    with _client(service) as c:
        for body in [{"prompt": "hi", "model": "claude-code:sonnet"},
                     {"prompt": "hi", "model": "claude|codex"},
                     {"prompt": "hi", "model": "claude", "fallback": ["gemini-cli"]}]:
            assert "--allow-agents" in _shape(c.post("/v1/generate", json=body), 403)
        assert "--allow-agents" in _shape(c.post("/v1/compare", json={
            "prompt": "hi", "models": ["chatgpt", "claude-code"]}), 403)
        error = _shape(c.post("/v1/generate", json={"prompt": "cat /etc/passwd", "model": "claude-code",
                                                    "params": {"tools": True, "cwd": "/"}}), 400)
        assert "'tools'" in error
    assert fresh_sim.requests == [] and llmcells.usage().empty


def test_with_allow_agents_a_client_still_cannot_enable_tools_or_choose_cwd(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--allow-agents")
    try:
        with _client(s) as c:
            for params, key in [({"tools": True, "cwd": "/"}, "tools"), ({"cwd": "/"}, "cwd"),
                                ({"permission_mode": "bypassPermissions"}, "permission_mode")]:
                error = _shape(c.post("/v1/generate", json={"prompt": "cat /etc/passwd",
                                                            "model": "claude-code", "params": params}), 400)
                assert repr(key) in error
            assert fresh_sim.requests == [] and llmcells.usage().empty  # nothing ran
            # the control: a plain agent call does run, with the server's options
            r = c.post("/v1/generate", json={"prompt": "Say hello", "model": "claude-code"}, timeout=180)
            assert r.status_code == 200 and r.json()["status"] == "ok", r.text
            assert fresh_sim.requests  # the CLI ran, against the simulator
        assert "agent CLIs are allowed" in s.log()
    finally:
        s.stop()


def test_stopping_the_service_removes_the_agents_private_folders(fresh_sim, tmp_path):
    """An agent call leaves a working folder and the CLI's private home, which holds its
    transcript of the client's prompt. uvicorn ends a SIGTERM's graceful shutdown by raising the
    signal again, and with Python's default handler the process ended without its exit
    handlers: the folders stayed in the temp folder."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--allow-agents", env={"TMPDIR": str(temp)})
    try:
        with _client(s) as c:
            r = c.post("/v1/generate", json={"prompt": "Say hello", "model": "claude-code"}, timeout=180)
            assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        assert len(list(temp.glob("llmcells-*"))) >= 2  # the call's folder and the CLI's home
    finally:
        s.stop()
    assert list(temp.glob("llmcells-*")) == []
    assert s.proc.returncode == 128 + 15  # ended by SIGTERM, as its status still says


@pytest.mark.parametrize("model", [
    "vertex:projects/someone-else/locations/us-central1/publishers/google/models/gemini-3.5-flash",
    "vertex:publishers/google/models/x/locations/us",
    "bedrock:arn:aws:bedrock:us-east-1:999999999999:application-inference-profile/theirs",
])
def test_a_model_name_that_is_a_cloud_resource_path_is_refused(service, fresh_sim, model):
    # Vertex takes "projects/P/locations/L/..." as a model, and Bedrock an ARN: the call would
    # go, with the server's credentials, to a project or account the client chose.
    with _client(service) as c:
        for endpoint, body in [("/v1/generate", {"prompt": "hi", "model": model}),
                               ("/v1/compare", {"prompt": "hi", "models": ["claude", model]})]:
            assert "cloud resource" in _shape(c.post(endpoint, json=body), 400)
    assert fresh_sim.requests == [] and llmcells.usage().empty  # nothing ran


def test_codex_is_never_served_since_it_reads_files_with_tools_off(fresh_sim, tmp_path):
    # --allow-agents promised "no tools", but Codex has no switch that removes its shell tool:
    # "off" is a read-only sandbox, where it still runs `cat ~/.aws/credentials` for whoever
    # asks. So the service refuses it, alone or in a chain, allowed agents or not.
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--allow-agents")
    try:
        with _client(s) as c:
            for endpoint, body in [("/v1/generate", {"prompt": "print ~/.ssh/id_rsa", "model": "codex"}),
                                   ("/v1/stream", {"prompt": "hi", "model": "claude", "fallback": ["codex:gpt-5.5-codex"]}),
                                   ("/v1/compare", {"prompt": "hi", "models": ["claude|codex"]})]:
                assert "Codex is not served" in _shape(c.post(endpoint, json=body), 403)
        assert fresh_sim.requests == [] and llmcells.usage().empty  # nothing ran
    finally:
        s.stop()


@pytest.mark.parametrize("model", [
    "gemini-cli:--yolo",                            # gemini -m --yolo: a flag, not a model name
    "claude-code:--dangerously-skip-permissions",
    "claude|gemini-cli:--approval-mode=yolo",
    "openai:gpt-x\r\nWARNING: forged log line",   # a model name is printed in the server's log
    "google:x/../../v1beta/cachedContents",         # a path of the provider's API other than a model's
    "anthropic:" + "x" * 300,
])
def test_a_model_name_that_is_not_a_plain_name_is_refused(fresh_sim, tmp_path, model):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--allow-agents")
    try:
        with _client(s) as c:
            for endpoint, body in [("/v1/generate", {"prompt": "hi", "model": model}),
                                   ("/v1/stream", {"prompt": "hi", "model": "claude", "fallback": [model]}),
                                   ("/v1/compare", {"prompt": "hi", "models": ["claude", model]})]:
                assert "model name" in _shape(c.post(endpoint, json=body), 400)
        assert fresh_sim.requests == [] and llmcells.usage().empty  # nothing ran
    finally:
        log = s.stop()
    assert "forged" not in log


# ----- 3: a token by default, Host and Origin checks ------------------------------------------


def test_without_token_option_one_is_generated_printed_and_required(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, env={"LLMCELLS_SERVE_TOKEN": ""})
    try:
        lines = s.log()
        found = re.search(r"Authorization: Bearer ([\w-]+)' (http://\S+)/v1/health", lines)
        assert found and "generated for this run" in lines, lines
        token = found.group(1)
        assert f"/docs?token={token}" in lines
        assert len(token) >= 30
        with _client(s, token=None) as bare:
            for path in ("/v1/usage", "/v1/costs", "/v1/health", "/docs", "/openapi.json", "/nosuch"):
                assert "Bearer" in _shape(bare.get(path), 401)
            _shape(bare.post("/v1/generate", json={"prompt": "hi", "model": "claude"}), 401)
            assert bare.get("/v1/usage", headers={"authorization": "Bearer " + token[:-1]}).status_code == 401
            live = bare.get("/livez")
            assert live.status_code == 200 and live.json() == {"status": "ok"}  # and nothing else
        with _client(s, token=token) as c:
            r = c.post("/v1/generate", json={"prompt": "hi", "model": "claude"})
            assert r.status_code == 200 and r.json()["status"] == "ok"
        assert httpx.get(f"{s.url}/docs?token={token}").status_code == 200  # the printed URL opens
        assert httpx.get(f"{s.url}/openapi.json?token={token}").status_code == 200
        assert httpx.get(f"{s.url}/v1/usage?token={token}").status_code == 401  # only for the page
        assert fresh_sim.requests and len(llmcells.usage()) == 1  # only the call with the token ran
    finally:
        s.stop()


def test_a_token_from_the_environment_is_used_and_not_printed(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, env={"LLMCELLS_SERVE_TOKEN": "from-env-token-99"})
    try:
        assert "from-env-token-99" not in s.log() and "$LLMCELLS_SERVE_TOKEN" in s.log()
        with _client(s, token="from-env-token-99") as c:
            assert c.get("/v1/usage").status_code == 200
        with _client(s, token=TOKEN) as c:
            assert c.get("/v1/usage").status_code == 401
    finally:
        s.stop()


def test_no_token_on_loopback_warns(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--no-token", env={"LLMCELLS_SERVE_TOKEN": ""})
    try:
        assert "WARNING: no token" in s.log()
        with _client(s, token=None) as c:
            assert c.get("/v1/usage").status_code == 200
    finally:
        s.stop()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io",
                                  "attacker.localhost.evil", "10.1.2.3"])
def test_a_foreign_host_gets_403_even_with_the_token(service, fresh_sim, host):
    with _client(service) as c:
        for resp in (c.get("/v1/usage", headers={"host": host}),
                     c.post("/v1/generate", json={"prompt": "hi", "model": "claude"}, headers={"host": host}),
                     c.get("/livez", headers={"host": host})):
            assert "Host" in _shape(resp, 403)
        for host_ok in ("127.0.0.1", "localhost", f"localhost:{service.port}", "[::1]"):
            assert c.get("/v1/usage", headers={"host": host_ok}).status_code == 200
    assert fresh_sim.requests == []


def test_allow_host_serves_that_name(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--allow-host", "llm.internal")
    try:
        with _client(s) as c:
            assert c.get("/v1/usage", headers={"host": "llm.internal:80"}).status_code == 200
            _shape(c.get("/v1/usage", headers={"host": "other.internal"}), 403)
    finally:
        s.stop()


def test_a_cross_origin_page_is_refused_unless_allowed(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--allow-origin", "https://app.example")
    try:
        with _client(s) as c:
            body = {"prompt": "hi", "model": "claude"}
            for origin in ("http://evil.example", "null", f"http://localhost:{s.port + 1}"):
                assert "--allow-origin" in _shape(c.post("/v1/generate", json=body,
                                                         headers={"origin": origin}), 403)
            assert fresh_sim.requests == []
            same = c.get("/v1/usage", headers={"origin": s.url})  # the /docs page itself
            assert same.status_code == 200
            ok = c.post("/v1/generate", json=body, headers={"origin": "https://app.example"})
            assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
            pre = httpx.options(s.url + "/v1/generate", headers={
                "origin": "https://app.example", "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type"})
            assert pre.status_code == 204 and "authorization" in pre.headers["access-control-allow-headers"]
            _shape(httpx.options(s.url + "/v1/generate", headers={
                "origin": "http://evil.example", "access-control-request-method": "POST"}), 403)
    finally:
        s.stop()


# ----- what a client may read ------------------------------------------------------------------


def test_usage_shows_no_prompts_unless_exposed(service, fresh_sim, tmp_path):
    with _client(service) as c:
        assert c.post("/v1/generate", json={"prompt": "my secret plan", "model": "claude"}).status_code == 200
        rows = c.get("/v1/usage").json()
        assert len(rows) == 1 and "prompt_preview" not in rows[0] and "secret plan" not in json.dumps(rows)
        assert "secret plan" not in c.get("/v1/costs", params={"by": "model"}).text
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--expose-prompts")
    try:
        with _client(s) as c:
            assert c.get("/v1/usage").json()[0]["prompt_preview"].startswith("my secret plan")
    finally:
        s.stop()


def test_costs_leave_simulated_calls_out_unless_asked(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--simulate")
    try:
        with _client(s) as c:
            assert c.post("/v1/generate", json={"prompt": "hi", "model": "claude"}).json()["simulated"]
            assert c.get("/v1/costs").json() == []
            rows = c.get("/v1/costs", params={"include_simulated": "true"}).json()
            assert [(r["model"], r["calls"]) for r in rows] == [("anthropic:claude-haiku-5-5", 1)]
    finally:
        s.stop()


def test_no_local_path_or_credential_comes_back(service, fresh_sim):
    with _client(service) as c:
        health = c.get("/v1/health").json()
    home = str(Path.home())
    text = json.dumps(health)
    assert home not in text and os.environ["LLMCELLS_HOME"] not in text
    for row in health:
        if row["provider"] in ("claude-code", "gemini-cli", "codex"):
            assert not str(row["endpoint"]).startswith("/"), row


def test_the_ledgers_path_column_shows_a_file_name_not_its_folders(service, fresh_sim):
    # The path of the notebook or script that made each call is a local path: /v1/usage and
    # /v1/costs?by=path show its file name only, wherever its folder is.
    with _client(service) as c:
        assert c.post("/v1/generate", json={"prompt": "hi", "model": "claude"}).status_code == 200
        shown = [c.get("/v1/usage").json()[0]["path"], c.get("/v1/costs", params={"by": "path"}).json()[0]["path"]]
    assert shown == ["__main__.py", "__main__.py"], shown  # the service's own script


def test_scrub_takes_out_the_whole_of_a_path_under_a_local_folder():
    import tempfile

    from llmcells.serve_guard import scrub

    # /tmp (the temporary folder) is a prefix of this path; what follows it is a local path too
    for root in (tempfile.gettempdir(), str(Path.home()), os.getcwd()):
        assert scrub(f"open {root}/projects/acme-secret/nb.ipynb: no") == "open <path>: no", root
        assert scrub(f"at {root}") == "at <path>"


def test_scrub_takes_out_paths_credentials_and_secrets():
    from llmcells.serve_guard import scrub

    assert scrub("cwd '/home/ann/project' is not a folder") == "cwd '<path>' is not a folder"
    assert scrub("see C:\\Users\\ann\\x.pdf") == "see <path>"
    assert scrub("POST https://user:pw@proxy.example/v1?key=AIzaXYZ&alt=sse failed") == \
        "POST https://proxy.example/v1?key=***&alt=sse failed"
    assert scrub("POST /v1/generate: rate_limited") == "POST /v1/generate: rate_limited"


# ----- 4: every error in the documented shape ----------------------------------------------------


def test_no_response_may_be_stored_by_a_cache(service, fresh_sim):
    # Answers, ledger rows and the /docs page (whose URL and inline schema URL carry the token)
    # had no Cache-Control: a browser's disk cache, or a proxy, could keep them for the next user.
    with _client(service) as c:
        responses = [c.post("/v1/generate", json={"prompt": "hi", "model": "claude"}),
                     c.post("/v1/stream", json={"prompt": "hi", "model": "claude"}),
                     c.get("/v1/usage"), c.get("/v1/costs"), c.get("/openapi.json"),
                     c.get("/docs", params={"token": TOKEN}), c.get("/v1/generate"),
                     httpx.get(service.url + "/v1/usage"), httpx.get(service.url + "/livez")]
    for r in responses:
        assert r.headers.get_list("cache-control") == ["no-store"], (r.request.url, r.headers)
        assert r.headers.get("referrer-policy") == "no-referrer", r.request.url
    assert TOKEN in responses[5].text  # (the page that must not be kept)


def test_the_docs_page_runs_only_pinned_scripts_checked_by_their_hash(service):
    # The /docs page holds the token (its schema URL), and it ran Swagger UI from a CDN at the
    # floating tag swagger-ui-dist@5, with no integrity check: a compromised release would have
    # had the token. /redoc (FastAPI's default) loaded from the same CDN.
    from llmcells.serve import SWAGGER_UI

    with _client(service) as c:
        page = c.get("/docs", params={"token": TOKEN})
        redoc = c.get("/redoc")
    assert page.status_code == 200 and TOKEN in page.text
    assert redoc.status_code == 404
    loaded = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="(https?://[^"]+)"([^>]*)>', page.text)
    assert sorted(url for url, _ in loaded) == sorted(url for url, _ in SWAGGER_UI.values())
    for url, attrs in loaded:
        assert re.search(r"@\d+\.\d+\.\d+/", url), f"{url}: not pinned to one release"
        sri = dict(SWAGGER_UI.values())[url]
        assert f'integrity="{sri}"' in attrs and 'crossorigin="anonymous"' in attrs, (url, attrs)
        assert re.fullmatch(r"sha384-[A-Za-z0-9+/]{64}", sri)
    assert "fastapi.tiangolo.com" not in page.text  # (its favicon: no request leaves for it)


def test_errors_have_the_documented_shape_and_status(service):
    with _client(service) as c:
        def chunks():
            for _ in range(30):
                yield b'{"prompt": "' + b"x" * 1000  # 30 kB, no Content-Length: chunked

        over = c.post("/v1/generate", content=chunks(), headers={"content-type": "application/json"})
        assert "20000 bytes" in _shape(over, 413)
        assert "UTF-8" in _shape(c.post("/v1/generate", content=b'{"prompt": "\xff\xfe"}',
                                        headers={"content-type": "application/json"}), 422)
        _shape(c.post("/v1/generate", content=b'{"prompt": "hi"}', headers={"content-type": "text/plain"}), 415)
        _shape(c.post("/v1/generate", data={"prompt": "hi"}), 415)
        _shape(c.get("/v1/nosuch"), 404)
        _shape(c.get("/v1/generate"), 405)
        _shape(c.get("/v1/usage", params={"limit": "lots"}), 422)
        _shape(c.get("/v1/costs", params={"by": "nosuchkey"}), 400)


def test_wrong_tokens_are_rate_limited(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--rate-limit", "3")
    try:
        with _client(s, token="guess-guess") as guesser:
            assert [guesser.get("/v1/usage").status_code for _ in range(4)] == [401, 401, 401, 429]
    finally:
        s.stop()


def test_a_forwarded_for_header_does_not_make_a_new_client(fresh_sim, tmp_path):
    # The client is the address the connection comes from: an X-Forwarded-For a client writes
    # itself would give it a fresh bucket each time, and unlimited guesses of the token.
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--rate-limit", "3")
    try:
        with _client(s, token="guess-guess") as guesser:
            codes = [guesser.get("/v1/usage", headers={"x-forwarded-for": f"10.0.0.{i}"}).status_code
                     for i in range(6)]
        assert codes == [401, 401, 401, 429, 429, 429], codes
    finally:
        s.stop()


def _from(source: str, port: int, head: bytes):
    """A connection from the loopback address source that sends head; (socket, first bytes back)."""
    import socket

    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(head)
    return sock


def test_another_loopback_address_is_not_another_client(fresh_sim, tmp_path):
    # A local process may connect from any address of 127.0.0.0/8: counted apart, each was a
    # fresh rate bucket (unlimited guesses of the token) and a fresh connection cap (slowloris
    # again, with no token). Every loopback address is now one client.
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--rate-limit", "3", "--max-connections", "4")
    guess = b"GET /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer guess-guess\r\n" \
            b"Connection: close\r\n\r\n"
    held = []
    try:
        codes = []
        for i in range(2, 8):
            with _from(f"127.0.0.{i}", s.port, guess) as sock:
                codes.append(int(sock.recv(100).split(b" ")[1]))
        assert codes == [401, 401, 401, 429, 429, 429], codes
        held = [_from(f"127.0.1.{i}", s.port, b"GET /v1/usage HTTP/1.1\r\nX-Slow: ") for i in range(1, 5)]
        time.sleep(0.3)
        with _from("127.0.2.1", s.port, b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") as sock:
            try:
                first = sock.recv(100)
            except ConnectionError:
                first = b""
        assert first == b"", first  # closed unanswered: the four held count for 127.0.2.1 too
    finally:
        for sock in held:
            sock.close()
        s.stop()


def test_per_client_rate_and_concurrency_limits(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--rate-limit", "3", "--max-concurrent", "1")
    try:
        with _client(s) as c:
            assert [c.get("/v1/usage").status_code for _ in range(3)] == [200, 200, 200]
            over = c.get("/v1/usage")
            assert "Too many requests" in _shape(over, 429) and int(over.headers["retry-after"]) >= 1
    finally:
        s.stop()


def test_guesses_from_the_same_client_do_not_spend_the_token_holders_rate(fresh_sim, tmp_path):
    """Every loopback address is one client, and wrong tokens spent from its one bucket: any
    local process (or a web page's no-cors requests, which carry no Origin) could keep the
    token holder answered 429 by sending guesses. Guesses now have a bucket of their own."""
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--rate-limit", "3")
    try:
        with _client(s, token="guess-guess") as guesser:
            assert [guesser.get("/v1/usage").status_code for _ in range(5)] == [401, 401, 401, 429, 429]
        with _client(s, token=None) as bare:
            assert bare.get("/v1/usage").status_code == 429  # no token: the guessers' bucket
        with _client(s) as c:
            assert [c.get("/v1/usage").status_code for _ in range(4)] == [200, 200, 200, 429]
    finally:
        s.stop()
    fresh_sim.set_model("claude-haiku-5-5", ttft=0.05, tokens_per_s=20, output_tokens=40)  # ~2 s
    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--max-concurrent", "1")
    try:
        with _client(s) as c, _client(s) as c2:
            with c.stream("POST", "/v1/stream", json={"prompt": "slow", "model": "claude"}) as resp:
                lines = resp.iter_lines()
                next(lines)  # the first call is running
                busy = c2.post("/v1/generate", json={"prompt": "hi", "model": "claude"})
                assert "already has 1" in _shape(busy, 429) and busy.headers["retry-after"] == "1"
                assert any(line == "event: result" for line in lines)
            time.sleep(0.2)
            assert c2.post("/v1/generate", json={"prompt": "hi", "model": "claude"}).status_code == 200
    finally:
        s.stop()


def test_a_body_sent_slowly_counts_as_a_request_running(fresh_sim, tmp_path):
    # A body still on its way holds a connection and up to --max-body bytes of memory: without a
    # count, one client could open connection after connection (one per rate token) and never
    # finish any, so it counts against --max-concurrent from the moment it is let in.
    import socket

    s = _start(fresh_sim, tmp_path, "--token", TOKEN, "--max-concurrent", "1")
    slow = socket.create_connection(("127.0.0.1", s.port))
    try:
        slow.sendall(f"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}"
                     "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                     '{"prompt": "'.encode())
        time.sleep(0.5)  # the gate has let it in and is reading its body
        with _client(s) as c:
            busy = c.post("/v1/generate", json={"prompt": "hi", "model": "claude"})
            assert "already has 1" in _shape(busy, 429)
        slow.close()
        time.sleep(0.5)
        with _client(s) as c:  # once the slow client has gone, its place is free again
            assert c.post("/v1/generate", json={"prompt": "hi", "model": "claude"}).status_code == 200
    finally:
        slow.close()
        s.stop()


# ----- the allowlist itself ------------------------------------------------------------------------


def test_check_params_allows_generation_parameters_only():
    ok = {"max_tokens": 10, "max_output_tokens": 5, "stop": "x", "stop_sequences": ["a", "b"],
          "reasoning_effort": "high", "reasoning": {"effort": "low", "summary": "auto"},
          "thinking": {"type": "enabled", "budget_tokens": 2048}, "output_config": {"effort": "max"},
          "thinking_config": {"thinking_budget": -1, "include_thoughts": True, "thinking_level": "LOW"},
          "temperature": 0.5, "top_p": 1, "top_k": 40, "seed": 1, "presence_penalty": -1,
          "frequency_penalty": 0.5}
    assert check_params(ok) == ok and check_params(None) == {}
    for bad in ["http_options", "base_url", "extra_headers", "extra_body", "extra_query", "timeout",
                "api_key", "tools", "cwd", "tool_choice", "response_format", "metadata", "user",
                "store", "n", "model", "messages", "stream", "stream_options"]:
        with pytest.raises(ParamsError) as err:
            check_params({bad: 1})
        assert err.value.unknown and err.value.key == bad and repr(bad) in str(err.value)
    for bad in [{"temperature": 3}, {"temperature": float("nan")}, {"max_tokens": True},
                {"stop": []}, {"stop": ["x"] * 17}, {"reasoning_effort": "extreme"},
                {"thinking": {"type": "on"}}, {"top_k": 1.5}]:
        with pytest.raises(ParamsError) as err:
            check_params(bad)
        assert not err.value.unknown, bad
    with pytest.raises(ParamsError) as err:
        check_params({"thinking": {"type": "enabled", "http_options": {}}})
    assert err.value.unknown and err.value.key == "thinking.http_options"


def test_the_access_log_hides_the_token_of_a_browser_url(fresh_sim, tmp_path):
    s = _start(fresh_sim, tmp_path, "--access-log", env={"LLMCELLS_SERVE_TOKEN": "log-token-31337"})
    try:
        assert httpx.get(f"{s.url}/docs?token=log-token-31337").status_code == 200
        # the name percent-encoded: the query is read decoded, so this is the token too
        assert httpx.get(f"{s.url}/openapi.json?a=1&%74oken=log-token-31337").status_code == 200
        with _client(s, token="log-token-31337") as c:
            assert c.get("/v1/usage").status_code == 200
    finally:
        log = s.stop()
    assert "GET /docs?token=***" in log and "GET /v1/usage" in log  # the requests are logged
    assert "GET /openapi.json?a=1&%74oken=***" in log
    assert "log-token-31337" not in log


class _InProcess:
    """The service's app under uvicorn on a thread, on a free loopback port (for a test that must
    control the gate's clock, which a separate process would not let it do)."""

    def __init__(self, app, **config) -> None:
        import uvicorn

        from _serve import free_port

        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", proxy_headers=False,
                                                    **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the in-process service did not start"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_a_wrong_token_never_passes_when_the_bucket_refills_between_checks(monkeypatch):
    # The gate took from the client's bucket twice for a wrong token: once for the guess, once
    # for the rate. When the bucket was just under one token at the first take and refilled to
    # one by the second, the request went on to the handler with a wrong token (over loopback, a
    # client flooding guesses got through a few times a minute). Here the gate's clock steps 40 s
    # each time it is read, at one request a minute: every refill lands between two reads.
    from types import SimpleNamespace

    from llmcells import serve_guard
    from llmcells.serve import create_app

    now = [1000.0]

    def clock() -> float:
        now[0] += 40.0
        return now[0]

    monkeypatch.setattr(serve_guard, "time", SimpleNamespace(monotonic=clock))
    app = create_app(policy=serve_guard.Policy(token=TOKEN, rate_per_minute=1))
    s = _InProcess(app)
    try:
        with httpx.Client(base_url=s.url, headers={"authorization": "Bearer guess-guess"}) as c:
            codes = [c.get("/openapi.json").status_code for _ in range(8)]
        assert set(codes) <= {401, 429} and 401 in codes and 429 in codes, codes
        with httpx.Client(base_url=s.url, headers={"authorization": f"Bearer {TOKEN}"}) as c:
            assert 200 in [c.get("/openapi.json").status_code for _ in range(3)]  # the right one does
    finally:
        s.close()


def _dangling(port: int, count: int) -> list:
    """count connections that each send half a request's head and then nothing (slowloris)."""
    import socket

    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /v1/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(sock)
    return socks


def _answered(port: int) -> bool:
    """Whether a fresh connection gets an answer to GET /livez (False: closed unanswered)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(100).startswith(b"HTTP/1.1 200")
        except (ConnectionError, TimeoutError):
            return False


def test_a_client_cannot_hold_connections_without_end(fresh_sim, tmp_path):
    # Without a token, anyone who reaches the port could open connections that send a request's
    # head a byte at a time (or nothing): uvicorn kept each open for ever, and the gate never
    # saw them, until the server ran out of file descriptors. Now one client address holds at
    # most --max-connections (64) open: one more is closed unanswered, until one of them ends.
    from llmcells.serve_guard import MAX_CONNECTIONS

    s = _start(fresh_sim, tmp_path, "--token", TOKEN)
    socks = _dangling(s.port, MAX_CONNECTIONS)
    try:
        time.sleep(0.3)
        assert not _answered(s.port)
        socks.pop().close()
        time.sleep(0.3)
        assert _answered(s.port)
    finally:
        for sock in socks:
            sock.close()
        s.stop()


def test_a_connection_that_does_not_send_a_request_head_in_time_is_closed():
    # Each connection has head_timeout seconds to send a request's head (here 1 s, 10 s by
    # default), counted from when it opened or its last response ended.
    from llmcells import serve_guard
    from llmcells.serve import create_app

    policy = serve_guard.Policy(token=TOKEN, head_timeout=1.0)
    s = _InProcess(create_app(policy=policy), http=serve_guard.http_protocol(policy))
    port = int(s.url.rsplit(":", 1)[1])
    slow, = _dangling(port, 1)
    idle = socket_to(port)
    kept = None
    try:
        slow.settimeout(10)
        idle.settimeout(10)
        started = time.monotonic()
        assert slow.recv(100) == b"" and idle.recv(100) == b""  # both closed, unanswered
        assert 0.9 < time.monotonic() - started < 8
        # a connection that sends its requests in time is served, one after another
        kept = socket_to(port)
        kept.settimeout(10)
        for last in (False, True):
            kept.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                         (b"Connection: close\r\n" if last else b"") + b"\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                chunk = kept.recv(1000)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(0.2)
    finally:
        for sock in (slow, idle, kept):
            if sock is not None:
                sock.close()
        s.close()


def socket_to(port: int):
    import socket

    return socket.create_connection(("127.0.0.1", port))


def test_usage_shows_no_words_of_an_answer_that_missed_its_schema(service, simulated):
    # The host's own notebook call whose answer breaks its JSON schema: the error said which
    # value broke which rule, quoting up to 200 characters of the answer ("'...' does not match
    # '^[0-9]+$'"), and /v1/usage shows the error column to every client, prompts hidden or not.
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[0-9]+$"}},
              "required": ["code"]}
    r = llmcells.run(llmcells.ask("The launch code?", "claude", schema=schema, display=False))
    assert r.error_kind == "invalid_output" and '"code"' in r.text, r.error
    answer = json.loads(r.text)["code"]
    assert answer not in r.error and "pattern" in r.error  # the rule broken, not the words
    with _client(service) as c:
        rows = c.get("/v1/usage").json()
    row, = [x for x in rows if x["error_kind"] == "invalid_output"]
    assert answer not in json.dumps(rows) and "does not match the schema" in row["error"]


@pytest.mark.parametrize("field", ['"system": "a\\ud800"', '"params": {"stop": ["\\udfff"]}'])
def test_a_lone_surrogate_anywhere_in_the_body_is_a_422_and_nothing_is_sent(service, fresh_sim,
                                                                           field):
    # JSON may write "\ud800", which is no Unicode text: the prompt was refused, but a system
    # prompt or a stop sequence with one went out as a call that failed in the SDK, an error
    # row in the ledger, and a 200. Like invalid UTF-8, it is a 422 now, with nothing sent.
    with _client(service) as c:
        for endpoint, model in [("/v1/generate", '"model": "claude"'), ("/v1/stream", '"model": "claude"'),
                                ("/v1/compare", '"models": ["claude"]')]:
            resp = c.post(endpoint, content='{"prompt": "hi", %s, %s}' % (model, field),
                          headers={"content-type": "application/json"})
            assert "not valid Unicode text" in _shape(resp, 422)
    assert fresh_sim.requests == [] and llmcells.usage().empty


def _many_rows(n: int) -> None:
    """The ledger's one row copied until it has n (a host's long history)."""
    import sqlite3

    path = Path(os.environ["LLMCELLS_HOME"]) / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(calls)")]
        picked = ", ".join("lower(hex(randomblob(16)))" if c == "call_id" else f'"{c}"' for c in cols)
        while db.execute("SELECT count(*) FROM calls").fetchone()[0] < n:
            db.execute(f"INSERT INTO calls SELECT {picked} FROM calls LIMIT ?",
                       (n - db.execute("SELECT count(*) FROM calls").fetchone()[0],))


def test_usage_takes_at_most_ten_thousand_rows(service, fresh_sim):
    # limit went up to 100,000: one request made about 110 MB of JSON, and held the service's
    # event loop for tens of seconds while it did
    with _client(service) as c:
        assert "less than or equal to 10000" in _shape(c.get("/v1/usage", params={"limit": 10_001}), 422)
        assert c.get("/v1/usage", params={"limit": 10_000}).status_code == 200


@pytest.mark.slow
def test_a_large_usage_request_does_not_stall_other_clients(service, fresh_sim):
    # The rows of /v1/usage were turned into JSON on uvicorn's event loop: a few seconds for
    # thousands of rows, during which no other client was answered (a /livez took as long as the
    # whole request). Now that work is on a worker thread, and other requests go on.
    with _client(service) as c:
        assert c.post("/v1/generate", json={"prompt": "hi", "model": "claude"}).status_code == 200
    _many_rows(6000)
    waits: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=service.url, timeout=60) as other:
            while not done.is_set():
                started = time.monotonic()
                assert other.get("/livez").status_code == 200
                waits.append(time.monotonic() - started)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    time.sleep(0.3)
    try:
        with _client(service) as c:
            started = time.monotonic()
            rows = c.get("/v1/usage", params={"limit": 6000}).json()
            took = time.monotonic() - started
    finally:
        done.set()
        prober.join()
    assert len(rows) == 6000
    assert max(waits) < max(0.35 * took, 0.2), (max(waits), took)


def test_a_client_cannot_mark_providers_down_with_a_short_health_deadline(service, fresh_sim):
    # A provider that does not list its models within the health check's deadline counts as down,
    # and fallback chains try it last for the next ten minutes, for every client of the service.
    # With ?timeout=0.001 a client marked every healthy provider down (and with a deadline
    # between two providers' latencies, sent other clients' chains to the model it chose).
    # (The default deadline, the floor now, is served as before: test_serve.py checks it.)
    from llmcells.healthcheck import DEFAULT_TIMEOUT_S

    with _client(service) as c:
        for short in (0.001, DEFAULT_TIMEOUT_S - 0.5):
            assert "timeout" in _shape(c.get("/v1/health", params={"timeout": short}), 422)


@pytest.mark.parametrize("option, value, line", [
    ("--max-concurrent", "-1", "must be at least 0, not -1"),
    ("--max-connections", "-5", "must be at least 0, not -5"),
    ("--rate-limit", "-2", "must be at least 0, not -2"),
    ("--max-timeout", "0", "must be more than 0, not 0"),
    ("--max-body", "0", "must be at least 1, not 0"),
])
def test_a_negative_limit_is_refused_at_start(capsys, option, value, line):
    """--max-concurrent -1 started a service that refused every request (429) with nothing to
    say why; a limit below its floor is now refused on the command line."""
    from llmcells import serve

    with pytest.raises(SystemExit) as stop:
        serve.main([option, value])
    assert stop.value.code == 2 and f"argument {option}: {line}" in capsys.readouterr().err
