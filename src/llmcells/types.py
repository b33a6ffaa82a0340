"""The data that flows through llmcells: requests, usage, stream events and results.

Nothing here imports an SDK, pandas or ipywidgets, so it is cheap to import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Literal, Union

from ._loop import import_pandas

if TYPE_CHECKING:
    import pandas as pd

    from .models import ModelSpec

Status = Literal["ok", "error", "cancelled", "incomplete"]


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for: its provider id, the tool's name and its arguments as the
    model wrote them (JSON text). The engine builds one from each tool-call part of a stream
    (PartStart / PartDelta / PartEnd)."""

    id: str
    name: str
    arguments_json: str = "{}"
    # what the provider needs back with the call: Gemini's thought signature (base64), or, on a
    # turn's first call, the thinking blocks Claude wrote before it (a JSON list)
    signature: str | None = None


@dataclass(frozen=True)
class Message:
    """One turn of a conversation: role is "user" or "assistant", or "tool" for a tool's result.

    An assistant message may hold the tool calls it made (tool_calls; content is then any text
    that came with them); a "tool" message holds one call's result (content), answering
    tool_call_id, from the tool `name`; is_error marks a result that reports a failure.
    """

    role: Literal["user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    is_error: bool = False

    def to_dict(self) -> dict[str, Any]:
        """This message as plain JSON-ready data (what Chat.save writes)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": c.arguments_json,
                                  **({"signature": c.signature} if c.signature else {})}
                                 for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        if self.is_error:
            out["is_error"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Message":
        calls = tuple(ToolCall(str(c["id"]), str(c["name"]), str(c.get("arguments", "{}")),
                               c.get("signature"))
                      for c in data.get("tool_calls") or ())
        return cls(role=data["role"], content=str(data.get("content") or ""), tool_calls=calls,
                   tool_call_id=data.get("tool_call_id"), name=data.get("name"),
                   is_error=bool(data.get("is_error", False)))


@dataclass(frozen=True)
class Attachment:
    """A file sent with the prompt: its media type and either its bytes or a URL (never fetched).

    size is the byte count (0 for a URL); sha256 the hex digest of the bytes (of the URL for a
    URL). Build one with `llmcells.attachments.attachment(...)`, which fills these in.
    """

    media_type: str
    data: bytes | None = None
    url: str | None = None
    name: str = ""
    size: int = 0
    sha256: str = ""

    @property
    def kind(self) -> str:
        """"image", "pdf" or "text": how providers take it."""
        if self.media_type.startswith("image/"):
            return "image"
        if self.media_type == "application/pdf":
            return "pdf"
        return "text"

    @property
    def text(self) -> str:
        """The content of a text-like attachment, decoded as UTF-8."""
        return (self.data or b"").decode("utf-8", "replace")

    def base64(self) -> str:
        """The bytes in base64 (what JSON bodies carry)."""
        import base64

        return base64.b64encode(self.data or b"").decode("ascii")

    def data_url(self) -> str:
        """The URL, or a `data:` URL of the bytes."""
        return self.url or f"data:{self.media_type};base64,{self.base64()}"

    def __repr__(self) -> str:  # never the bytes
        where = self.url or f"{self.size} bytes"
        return f"Attachment({self.name or '?'!r}, {self.media_type}, {where})"


@dataclass(frozen=True)
class OutputSchema:
    """The structure an answer must have: a JSON Schema, and the pydantic model it came from
    (None for a plain JSON Schema dict). Built by `llmcells.structured.output_schema`."""

    name: str
    json_schema: dict = field(hash=False, compare=False)
    model: Any = None
    fields: tuple[str, ...] = ()
    plain: bool = False   # validated by `model` but given back as a dict ({"field": type} schemas)


@dataclass
class Request:
    """Everything a provider adapter needs to make one call.

    attachments go with the last user message; schema asks for a JSON answer of that shape.
    """

    spec: "ModelSpec"
    messages: list[Message]
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    schema: OutputSchema | None = None

    @property
    def prompt(self) -> str:
        """The last user message (what a person would call "the prompt")."""
        for m in reversed(self.messages):
            if m.role == "user":
                return m.content
        return ""


@dataclass
class Usage:
    """Token counts of one call, normalised across providers.

    input_tokens counts all input (cache reads and writes included); output_tokens counts all
    output (reasoning / thinking included). cache_write_tokens is every cache write;
    cache_write_1h_tokens the part of it written for one hour (Anthropic's 1-hour cache, billed
    at a higher rate than the 5-minute one).
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(**{k: v + getattr(other, k) for k, v in self.as_dict().items()})


# ----- stream events: what a provider adapter yields -------------------------------------------


#: what a part of a response is: answer text, visible reasoning ("thinking"), or a tool call
PartKind = Literal["text", "reasoning", "tool_call"]


@dataclass(frozen=True)
class PartStart:
    """A part of the response begins: its index (its address within this response; later
    events for the part name the same index), its kind, and for a tool call its provider id,
    the tool's name and Gemini's thought signature, when known already."""

    index: int
    kind: PartKind
    id: str | None = None
    name: str | None = None
    signature: str | None = None   # what goes back with the call (see ToolCall.signature)


@dataclass(slots=True)
class PartDelta:
    """More of the part at index: a piece of text or reasoning, or a fragment of a tool call's
    JSON arguments; a tool call's id or name when it comes after the start (OpenAI Chat).

    One is built per streamed chunk, so it has slots and is not frozen (a frozen dataclass
    takes over twice as long to build); nothing changes one once it is yielded."""

    index: int
    text: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class PartEnd:
    """The part at index is complete (a tool call with no end event ends at Finish)."""

    index: int


@dataclass(frozen=True)
class UsageUpdate:
    """The usage seen so far (cumulative, replaces any earlier UsageUpdate)."""

    usage: Usage


@dataclass(frozen=True)
class ResponseInfo:
    """Metadata from the provider: the model as answered, the provider's response id, and the
    service tier that served the call (OpenAI's "default" / "flex" / "priority", Anthropic's
    "standard" / "priority"), which sets its price."""

    response_model: str | None = None
    response_id: str | None = None
    service_tier: str | None = None
    # The provider's rate-limit headers, normalised by quotas.from_headers (None: none sent).
    rate_limits: dict[str, Any] | None = None
    # Anthropic's usage also says how fast the call was served ("standard" / "fast") and where
    # ("inference_geo"); None when the provider doesn't say
    speed: str | None = None
    inference_geo: str | None = None
    # [agents] what an agent CLI reported about its run (cli, version, session_id, turns,
    # tool_calls, startup_s, cli_cost_usd, cwd, tools, system_prompt); None for plain API calls
    agent: dict[str, Any] | None = None


@dataclass(frozen=True)
class Finish:
    """The provider's terminal event was seen; reason as the provider gave it (e.g. "stop")."""

    reason: str | None = None
    # One line on how the answer ended when the reason alone would not say it plainly (a refusal,
    # a paused turn, a full context window); it goes into Result.notes.
    note: str | None = None


#: the shortest time after the first token over which an answer's tokens/s is told: a few tokens
#: in a burst (a one-word answer, a schema's fields) gave thousands of tokens a second
RATE_MIN_SPAN_S = 0.2


#: the finish reasons that say the output limit ended an answer: Anthropic's, OpenAI's (Chat
#: Completions, and the Responses API's incomplete reason) and Gemini's
LIMIT_REASONS = frozenset({"max_tokens", "length", "max_output_tokens", "MAX_TOKENS"})


Event = Union[PartStart, PartDelta, PartEnd, UsageUpdate, ResponseInfo, Finish]


@dataclass
class ToolRun:
    """One tool call as it ran: the call, the result text sent back to the model (or the short
    error sent instead), how long it took, and which model turn asked for it (1 = the first)."""

    id: str
    name: str
    arguments: str
    result: str = ""
    error: str | None = None
    duration_s: float = 0.0
    turn: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None


# ----- results -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _ResultFields:
    """Result's fields and methods, in slots: a call's Result holds some 45 fields, past the 30
    an instance dict can share its keys for, so as a plain dataclass each one carried a dict of
    its own (about 1.5 KB; a 5,000-call batch holds them all until its frame is made)."""

    text: str = ""
    model: str = ""
    provider: str = ""
    response_model: str | None = None
    response_id: str | None = None   # the provider's id of the response, when it gave one
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = math.nan
    latency_s: float | None = None
    ttft_s: float | None = None
    status: Status = "ok"
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 0
    finish_reason: str | None = None
    reasoning: str = ""
    call_id: str = ""
    group_id: str | None = None
    simulated: bool = False
    cached: bool = False
    sample: int = 0
    started_at: float = 0.0          # epoch seconds when the call began
    cell: int | None = None          # IPython execution count, when run from a notebook or shell
    batch_id: str | None = None
    price_source: str | None = None  # which price table gave cost_usd (e.g. "genai-prices 0.2.3")
    service_tier: str | None = None  # the tier that served the call, as the provider said
    speed: str | None = None         # Anthropic's speed mode that served it ("standard" / "fast")
    inference_geo: str | None = None  # Anthropic: the region where inference ran
    processing: str = "live"         # "live", or "batch" for provider batch jobs
    price_basis: Any = None          # pricing.PriceBasis: the exact price used (provenance)
    data: Any = None                 # the parsed answer, with format="json" or a schema
    schema_mode: str | None = None   # "native" or "instructions": how a schema was asked for
    attachments_count: int = 0       # files sent with the prompt
    attachments_bytes: int = 0       # their total size
    # scoring and replay (see scoring.py, replay.py)
    scores: dict[str, float] = field(default_factory=dict)       # scorer name -> score (NaN: failed)
    score_notes: dict[str, str] = field(default_factory=dict)    # scorer name -> one-line reason
    purpose: str = "answer"          # "answer", or "judge" for a judge's grading call
    replayed: bool = False           # answered from the replay file, not by the provider
    original: dict[str, Any] | None = None  # a replayed call's original figures (cost, latency...)
    # A model chain ("claude|chatgpt"): each model tried, in order, as dicts with model, status,
    # error_kind, error and call_id ("skipped" status: in a cool-down, not sent). Empty otherwise.
    attempts_by_model: list[dict[str, Any]] = field(default_factory=list)
    agent: dict[str, Any] | None = None     # [agents] an agent CLI's own report (see ResponseInfo.agent)
    # tools (see tools.py): the whole exchange, and every tool call made (ToolRun, or ToolCall
    # for one model request's own Result); usage and cost above are summed over every turn
    messages: list[Message] = field(default_factory=list)
    tool_calls: list[Any] = field(default_factory=list)
    turns: int = 1                   # model requests made for this call
    # One-line notes about the call that the card and terminal show under it, each once: a
    # parameter left out ("sent without temperature: claude-haiku-5-5 doesn't accept it"), a
    # refusal ("refused: ..."), how an unusual stop ended the answer.
    notes: list[str] = field(default_factory=list)
    # Whether cost_usd is final: set by the pipeline's finish when it prices the call, or earlier
    # by whoever knows the cost already (a cache hit or a replay costs $0; a request whose usage
    # never came back is NaN; nothing sent is $0).
    priced: bool = field(default=False, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second after the first token (None when it can't be told: the rest
        of the answer came in under RATE_MIN_SPAN_S, too short to time, as the cards say too)."""
        if not self.usage.output_tokens or self.latency_s is None or self.ttft_s is None:
            return None
        span = self.latency_s - self.ttft_s
        return self.usage.output_tokens / span if span >= RATE_MIN_SPAN_S else None

    def to_row(self) -> dict[str, Any]:
        """This result as a flat dict (one DataFrame row)."""
        row: dict[str, Any] = {
            "model": self.model,
            "provider": self.provider,
            "response_model": self.response_model,
            "status": self.status,
            "error_kind": self.error_kind,
            "error": self.error,
        }
        row.update(self.usage.as_dict())
        row.update(
            cost_usd=self.cost_usd,
            price_source=self.price_source,
            service_tier=self.service_tier,
            latency_s=self.latency_s,
            ttft_s=self.ttft_s,
            tokens_per_s=self.tokens_per_s,
            attempts=self.attempts,
            cached=self.cached,
            replayed=self.replayed,
            sample=self.sample,
            text=self.text,
            call_id=self.call_id,
            group_id=self.group_id,
        )
        if self.agent is not None:  # [agents] the CLI's own cost figure, as a cross-check
            row["cli_cost_usd"] = self.agent.get("cli_cost_usd")
        if self.original:  # a replayed call: what the original call cost and took
            for k in ("cost_usd", "latency_s", "ttft_s"):
                row[f"original_{k}"] = self.original.get(k)
        for name, value in self.scores.items():  # one column per scorer
            row[f"score_{name}"] = value
        if self.score_notes:
            row["score_notes"] = "; ".join(f"{k}: {v}" for k, v in self.score_notes.items())
        if len(self.attempts_by_model) > 1:  # a chain moved on: "anthropic:...: overloaded → openai:..."
            row["fallback"] = " → ".join(
                a["model"] if a["status"] == "ok" else f"{a['model']}: {a['error_kind']}"
                + (" (skipped, cooling down)" if a["status"] == "skipped" else "")
                for a in self.attempts_by_model)
        return row

    def to_frame(self) -> "pd.DataFrame":
        """A one-row DataFrame of this result."""
        pd = import_pandas()

        return pd.DataFrame([self.to_row()])

    def replace(self, **changes: Any) -> "Result":
        return replace(self, **changes)

    def __str__(self) -> str:
        """The answer; a call that failed with none says why, in brackets (an empty line read
        as an empty answer)."""
        if not self.text and self.status != "ok" and self.error:
            return f"[{self.status}: {self.error}]"
        return self.text

    def _repr_markdown_(self) -> str:
        """The result as raw Markdown, the answer as the model wrote it (HTML included): what a
        notebook shows is _repr_html_, never this."""
        head = f"**{self.model}** · {self.status}"
        if self.error:
            head += f" · {self.error}"
        return f"{head}\n\n{self.text}"

    def _repr_html_(self) -> str:
        """The result as safe HTML: the answer's Markdown rendered by the cards' renderer (raw
        HTML escaped, `javascript:` links neutralised), model and error escaped."""
        from .session import session

        return session.front_end.results_html([self])

    def _ipython_display_(self) -> None:
        """Shown as HTML (the answer's Markdown, rendered safely); but not again as the value of
        the very cell whose live card already shows it (`await chat.send(...)` as a cell's last
        line shows the answer once)."""
        from IPython.display import display

        shown_in = self.__dict__.get("_card_cell")
        if shown_in is not None:
            from .session import current_cell

            if shown_in == current_cell():
                return
        # HTML, not Markdown: a notebook renders a fresh output's Markdown with its raw HTML
        # (an answer's <script> or <img onerror> would run), and so does nbconvert
        display({"text/html": self._repr_html_(), "text/plain": repr(self)}, raw=True)


class Result(_ResultFields):
    """The outcome of one call to one model.

    status is "ok", "error", "cancelled" or "incomplete"; error holds one short message when the
    status is not "ok". cost_usd is NaN when the price of the model is unknown.
    """

    # the fields live in slots; an instance dict, made only when something sets an attribute
    # that is not a field (a notebook card's mark), keeps such attributes working as before
    __slots__ = ("__dict__", "__weakref__")


# ----- observers: how front ends (cards, terminal, progress) follow a call ------------------------


@dataclass
class CallInfo:
    """What an observer knows about a call before it starts."""

    call_id: str
    model: str            # as requested (alias or id)
    model_id: str         # provider:model
    provider: str
    simulated: bool = False
    group_id: str | None = None
    sample: int = 0
    purpose: str = "answer"   # "judge" for a judge's grading call
    attachments: tuple = ()   # the Attachments sent with the prompt (cards show them)


@dataclass(frozen=True)
class RetryInfo:
    """A retry about to happen, as data: which attempt comes next, how long the pause is, and why."""

    attempt: int                  # the attempt about to be made (2 for the first retry)
    max_attempts: int
    wait_s: float                 # the pause before it
    reason: str                   # the error kind, e.g. "rate_limited", "overloaded", "connection"
    status_code: int | None = None
    message: str = ""             # the error's one-line message
    asked_wait_s: float | None = None  # what the provider asked for (retry-after), when it said


class CallObserver:
    """Receives a call's progress. All methods are called on the private loop thread, in order:
    on_start; on_sent once the request clock starts; then any of on_status, on_retry,
    on_first_token (once), on_text, on_usage; then on_finish exactly once.

    Timing has one definition, the engine's: `t0` given to on_sent is a time.monotonic() value,
    live elapsed time and the final Result.latency_s both count from it, and on_first_token
    passes the same ttft_s that the Result will hold.

    status values: "waiting" (sent, no token yet), "streaming", "calling" (the model is writing
    a tool call; detail is the tool's name, or None), "retrying" (on_retry has the details),
    "done", "error", "cancelled", "incomplete".
    Methods must be quick and must not raise; the default implementations do nothing.
    """

    def on_start(self, info: CallInfo) -> None:
        pass

    def on_sent(self, t0: float) -> None:
        """The request clock started at t0 (time.monotonic()); SDK set-up is before it."""

    def on_status(self, status: str, detail: str | None = None) -> None:
        pass

    def on_retry(self, retry: RetryInfo) -> None:
        """A failed attempt will be retried after retry.wait_s seconds."""

    def on_first_token(self, ttft_s: float) -> None:
        """The first answer token arrived ttft_s seconds after t0."""

    def on_text(self, delta: str) -> None:
        """A new piece of the answer; observers that need the whole text keep their own buffer."""

    def on_usage(self, usage: Usage) -> None:
        """The usage the provider reported so far (cumulative)."""

    def on_finish(self, result: "Result") -> None:
        pass

    def on_scores(self, result: "Result") -> None:
        """Optional: result.scores were filled in after on_finish (a judge takes a while)."""

    def on_fallback(self, from_model: str, reason: str, to_model: str) -> None:
        """A model chain moves on: from_model failed (reason: its error kind) before any token,
        and to_model is tried next; on_start follows with to_model's CallInfo."""

    def on_tool_call(self, run: "ToolRun") -> None:
        """Optional: a tool the model asked for has run (a call with tools=...); the answer's
        next turn streams after it through on_text."""
