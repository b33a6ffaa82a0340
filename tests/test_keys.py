"""Stored API keys: the owner-only file and the OS keyring (an in-memory keyring backend), the
environment winning over both, `python -m llmcells keys` and `%llmcells keys`, and a stored key
reaching the real SDK without ever being printed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import llmcells
from llmcells import keys, models
from llmcells.errors import ConfigError, MissingKeyError, redact

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-stored-test-key-0123456789"


def _home() -> Path:
    return Path(os.environ["LLMCELLS_HOME"])


def test_the_file_store_is_owner_only_and_the_environment_wins(monkeypatch):
    assert keys.stored_key("openai") is None
    where = keys.set_key("openai", KEY + "\n")  # a pasted newline is not part of the key
    path = _home() / "keys.json"
    assert where == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in _home().iterdir() if p.name.startswith(".keys-")] == []  # no temp left
    spec = models.resolve("chatgpt")
    assert models.api_key(spec) == KEY and models.key_status()["openai"]
    assert models.api_key(models.resolve("codex")) == KEY  # an agent CLI uses its API's key
    assert redact(f"the key is {KEY}") == "the key is ***"  # registered as a secret
    rows = keys.status()
    assert KEY not in repr(rows)
    assert rows[0] == {"provider": "openai", "key": "set", "from": f"file {path}"}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-000")
    assert models.api_key(spec) == "sk-from-the-environment-000"
    assert keys.status()[0]["from"] == "environment (OPENAI_API_KEY)"
    monkeypatch.delenv("OPENAI_API_KEY")
    assert keys.unset_key("openai") and not keys.unset_key("openai")
    with pytest.raises(MissingKeyError, match="keys set openai"):
        models.api_key(spec)


def test_bad_input_is_refused_and_stores_nothing():
    with pytest.raises(ConfigError, match="Unknown provider 'opnai'"):
        keys.set_key("opnai", KEY)
    with pytest.raises(ConfigError, match="empty or has spaces"):
        keys.set_key("openai", "  ")
    with pytest.raises(ConfigError, match="empty or has spaces"):
        keys.set_key("openai", "sk-a b")
    assert not (_home() / "keys.json").exists()
    assert keys.provider_name("Gemini") == "google"
    # the magic's name is what a newcomer types (%%claude: keys set claude), and a slip gets a hint
    assert [keys.provider_name(n) for n in ("claude", "chatgpt")] == ["anthropic", "openai"]
    with pytest.raises(ConfigError, match=r"Unknown provider 'opnai' for a key \(did you mean openai\?\)"):
        keys.provider_name("opnai")


def test_a_damaged_key_file_is_one_line_not_a_traceback():
    (_home()).mkdir(parents=True, exist_ok=True)
    (_home() / "keys.json").write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the stored keys"):
        keys.stored_key("anthropic")


def test_a_stored_key_reaches_the_sdk_and_is_never_shown(fresh_sim, monkeypatch):
    """The real OpenAI adapter pointed at the simulator, which refuses keys starting "invalid":
    a refused stored key proves it was the one sent; the error never holds it."""
    monkeypatch.setenv("OPENAI_BASE_URL", fresh_sim.url + "/v1")
    keys.set_key("openai", "invalid-stored-key-9876")
    r = llmcells.run(llmcells.ask("hi", model="chatgpt", display=False))
    assert r.error_kind == "authentication" and "invalid-stored-key-9876" not in (r.error or "")
    keys.set_key("openai", KEY)
    r = llmcells.run(llmcells.ask("hi", model="chatgpt", display=False))
    assert r.ok, r.error
    assert KEY not in repr(llmcells.usage().to_dict())


class _MemoryKeyring:
    """A keyring backend holding passwords in a dict (keyring's own backend interface)."""

    def __new__(cls):
        from keyring.backend import KeyringBackend

        class Memory(KeyringBackend):
            priority = 1

            def __init__(self):
                super().__init__()
                self.store: dict[tuple[str, str], str] = {}

            def get_password(self, service, username):
                return self.store.get((service, username))

            def set_password(self, service, username, password):
                self.store[(service, username)] = password

            def delete_password(self, service, username):
                from keyring.errors import PasswordDeleteError

                if (service, username) not in self.store:
                    raise PasswordDeleteError("not there")
                del self.store[(service, username)]

        return Memory()


@pytest.fixture
def memory_keyring():
    keyring = pytest.importorskip("keyring")
    from keyring.backends import null

    backend = _MemoryKeyring()
    keyring.set_keyring(backend)
    keys.forget_cache()
    yield backend
    keyring.set_keyring(null.Keyring())
    keys.forget_cache()


def test_the_keyring_is_used_when_it_has_a_backend(memory_keyring):
    where = keys.set_key("anthropic", KEY)
    assert where == "keyring (Memory)"
    assert memory_keyring.store == {("llmcells", "anthropic"): KEY}
    # the file holds the provider's name only, so that key_status() never imports keyring
    assert json.loads((_home() / "keys.json").read_text()) == {"in_keyring": ["anthropic"]}
    assert models.key_status()["anthropic"] and not models.key_status()["openai"]
    assert models.api_key(models.resolve("claude")) == KEY
    assert keys.status()[1] == {"provider": "anthropic", "key": "set", "from": "OS keyring"}
    assert keys.unset_key("anthropic") and memory_keyring.store == {}
    assert keys.stored_key("anthropic") is None and not keys.unset_key("anthropic")
    assert json.loads((_home() / "keys.json").read_text()) == {"in_keyring": []}


def test_the_null_keyring_means_the_file_store():
    pytest.importorskip("keyring")
    assert keys._keyring() is None  # conftest selects keyring's null backend for every test
    assert keys.store_name().endswith("keys.json")


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "llmcells", "keys", *args], input=stdin, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_command_line_sets_lists_and_unsets_without_printing_the_key():
    p = _cli("set", "openai", stdin=KEY + "\n")
    assert p.returncode == 0 and p.stdout.startswith("Stored the openai key in "), p.stderr
    p = _cli("list")
    assert p.returncode == 0 and KEY not in p.stdout + p.stderr
    assert p.stdout.splitlines()[0].split()[:2] == ["openai", "set"]
    assert p.stdout.splitlines()[1].split() == ["anthropic", "not", "set"]
    p = _cli("set", "nosuch", stdin=KEY)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Unknown provider" in p.stderr
    assert _cli("unset", "openai").stdout == "Forgot the stored openai key.\n"
    assert _cli("unset", "openai").stdout == "No openai key was stored.\n"


