"""Model lifecycle: which models their provider has retired or is retiring, and what replaces them.

The dates live in `data/lifecycle.toml` (data, not code); this module only reads them. Nothing here
imports an SDK, so the simulator and `%load_ext` can read it for free.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


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
        today = today or dt.date.today()
        return "retired" if today >= self.retires else "retiring"


@cache
def table() -> dict[str, Lifecycle]:
    """Every model in the lifecycle table, by `provider:model` id."""
    raw = tomllib.loads(resources.files("llmcells").joinpath("data/lifecycle.toml").read_text("utf-8"))
    return {model: Lifecycle(model=model, retires=row.get("retires"), replacement=row.get("replacement"),
                             deprecated=row.get("deprecated"), source=row.get("source", ""))
            for model, row in raw.items()}


def lookup(model_id: str) -> Lifecycle:
    """The lifecycle of a `provider:model` id (an "active" row for a model the table doesn't list)."""
    return table().get(model_id) or Lifecycle(model=model_id)
