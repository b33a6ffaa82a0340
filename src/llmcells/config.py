"""User settings: defaults for calls, timeouts, retries and display, in one place.

`llmcells.configure(...)` and `%llmcells config` change them for the session.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import errors
from ._log import swallowed
from .errors import ConfigError, did_you_mean


@dataclass
class Settings:
    """Session-wide defaults. Every call can override the call-level ones."""

    compare_models: list[str] = field(default_factory=lambda: ["chatgpt", "claude", "gemini"])
    temperature: float | None = None
    max_tokens: int | None = None
    system: str | None = None
    # Timeouts, in seconds. ttft: from sending a request to its first token.
    connect_timeout: float = 5.0
    ttft_timeout: float = 120.0
    timeout: float = 600.0
    # Retries on 429 / 5xx / 529 / connection errors, before any token was shown.
    max_attempts: int = 4
    retry_initial_wait: float = 0.5
    retry_max_wait: float = 30.0
    # Batches: a model that fails this many times in a row (after retries) is skipped for
    # fallback_cooldown seconds (fallback.Breaker).
    fallback_after: int = 3
    fallback_cooldown: float = 60.0
    # Anthropic requires max_tokens; this is what is sent when the user gave none. None: the
    # model's own default from data/models.toml (16000 for Claude: thinking counts toward it).
    anthropic_default_max_tokens: int | None = None
    # Display: at most this many repaints per second per card.
    display_fps: float = 20.0
    # Ledger: keep full prompts and answers (off: a hash and a short preview only).
    store_text: bool = False
    # Cache identical requests (batch and compare); off unless asked for.
    cache: bool = False
    # "chat" (Chat Completions) or "responses" for OpenAI models.
    openai_api: str = "chat"
    # Replay recorded answers of identical requests at $0 (see replay.py); off unless asked for.
    replay: bool = False
    # The replay file (JSONL); None: llmcells-replay.jsonl in the working folder (the notebook's).
    replay_path: str | None = None
    # OpenTelemetry spans and metrics (otel.py): None follows the OTEL_* environment.
    otel: bool | None = None
    # The project tag of ledger rows (costs(by="project")).
    project: str | None = None
    # Where the ledger lives: None is SQLite under LLMCELLS_HOME (or $LLMCELLS_LEDGER when set);
    # "postgresql://user@host/db" a shared ledger in PostgreSQL (ledger_pg.py).
    ledger: str | None = None
    # Errors from Python in IPython: one line (off), or the full traceback (on), as %xmode Verbose.
    debug: bool = False
    # Cards: load the images an answer's Markdown points to (off: they are shown as links, since
    # loading one sends a request, with whatever the answer put in its URL, to its server).
    remote_images: bool = False
    # [routes] Cloud routes: alias or provider -> route ({"claude": "bedrock"}), so that existing
    # cells run through a cloud (models.resolve). $LLMCELLS_ROUTE (claude=bedrock,...) comes first;
    # these entries win over it (see routes()).
    route: dict[str, str] = field(default_factory=dict)
    # Azure OpenAI deployment -> the model it serves, for its price when the answer does not name
    # it. None: $LLMCELLS_AZURE_MODELS ("prod-chat=gpt-6-luna").
    azure_models: dict[str, str] | None = None

    def update(self, **changes: Any) -> None:
        """Set several settings, checking names and types; unknown names are a ConfigError."""
        known = {f.name: f for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ConfigError(
                    f"Unknown setting {name!r}{did_you_mean(name, known)}. "
                    f"Known settings: {', '.join(sorted(known))}.")
            setattr(self, name, _coerce(name, known[name].type, value))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def shown(self) -> dict[str, Any]:
        """as_dict() fit to print: the ledger URL's password masked."""
        out = self.as_dict()
        if out.get("ledger"):
            out["ledger"] = mask_dsn(out["ledger"])
        return out

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self.shown().items()) + ")"


def mask_dsn(dsn: str) -> str:
    """A database URL (or key=value string) with its password replaced by ***."""
    import re

    out = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", dsn)
    return re.sub(r"(?i)(password\s*=\s*)('[^']*'|\S+)", r"\1***", out)


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """A setting's value from what the user typed (magics pass strings)."""
    kind = str(annotation)
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError(f"Setting {name} needs a value.")
    if kind.startswith("dict"):
        return parse_pairs(name, value)
    if kind.startswith("list"):
        return value.replace(",", " ").split() if isinstance(value, str) else list(value)
    if kind in ("bool", "bool | None"):
        if isinstance(value, str):
            if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ConfigError(f"Setting {name} is on or off, not {value!r}.")
            return value.lower() in ("1", "true", "yes", "on")
        return bool(value)
    for number in (int, float):
        if kind.startswith(number.__name__):
            try:
                return number(value)
            except (TypeError, ValueError):
                raise ConfigError(f"Setting {name} takes a number, not {value!r}.") from None
    return str(value)