def test_the_magic_lists_sets_and_unsets(shell, monkeypatch):
    import getpass

    from IPython.core.error import UsageError

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": KEY)
    shell.run_line_magic("llmcells", "keys set google")
    frame = shell.run_line_magic("llmcells", "keys")
    assert list(frame.key) == ["not set", "not set", "set"] and KEY not in frame.to_string()
    shell.run_line_magic("llmcells", "keys unset google")
    assert keys.stored_key("google") is None
    with pytest.raises(UsageError, match="keys takes"):
        shell.run_line_magic("llmcells", "keys add google")


def test_keys_set_in_a_front_end_without_input_is_one_line(shell, monkeypatch):
    """nbclient, papermill and voila take no input: `%llmcells keys set` showed the 8-frame
    StdinNotImplementedError traceback."""
    import getpass

    from IPython.core.error import StdinNotImplementedError, UsageError

    def no_input(prompt=""):
        raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.")

    monkeypatch.setattr(getpass, "getpass", no_input)
    with pytest.raises(UsageError, match="can't ask for a key: set ANTHROPIC_API_KEY, or run "
                                         "`python -m llmcells keys set anthropic` in a terminal"):
        shell.run_line_magic("llmcells", "keys set anthropic")


def test_a_key_read_from_the_keyring_is_kept_in_the_session_and_reset_forgets_it(memory_keyring):
    """The keyring's answers are kept (a lookup can be slow), in the Session with every other
    cache: reset() reads the keyring again. They were kept in a module dict that reset() missed,
    so a key changed in the keyring (by another program) was read anew only in a new process."""
    from llmcells.session import session

    keys.set_key("anthropic", KEY)
    assert keys.stored_key("anthropic") == KEY
    changed = KEY.replace("0", "9")
    memory_keyring.store[("llmcells", "anthropic")] = changed  # another program's keyring write
    assert keys.stored_key("anthropic") == KEY  # kept: the keyring is not asked again
    session.reset()
    assert keys.stored_key("anthropic") == changed
