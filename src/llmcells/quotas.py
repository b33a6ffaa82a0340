"""Provider quotas: the rate-limit headers seen on responses, and daily caps counted from the ledger.

- Every response's rate-limit headers (OpenAI `x-ratelimit-*`, Anthropic `anthropic-ratelimit-*`)
  and every quota error (Gemini's QuotaFailure details, any 429's headers) are kept, the latest
  per (provider, model); `llmcells.quota()` shows them, and batch gates read `gate_wait` to slow
  down before the provider answers 429.
- Daily caps (`limits={"google": {"rpd": 250, "tpd": 1_000_000}}`, or `set_limits`) are enforced
  from the ledger's own rows of the provider's current day, so they hold across kernel restarts
  and processes. A call over the cap is not sent: it ends as a `rate_limited` error saying when the
  day resets. Days are UTC, except Google's, which reset at midnight Pacific time as Google
  documents for the Gemini API's requests-per-day quota. Simulated calls spend no quota: they
  are neither counted nor stopped.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from . import registry
from .errors import ConfigError, RateLimitError
from .session import session
from ._log import swallowed
from ._loop import import_pandas

if TYPE_CHECKING:
    import pandas as pd

    from .models import ModelSpec

_lock = threading.Lock()
_latest: dict[tuple[str, str], dict[str, Any]] = session.rate_limits_seen

# ----- rate-limit headers ---------------------------------------------------------------------

_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
_RAW_PREFIXES = tuple(p.encode() for p in _PREFIXES)
_OPENAI = re.compile(r"^x-ratelimit-(limit|remaining|reset)-(requests|tokens)$")
_ANTHROPIC = re.compile(r"^anthropic-ratelimit-(requests|tokens|input-tokens|output-tokens)-"
                        r"(limit|remaining|reset)$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


# Both parsers are cached: every response carries a few of these values, and the same ones
# repeat from call to call (a reset time stays put for a second or more); parsing a reset time
# afresh was most of what reading a response's rate limits cost.
@lru_cache(maxsize=256)
def _seconds(value: str) -> float | None:
    """OpenAI's reset durations ("6ms", "1s", "1m30.5s", "2h3m") in seconds."""
    parts = _DURATION.findall(value.strip())
    if not parts:
        try:
            return float(value)
        except ValueError:
            return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


@lru_cache(maxsize=256)
def _epoch(value: str) -> float | None:
    """Anthropic's reset times (RFC 3339) as epoch seconds."""
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _number(value: str) -> int | None:
    try:
        return int(float(value))
    except ValueError:
        return None


@lru_cache(maxsize=128)
def _field_of(name: str) -> tuple[str, str] | None:
    """What a rate-limit header (its lower-case name) gives: (the key in from_headers' dict, how
    its value reads: "count", "in" (OpenAI's reset: a duration from now) or "at" (Anthropic's
    reset: a time)), or None for a header of neither form. The names are the same on every
    response: matched once each, not per call."""
    m = _OPENAI.match(name)
    if m:
        what, field = m.group(2), m.group(1)
        return (f"{what}_reset_at", "in") if field == "reset" else (f"{what}_{field}", "count")
    m = _ANTHROPIC.match(name)
    if m:
        what, field = m.group(1).replace("-", "_"), m.group(2)
        return (f"{what}_reset_at", "at") if field == "reset" else (f"{what}_{field}", "count")
    return None


@lru_cache(maxsize=1024)  # (bounded: a server may invent header names)
def _raw_field(name: bytes) -> tuple[str, str] | None:
    """_field_of for a raw (bytes) header name, remembered: one cache lookup per header of a
    response, the many that are not rate limits included."""
    lower = name.lower()
    return _field_of(lower.decode("latin-1")) if lower.startswith(_RAW_PREFIXES) else None


def _put(out: dict[str, Any], found: tuple[str, str], value: str, now: float) -> None:
    key, how = found
    if how == "count":
        if (n := _number(value)) is not None:
            out[key] = n
    elif how == "in":
        if (secs := _seconds(value)) is not None:
            out[key] = now + secs
    elif (at := _epoch(value)) is not None:
        out[key] = at


