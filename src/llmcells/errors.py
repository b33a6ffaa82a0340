"""The errors llmcells raises and records.

Every error carries one short message that says what to do; none of them ever contains a key.
Provider adapters map their SDK's exceptions onto these classes; the runner decides what to
retry from `retryable`.
"""

from __future__ import annotations

import re
from typing import Any


class LLMError(Exception):
    """Base class of every llmcells error. `kind` is the short name recorded in the ledger."""

    kind = "error"
    retryable = False

    def __init__(self, message: str, *, provider: str | None = None, status_code: int | None = None,
                 retry_after: float | None = None):
        super().__init__(redact(message))
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.kind

    @property
    def _render_traceback_(self):
        """IPython's hook: the error as one line (`ConfigError: Unknown model ...`), since its
        message already says what to do. With `%xmode Verbose` or
        `llmcells.configure(debug=True)` the attribute is absent, and IPython shows its full
        traceback as for any other error."""
        if _debugging():
            raise AttributeError("_render_traceback_")
        return lambda: [f"{type(self).__name__}: {self}"]


class ConfigError(LLMError, ValueError):
    """Bad input from the user: an unknown model, a bad option. Nothing was sent."""

    kind = "config"


class NotRunError(ConfigError, AttributeError):
    """A call read before it ran (`r = llmcells.ask(...)`, then `r.text`). Nothing was sent. An
    AttributeError too, so that hasattr() and getattr(..., default) work as ever."""


class ContextWindowError(ConfigError):
    """The prompt would not fit the model's context window. Nothing was sent."""

    kind = "context_window"


class UnsupportedError(ConfigError):
    """The model's provider can't take what the call asks for (attachments, a schema, tools...),
    as its capability profile in the registry says. Nothing was sent."""

    kind = "unsupported"


class MissingKeyError(ConfigError):
    """No API key for a provider. Nothing was sent."""

    kind = "missing_key"


class AuthenticationError(LLMError):
    kind = "authentication"


class ModelNotFoundError(LLMError):
    kind = "model_not_found"


class BadRequestError(LLMError):
    kind = "bad_request"


class RateLimitError(LLMError):
    kind = "rate_limited"
    retryable = True


class OverloadedError(LLMError):
    kind = "overloaded"
    retryable = True


class ServerError(LLMError):
    """A 5xx answer from the provider."""

    kind = "server_error"
    retryable = True


class ConnectionFailedError(LLMError):
    kind = "connection"
    retryable = True


class ProviderTimeoutError(LLMError, TimeoutError):
    kind = "timeout"


class IncompleteStreamError(LLMError):
    """The stream ended before the provider's terminal event."""

    kind = "incomplete"


class InvalidOutputError(LLMError):
    """The answer does not match the schema asked for (the raw text is kept)."""

    kind = "invalid_output"


class ProviderError(LLMError):
    """Any other error reported by a provider."""

    kind = "provider_error"


class BillingError(ProviderError):
    """The account is out of credit (OpenAI's insufficient_quota, a 429; Anthropic's
    billing_error; a 402): waiting will not help, another provider may answer."""

    kind = "billing"


# ----- what an HTTP status means: one table for every adapter and agent CLI -----------------------

#: HTTP status -> error kind. The kinds are those of the classes above (what the ledger records),
#: plus one that an adapter words apart: "denied" (an AuthenticationError: access refused, not a
#: bad key). 409 (a conflict, e.g. a lock timeout) is a server error: the SDKs retry it too.
STATUS_KINDS = {400: "bad_request", 401: "authentication", 402: "billing", 403: "denied",
                404: "model_not_found", 408: "timeout", 409: "server_error", 429: "rate_limited",
                529: "overloaded"}


class LLMCellsWarning(UserWarning):
    """Base class of llmcells' warnings. Each says in one line what happened and what to do,
    and is shown as that one line (see one_line_warnings), not with a source line of
    llmcells' own code."""


def _format_warning(message: Any, category: type, filename: str, lineno: int,
                    line: str | None = None) -> str:
    if isinstance(category, type) and issubclass(category, LLMCellsWarning):
        return f"{category.__name__}: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


_python_format_warning: Any = None


def one_line_warnings() -> None:
    """Show llmcells' warnings as "PriceWarning: message" lines. Python's default format adds
    the path and source line of the llmcells code that warned, which says nothing to a user
    (the call itself runs on llmcells' own thread). Other warnings keep their format."""
    global _python_format_warning
    import warnings

    if warnings.formatwarning is not _format_warning:
        _python_format_warning = warnings.formatwarning
        warnings.formatwarning = _format_warning


def kind_of_status(status: int | None, message: str = "") -> str:
    """The error kind an HTTP status means, before a provider's own error code refines it:
    STATUS_KINDS, any other 5xx "server_error", 4xx "bad_request", else "provider_error". A 503
    whose message says the model is overloaded is "overloaded" (how Google, and the agent CLIs
    passing on a 529, say it)."""
    if status is None:
        return ProviderError.kind
    if status == 503 and "overload" in message.lower():
        return "overloaded"
    if status in STATUS_KINDS:
        return STATUS_KINDS[status]
    if status >= 500:
        return ServerError.kind
    return BadRequestError.kind if 400 <= status < 500 else ProviderError.kind


def did_you_mean(word: str, choices: Any, quote: str = "") -> str:
    """" (did you mean X?)" with the choice closest to a mistyped word (each choice shown between
    `quote` marks), or "" when none is close: the end of a one-line error about a typo."""
    from difflib import get_close_matches

    close = get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {quote}{close[0]}{quote}?)" if close else ""


def with_suggestion(message: str, parser: Any) -> str:
    """argparse's message about a mistyped option or choice, with the closest valid one (the
    magics' options and the command line's alike)."""
    options = [o for o in getattr(parser, "_option_string_actions", {}) if o.startswith("--")]
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        for word in unknown.group(1).split():
            if word.startswith("--"):
                hint = did_you_mean(word.split("=", 1)[0], options)
                if hint:
                    return f"{message}{hint}"
        return message
    choice = re.match(r"argument .*: invalid choice: '(.*)' \(choose from (.*)\)", message)
    if choice:
        return message + did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
    return message


#: whether the user asked for full tracebacks (llmcells.configure(debug=True)); config.py sets
#: it, since this module sits below the settings
debug_setting: "Any" = lambda: False


def _debugging() -> bool:
    """True when the user asked for full tracebacks: llmcells' debug setting, or IPython's
    Verbose exception mode."""
    if debug_setting():
        return True
    import sys

    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return getattr(getattr(shell, "InteractiveTB", None), "mode", None) == "Verbose"


# Keys look like sk-..., sk-ant-..., AIza...; also anything that follows "key" in a provider message
# ("Incorrect API key provided: DEADBEEF").
_KEY_PATTERNS = [
    re.compile(r"\b(sk-[A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{10,})"),
    re.compile(r"(?i)(api[ _-]?key(?: provided)?\s*[:=]\s*)([^\s.,;'\"]+)"),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9_\-.]{6,})"),
]
_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a key so that it is removed from every message llmcells shows or stores."""
    if value and len(value) >= 4:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Remove anything that looks like an API key (and every registered key) from text."""
    if not text:
        return text
    for s in _known_secrets:
        if s in text:
            text = text.replace(s, "***")
    text = _KEY_PATTERNS[0].sub("***", text)
    text = _KEY_PATTERNS[1].sub(lambda m: m.group(1) + "***", text)
    text = _KEY_PATTERNS[2].sub(lambda m: m.group(1) + "***", text)
    return text
