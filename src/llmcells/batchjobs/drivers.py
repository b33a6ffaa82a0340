"""What the three provider batch APIs share: job states, status and result records, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import kind_of_status
from ..registry import batch_apis
from ..types import Usage

#: states a part can be in; the last five are final
RUNNING_STATES = ("new", "creating", "submitted", "validating", "running", "finalizing", "cancelling")
FINAL_STATES = ("completed", "failed", "expired", "cancelled", "lost")
#: (requests, bytes) per provider job, by adapter, derived from the registry's capability
#: profiles (registry.Caps.batch, where the documented figures are)
LIMITS = {adapter: (b.max_requests, b.max_bytes) for adapter, b in batch_apis().items()}


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
    note: str | None = None                     # how an answer stopped short (Result.notes)


def driver(adapter: str) -> Any:
    """The batch driver module of an adapter (its registry profile's BatchApi.driver)."""
    import importlib

    return importlib.import_module(f".{batch_apis()[adapter].driver}_jobs", __package__)


#: google.rpc.Status codes (the error of a Gemini batch line) -> llmcells error kinds
_GRPC_KINDS = {3: "bad_request", 4: "timeout", 5: "model_not_found", 7: "denied",
               8: "rate_limited", 9: "bad_request", 11: "bad_request", 13: "server_error",
               14: "overloaded", 16: "authentication"}


def line_error_kind(*, status: Any = None, grpc: Any = None, api_type: Any = None) -> str:
    """The error kind of one batch line that failed, as a live call's error of the same cause
    would be: by its HTTP status (OpenAI), its google.rpc code (Gemini) or its error type
    (Anthropic). A line the provider failed on its side (a 500, overloaded) is no bad request:
    retry_failed() may well get it through."""
    if isinstance(api_type, str) and api_type:
        from ..providers.anthropic import ERROR_TYPE_KINDS

        return ERROR_TYPE_KINDS.get(api_type, "provider_error")
    if type(status) is int and 400 <= status <= 599:
        return kind_of_status(status, "")
    if type(grpc) is int:
        if 400 <= grpc <= 599:  # (an HTTP status where a code was expected)
            return kind_of_status(grpc, "")
        return _GRPC_KINDS.get(grpc, "provider_error")
    return "bad_request"