def parse_pairs(name: str, value: Any) -> dict[str, str]:
    """A NAME=VALUE mapping from a dict or from text such as "claude=vertex,chatgpt=azure"."""
    if isinstance(value, dict):
        return {str(k).strip(): str(v).strip() for k, v in value.items()}
    out: dict[str, str] = {}
    for pair in str(value).replace(";", ",").replace(" ", ",").split(","):
        if not pair.strip():
            continue
        key, sep, val = pair.partition("=")
        if not sep or not key.strip() or not val.strip():
            raise ConfigError(f"Setting {name} takes NAME=VALUE pairs (e.g. claude=vertex), not {pair!r}.")
        out[key.strip()] = val.strip()
    return out


def pairs_setting(name: str, env: str) -> dict[str, str]:
    """A mapping setting as set, else read from the environment variable env (checked anew on
    every use, so a notebook may set the variable after import)."""
    value = getattr(settings, name)
    if value is not None:
        return value
    raw = os.environ.get(env, "")
    return parse_pairs(env, raw) if raw.strip() else {}


settings = Settings()
errors.debug_setting = lambda: settings.debug  # the errors' one-line tracebacks read it


def configure(**changes: Any) -> Settings:
    """Change session defaults, e.g. `llmcells.configure(temperature=0, timeout=60)`."""
    ledger = changes.get("ledger")
    if ledger and not str(ledger).startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"ledger={mask_dsn(str(ledger))!r}: give a postgresql://user@host/db URL, "
                          "or None for the SQLite ledger under LLMCELLS_HOME.")
    settings.update(**changes)
    if "otel" in changes and settings.otel and importlib.util.find_spec("opentelemetry") is None:
        raise ConfigError("otel=True needs OpenTelemetry: pip install 'llmcells[otel]' "
                          "(opentelemetry-api and opentelemetry-sdk).")
    return settings


_POSIX = os.name == "posix"
_env_keys: dict[str, bytes] = {}  # variable name -> its key in os.environ's own store


def getenv(name: str, default: str | None = None) -> str | None:
    """os.environ.get(name, default), the same answer at a tenth of the cost: on POSIX, read
    from os.environ's own store of encoded names and values (what os.environ.get reads, through
    an encoding of the name and a KeyError for every variable that is not set). Every call reads
    a few variables (the ledger's home, OTEL_*, the route), each read anew: a user may change them."""
    data = getattr(os.environ, "_data", None)
    if not _POSIX or type(data) is not dict:  # (Windows keeps upper-cased str names; a stand-in mapping)
        return os.environ.get(name, default)
    key = _env_keys.get(name)
    if key is None:
        key = _env_keys[name] = os.fsencode(name)
    value = data.get(key)
    return default if value is None else os.fsdecode(value)


def getenvs(names: tuple[str, ...], default: str | None = None) -> tuple[str | None, ...]:
    """getenv(name, default) for each of names."""
    return tuple([getenv(name, default) for name in names])


#: the environment variable of the route setting: "claude=bedrock" or "claude=bedrock,chatgpt=azure"
ROUTE_ENV = "LLMCELLS_ROUTE"


def routes() -> dict[str, str]:
    """The routes in force: $LLMCELLS_ROUTE (read now), then the `route` setting over it."""
    return {**_env_routes(getenv(ROUTE_ENV, "")), **settings.route}


@functools.lru_cache(maxsize=16)
def _env_routes(value: str) -> dict[str, str]:
    """$LLMCELLS_ROUTE's pairs, parsed once per value (every call resolves its model's route;
    routes() copies the dict, so the one kept here is never changed)."""
    return parse_pairs(ROUTE_ENV, value)


_homes: dict[str, Path] = {}  # $LLMCELLS_HOME as set -> its folder, once created


def home() -> Path:
    """The folder of llmcells' own files (the ledger, the cache): $LLMCELLS_HOME or ~/.llmcells
    (resolved anew on every use: a test or a user may change the variable)."""
    given = getenv("LLMCELLS_HOME") or ""
    path = _homes.get(given)
    if path is not None and path.is_dir():  # one stat instead of a mkdir on every ledger write
        return path
    path = Path(given or Path.home() / ".llmcells").expanduser()
    # The ledger and the store hold prompts and answers: a folder llmcells makes is its user's
    # alone (SQLite makes its files readable by all, as the umask allows), and so is the default
    # one an older version made. A folder named by LLMCELLS_HOME keeps the rights it was given
    # (a team may share one on purpose).
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not given:
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(0o700)
        except OSError as exc:  # not ours, or a file system without modes: as it is
            swallowed(f"making {path} private", exc)
    _homes[given] = path
    return path
