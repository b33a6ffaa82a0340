"""What the three provider batch APIs share: job states, status and result records, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..types import Usage

#: states a part can be in; the last five are final
RUNNING_STATES = ("new", "creating", "submitted", "validating", "running", "finalizing", "cancelling")
FINAL_STATES = ("completed", "failed", "expired", "cancelled", "lost")
#: (requests, bytes) per provider job, by adapter: OpenAI 50,000 lines or 200 MB per file,
#: Anthropic 100,000 requests or 256 MB, Gemini a 2 GB input file (inline up to about 20 MB)
LIMITS = {"openai": (50_000, 200 * 1024 * 1024), "anthropic": (100_000, 256 * 1024 * 1024),
          "google": (100_000, 2 * 1000 * 1000 * 1000)}


@dataclass
class JobStatus:
    """One provider job as its API reports it, in llmcells' terms."""

    state: str                                  # validating, running, finalizing, completed, ...
    counts: dict[str, int] = field(default_factory=dict)   # total, done, failed (what the API gives)
    expires: float | None = None                # epoch seconds
    error: str | None = None
    raw: Any = None                             # the SDK object, for collecting results
    counts_note: str | None = None              # e.g. Anthropic: no counts before the end
    ended: float | None = None                  # epoch seconds the provider says the job ended

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


@dataclass
class Item:
    """The outcome of one request of a provider job."""

    key: str
    status: str                                 # ok, error, expired, cancelled
    text: str = ""
    reasoning: str = ""
    usage: Usage = field(default_factory=Usage)
    response_model: str | None = None
    finish_reason: str | None = None
    error_kind: str | None = None
    error: str | None = None


def driver(adapter: str) -> Any:
    """The batch driver module of an adapter ("openai", "anthropic", "google")."""
    import importlib

    return importlib.import_module(f".{adapter}_jobs", __package__)