def from_headers(headers: Any, now: float | None = None) -> dict[str, Any] | None:
    """The rate limits in a response's headers, normalised: `{requests,tokens,input_tokens,
    output_tokens}_{limit,remaining,reset_at}` (reset_at in epoch seconds). None when there are
    none. headers: a mapping, or anything with a `.headers` (an httpx response, an SDK stream)."""
    if headers is not None and not isinstance(headers, Mapping) and hasattr(headers, "headers"):
        headers = getattr(headers, "headers", None)
    if not headers:
        return None
    now = time.time() if now is None else now
    out: dict[str, Any] = {}
    try:
        raw = getattr(headers, "raw", None)  # httpx.Headers: bytes pairs, decoded only if ours
        if isinstance(raw, list):  # (this runs per call: one dict lookup per header)
            for k, v in raw:
                found = _raw_field(k)
                if found is not None:
                    _put(out, found, v.decode("latin-1"), now)
            return out or None
        items = list(headers.items())
    except Exception as exc:
        swallowed("reading rate-limit headers", exc)
        return None
    for raw_name, value in items:
        name = str(raw_name).lower()
        if not name.startswith(_PREFIXES):
            continue
        found = _field_of(name)
        if found is not None:
            _put(out, found, str(value), now)
    return out or None


def observe(spec: "ModelSpec", limits: Mapping[str, Any] | None) -> None:
    """Keep the latest rate limits seen for spec's provider and model (called by the engine)."""
    if not limits:
        return
    entry = dict(limits)
    entry["seen_at"] = time.time()
    with _lock:
        _latest[(spec.provider, spec.name)] = entry


def observe_error(spec: "ModelSpec", exc: BaseException) -> None:
    """Keep what a failed request says about quotas: its rate-limit headers, and for Gemini the
    QuotaFailure of a 429. Never raises."""
    try:
        response = getattr(exc, "response", None)
        limits = from_headers(getattr(response, "headers", None)) or {}
        details = getattr(exc, "details", None)  # google-genai APIError: the parsed error body
        violations = []
        if isinstance(details, dict):
            error = details.get("error") if isinstance(details.get("error"), dict) else details
            for d in error.get("details") or []:
                if isinstance(d, dict) and str(d.get("@type", "")).endswith("QuotaFailure"):
                    for v in d.get("violations") or []:
                        if isinstance(v, dict):
                            violations.append({k: v[k] for k in ("quotaMetric", "quotaId", "quotaValue")
                                               if k in v})
        status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
        if violations:
            limits["quota_violations"] = violations
        if status == 429:
            limits["last_429_at"] = time.time()
        if limits:
            with _lock:
                previous = _latest.get((spec.provider, spec.name), {})
            observe(spec, {**previous, **limits})
    except Exception as exc:
        swallowed("reading a 429's quota details", exc)


def latest(provider: str, model: str | None = None) -> dict[str, Any] | None:
    """The latest limits seen for a provider's model (or for any of its models)."""
    with _lock:
        if model is not None:
            entry = _latest.get((provider, model))
            return dict(entry) if entry else None
        entries = [e for (p, _), e in _latest.items() if p == provider]
    return dict(max(entries, key=lambda e: e["seen_at"])) if entries else None


def gate_wait(provider: str, model: str, inflight: int, need_tokens: int) -> float:
    """Seconds a batch gate should wait before sending one more request, from the last headers:
    when the requests (or tokens) left in the provider's window are already taken by the calls
    in flight, wait for the window to reset, rather than be answered 429."""
    entry = latest(provider, model)
    if not entry:
        return 0.0
    now = time.time()
    waits = [0.0]
    for what, need in (("requests", 1 + inflight), ("tokens", need_tokens)):
        left, reset_at = entry.get(f"{what}_remaining"), entry.get(f"{what}_reset_at")
        if left is None or reset_at is None or reset_at <= now:
            continue
        if left < need:
            waits.append(min(reset_at - now, 60.0))
    return max(waits)


def clear() -> None:
    """Forget every rate limit seen (tests, or after changing keys)."""
    with _lock:
        _latest.clear()


# ----- daily caps --------------------------------------------------------------------------------

