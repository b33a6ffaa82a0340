"""The one home of cost: the USD cost of a call from its normalised Usage, and the exact price used.

Prices come from `genai-prices` (offline data, with cached input, cache writes by lifetime, tiered
and time-dependent prices, service tiers and batch processing) unless the user set one with
`set_price`, which always wins. An unknown model costs NaN, never a silent 0, and warns once per
(provider, model) per session, saying how to add a price.

How a price is found and applied:

- A call is priced from its provider and model (dated names, `models/` and `provider:` prefixes
  are fine), its service tier (`price_context={"service_tier": ...}`), its processing ("live" or
  "batch"), the time it started (`genai_request_timestamp`: prices change over time, and some
  differ by time of day) and, for OpenAI-compatible endpoints, the host of its base URL
  (genai-prices knows OpenRouter, Groq, DeepSeek, Together, Mistral and others by their URL).
- genai-prices' answer is turned once into a `PriceBasis`: the per-million rates of each kind of
  token (plain input, cache reads, 5-minute and 1-hour cache writes, output, reasoning) after
  tiers and fallbacks are applied, plus any per-request fee. Every later call of that (data,
  model, tier, processing, day) only multiplies: that is the per-call speed, and it stays exact.
- The cache is keyed on the identity of genai-prices' data snapshot, so an update in the same
  session (`genai_prices.UpdatePrices`, `data_snapshot.set_custom_snapshot`, or `update_prices()`)
  reprices every name at once.
- A batch price (processing="batch": provider batch jobs, `reprice(..., processing="batch")`) is
  genai-prices' batch price where the model has one, else the standard price halved (OpenAI,
  Anthropic and Google publish batch at 50%), set_price's included; price_source says which
  ("genai-prices 0.2.5 (batch)", "genai-prices 0.2.5, 50% batch rule").
- The basis is the provenance stored on each ledger row (genai-prices version, data date, matched
  provider and model entry, tier, processing, rates), so any row's cost can be re-derived by hand:

      plain = input - cached_input - cache_write;  write_5m = cache_write - cache_write_1h
      cost  = (plain*input_rate + cached_input*cached_input_rate + write_5m*cache_write_rate
               + cache_write_1h*cache_write_1h_rate + (output - reasoning)*output_rate
               + reasoning*reasoning_rate) / 1e6 + request_fee

  (floats, in that order). genai-prices' own Decimal arithmetic agrees to the last few digits.

`import genai_prices` costs ~0.2 s, so it happens on the first priced call, not on import; and
a fresh process whose calls' prices an earlier process derived from the same bundled data does
not load it at all: those bases are kept in the price file (`price_file`, `$LLMCELLS_HOME/
prices.json`), read only while genai-prices is not loaded (so its bundled data is the one in use).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from . import price_file, registry
from .errors import ConfigError, LLMCellsWarning
from .models import PROVIDER_SYNONYMS
from .registry import parse_id
from .session import session
from .types import Usage
from ._log import swallowed

log = logging.getLogger("llmcells")

__all__ = ["cost", "price", "basis", "estimate_cost", "set_price", "clear_prices", "prices",
           "PriceWarning", "PriceBasis", "USER_PRICE_SOURCE", "data_info", "update_prices",
           "BatchEstimator", "price_result", "rows_cost"]

# llmcells provider -> genai-prices provider id. Other providers (user endpoints) are matched by
# their base URL, or by their name when it is a genai-prices provider id ("groq", "deepseek").
# Derived from the registry: every provider called through its own API, under its own name.
_GENAI_PROVIDERS = {r.name: r.name for r in registry.api_rows()}
# [routes] a cloud route is priced by the cloud's own genai-prices entry (Bedrock: "aws";
# Vertex AI: "google", which lists Claude's Vertex prices too), and only by a model that entry
# itself lists: genai-prices' fallback to another provider's table would pass the direct
# price off as the cloud's.
_ROUTE_PRICES = {r.name: r.route_prices for r in registry.routes() if r.route_prices}
_GENAI_PROVIDERS.update(_ROUTE_PRICES)

USER_PRICE_SOURCE = "set_price"
#: the price_source note of a batch price genai-prices has for the model
BATCH_VARIANT = " (batch)"
#: the price_source note of a batch price made by halving the standard one: OpenAI, Anthropic and
#: Google all publish batch processing at 50% of the standard price, and genai-prices has a batch
#: price for only about half the models (for the rest it silently answers the standard price)
BATCH_RULE = ", 50% batch rule"
#: the price_source note of a regional endpoint's premium (a cloud route's regional_premium, e.g.
#: Claude on Vertex AI outside its global endpoint): ", +10% regional endpoint"
REGIONAL_RULE = ", +{:.0%} regional endpoint"
_PER = 1_000_000
#: the kinds of token a basis has a per-million rate for, in formula order
RATE_KINDS = ("input", "cached_input", "cache_write", "cache_write_1h", "output", "reasoning")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "0.0.0.0")


class PriceWarning(LLMCellsWarning):
    """A call's price is unknown (its cost is NaN), or a set_price lacks a rate it needed."""


# ----- the price used for a call ----------------------------------------------------------------


