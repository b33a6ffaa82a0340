"""Keys never leak: not in Results, reprs, frames, printed output, logs (llmcells' own and, at
DEBUG, the SDKs' and httpx's), exception messages, the ledger file's bytes, `%llmcells models`,
nor a notebook's saved outputs; also when a provider echoes the key back in its error message."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import llmcells
from llmcells import errors, ledger, magics, models
from llmcells.config import settings

KEYS = {"OPENAI_API_KEY": "sk-proj-LEAKCHECK0penai1234567890",
        "ANTHROPIC_API_KEY": "sk-ant-LEAKCHECKanthropic1234567890",
        "GOOGLE_API_KEY": "AIzaLEAKCHECKgoogle1234567890abcdef",
        # Amazon Bedrock's route: AWS's credential chain reads these (never llmcells)
        "AWS_ACCESS_KEY_ID": "AKIALEAKCHECKAWS0001",
        "AWS_SECRET_ACCESS_KEY": "LEAKCHECKawsSecret1234567890abcdefghij"}
# An OpenAI-compatible endpoint whose key has none of the well-known shapes (sk-..., AIza...).
ENDPOINT_KEY = "zzlocal-LEAKCHECK-endpoint-ABCDEFGHIJKLMNOP"
ALL_KEYS = [*KEYS.values(), ENDPOINT_KEY]
PATHS = ["chatgpt", "openai-responses:gpt-6-luna", "claude", "gemini"]
MAGICS = [("chatgpt", ""), ("chatgpt", "-m openai-responses:gpt-6-luna"), ("claude", ""),
          ("gemini", "")]
FAULTS = ["ok", "401", "404", "400", "429", "500", "529", "midstream_error", "cut",
          "cut_mid_event", "slow_first_token", "malformed", "drop"]
SDK_LOGGERS = ["", "llmcells", "httpx", "httpx2", "httpcore", "httpcore2", "openai", "anthropic",
               "google", "google_genai", "urllib3", "asyncio"]


def _fragments(key: str, n: int = 12) -> set[str]:
    return {key[i:i + n] for i in range(len(key) - n + 1)}


def assert_no_key(where: str, text: str | bytes, keys=ALL_KEYS) -> None:
    """No key, nor any 12-character piece of one, in text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    for key in keys:
        for piece in _fragments(key):
            if piece in text:
                at = text.index(piece)
                pytest.fail(f"a piece of a key ({piece!r}) leaked into {where}: "
                            f"...{text[max(0, at - 80):at + 80]!r}...")


@pytest.fixture
def raised(monkeypatch):
    """Every LLMError message constructed while the test runs (raised or turned into a Result)."""
    seen: list[str] = []
    original = errors.LLMError.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(f"{type(self).__name__}: {self}")

    monkeypatch.setattr(errors.LLMError, "__init__", spy)
    return seen


@pytest.fixture
def debug_logs(caplog):
    """Every logger at DEBUG, the SDKs' and httpx's included."""
    saved = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def keyed(fresh_sim, monkeypatch):
    """The three providers reached through their base-URL env vars, with recognisable keys."""
    models.set_simulator(None)
    for name, value in {**fresh_sim.env(), **KEYS}.items():
        monkeypatch.setenv(name, value)
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.2, max_attempts=2, store_text=True)
    return fresh_sim


def _ledger_bytes() -> bytes:
    ledger.close()
    p = ledger.path()
    out = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        f = Path(str(p) + suffix)
        if f.exists():
            out += f.read_bytes()
    return out


def _home_bytes() -> bytes:
    """Every file llmcells wrote under LLMCELLS_HOME (the ledger, the cache, batch stores)."""
    from llmcells.config import home

    ledger.close()
    return b"".join(f.read_bytes() for f in home().rglob("*") if f.is_file())


