"""The simulator's mutable state: settings, per-model overrides, queued faults and the request log.

Shared between the caller's thread (the `Simulator` API) and the server's event loop, so every
access goes through one lock.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from ..registry import api_names, routes

#: Every fault the simulator can inject, with what it does. `after_tokens` (default 3) says where
#: a mid-stream fault strikes; `retry_after` / `retry_after_ms` add those headers to an HTTP error
#: (and Gemini's 429 then names the same delay in its message and RetryInfo).
FAULT_HELP = {
    "401": "answer 401 with the provider's invalid-key error body",
    "404": "answer 404: unknown model",
    "400": "answer 400: invalid request",
    "429": "answer 429 rate limited; retry_after=3600 asks for an hour's wait",
    "billing": "answer the account's out-of-credit error (OpenAI: 429 insufficient_quota; "
               "Anthropic: 400 'credit balance is too low'; Gemini: 403 billing not enabled); "
               "the cloud routes answer 500",
    "500": "answer 500 with the provider's server-error body",
    "529": "answer 529 overloaded (OpenAI and Gemini: 503)",
    "midstream_error": "after after_tokens text events, send the provider's in-stream error event",
    "cut": "after after_tokens text events, end the body cleanly without the terminal event",
    "cut_mid_event": "after after_tokens text events, send half an event and drop the connection",
    "slow_first_token": "send headers at once, then wait `delay` seconds before the first token",
    "malformed": "after after_tokens text events, send an event whose JSON is broken",
    "drop": "close the connection without any answer",
    "reset_after_start": "send only the stream's start event (chat: the role chunk; responses: "
                         "response.created; anthropic: message_start; gemini: a chunk without "
                         "text), then reset the connection (TCP RST): no text was shown",
    "drop_after_terminal": "send the whole stream, terminal event included (message_stop, "
                           "response.completed, [DONE], finishReason), then reset the connection "
                           "before the body's end",
    "html200": "answer 200 with a captive portal's HTML page instead of the API",
    "html502": "answer 502 with a proxy's HTML error page",
    "junk_after_body": "send the answer framed by a Content-Length (streams too), then junk "
                       "bytes past that length on the kept-alive connection",
    "sse_comments": "send an SSE comment line (`: ping`) before every event",
    "sse_event_ping": "send an `event: ping` event (data {\"type\": \"ping\"}) before every event",
    "sse_no_space": "write `data:` (and `event:`) with no space before the value",
    "split_surrogate": "before text event number after_tokens, send an emoji (U+1F600) as two text "
                       "events: JSON-escaped \\ud83d in one, \\ude00 in the next",
    "invalid_json": "with a schema (structured output), answer with JSON that does not parse "
                    "(a live call, or one request line of a batch job)",
}
FAULTS = tuple(FAULT_HELP)
#: the providers the simulator serves: every API provider of the registry, and the cloud routes
PROVIDERS = api_names() + tuple(r.name for r in routes())


@dataclass
class Settings:
    """Timing and length of answers (global defaults, or one model's overrides when not None)."""

    ttft: float | None = None
    tokens_per_s: float | None = None
    output_tokens: int | None = None
    text: str | None = None
    reasoning_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    delta_chars: int | None = None  # stream the answer in pieces of this many characters


@dataclass
class Fault:
    """A queued fault; `times=None` means it never runs out."""

    fault: str
    provider: str | None = None
    model: str | None = None
    times: int | None = 1
    after_tokens: int = 3
    retry_after: float | None = None
    retry_after_ms: int | None = None
    delay: float = 5.0

    def matches(self, provider: str, model: str) -> bool:
        return self.provider in (None, provider) and self.model in (None, model)


@dataclass
class SimRequest:
    """One request the simulator received (auth header values are masked as "***")."""

    time: float
    wall_time: float
    provider: str
    api: str
    path: str
    model: str
    stream: bool
    headers: dict[str, str]
    body: Any
    fault: str | None = None
    completed: float | None = None   # time.monotonic() when the whole response had been sent
    attachments: list[dict[str, Any]] = field(default_factory=list)  # media_type, size, sha256, url

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for `GET /_sim/requests`)."""
        return asdict(self)


@dataclass
class State:
    """Everything the Python API and the control endpoints can change, behind one lock."""

    defaults: Settings
    globals: Settings = field(init=False)
    models: dict[str, Settings] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    log: list[SimRequest] = field(default_factory=list)
    counter: int = 0
    strict: bool = True   # refuse what the real APIs refuse (sim/validate.py)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.globals = Settings(**asdict(self.defaults))

    def configure(self, **values: Any) -> None:
        with self.lock:
            for name, value in values.items():
                if value is not None:
                    setattr(self.globals, name, value)

    def set_model(self, model: str, settings: Settings) -> None:
        with self.lock:
            self.models[model] = settings

    def inject(self, fault: Fault) -> None:
        if fault.fault not in FAULTS:
            raise ValueError(f"unknown fault {fault.fault!r}; expected one of {', '.join(FAULTS)}")
        if fault.provider not in (None, *PROVIDERS):
            raise ValueError(f"unknown provider {fault.provider!r}; expected one of {PROVIDERS}")
        with self.lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def reset(self) -> None:
        with self.lock:
            self.globals = Settings(**asdict(self.defaults))
            self.models.clear()
            self.faults.clear()
            self.log.clear()
            self.counter = 0

    def resolve(self, model: str) -> Settings:
        """The effective settings for a model: the exact name wins, then the first matching glob."""
        with self.lock:
            override = self.models.get(model) or next(
                (s for pattern, s in self.models.items() if fnmatch.fnmatchcase(model, pattern)), None)
            merged = Settings(**asdict(self.globals))
        if override is not None:
            for name, value in asdict(override).items():
                if value is not None:
                    setattr(merged, name, value)
        return merged

    def next_count(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def take_fault(self, provider: str, model: str, kinds: tuple[str, ...] | None = None) -> Fault | None:
        """Consume one use of the earliest queued fault that matches this request (and is one of
        `kinds`, when given)."""
        with self.lock:
            for fault in self.faults:
                if fault.matches(provider, model) and (kinds is None or fault.fault in kinds):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None

    def record(self, request: SimRequest) -> None:
        with self.lock:
            self.log.append(request)

    def snapshot(self) -> list[SimRequest]:
        with self.lock:
            return list(self.log)