@dataclass(frozen=True)
class PriceBasis:
    """The exact price a cost was computed with: where it came from and its per-million rates.

    source: "genai-prices" or "set_price". version: genai-prices' version. data_date: the date
    of the price data (bundled data: its latest price change; updated data: also when it was
    fetched). provider / model: the genai-prices provider and model entry matched (or the
    set_price key). tier / processing: the price variant used. rates: USD per million tokens for
    each of RATE_KINDS; request: a fixed USD fee per call (rare). note: how a batch price was
    found, appended to the label: BATCH_VARIANT (genai-prices' own batch price) or BATCH_RULE
    (the standard price halved); "" for live prices.
    """

    source: str
    version: str | None
    data_date: str | None
    provider: str | None
    model: str | None
    tier: str | None
    processing: str
    rates: tuple[float, ...]
    request: float = 0.0
    note: str = ""

    def cost(self, usage: Usage) -> float:
        """The cost of usage at these rates (the formula in this module's docstring)."""
        return _apply(self.rates, self.request, *_clean_counts(usage))

    @functools.cached_property
    def rates_json(self) -> str:
        """The rates as a JSON object (the ledger's price_rates column)."""
        d: dict[str, float] = dict(zip(RATE_KINDS, self.rates))
        if self.request:
            d["request"] = self.request
        return json.dumps(d, separators=(",", ":"))

    @property
    def label(self) -> str:
        """The price_source text: "genai-prices 0.2.3" or "set_price", then the note of a batch
        price ("genai-prices 0.2.3 (batch)", "set_price, 50% batch rule"); a cloud route's call
        adds the route's name (price_result: "genai-prices 0.2.3 (bedrock)")."""
        base = f"genai-prices {self.version}" if self.source == "genai-prices" else self.source
        return base + self.note

    def as_dict(self) -> dict[str, Any]:
        """The basis as plain JSON-able data (from_dict reads it back)."""
        return {"source": self.source, "version": self.version, "data_date": self.data_date,
                "provider": self.provider, "model": self.model, "tier": self.tier,
                "processing": self.processing, "rates": list(self.rates), "request": self.request,
                "note": self.note}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "PriceBasis | None":
        """The basis as_dict() gave (None for no or malformed data)."""
        if not d:
            return None
        try:
            return cls(d["source"], d.get("version"), d.get("data_date"), d.get("provider"),
                       d.get("model"), d.get("tier"), d.get("processing") or "live",
                       tuple(float(x) for x in d["rates"]), float(d.get("request") or 0.0),
                       str(d.get("note") or ""))
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "PriceBasis | None":
        """The basis stored on a ledger row (None when the row has no rates)."""
        raw = row.get("price_rates")
        if not isinstance(raw, str) or not raw:
            return None
        rates = json.loads(raw)
        src = row.get("price_source") or ""
        note = next((n for n in (BATCH_VARIANT, BATCH_RULE) if src.endswith(n)), "")
        src = src[:len(src) - len(note)]
        version = src.split(" ")[1] if src.startswith("genai-prices ") else None
        return cls("genai-prices" if version else (src or USER_PRICE_SOURCE), version,
                   row.get("price_data_date"), row.get("price_provider"), row.get("price_model"),
                   row.get("service_tier"), row.get("processing") or "live",
                   tuple(float(rates.get(k, 0.0)) for k in RATE_KINDS), float(rates.get("request", 0.0)),
                   note)


def _apply(rates: tuple[float, ...], request: float, inp: int, cached: int, write: int,
           write_1h: int, out: int, reasoning: int) -> float:
    r_in, r_cr, r_cw, r_cw1h, r_out, r_reas = rates
    return (((inp - cached - write) * r_in + cached * r_cr + (write - write_1h) * r_cw
             + write_1h * r_cw1h + (out - reasoning) * r_out + reasoning * r_reas) / _PER
            + request)


def _clean_counts(usage: Usage) -> tuple[int, int, int, int, int, int]:
    """Non-negative, consistent counts: cached + writes <= input, 1h writes <= writes,
    reasoning <= output."""
    try:                                    # the usual case, checked cheaply: already consistent
        c = (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens,
             usage.cache_write_1h_tokens, usage.output_tokens, usage.reasoning_tokens)
        if min(c) >= 0 and c[1] + c[2] <= c[0] and c[3] <= c[2] and c[5] <= c[4]:
            return c
    except (TypeError, AttributeError):
        pass
    inp = max(int(usage.input_tokens or 0), 0)
    cached = max(int(usage.cached_input_tokens or 0), 0)
    write = max(int(usage.cache_write_tokens or 0), 0)
    write_1h = min(max(int(getattr(usage, "cache_write_1h_tokens", 0) or 0), 0), write)
    out = max(int(usage.output_tokens or 0), 0)
    reasoning = max(int(usage.reasoning_tokens or 0), 0)
    inp = max(inp, cached + write)
    out = max(out, reasoning)
    return inp, cached, write, write_1h, out, reasoning


# ----- names ---------------------------------------------------------------------------------------

_DATE_SUFFIXES = [
    re.compile(r"[-@]\d{4}-\d{2}-\d{2}$"),   # gpt-4o-mini-2024-07-18
    re.compile(r"[-@]\d{8}$"),               # claude-haiku-4-5-20251001, claude-...@20251001
    re.compile(r"-\d{3,4}$"),                # gpt-4-0613, gemini-1.5-pro-002
    re.compile(r"-latest$"),
]


def _norm_provider(provider: str | None) -> str:
    p = (provider or "").strip().lower()
    from .registry import price_provider  # [agents] an agent CLI is priced as its API

    return price_provider(PROVIDER_SYNONYMS.get(p, p))


@functools.lru_cache(maxsize=4096)
def _normalise(provider: str | None, model: str) -> tuple[str, str]:
    """(provider, model name) as used for price lookup: synonyms mapped, prefixes stripped."""
    prov = _norm_provider(provider)
    name = (model or "").strip()
    if ":" in name:
        prefix, rest = parse_id(name)
        p = _norm_provider(prefix)
        # Only strip a provider prefix: Ollama names contain colons too (llama3.2:3b).
        if p == prov or (not prov and p in _GENAI_PROVIDERS):
            prov, name = p, rest.strip()
    if name.startswith("models/"):
        name = name[len("models/"):]
    elif "/models/" in name:                 # projects/.../publishers/google/models/gemini-2.5-pro
        name = name.rsplit("/models/", 1)[1]
    return prov, name.lower()