@pytest.mark.parametrize("fault", FAULTS)
def test_no_key_anywhere_on_any_path(keyed, shell, fault, raised, debug_logs, capfd):
    haystack: dict[str, str] = {}
    if fault == "slow_first_token":
        settings.update(ttft_timeout=0.3)
    if fault != "ok":
        keyed.inject(fault, times=None, retry_after=0.01, delay=2.0, after_tokens=3)

    results = []
    for model in PATHS:
        r = llmcells.run(llmcells.ask("What is a tide?", model, display="text"))
        results.append(r)
    c = llmcells.run(llmcells.compare("What is a tide?", PATHS, display="text"))
    results += list(c)
    haystack["comparison repr"] = repr(c)
    haystack["comparison frame"] = c.to_frame().to_string() + c.to_frame().to_json()
    if hasattr(c, "_repr_html_"):
        haystack["comparison html"] = str(c._repr_html_())
    if fault == "ok":
        df = llmcells.run(llmcells.batch(["one", "two"], models=PATHS, display=False))
        haystack["batch frame"] = df.to_string() + df.to_json()

    for magic, line in MAGICS:
        magics.conversations.clear()
        shell.run_cell_magic(magic, line, "What is a tide?")          # with its text display
        results.append(shell.user_ns["_llm"])
    shell.run_cell_magic("compare", " ".join(PATHS), "What is a tide?")
    results += list(shell.user_ns["_llm"])

    if fault == "ok":
        assert all(r.ok for r in results), [(r.model, r.error) for r in results if not r.ok]
    elif fault in ("401", "404", "400", "500", "529", "429", "drop", "slow_first_token"):
        assert all(not r.ok for r in results)
    for i, r in enumerate(results):
        haystack[f"result {i} error"] = str(r.error)
        haystack[f"result {i} repr"] = repr(r)
        haystack[f"result {i} markdown"] = r._repr_markdown_()
        haystack[f"result {i} text"] = r.text

    haystack["usage frame"] = llmcells.usage().to_string() + llmcells.usage().to_json()
    haystack["costs frame"] = llmcells.costs(by=["model", "provider"]).to_string()
    haystack["ledger file bytes"] = _home_bytes().decode("utf-8", "replace")
    out = capfd.readouterr()
    haystack["stdout"], haystack["stderr"] = out.out, out.err
    haystack["logs (DEBUG, all loggers)"] = debug_logs.text
    haystack["LLMError messages"] = "\n".join(raised)
    haystack["simulator request log"] = json.dumps([q.to_dict() for q in keyed.requests])
    for where, text in haystack.items():
        assert_no_key(where, text)
    # the keys really were sent (the check above would pass trivially otherwise)
    assert keyed.requests and all(q.headers.get("authorization", q.headers.get("x-api-key",
                                  q.headers.get("x-goog-api-key"))) == "***" for q in keyed.requests)


