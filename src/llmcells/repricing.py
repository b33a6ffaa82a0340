"""What-if repricing: the cost recorded calls would have had at another model's, tier's, processing's
or date's prices, row by row, and the actual / what-if / difference table of `%llmcells costs --whatif`.

Token counts stay as recorded; only the price changes. So the answer is what the same usage would
cost, which is what a fresh call costs when the other model produces the same usage.
"""

from __future__ import annotations

import math
import time
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .registry import api_names, model_name
from .types import Usage
from ._loop import import_pandas

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["reprice", "whatif"]

_COUNTS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
           "reasoning_tokens", "cache_write_1h_tokens")
_PROCESSING = ("live", "batch")


def _as_epoch(as_of: Any) -> float | None:
    """None (each row's own date), or one moment for every row."""
    if as_of is None:
        return None
    if isinstance(as_of, str) and as_of.strip().lower() == "now":
        return time.time()
    if isinstance(as_of, datetime):
        return (as_of if as_of.tzinfo else as_of.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(as_of, date):
        return datetime(as_of.year, as_of.month, as_of.day, tzinfo=timezone.utc).timestamp()
    if isinstance(as_of, (int, float)) and not isinstance(as_of, bool):
        return float(as_of)
    if isinstance(as_of, str):
        try:
            d = datetime.fromisoformat(as_of.strip().replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return _as_epoch(d)
    raise ConfigError(f"as_of={as_of!r}: give 'now', a date, a datetime or an ISO date ('2025-06-01').")


def _row_ts(value: Any) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return time.time()
    if hasattr(value, "timestamp"):
        return float(value.timestamp())
    return float(value)


def reprice(frame: "pd.DataFrame", model: str | None = None, *, tier: str | None = None,
            processing: str | None = None, as_of: Any = None) -> "pd.DataFrame":
    """The same rows with the cost they would have had: at model's prices (default: each row's
    own model), for service tier `tier` (default: the row's), with `processing` "live" or
    "batch" (default: the row's), at the prices in force `as_of` (default: each row's own date;
    "now", a date or a datetime for one moment).

    frame: llmcells.usage() (or any frame with provider, model and the token columns). Returns a
    copy where cost_usd is the what-if cost, actual_cost_usd the recorded one, priced_as the model
    priced, and the price provenance columns describe the what-if price. A cached replay costs 0
    at any price; an unknown price is NaN (one warning).
    """
    pd = import_pandas()

    from . import pricing

    if processing is not None and processing not in _PROCESSING:
        raise ConfigError(f"processing={processing!r}: use 'live' or 'batch'.")
    when_all = _as_epoch(as_of)
    target = _target(model) if model is not None else None
    out = frame.copy()
    n = len(out)
    col = {c: (out[c].tolist() if c in out.columns else [None] * n) for c in (
        "provider", "model", "response_model", "service_tier", "processing", "ts", "cached",
        "price_provider", "cost_usd", *_COUNTS)}
    costs, priced_as, bases = [], [], []
    for i in range(n):
        if target is not None:
            prov, name, base_url, label = target
            requested = None
        else:
            prov = _text(col["provider"][i])
            model_id = _text(col["model"][i])
            name = model_name(model_id)
            requested = name
            from .registry import row as registry_row

            if not getattr(registry_row(prov), "priced_by_request", False):  # [routes] see price_result
                name = _text(col["response_model"][i]) or name
            # an endpoint priced from its base URL: its genai-prices provider is on the row
            pp = _text(col["price_provider"][i])
            if prov not in api_names() and pp and pp != "set_price":
                prov = pp
            base_url, label = None, model_id
        usage = Usage(**{k: int(col[k][i] or 0) if not _nan(col[k][i]) else 0 for k in _COUNTS})
        row_tier = tier if tier is not None else _str(col["service_tier"][i])
        row_proc = processing or _str(col["processing"][i]) or "live"
        when = when_all if when_all is not None else _row_ts(col["ts"][i])
        c, b = pricing.price(prov, name, usage, requested=requested, service_tier=row_tier,
                             processing=row_proc, base_url=base_url, when=when)
        if bool(col["cached"][i]) and not _nan(col["cached"][i]):
            c = 0.0
        costs.append(c)
        priced_as.append(label)
        bases.append(b)
    out["actual_cost_usd"] = pd.Series(col["cost_usd"], index=out.index, dtype="float64")
    out["cost_usd"] = pd.Series(costs, index=out.index, dtype="float64")
    out["priced_as"] = priced_as
    out["service_tier"] = [b.tier if b is not None else None for b in bases]
    out["processing"] = [b.processing if b is not None else (processing or "live") for b in bases]
    out["price_source"] = [b.label if b is not None else None for b in bases]
    out["price_version"] = [b.version if b is not None else None for b in bases]
    out["price_data_date"] = [b.data_date if b is not None else None for b in bases]
    out["price_provider"] = [b.provider if b is not None else None for b in bases]
    out["price_model"] = [b.model if b is not None else None for b in bases]
    out["price_rates"] = [b.rates_json if b is not None else None for b in bases]
    return out


def _target(model: str) -> tuple[str, str, str | None, str]:
    """(provider, name, base URL, label) of the model to price as: an alias or provider:model,
    or a bare name that genai-prices places with one of the three providers ("gpt-6-luna")."""
    from .models import resolve

    try:
        spec = resolve(model)
    except ConfigError:
        name = model.strip() if isinstance(model, str) else ""
        if not name or ":" in name:
            raise
        from genai_prices.data_snapshot import get_snapshot

        try:
            prov = get_snapshot().find_provider(name.lower(), None, None).id
        except LookupError:
            prov = None
        if prov not in api_names():
            raise
        return prov, name, None, f"{prov}:{name}"
    return spec.provider, spec.name, None if spec.simulated else spec.base_url, spec.id


def _text(value: Any) -> str:
    """A text cell of a frame as str: "" for None and for NaN (a failed row's missing model name,
    which a pandas-3 string column holds as NaN, is no name)."""
    return value if isinstance(value, str) else ""


def _nan(x: Any) -> bool:
    """None, NaN or pandas' NA (whose comparisons can't be made bool)."""
    try:
        return x is None or bool(x != x)
    except TypeError:
        return True


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) and x else None


def whatif(model: str, *, by: str = "model", tier: str | None = None,
           processing: str | None = None, as_of: Any = None, include_simulated: bool = False,
           include_cached: bool = False, **filters: Any) -> "pd.DataFrame":
    """Actual cost, what-if cost at model's prices and the difference, by `by` (a ledger column
    such as "model", "provider" or "day"); real spend only unless include_simulated. filters: as
    for llmcells.usage()."""
    pd = import_pandas()

    from .ledger import usage

    frame = usage(**filters)
    if not include_simulated:
        frame = frame[~frame["simulated"]]
    if not include_cached:
        frame = frame[~frame["cached"]]
    repriced = reprice(frame, model, tier=tier, processing=processing, as_of=as_of)
    if by == "day":
        repriced["day"] = [t.date() for t in repriced["ts"]]
    if by not in repriced.columns:
        raise ConfigError(f"whatif(by={by!r}): use model, provider, day, cell, group_id or batch_id.")
    g = repriced.groupby(by, dropna=False, sort=False)
    table = g.agg(calls=("call_id", "size"))
    table["actual_usd"] = g["actual_cost_usd"].sum(min_count=1)
    table["whatif_usd"] = g["cost_usd"].sum(min_count=1)
    table["difference_usd"] = table["whatif_usd"] - table["actual_usd"]
    table = table.reset_index().sort_values("actual_usd", ascending=False, na_position="last")
    if len(table) > 1:
        total = {by: "total", "calls": int(table["calls"].sum())}
        for c in ("actual_usd", "whatif_usd", "difference_usd"):
            total[c] = table[c].sum(min_count=1)
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    table.attrs["whatif"] = repriced["priced_as"].iloc[0] if len(repriced) else model
    return table.reset_index(drop=True)