def _undated(name: str) -> str | None:
    for rx in _DATE_SUFFIXES:
        stripped = rx.sub("", name)
        if stripped != name and stripped:
            return stripped
    return None


# ----- genai-prices: the data and what it is --------------------------------------------------------


_get_snapshot: Any = None


def _snapshot() -> Any:
    global _get_snapshot
    if _get_snapshot is None:
        from genai_prices.data_snapshot import get_snapshot

        _get_snapshot = get_snapshot
    return _get_snapshot()


@functools.lru_cache(maxsize=1)
def _version() -> str:
    import genai_prices

    return genai_prices.__version__


def _latest_change(snap: Any) -> str | None:
    """The latest date a price in the data starts on (the best date bundled data has)."""
    latest = None
    for p in snap.providers:
        for m in p.models:
            conds = [] if not isinstance(m.prices, list) else [c.constraint for c in m.prices]
            conds += [v.constraint for v in (m.price_variants or ())]
            for c in conds:
                d = getattr(c, "start_date", None)
                if d is not None and (latest is None or d > latest):
                    latest = d
    return latest.isoformat() if latest is not None else None


def _data_date(snap: Any) -> str:
    """The date of the data: the latest price change it records (scheduled ones included), and
    for data not bundled with the package, when it was fetched or made."""
    latest = _latest_change(snap) or "undated"
    if snap is _bundled():
        return f"bundled, prices to {latest}"
    how = "fetched" if snap.from_auto_update else "custom"
    return f"{how} {snap.timestamp:%Y-%m-%d %H:%M}, prices to {latest}"


def _bundled() -> Any:
    from genai_prices.data_snapshot import _bundled_snapshot

    return _bundled_snapshot()


def data_info() -> dict[str, str]:
    """genai-prices' version and the date of the price data in use (see PriceBasis.data_date)."""
    snap = _snapshot()
    return {"version": _version(), "data": "bundled" if snap is _bundled() else
            ("updated" if snap.from_auto_update else "custom"), "data_date": _state(snap).data_date}


class _State:
    """Everything derived from one genai-prices snapshot; replaced when the snapshot changes."""

    def __init__(self, snap: Any):
        self.snap = snap              # a strong reference: its id can't be reused while cached
        self._data_date: str | None = None
        self.models: dict[tuple, Any] = {}    # (prov, name, base_url) -> _Entry or None

    @property
    def data_date(self) -> str:
        if self._data_date is None:
            self._data_date = _data_date(self.snap)
        return self._data_date


_current: _State | None = None


def _state(snap: Any | None = None) -> _State:
    global _current
    snap = _snapshot() if snap is None else snap
    st = _current
    if st is None or st.snap is not snap:
        st = _current = _State(snap)
    return st