def test_the_simulators_401_echoes_the_key_masked_like_the_real_api(keyed):
    """OpenAI's real 401 says 'Incorrect API key provided: sk-proj-**...**7890'; so does the
    simulator. llmcells replaces the provider's message by its own one-liner."""
    import httpx2

    r = httpx2.post(keyed.url + "/v1/chat/completions",
                    headers={"authorization": "Bearer invalid-" + KEYS["OPENAI_API_KEY"]},
                    json={"model": "gpt-6-luna", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401
    message = r.json()["error"]["message"]
    assert message.startswith("Incorrect API key provided: inv") and message.endswith(
        "You can find your API key at https://platform.openai.com/account/api-keys.")
    assert "7890" in message and "LEAKCHECK" not in message        # masked, as the real API does


# ----- a server that echoes the whole key back in its errors (older APIs, proxies, gateways) ---


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with an error whose message carries the key it was sent."""

    status = 401
    padding = 0

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        key = (self.headers.get("authorization", "").removeprefix("Bearer ").strip()
               or self.headers.get("x-api-key") or self.headers.get("x-goog-api-key") or "")
        pad = "x" * type(self).padding
        status = type(self).status
        if self.path.startswith("/v1/messages"):
            body = {"type": "error", "error": {"type": "authentication_error" if status == 401
                                               else "api_error",
                                               "message": f"{pad}invalid x-api-key {key}"}}
        elif "/models/" in self.path:
            body = {"error": {"code": status, "message": f"{pad}API key not valid: {key}",
                              "status": "UNAUTHENTICATED" if status == 401 else "INTERNAL"}}
        else:
            # the real API's wording, or a gateway's that names no "API key" at all
            said = (f"Incorrect API key provided: {key}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.") if key.startswith("sk-") \
                else f"the token {key} is not valid for this organisation"
            body = {"error": {"message": pad + said,
                              "type": "invalid_request_error" if status < 500 else "server_error",
                              "param": None, "code": "invalid_api_key" if status == 401 else None}}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    _EchoHandler.status, _EchoHandler.padding = 401, 0


@pytest.mark.parametrize("status", [401, 400, 500])
@pytest.mark.parametrize("padding", [0, 150, 170, 185, 195, 280])
def test_a_key_echoed_in_full_by_the_provider_is_redacted(echo_server, monkeypatch, raised,
                                                          debug_logs, capfd, status, padding):
    """The whole key in the provider's message, anywhere in it (also where llmcells shortens the
    message to one line, so that only a piece of the key would be left)."""
    _, url = echo_server
    _EchoHandler.status, _EchoHandler.padding = status, padding
    models.set_simulator(None)
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_BASE_URL", url + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", url)
    llmcells.add_endpoint("echo", url + "/v1", api_key=ENDPOINT_KEY)
    settings.update(retry_initial_wait=0.01, retry_max_wait=0.1, max_attempts=2)
    c = llmcells.run(llmcells.compare("hi", [*PATHS, "echo:some-model"], display="text"))
    assert all(r.status == "error" for r in c), [(r.model, r.status, r.error) for r in c]
    haystack = {"errors": "\n".join(str(r.error) for r in c), "reprs": repr(c),
                "frame": c.to_frame().to_string(), "ledger": _ledger_bytes().decode("utf-8", "replace"),
                "usage": llmcells.usage().to_string(), "LLMError messages": "\n".join(raised),
                "llmcells logs": "\n".join(r.getMessage() for r in debug_logs.records
                                           if r.name.startswith("llmcells"))}
    out = capfd.readouterr()
    haystack["stdout"], haystack["stderr"] = out.out, out.err
    for where, text in haystack.items():
        assert_no_key(where, text)


def test_sdk_debug_logs_do_not_carry_the_key_either(echo_server, monkeypatch, debug_logs):
    """What the SDKs and httpx log at DEBUG when the user turns it on: request options, headers
    received, status lines. Checked here so that a change in an SDK that starts logging the
    Authorization header (or the echoed error body) is noticed."""
    _, url = echo_server
    models.set_simulator(None)
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_BASE_URL", url + "/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", url)
    c = llmcells.run(llmcells.compare("hi", PATHS, display=False))
    assert all(r.error_kind == "authentication" for r in c), [r.error for r in c]
    sdk = [r for r in debug_logs.records if not r.name.startswith("llmcells")]
    assert sdk, "no SDK debug records were captured: the check would be vacuous"
    assert_no_key("SDK/httpx DEBUG logs", "\n".join(f"{r.name}: {r.getMessage()}" for r in sdk))


def test_missing_key_and_models_magic_never_show_keys(shell, keyed, monkeypatch, capfd, raised):
    frame = shell.run_line_magic("llmcells", "models")
    routes = frame["alias"].isin(["azure:MODEL", "vertex:MODEL"])  # cloud routes: not configured here
    assert set(frame[~routes]["key set"]) == {"yes"} and set(frame[routes]["key set"]) == {"no"}
    text = frame.to_string() + frame.to_json()
    text += json.dumps(shell.run_line_magic("llmcells", "config"), default=str)
    shell.run_line_magic("llmcells", "help")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    from IPython.core.error import UsageError

    with pytest.raises(UsageError) as err:
        shell.run_cell_magic("claude", "--no-display", "hi")
    text += str(err.value)
    out = capfd.readouterr()
    for where, t in {"models/config/help": text, "stdout": out.out, "stderr": out.err,
                     "LLMError messages": "\n".join(raised)}.items():
        assert_no_key(where, t)


@pytest.mark.kernel
def test_a_saved_notebook_has_no_key(keyed, tmp_path, monkeypatch):
    """A real kernel runs the magics (streaming display, an error card, the models table); the
    notebook it saves carries no key."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    keyed.inject("401", provider="anthropic", times=None)
    src = str(Path(__file__).resolve().parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", src)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in [
        "%load_ext llmcells",
        "%%compare chatgpt openai-responses:gpt-6-luna claude gemini\nWhat is a tide?",
        "%%claude\nhello",
        "%llmcells models",
        "_llm",
        "%llmcells usage",
        "import os; sorted(k for k in os.environ if k.endswith('_API_KEY'))",
    ]]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(saved))
    text = saved.read_text(encoding="utf-8")
    assert "OPENAI_API_KEY" in text          # the cells did run in a kernel that had the keys
    assert "rejected the API key" in text     # the error card is in the saved outputs
    assert_no_key("the saved notebook", text)