#: session-wide daily caps per provider: {"google": {"rpd": 250, "tpd": None}}
_caps: dict[str, dict[str, int | None]] = session.daily_caps
#: calls admitted under a cap and not yet in the ledger, per (provider, simulated)
#: (the call ids: a call whose row is already in the ledger is not counted again)
_reserved: dict[tuple[str, bool], set[str]] = session.reserved
#: where each provider's day starts (Gemini's requests-per-day quota resets at midnight Pacific),
#: derived from the capability profiles (registry.Caps.day_zone); UTC where none is declared
DAY_ZONES = {r.name: r.caps.day_zone for r in registry.PROVIDERS.values()
             if r.caps is not None and r.caps.day_zone != "UTC"}


def has_caps() -> bool:
    """Whether any session-wide daily cap is set (set_limits)."""
    return bool(_caps)


def daily_caps(limits: Mapping[str, Any] | None) -> dict[str, dict[str, int | None]]:
    """The daily caps in a `limits=` mapping ({"google": {"rpd": 250}}; other keys are ignored
    here). A ConfigError names a bad value."""
    caps: dict[str, dict[str, int | None]] = {}
    for provider, spec in (limits or {}).items():
        values = spec if isinstance(spec, Mapping) else getattr(spec, "__dict__", {})
        cap = {}
        for key in ("rpd", "tpd"):
            value = values.get(key)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"limits[{provider!r}][{key!r}] must be a number >= 0, not {value!r}.")
            cap[key] = int(value)
        if cap:
            from .models import PROVIDER_SYNONYMS

            caps[PROVIDER_SYNONYMS.get(provider, provider)] = cap
    return caps


def set_limits(limits: Mapping[str, Any] | None) -> None:
    """Session-wide daily caps, e.g. `set_limits({"google": {"rpd": 250, "tpd": 1_000_000}})`;
    they apply to every ask, compare and batch. `set_limits(None)` removes them."""
    _caps.clear()
    _caps.update(daily_caps(limits))


def _zone(provider: str):
    name = DAY_ZONES.get(provider)
    if name:
        try:
            from zoneinfo import ZoneInfo

            return ZoneInfo(name)
        except Exception as exc:  # no tz database: Pacific standard time is close enough
            swallowed("loading the Pacific time zone (UTC-8 instead)", exc)
            return timezone(timedelta(hours=-8))
    return timezone.utc


def day_bounds(provider: str, now: float | None = None) -> tuple[float, float, str]:
    """(start of the provider's current day, start of the next one, the zone's name), in epoch s."""
    zone = _zone(provider)
    here = datetime.fromtimestamp(time.time() if now is None else now, zone)
    start = here.replace(hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=1, hours=2)).replace(hour=0)  # DST-safe
    return start.timestamp(), following.timestamp(), DAY_ZONES.get(provider, "UTC")


def used_today(provider: str, simulated: bool, now: float | None = None,
               among: Iterable[str] = ()) -> tuple[int, int, set[str]]:
    """(requests, tokens, written) the ledger holds for the provider's current day: requests
    count every attempt sent (retries too); calls never sent (a missing key, over a cap) count
    nothing. written: the call ids of `among` that have a row already."""
    import sqlite3

    from . import ledger

    start, _, _ = day_bounds(provider, now)
    p = ledger.path()
    if not p.exists():
        return 0, 0, set()
    ids = list(among)
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10)
    try:
        conn.execute("BEGIN")  # one snapshot for both reads
        row = conn.execute(
            "SELECT COALESCE(SUM(attempts), 0), COALESCE(SUM(input_tokens + output_tokens), 0) "
            "FROM calls WHERE provider = ? AND ts >= ? AND simulated = ?",
            (provider, start, 1 if simulated else 0)).fetchone()
        written = {r[0] for r in conn.execute(
            f"SELECT call_id FROM calls WHERE call_id IN ({', '.join('?' * len(ids))})", ids)} if ids else set()
    except sqlite3.Error:
        return 0, 0, set()
    finally:
        conn.close()
    return int(row[0]), int(row[1]), written


def _cap_for(provider: str, caps: Mapping[str, Mapping[str, int | None]] | None):
    cap = dict(_caps.get(provider) or {})
    cap.update((caps or {}).get(provider) or {})
    return cap