class _Entry:
    """A matched (provider, model) of one snapshot, and its resolved bases by context and time."""

    __slots__ = ("key", "provider", "model", "daily", "constraints", "bases", "batch")

    def __init__(self, key: tuple, provider: Any, model: Any):
        self.key = key                # (provider, name, base_url) as looked up
        self.provider, self.model = provider, model
        # genai-prices' own batch prices for this model (variants apply only to a provider's
        # own models, see _levels); each may start on a date (has_batch)
        self.batch = [v for v in model.price_variants or () if v.when.get("processing") == "batch"] \
            if any(model is m for m in provider.models) else []
        conds = [] if not isinstance(model.prices, list) else [c.constraint for c in model.prices]
        conds += [v.constraint for v in (model.price_variants or ())]
        conds = [c for c in conds if c is not None]
        # Start dates are UTC dates: such prices are constant over a UTC day. Time-of-day prices
        # (DeepSeek's off-peak) are keyed on which constraints are active.
        self.daily = all(hasattr(c, "start_date") for c in conds)
        self.constraints = conds
        self.bases: dict[tuple, list] = {}

    def has_batch(self, ts: float) -> bool:
        """Whether genai-prices has a batch price of its own for this model at time ts (before a
        batch variant's start date it answers the standard price for processing="batch")."""
        if not self.batch:
            return False
        from datetime import datetime, timezone

        when = datetime.fromtimestamp(ts, timezone.utc)
        return any(v.constraint is None or v.constraint.active(when) for v in self.batch)

    def when_key(self, ts: float) -> Any:
        if not self.constraints:
            return None
        if self.daily:
            return int(ts // 86400)
        from datetime import datetime, timezone

        dt = datetime.fromtimestamp(ts, timezone.utc)
        return tuple(c.active(dt) for c in self.constraints)


def _find(st: _State, prov: str, name: str, base_url: str | None) -> "_Entry | None":
    key = (prov, name, base_url)
    try:
        return st.models[key]
    except KeyError:
        pass
    entry = None
    for ref in filter(None, (name, _undated(name))):
        hit = _lookup(st.snap, prov, ref, base_url)
        if hit is not None:
            entry = _Entry(key, *hit)
            break
    st.models[key] = entry
    if entry is None and st.snap is _bundled():
        # the next process can know from the price file that the data has no such model, at
        # any tier and processing
        _keep_saved(key, None, None, _UNKNOWN)
    return entry


def model_names(provider: str) -> list[str]:
    """The model ids genai-prices' data has for an API provider ("anthropic", "openai",
    "google"): the names a mistyped model is compared with."""
    gid = _GENAI_PROVIDERS.get(_norm_provider(provider))
    for p in _snapshot().providers if gid else ():
        if p.id == gid:
            return [m.id for m in p.models]
    return []


def _lookup(snap: Any, prov: str, ref: str, base_url: str | None) -> Any:
    gid = _GENAI_PROVIDERS.get(prov)
    tries: list[tuple[str | None, str | None]] = []
    if gid is not None:
        tries.append((gid, None))
    else:
        if base_url and not any(h in base_url for h in _LOCAL_HOSTS):
            tries.append((None, base_url))
        from genai_prices.data_snapshot import find_provider_by_id

        if prov and find_provider_by_id(snap.providers, prov) is not None:
            tries.append((prov, None))
    for pid, url in tries:
        try:
            found = snap.find_provider_model(ref, None, pid, url)
        except LookupError:
            continue
        if prov in _ROUTE_PRICES and not any(m is found[1] for m in found[0].models):
            return None  # only another provider's price is known: not the route's
        return found
    return None


def _levels(entry: _Entry, st: _State, tier: str | None, processing: str, ts: float,
            speed: str | None = None) -> list:
    """[(input threshold, PriceBasis)], highest threshold first, for this context and time. A
    batch price genai-prices does not have is the live one halved (BATCH_RULE). speed: a speed
    mode other than the standard one (Anthropic's "fast"), a price context of its own."""
    key = (tier, processing, entry.when_key(ts)) if speed is None else \
        (tier, processing, entry.when_key(ts), speed)
    levels = entry.bases.get(key)
    if levels is not None:
        return levels
    if processing == "batch" and not entry.has_batch(ts):
        # genai-prices would answer the standard price: halve it, and say so
        levels = [(t, _halved(b)) for t, b in _levels(entry, st, tier, "live", ts, speed)]
    else:
        from datetime import datetime, timezone

        ctx = {}
        if tier:
            ctx["service_tier"] = tier
        if speed:
            ctx["speed"] = speed
        if processing and processing != "live":
            ctx["processing"] = processing
        when = datetime.fromtimestamp(ts, timezone.utc)
        mp = entry.model.get_prices(when, ctx or None) if (
            not ctx or any(entry.model is m for m in entry.provider.models)) else \
            entry.model.get_prices(when)   # as genai-prices: no variants for a fallback provider's model
        levels = _bases_of(mp, entry, st, tier, processing)
        if processing == "batch":
            levels = [(t, dataclasses.replace(b, note=BATCH_VARIANT)) for t, b in levels]
    entry.bases[key] = levels
    if st.snap is _bundled() and speed is None and (key[2] is None or isinstance(key[2], int)):
        # a price constant over a UTC day (or for good): the next process can take it from the
        # price file. (Time-of-day prices are derived anew.)
        _keep_saved(entry.key, tier, processing,
                    {"day": key[2], "levels": [[t, b.as_dict()] for t, b in levels]})
    return levels


def _bases_of(mp: Any, entry: _Entry, st: _State, tier: str | None, processing: str) -> list:
    """The PriceBasis of each input-size tier of a genai ModelPrice."""
    from genai_prices.types import TieredPrices
    from genai_prices.units import _get_registry

    reg = _get_registry()
    priced = [(u, getattr(mp, u.price_key)) for u in reg.units.values()
              if getattr(mp, u.price_key, None) is not None]
    thresholds = sorted({t.start for _, p in priced if isinstance(p, TieredPrices) for t in p.tiers})
    atoms = {"input": "input_tokens", "cached_input": "cache_read_tokens",
             "cache_write": "cache_write_5m_tokens", "cache_write_1h": "cache_write_1h_tokens",
             "output": "output_tokens", "reasoning": "output_reasoning_tokens"}

    def rate(price: Any, inp: int) -> float:
        if isinstance(price, TieredPrices):
            value = price.base
            for t in reversed(price.tiers):
                if inp > t.start:
                    value = t.price
                    break
            return float(value)
        return float(price)

    def nearest(usage_key: str):
        """The priced unit a token of this kind is charged as: itself or its closest ancestor
        (genai-prices' decomposition: an unpriced kind falls back to its parent's rate)."""
        unit = reg.units[usage_key]
        best = None
        for u, p in priced:
            if u.dimensions.items() <= unit.dimensions.items() and (
                    best is None or len(u.dimensions) > len(best[0].dimensions)):
                best = (u, p)
        return best

    out = []
    for level in [-1, *thresholds]:
        inp = level + 1
        rates = []
        for kind in RATE_KINDS:
            hit = nearest(atoms[kind])
            rates.append(0.0 if hit is None else rate(hit[1], inp) * _PER / hit[0].per)
        request = sum((rate(p, inp) / u.per for u, p in priced if u.usage_key == "requests"), 0.0)
        out.append((level, PriceBasis("genai-prices", _version(), st.data_date, entry.provider.id,
                                      entry.model.id, tier, processing, tuple(rates), request)))
    out.reverse()
    return out


# ----- prices kept between processes (see price_file) -------------------------------------------

#: genai-prices' module that holds which data is in use: while it is not imported, the bundled
#: data is (nothing can have set another)
_DATA_MODULE = "genai_prices.data_snapshot"
_NOT_PRICED = object()   # the price file says genai-prices' bundled data has no such model
#: how the price file says so, under the lookup's (provider, name, base URL) and no tier or processing
_UNKNOWN = {"day": None, "levels": None}
_saved_levels: dict[tuple, Any] = {}   # (lookup, day) -> levels parsed from the price file


@functools.lru_cache(maxsize=1)
def _saved_identity() -> str:
    """What the price file's entries are derived from: genai-prices' data module (found without
    importing it), this module and the registry (whose rows name the genai-prices providers)."""
    import importlib.util

    spec = importlib.util.find_spec("genai_prices")
    where = list(spec.submodule_search_locations or ()) if spec is not None else []
    data = os.path.join(where[0], "data.py") if where else "genai_prices:missing"
    from ._version import __version__

    return price_file.identity((data, __file__, registry.__file__), __version__)


def _saved(prov: str, name: str, base_url: str | None, tier: str | None, processing: str,
           ts: float) -> Any:
    """The levels the price file has for this lookup at time ts, _NOT_PRICED, or None (not
    there, for another day, or not well-formed)."""
    lookup = (prov, name, base_url, tier, processing)
    day = int(ts // 86400)
    for key in ((lookup, day), (lookup, None)):
        found = _saved_levels.get(key)
        if found is not None:
            return found
    try:
        ident = _saved_identity()
        entry = price_file.get(lookup, ident)
        if entry is None and price_file.get((prov, name, base_url, None, None), ident) == _UNKNOWN:
            entry = _UNKNOWN
        levels = _parse_saved(entry, day)
    except Exception as exc:  # a cache: anything wrong with it is a miss
        swallowed("reading a price from the price file", exc)
        return None
    if levels is not None:
        _saved_levels[(lookup, entry["day"])] = levels
    return levels


def _parse_saved(entry: Any, day: int) -> Any:
    """An entry's levels as [(threshold, PriceBasis)], _NOT_PRICED, or None when it is not for
    this day or is not what _keep_saved writes."""
    if not isinstance(entry, dict) or entry.get("day") not in (None, day):
        return None
    raw = entry.get("levels")
    if raw is None:
        return _NOT_PRICED
    levels = []
    for threshold, data in raw:
        b = PriceBasis.from_dict(data)
        if (b is None or isinstance(threshold, bool) or not isinstance(threshold, int)
                or len(b.rates) != len(RATE_KINDS)
                or not all(math.isfinite(r) and r >= 0 for r in (*b.rates, b.request))):
            return None
        levels.append((threshold, b))
    return levels or None


def _saved_any(prov: str, name: str, base_url: str | None) -> bool:
    """True when the price file has a live price for today of this model, at any service tier
    (the call's own is known only from its answer), or of a dated name of it (the name an
    answer may carry)."""
    day = int(time.time() // 86400)
    try:
        for key, entry in price_file.entries(_saved_identity()).items():
            p, n, url, _tier, processing = json.loads(key)
            if (p == prov and url == base_url and processing == "live"
                    and (n == name or _undated(n) == name)
                    and _parse_saved(entry, day) is not None):
                return True
    except Exception as exc:  # a cache: anything wrong with it is a miss
        swallowed("reading the price file", exc)
    return False


def _keep_saved(lookup: tuple, tier: str | None, processing: str, entry: dict) -> None:
    """Keep what genai-prices' bundled data gave for this lookup in the price file."""
    try:
        price_file.keep((*lookup, tier, processing), entry, _saved_identity())
    except Exception as exc:
        swallowed("keeping a price in the price file", exc)


#: genai-prices and its data: what pricing loads when the price file can't answer
PRICE_DATA = ["genai_prices", "genai_prices.data"]


def load_ahead(spec: Any) -> None:
    """Load genai-prices and its data now, unless the price file has spec's model's live price
    for today (its call is then priced without them). The client builder's thread calls this
    while a script's first request is out, after importing this module."""
    if _DATA_MODULE not in sys.modules:
        prov, name = _normalise(spec.provider, spec.name)
        url = None if spec.simulated or prov in _GENAI_PROVIDERS else spec.base_url
        if _user_price(prov, name, None) is not None or _saved_any(prov, name, url):
            return
    from . import _imports

    _imports.import_quietly(PRICE_DATA)


# ----- user prices ---------------------------------------------------------------------------------


@dataclass
class _UserPrice:
    """A price set with set_price: per-million rates (None = not given) and input-size tiers."""

    key: str
    input: float
    output: float
    cached_input: float | None
    cache_write: float | None
    cache_write_1h: float | None
    tier: str | None
    above: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    bases: dict[tuple, list] = field(default_factory=dict)

    def levels(self, processing: str) -> list:
        levels = self.bases.get(processing)
        if levels is None:
            levels = []
            base = {"input": self.input, "output": self.output, "cached_input": self.cached_input,
                    "cache_write": self.cache_write, "cache_write_1h": self.cache_write_1h}
            for threshold, over in [(-1, {}), *sorted(self.above)]:
                r = {**base, **{k: v for k, v in over.items() if v is not None}}
                write = r["cache_write"] if r["cache_write"] is not None else r["input"]
                rates = (r["input"],
                         r["cached_input"] if r["cached_input"] is not None else r["input"],
                         write,
                         r["cache_write_1h"] if r["cache_write_1h"] is not None else write,
                         r["output"], r["output"])
                levels.append((threshold, PriceBasis(USER_PRICE_SOURCE, None, None, "set_price",
                                                     self.key, self.tier, processing, rates)))
            levels.reverse()
            self.bases[processing] = levels
        return levels

    def missing(self, usage: Usage) -> list[str]:
        """The rates this call needed that were not given (they fall back to the input rate)."""
        gaps = []
        if usage.cached_input_tokens and self.cached_input is None:
            gaps.append("cached_input")
        if usage.cache_write_tokens and self.cache_write is None:
            gaps.append("cache_write")
        return gaps


#: the session's user prices (the same dict object as session.prices)
_user_prices: dict[tuple[str, str, str | None], _UserPrice] = session.prices
#: the price warnings given, one per model and kind (the same set object as session.price_warned)
_warned: set[tuple] = session.price_warned
_warn_lock = threading.Lock()


def _user_price(provider: str, name: str, tier: str | None) -> _UserPrice | None:
    if not _user_prices:
        return None
    names = [name, _undated(name), "*"]
    for n in names:
        if n is None:
            continue
        if tier is not None:
            p = _user_prices.get((provider, n, tier))
            if p is not None:
                return p
        p = _user_prices.get((provider, n, None))
        if p is not None:
            return p
    return None


def _check_price(label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ConfigError(f"set_price: {label} must be a non-negative number of USD per million "
                          f"tokens, not {value!r}.")
    return float(value)


def _opt(label: str, value: Any) -> float | None:
    return None if value is None else _check_price(label, value)


def set_price(model_id: str, *, input: float, output: float, cached_input: float | None = None,
              cache_write: float | None = None, cache_write_1h: float | None = None,
              tier: str | None = None, above: Mapping[int, Mapping[str, float]] | None = None
              ) -> None:
    """Set the price of a model, in USD per million tokens; it wins over genai-prices.

    model_id is `provider:model` (e.g. `ollama:llama3.2`, `openai:gpt-6-luna`) or `provider:*`
    for every model of an endpoint. cached_input: cache reads; cache_write: cache writes (5-minute
    ones for Anthropic); cache_write_1h: 1-hour cache writes (defaults to cache_write). A rate
    left out is not invented: a call that needs it is priced at the input rate with one warning
    saying which to set. tier: this price is for one service tier only (e.g. "flex"); above:
    {input tokens: {rate: price}}, prices for every token of a request whose input passes that
    many tokens (long-context tiers). A self-hosted model can be priced at 0:
    `set_price('ollama:*', input=0, output=0)`.
    """
    from .models import aliases

    if not isinstance(model_id, str) or not model_id.strip():
        raise ConfigError("set_price needs a model id such as 'ollama:llama3.2' or 'ollama:*'.")
    model_id = model_id.strip()
    model_id = aliases().get(model_id, model_id)
    if ":" not in model_id:
        raise ConfigError(f"set_price: {model_id!r} is not provider:model (e.g. 'ollama:llama3.2', "
                          "or 'ollama:*' for a whole endpoint).")
    prefix = parse_id(model_id)[0]
    provider, name = _normalise(prefix, model_id)
    if not provider or not name:
        raise ConfigError(f"set_price: {model_id!r} has no provider or model name.")
    if tier is not None and (not isinstance(tier, str) or not tier.strip()):
        raise ConfigError(f"set_price: tier must be a service tier name such as 'flex', not {tier!r}.")
    levels: list[tuple[int, dict[str, float]]] = []
    for threshold, over in (above or {}).items():
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0 \
                or not isinstance(over, Mapping):
            raise ConfigError("set_price: above must map a number of input tokens to prices, e.g. "
                              "above={200_000: {'input': 6, 'output': 22.5}}.")
        bad = set(over) - {"input", "output", "cached_input", "cache_write", "cache_write_1h"}
        if bad:
            raise ConfigError(f"set_price: unknown rate {sorted(bad)[0]!r} in above=; use input, "
                              "output, cached_input, cache_write, cache_write_1h.")
        levels.append((threshold, {k: _check_price(k, v) for k, v in over.items()}))
    _user_prices[(provider, name, tier.strip() if tier else None)] = _UserPrice(
        key=f"{provider}:{name}", input=_check_price("input", input),
        output=_check_price("output", output), cached_input=_opt("cached_input", cached_input),
        cache_write=_opt("cache_write", cache_write),
        cache_write_1h=_opt("cache_write_1h", cache_write_1h),
        tier=tier.strip() if tier else None, above=levels)


def clear_prices() -> None:
    """Forget every price set with set_price (genai-prices' prices stay)."""
    _user_prices.clear()
    with _warn_lock:
        _warned.clear()


def prices() -> dict[str, dict[str, Any]]:
    """The prices set with set_price, as {"provider:model[@tier]": {input, output, ...}}."""
    out = {}
    for (p, m, tier), v in _user_prices.items():
        d = {k: getattr(v, k) for k in ("input", "output", "cached_input", "cache_write",
                                        "cache_write_1h")}
        if v.above:
            d["above"] = {t: dict(o) for t, o in v.above}
        out[f"{p}:{m}" + (f"@{tier}" if tier else "")] = d
    return out


# ----- public API ---------------------------------------------------------------------------------


def _warn_once(key: tuple, message: str) -> None:
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, PriceWarning, stacklevel=4)


def _warn_unknown(provider: str, name: str, raw_model: str) -> None:
    shown = f"{provider}:{name}" if provider else (raw_model or "?")
    _warn_once((provider, name), f"No price known for {shown}; cost is NaN. Add one with "
               f"llmcells.set_price('{shown}', input=0.0, output=0.0) (USD per million tokens).")


def _pick(levels: list, inp: int) -> PriceBasis:
    for threshold, basis in levels:
        if inp > threshold:
            return basis
    return levels[-1][1]


def basis(provider: str, model: str, input_tokens: int = 0, *, requested: str | None = None,
          service_tier: str | None = None, processing: str = "live", base_url: str | None = None,
          when: float | None = None, warn: bool = True, usage: Usage | None = None,
          speed: str | None = None) -> PriceBasis | None:
    """The PriceBasis a call of this many input tokens is priced with, or None (unknown).

    processing="batch" is the one batch price of every batch row (provider jobs, repricing):
    genai-prices' batch price where it has one, else the standard price halved (BATCH_RULE);
    the basis' note says which. speed: Anthropic's speed mode as answered ("fast" has prices of
    its own in genai-prices; "standard" is the plain price).
    """
    ts = time.time() if when is None else when
    tier = service_tier or None
    speed = speed if speed and speed != "standard" else None
    st = None
    prov = name = ""
    candidates = (model,) if requested is None or requested == model else (model, requested)
    for candidate in candidates:
        prov, name = _normalise(provider, candidate)
        user = _user_price(prov, name, tier) if _user_prices else None
        if user is not None:
            if usage is not None and warn:
                gaps = user.missing(usage)
                if gaps:
                    _warn_once((user.key, tier, *gaps),
                               f"set_price for {user.key} has no {' or '.join(gaps)} price; those "
                               f"tokens are priced at its input rate. Pass "
                               f"{'=..., '.join(gaps)}=... to set_price.")
            if processing == "batch":   # set_price has no batch price: the 50% rule
                return _halved(_pick(user.levels("live"), input_tokens))
            return _pick(user.levels(processing), input_tokens)
        if prov in _GENAI_PROVIDERS:
            base_url = None   # a provider genai-prices knows by name: its URL changes nothing
        if st is None and _DATA_MODULE not in sys.modules and speed is None:
            # genai-prices is not loaded, so its bundled data is the one in use: the price file
            # may have this lookup from an earlier process
            saved = _saved(prov, name, base_url, tier, processing, ts)
            if saved is _NOT_PRICED:
                continue
            if saved is not None:
                return _pick(saved, input_tokens)
        if st is None:
            st = _state()
        entry = _find(st, prov, name, base_url)
        if entry is not None:
            return _pick(_levels(entry, st, tier, processing, ts, speed), input_tokens)
    if warn:
        _warn_unknown(prov, name, candidates[-1])
    return None


@functools.lru_cache(maxsize=1024)
def _halved(live: PriceBasis) -> PriceBasis:
    """The batch price by BATCH_RULE: every rate and the request fee of live halved."""
    return dataclasses.replace(live, processing="batch", rates=tuple(r * 0.5 for r in live.rates),
                               request=live.request * 0.5, note=BATCH_RULE)


def price(provider: str, model: str, usage: Usage, *, requested: str | None = None,
          service_tier: str | None = None, processing: str = "live", base_url: str | None = None,
          when: float | None = None, speed: str | None = None
          ) -> tuple[float, PriceBasis | None]:
    """USD cost of one call and the PriceBasis used; (NaN, None) for an unknown model (one
    warning per model per session).

    service_tier: as the provider answered ("flex", "priority"...); processing: "live" or
    "batch"; base_url: the endpoint's, to price OpenAI-compatible hosts genai-prices knows;
    when: the call's start (epoch seconds; default now), for prices that change over time;
    speed: Anthropic's speed mode as answered (usage.speed: "fast" is priced higher).
    """
    counts = _clean_counts(usage)
    b = basis(provider, model, counts[0], requested=requested, service_tier=service_tier,
              processing=processing, base_url=base_url, when=when, usage=usage, speed=speed)
    if b is None:
        return math.nan, None
    return _apply(b.rates, b.request, *counts), b


def cost(provider: str, model: str, usage: Usage, *, requested: str | None = None,
         **context: Any) -> tuple[float, str | None]:
    """USD cost of one call and the source of its price (e.g. "genai-prices 0.2.3", "set_price").

    provider is "openai", "anthropic", "google" (or "gemini") or an endpoint name; model is the
    model name as answered (dated snapshots, `models/` and `provider:` prefixes are fine), and
    requested the name as asked for, used when the answered name has no price. context: as for
    price(). Returns (NaN, None) for an unknown model, with one warning per model per session.
    """
    c, b = price(provider, model, usage, requested=requested, **context)
    return c, (b.label if b is not None else None)


def estimate_cost(provider: str, model: str, input_tokens: int, output_tokens: int, *,
                  cached_input_tokens: int = 0, cache_write_tokens: int = 0,
                  cache_write_1h_tokens: int = 0, service_tier: str | None = None,
                  base_url: str | None = None, processing: str = "live") -> float:
    """Running or budget estimate of a call's cost: the same prices as cost(), cache reads and
    writes counted when given; processing="batch" for a provider batch job. Cheap enough to run
    many times a second. NaN when unknown."""
    u = Usage(input_tokens=input_tokens, cached_input_tokens=cached_input_tokens,
              cache_write_tokens=cache_write_tokens, output_tokens=output_tokens,
              cache_write_1h_tokens=cache_write_1h_tokens)
    counts = _clean_counts(u)
    b = basis(provider, model, counts[0], service_tier=service_tier, base_url=base_url,
              processing=processing)
    return math.nan if b is None else _apply(b.rates, b.request, *counts)


class BatchEstimator:
    """Estimates the cost of a batch's next call from the calls of that model already finished:
    their uncached input tokens per prompt character, their cache reads and writes per call (a
    cached prefix is the same size whatever the question), and their output tokens. Before any
    call finished: ~4 characters per token, no cache, and the request's max_tokens or 400 output
    tokens."""

    def __init__(self) -> None:
        # model id -> [calls, chars, uncached input, cache reads, cache writes, 1h writes, output]
        self._seen: dict[str, list[float]] = {}

    @staticmethod
    def prompt_chars(plan: Any) -> int:
        """The characters of plan's prompt: its messages and its system prompt."""
        req = plan.request
        return sum(len(m.content) for m in req.messages) + len(req.system or "")

    def learn(self, plan: Any, result: Any) -> None:
        """Count a finished ok call."""
        if not result.ok or result.cached:
            return
        u = result.usage
        s = self._seen.setdefault(plan.spec.id, [0.0] * 7)
        uncached = max(u.input_tokens - u.cached_input_tokens - u.cache_write_tokens, 0)
        for i, v in enumerate((1, self.prompt_chars(plan), uncached, u.cached_input_tokens,
                               u.cache_write_tokens, u.cache_write_1h_tokens, u.output_tokens)):
            s[i] += v

    def estimate(self, plan: Any) -> float:
        """The estimated cost of plan's call (NaN when its price is unknown)."""
        spec, chars = plan.spec, self.prompt_chars(plan)
        s = self._seen.get(spec.id)
        if s and s[1]:
            n = s[0]
            cached, write, write_1h = (round(x / n) for x in s[3:6])
            inp = round(chars * s[2] / s[1]) + cached + write
            out = plan.request.max_tokens or s[6] / n
        else:
            inp, cached, write, write_1h = chars // 4 + 8, 0, 0, 0
            out = plan.request.max_tokens or 400
        try:
            return estimate_cost(spec.provider, spec.name, inp, int(out),
                                 cached_input_tokens=cached, cache_write_tokens=write,
                                 cache_write_1h_tokens=write_1h,
                                 base_url=spec.base_url if not spec.simulated else None)
        except Exception as exc:
            swallowed("estimating a batch call's cost (NaN instead)", exc)
            return math.nan


def price_result(result: Any, spec: Any) -> None:
    """Set a finished call's cost_usd, price_source and price_basis (the engine's hook).

    A cached replay costs 0 and keeps the basis of the call that produced it; a failed call with
    no usage costs 0 at the model's price. Unknown price: NaN.
    """
    if result.cached:
        result.cost_usd = 0.0
        return
    # [routes] a Bedrock inference profile ("us.", "global.") sets the price, and the answering
    # model's name does not say which one was used; an Azure deployment is priced as the model
    # it serves (the azure_models setting)
    by_request = getattr(registry.row(spec.provider), "priced_by_request", False)
    model = spec.name if by_request else result.response_model or spec.name
    c, b = price(spec.provider, model, result.usage,
                 requested=getattr(spec, "price_model", None) or spec.name,
                 service_tier=result.service_tier,
                 processing=result.processing or "live",
                 base_url=None if spec.simulated else spec.base_url,
                 when=result.started_at or None, speed=getattr(result, "speed", None))
    premium = _regional_premium(spec) if b is not None else 0.0
    if premium:
        b = _regional(b, premium)
        c = b.cost(result.usage)
    result.cost_usd, result.price_basis = c, b
    result.price_source = b.label if b is not None else None
    if b is not None and spec.provider in _ROUTE_PRICES:  # say whose prices these are
        result.price_source = f"{b.label} ({spec.provider})"


def _regional_premium(spec: Any) -> float:
    """The share a route's regional endpoint adds to the global price genai-prices lists (its
    registry row's regional_premium), 0.0 when none applies: another maker's model, one with a
    single price, or the global endpoint."""
    rule = getattr(registry.row(spec.provider), "regional_premium", ())
    if not rule or getattr(spec, "maker", None) != rule[0] or re.match(rule[2], spec.name):
        return 0.0
    from .models import vertex_region  # (the one route with such a premium)

    return 0.0 if vertex_region() == "global" else rule[1]


@functools.lru_cache(maxsize=256)
def _regional(global_price: PriceBasis, premium: float) -> PriceBasis:
    """The regional endpoint's price by REGIONAL_RULE: every rate and the request fee of the
    global price plus premium."""
    up = 1.0 + premium
    return dataclasses.replace(global_price, rates=tuple(r * up for r in global_price.rates),
                               request=global_price.request * up,
                               note=global_price.note + REGIONAL_RULE.format(premium))


# ----- fresh data on request -----------------------------------------------------------------------


#: where `%llmcells prices update` fetches from (default: genai-prices' own URL)
PRICES_URL_ENV = "LLMCELLS_PRICES_URL"


def update_prices(*, url: str | None = None, fetch: Any = None, timeout: float = 15.0
                  ) -> tuple[str, str]:
    """Fetch genai-prices' latest data now and use it (one fetch, no background thread).

    Returns (data date before, data date after). Raises ConfigError with one line when the fetch
    fails (no network, bad data). url: default $LLMCELLS_PRICES_URL, else genai-prices' URL;
    fetch: a callable returning a DataSnapshot, instead of fetching from url.
    """
    import os

    from genai_prices import UpdatePrices
    from genai_prices.update_prices import DEFAULT_UPDATE_URL
    from genai_prices.data_snapshot import set_custom_snapshot

    before = _state().data_date
    url = url or os.environ.get(PRICES_URL_ENV) or DEFAULT_UPDATE_URL
    try:
        snap = (fetch or UpdatePrices(url=url, request_timeout=_timeout(timeout)).fetch)()
    except Exception as exc:  # network down, HTTP error, invalid JSON: one line, not a traceback
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"Could not update genai-prices data ({type(exc).__name__}: "
                          f"{reason[:160]}); still using the data of {before}.") from None
    if snap is None:
        raise ConfigError(f"genai-prices returned no data; still using the data of {before}.")
    set_custom_snapshot(snap)
    return before, _state(snap).data_date


def prices_command(words: list[str]) -> Any:
    """`%llmcells prices`: one line on the price data in use (and the set_price prices);
    `%llmcells prices update`: fetch the latest data, one line with its date before and after."""
    if words and words[0].lower() == "update":
        before, after = update_prices()
        print(f"genai-prices data updated: {before} -> {after}.")
        return None
    if words:
        raise ConfigError(f"prices takes no argument or 'update', not {words[0]!r}.")
    info = data_info()
    print(f"genai-prices {info['version']}, price data: {info['data_date']} (offline; "
          "`%llmcells prices update` fetches the latest)." +
          (f" set_price: {len(_user_prices)} price(s)." if _user_prices else ""))
    return prices() or None


def _timeout(seconds: float) -> Any:
    import httpx2

    return httpx2.Timeout(timeout=seconds, connect=min(5.0, seconds))


def rows_cost(rows: Iterable[Mapping[str, Any]]) -> list[float]:
    """Re-derive each ledger row's cost from its provenance columns (NaN without rates; 0 for a
    cached replay)."""
    out = []
    for row in rows:
        b = PriceBasis.from_row(row)
        if row.get("cached"):
            out.append(0.0)
        elif b is None:
            out.append(math.nan)
        else:
            out.append(b.cost(Usage(**{k: int(row.get(k) or 0) for k in (
                "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
                "reasoning_tokens", "cache_write_1h_tokens")})))
    return out


def context_window(model: str) -> int | None:
    """The context window of model in tokens, from genai-prices' data (None when unknown)."""
    from .models import resolve

    try:
        spec = resolve(model)
        from genai_prices.data_snapshot import get_snapshot

        found = _lookup(get_snapshot(), spec.provider, spec.name, spec.base_url)
        window = getattr(found[1], "context_window", None) if found else None
        return int(window) if window else None
    except Exception:
        log.debug("no context window known for %s", model, exc_info=False)
        return None
