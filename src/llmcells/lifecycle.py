"""Model lifecycle: which models their provider has retired or is retiring, and what replaces them.

The dates live in `data/lifecycle.toml` (data, not code); this module reads them and applies them
before a call is planned (`check`: a retired model is refused, a retiring one warned of once) and
to a provider's "not found" (`not_found_message`). Nothing here imports an SDK, so the simulator
and `%load_ext` can read it for free.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
import tomllib
import warnings
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from .errors import LLMCellsWarning
from .registry import model_name, parse_id, price_provider
from .session import session


class ModelLifecycleWarning(LLMCellsWarning):
    """A model llmcells is asked to call shuts down soon (shown once per model per session)."""


def current_date() -> dt.date:
    """The date the lifecycle table is read at: the system's, or $LLMCELLS_TODAY (YYYY-MM-DD)
    when set, for a run that must answer alike on any day (the test suite pins it, so that a
    model's shutdown date passing doesn't turn its tests red)."""
    pinned = os.environ.get("LLMCELLS_TODAY")
    if pinned:
        try:
            return dt.date.fromisoformat(pinned.strip())
        except ValueError:
            warnings.warn(f"LLMCELLS_TODAY={pinned!r} is not a date (YYYY-MM-DD); using today's.",
                          LLMCellsWarning, stacklevel=2)
    return dt.date.today()


@dataclass(frozen=True)
class Lifecycle:
    """One model's lifecycle row: when it retires, what replaces it, and where the date comes from."""

    model: str                        # `provider:model`
    retires: dt.date | None = None    # the shutdown date; the model is retired on and after it
    replacement: str | None = None
    deprecated: dt.date | None = None
    source: str = ""

    def status(self, today: dt.date | None = None) -> str:
        """"active", "retiring" (shutdown date ahead) or "retired" (on or after the date)."""
        if self.retires is None:
            return "active"
        today = today or current_date()
        return "retired" if today >= self.retires else "retiring"

    def label(self, today: dt.date | None = None) -> str:
        """The status as `%llmcells models` shows it: "active", "retiring 2027-01-14" or
        "retired 2026-12-01"."""
        status = self.status(today)
        return status if status == "active" else f"{status} {self.retires.isoformat()}"

    def message(self, today: dt.date | None = None) -> str:
        """One line saying when the model shuts down (or did) and what to use instead."""
        name = model_name(self.model)
        instead = f"; use {self.replacement}" if self.replacement else ""
        if self.status(today) == "retired":
            return f"{name} was retired on {self.retires.isoformat()}{instead}."
        if self.status(today) == "retiring":
            return f"{name} will be retired on {self.retires.isoformat()}{instead}."
        return f"{name} is active."


@cache
def table() -> dict[str, Lifecycle]:
    """Every model in the lifecycle table, by `provider:model` id."""
    raw = tomllib.loads(resources.files("llmcells").joinpath("data/lifecycle.toml").read_text("utf-8"))
    return {model: Lifecycle(model=model, retires=row.get("retires"), replacement=row.get("replacement"),
                             deprecated=row.get("deprecated"), source=row.get("source", ""))
            for model, row in raw.items()}


#: a snapshot's suffix: Anthropic's -YYYYMMDD, OpenAI's -YYYY-MM-DD, or -latest
_SNAPSHOT = re.compile(r"-(\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


def base_name(name: str) -> str:
    """A model name without a `models/` prefix (Gemini's REST name) or a snapshot suffix:
    claude-sonnet-4-5-20250929 -> claude-sonnet-4-5, gpt-4.1-nano-2025-04-14 -> gpt-4.1-nano."""
    return _SNAPSHOT.sub("", name.removeprefix("models/"))


@lru_cache(maxsize=1024)
def lookup(model_id: str) -> Lifecycle:
    """The lifecycle of a `provider:model` id (an "active" row for a model the table doesn't list).
    `openai-responses:` ids read the `openai:` rows. Remembered per id: the table is the
    installed data file, and a row is frozen (its status is worked out from today's date on
    every use)."""
    prefix, name = parse_id(model_id)
    if prefix == "openai-responses":
        model_id = "openai:" + name
    # A dated snapshot (or the REST name) of a listed model shuts down with it.
    base = f"{model_id.partition(':')[0]}:{base_name(name)}"
    return table().get(model_id) or table().get(base) or Lifecycle(model=model_id)


def of(spec: Any) -> Lifecycle:
    """The lifecycle of a resolved ModelSpec (by its provider and model name; an agent CLI's
    model by the API it calls: `claude-code:X` is `anthropic:X`)."""
    return lookup(f"{price_provider(spec.provider)}:{spec.name}")


_warned: set[str] = session.lifecycle_warned  # models warned of (session.reset() forgets them)
_warn_lock = threading.Lock()


def check(spec: Any) -> None:
    """Before a call is planned: a ConfigError naming the date and the replacement for a retired
    model (nothing is sent); a ModelLifecycleWarning, once per model per session, for one that
    retires soon."""
    row = of(spec)
    status = row.status()
    if status == "retired":
        from .errors import ConfigError

        raise ConfigError(row.message(), provider=spec.provider)
    if status == "retiring":
        with _warn_lock:
            if row.model in _warned:
                return
            _warned.add(row.model)
        warnings.warn(row.message(), ModelLifecycleWarning, stacklevel=4)


def not_found_message(spec: Any) -> str | None:
    """For a provider's "model not found": the retirement line when spec's model is a known
    retired one (its provider shut it down), else None."""
    row = of(spec)
    status = row.status()
    if status == "retired":
        return row.message()
    if status == "retiring":  # shut down ahead of the listed date (as gpt-5-codex was reported)
        instead = f"; use {row.replacement}" if row.replacement else ""
        return (f"{spec.name} is being retired (listed for {row.retires.isoformat()}) and its "
                f"provider no longer serves it{instead}.")
    return None
