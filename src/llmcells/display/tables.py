"""Ledger DataFrames shown formatted in a notebook (dollars, thousands separators, seconds)
while the numbers underneath stay exactly as they are."""

from __future__ import annotations

from typing import Any

from .._log import swallowed
from .._loop import import_pandas

#: column -> pandas Styler format
FORMATS = {
    "cost_usd": "${:,.6f}",
    "latency_s": "{:,.2f} s", "ttft_s": "{:,.2f} s", "latency_p50": "{:,.2f} s",
    "latency_p95": "{:,.2f} s", "ttft_p50": "{:,.2f} s",
    "tokens_per_s": "{:,.0f}", "error_rate": "{:.0%}",
}
_INTS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
         "reasoning_tokens", "calls", "errors", "unpriced_calls")


def formatted(frame: Any) -> Any:
    """frame as a FormattedFrame: a plain DataFrame in every way (same numbers, same type for
    everything derived from it) whose notebook view formats costs, tokens and times."""
    pd = import_pandas()

    if not isinstance(frame, pd.DataFrame):
        return frame
    return _cls()(frame)


_FormattedFrame = None


def _cls():
    global _FormattedFrame
    if _FormattedFrame is None:
        pd = import_pandas()

        class FormattedFrame(pd.DataFrame):
            """A DataFrame whose HTML view formats ledger columns; operations give plain ones."""

            @property
            def _constructor(self):
                return pd.DataFrame

            def _repr_html_(self):
                try:
                    return style(pd.DataFrame(self)).to_html()
                except Exception as exc:
                    swallowed("styling a table (the plain HTML table instead)", exc)
                    return pd.DataFrame(self)._repr_html_()

        _FormattedFrame = FormattedFrame
    return _FormattedFrame


def style(frame: Any) -> Any:
    """A pandas Styler of frame: dollars for cost_usd, 1,234 for token counts, "1.23 s" for
    times; NaN shown as "–"; every string HTML-escaped. Needs jinja2 (it comes with Jupyter)."""
    fmt = {c: f for c, f in FORMATS.items() if c in frame.columns}
    fmt.update({c: "{:,}" for c in _INTS if c in frame.columns})
    rows = len(frame)
    shown = frame.head(200) if rows > 200 else frame  # a Styler renders every cell: keep big
    # ledgers quick to show (usage() is newest first). Unlike a DataFrame's own HTML, a Styler
    # writes strings as markup unless told: prompts, errors and group names are shown as text.
    styler = (shown.style.format(fmt, na_rep="–", escape="html")
              .format_index(escape="html", axis=0).format_index(escape="html", axis=1))
    return styler.hide(axis="index") if rows <= 200 else styler