async def admit(spec: "ModelSpec", caps: Mapping[str, Mapping[str, int | None]] | None = None,
                call_id: str | None = None) -> tuple[bool, RateLimitError | None]:
    """Check spec's provider against its daily caps before a call. Returns (reserved, error):
    error is the rate_limited error of a call over the cap; reserved says a slot was taken, to
    give back with `release` once the call is in the ledger."""
    cap = _cap_for(spec.provider, caps)
    if not cap or spec.simulated:  # a simulated call spends no quota, and is never held to one
        return False, None
    key = (spec.provider, spec.simulated)
    with _lock:
        held = set(_reserved.get(key, ()))
    requests, tokens, written = await asyncio.to_thread(used_today, spec.provider, spec.simulated,
                                                        None, held)
    with _lock:
        # Calls in flight (when the count began, or since), less those whose rows the count
        # already holds: a call writes its row a moment before it gives its slot back, so one
        # that finished meanwhile is either in the count or still in `held`, never in neither.
        pending = len((held | _reserved.get(key, set())) - written)
        over = None
        if cap.get("rpd") is not None and requests + pending >= cap["rpd"]:
            over = f"{requests + pending} of rpd={cap['rpd']} requests"
        elif cap.get("tpd") is not None and tokens >= cap["tpd"]:
            over = f"{tokens} of tpd={cap['tpd']} tokens"
        if over is None:
            _reserved.setdefault(key, set()).add(call_id or uuid.uuid4().hex)
            return True, None
    _, reset, zone = day_bounds(spec.provider)
    when = datetime.fromtimestamp(reset, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = "UTC midnight" if zone == "UTC" else f"midnight {zone}"
    return False, RateLimitError(
        f"Daily cap reached for {spec.provider}: {over} used today; the day resets at {when} "
        f"({where}). Raise it with limits={{'{spec.provider}': {{...}}}} or llmcells.set_limits().",
        provider=spec.provider, retry_after=max(0.0, reset - time.time()))


def release(spec: "ModelSpec", call_id: str | None = None) -> None:
    """Give back the slot `admit` took for call_id (the call's row is in the ledger now)."""
    key = (spec.provider, spec.simulated)
    with _lock:
        held = _reserved.get(key, set())
        if call_id in held:
            held.discard(call_id)
        elif held:
            held.pop()


# ----- the table -----------------------------------------------------------------------------------


def quota() -> "pd.DataFrame":
    """The latest rate limits seen, one row per provider and model, with the daily caps and what
    the ledger counts for today: requests/tokens limit, remaining and reset time (UTC), Gemini
    quota violations, rpd/tpd and their use today."""
    pd = import_pandas()

    def ts(x: Any) -> Any:
        return pd.Timestamp(x, unit="s", tz="UTC") if x is not None else pd.NaT

    with _lock:
        seen = {k: dict(v) for k, v in _latest.items()}
    providers = {p for p, _ in seen} | set(_caps)
    rows = []
    for provider in sorted(providers):
        cap = _caps.get(provider) or {}
        extra: dict[str, Any] = {}
        if cap:
            req, tok, _ = used_today(provider, False)  # real calls only: simulated ones spend nothing
            _, reset, _ = day_bounds(provider)
            extra = {"rpd": cap.get("rpd"), "requests_today": req, "tpd": cap.get("tpd"),
                     "tokens_today": tok, "day_resets_at": ts(reset)}
        models = sorted(m for p, m in seen if p == provider) or [None]
        for model in models:
            e = seen.get((provider, model), {})
            row: dict[str, Any] = {"provider": provider, "model": model,
                                   "seen_at": ts(e.get("seen_at"))}
            for what in ("requests", "tokens", "input_tokens", "output_tokens"):
                row[f"{what}_limit"] = e.get(f"{what}_limit")
                row[f"{what}_remaining"] = e.get(f"{what}_remaining")
                row[f"{what}_reset_at"] = ts(e.get(f"{what}_reset_at"))
            row["quota_violations"] = e.get("quota_violations")
            row["last_429_at"] = ts(e.get("last_429_at"))
            row.update(extra)
            rows.append(row)
    if not rows:  # the columns still, and why it is empty (not a bare "Empty DataFrame")
        frame = pd.DataFrame(columns=["provider", "model", "seen_at", "requests_limit",
                                      "requests_remaining", "requests_reset_at", "tokens_limit",
                                      "tokens_remaining", "tokens_reset_at"])
        frame.attrs["note"] = ("quota: no rate limits seen yet in this session; they come from "
                               "the providers' response headers, so they show after a call. "
                               "Daily caps set with set_limits() show at once.")
        return frame
    frame = pd.DataFrame(rows)
    return frame.dropna(axis=1, how="all")
