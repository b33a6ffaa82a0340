"""API keys kept for the user: set, list and unset them in the OS keyring, or in an owner-only file.

An environment variable (OPENAI_API_KEY, ...) always wins over a stored key. The store is the OS
keyring when the optional `keyring` package is importable and has a real backend, else
`$LLMCELLS_HOME/keys.json`, created readable by its owner only (0600) and replaced atomically.
That file also lists (names only) the providers whose key is in the keyring, so asking whether
a key exists never imports keyring.
A key read from either place is registered as a secret, so it is masked wherever llmcells shows
or stores text; nothing here ever prints a key.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .session import session

SERVICE = "llmcells"  # the keyring's service name; the username is the provider
FILE_NAME = "keys.json"
KEYRING_INDEX = "in_keyring"  # the file's list of providers whose key is in the keyring


def providers() -> dict[str, tuple[str, ...]]:
    """Each API provider that takes a key, with the environment variables it is read from
    (an agent CLI uses the key of the API it calls: claude-code Anthropic's, and so on)."""
    from .registry import PROVIDERS

    return {p: tuple(row.key_env) for p, row in PROVIDERS.items() if row.kind == "api" and row.key_env}


def owner(provider: str) -> str:
    """The provider whose stored key `provider` uses: itself, or for an agent CLI its API."""
    from .registry import PROVIDERS

    row = PROVIDERS.get(provider)
    return (row.price_as or provider) if row is not None else provider


def provider_name(provider: str) -> str:
    """The provider a user typed (openai, anthropic, google, or the alias of its magic: chatgpt,
    claude, gemini), checked; ConfigError if unknown."""
    from .registry import PROVIDERS

    known = providers()
    name = (provider or "").strip().lower()
    # the names people type for a provider: its magic's (claude) and its id synonyms (gemini)
    named = {n: p for p, row in PROVIDERS.items() if p in known for n in (row.alias, *row.synonyms)}
    name = named.get(name, name)
    if name not in known:
        from .errors import ConfigError, did_you_mean

        raise ConfigError(f"Unknown provider {provider!r} for a key{did_you_mean(name, known)}: "
                          f"one of {', '.join(known)}.")
    return name


def _keyring() -> Any | None:
    """The keyring module when it is installed and has a usable backend, else None (imported
    only when a key is looked up: it is not needed to load the extension)."""
    try:
        import keyring
        from keyring.backends import fail, null
    except ImportError:  # not installed: the file store serves
        return None
    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring configuration: the file store serves
        from ._log import swallowed

        swallowed("finding the OS keyring's backend", exc)
        return None
    if isinstance(backend, (fail.Keyring, null.Keyring)):
        return None
    return keyring


def store_name() -> str:
    """Where `set` puts a key: 'keyring (BACKEND)' or the file's path."""
    kr = _keyring()
    if kr is not None:
        return f"keyring ({type(kr.get_keyring()).__name__})"
    return str(_path())


def _path() -> Path:
    from .config import home

    return home() / FILE_NAME


def _read_file() -> dict[str, Any]:
    path = _path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as err:
        from .errors import ConfigError

        raise ConfigError(f"{path}: cannot read the stored keys ({type(err).__name__}); "
                          "remove the file and set the keys again.") from None
    return data if isinstance(data, dict) else {}


def _file_keys() -> dict[str, str]:
    """provider -> key, for the keys held in the file itself."""
    return {k: v for k, v in _read_file().items() if k in providers() and isinstance(v, str)}


def _in_keyring() -> list[str]:
    """The providers whose key was put in the OS keyring (names only): so that finding out
    whether a key exists never imports keyring (half a second on a busy machine)."""
    names = _read_file().get(KEYRING_INDEX, [])
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _write_file(data: dict[str, Any]) -> None:
    """Write the file atomically (a temporary file in the same folder, then a rename), created
    0600 from the start so the key is never readable by others, not even for a moment."""
    path = _path()
    fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def set_key(provider: str, key: str) -> str:
    """Store `key` for `provider` (openai, anthropic, google); returns where it went."""
    from .errors import ConfigError, register_secret

    name = provider_name(provider)
    key = (key or "").strip()
    if not key or any(c.isspace() for c in key):
        raise ConfigError("That key is empty or has spaces in it: nothing was stored.")
    register_secret(key)
    data = _read_file()
    kr = _keyring()
    if kr is not None:
        kr.set_password(SERVICE, name, key)
        session.keyring_keys[name] = key
        data.pop(name, None)
        data[KEYRING_INDEX] = sorted(set(_in_keyring()) | {name})
    else:
        data[name] = key
    _write_file(data)
    return store_name()


def unset_key(provider: str) -> bool:
    """Forget the stored key of `provider`; False when none was stored (the environment is
    left alone)."""
    name = provider_name(provider)
    session.keyring_keys.pop(name, None)
    data = _read_file()
    done = data.pop(name, None) is not None
    if name in _in_keyring():
        data[KEYRING_INDEX] = [n for n in _in_keyring() if n != name]
        kr = _keyring()
        if kr is not None:
            from keyring.errors import PasswordDeleteError

            try:
                kr.delete_password(SERVICE, name)
                done = True
            except PasswordDeleteError:
                pass
    if data != _read_file():
        _write_file(data)
    return done


def where(provider: str) -> str | None:
    """'file' or 'keyring' when a key is stored for `provider`, else None (cheap: no keyring)."""
    provider = owner(provider)
    if provider in _file_keys():
        return "file"
    return "keyring" if provider in _in_keyring() else None


def stored_key(provider: str) -> str | None:
    """The key stored for `provider` (an agent CLI: for its API), registered as a secret; None
    when there is none. The file is read on every lookup (a key set from a terminal reaches a
    running kernel); a key found in the keyring is kept in the session (a lookup can be slow)."""
    from .errors import register_secret

    provider = owner(provider)
    key = _file_keys().get(provider)
    if key is None and provider in _in_keyring():
        cached = session.keyring_keys.get(provider)
        if cached is not None:
            return cached
        kr = _keyring()
        try:
            key = kr.get_password(SERVICE, provider) if kr is not None else None
        except Exception as exc:  # a locked or broken keyring: as if no key were stored
            from ._log import swallowed

            swallowed(f"reading the {provider} key from the keyring", exc)
            key = None
        if key:
            session.keyring_keys[provider] = key
    register_secret(key)
    return key or None


def lookup(provider: str) -> tuple[str, str] | None:
    """(key, where from) for `provider`: its environment variable first, then the store."""
    from .errors import register_secret

    for env in providers().get(provider, ()):
        if os.environ.get(env):
            register_secret(os.environ[env])
            return os.environ[env], env
    key = stored_key(provider)
    return (key, where(provider) or "file") if key else None


def status() -> list[dict[str, str]]:
    """One row per provider: whether it has a key and where from (never the key)."""
    rows = []
    for provider, envs in providers().items():
        found = lookup(provider)
        source = "" if found is None else (
            f"environment ({found[1]})" if found[1] in envs else
            "OS keyring" if found[1] == "keyring" else f"file {_path()}")
        rows.append({"provider": provider, "key": "set" if found else "not set", "from": source})
    return rows


def forget_cache() -> None:
    """Read the store again on the next lookup (another process changed it); `reset()` does too."""
    session.keyring_keys.clear()
