"""`Comparison`: the results of one prompt sent to several models, with their table, per-field
agreement (a schema) and per-model score summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import ConfigError
from .models import resolve
from .registry import model_name
from .structured import agreement
from .types import Result
from ._loop import import_pandas

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Comparison:
    """The results of one prompt sent to several models, in the order the models were given."""

    results: list[Result]
    group_id: str | None = None
    prompt: str = ""

    def __iter__(self):
        return iter(self.results)

    def __str__(self) -> str:
        """Each model's answer under a line naming it and its status, or its error
        (`print(comparison)` in a terminal or a script), as str(result) is the answer."""
        return "\n\n".join(
            f"── {r.model} · {r.status}{': ' + r.error if r.error else ''}\n{r.text}".rstrip()
            for r in self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, key: int | str) -> Result:
        """By position, or by model id / alias as given."""
        if isinstance(key, int):
            return self.results[key]
        for r in self.results:
            if key in (r.model, r.response_model, model_name(r.model)):
                return r
        try:
            model_id = resolve(key).id
        except ConfigError:
            raise KeyError(key) from None
        for r in self.results:
            if r.model == model_id:
                return r
        raise KeyError(key)

    @property
    def texts(self) -> dict[str, str]:
        return {r.model: r.text for r in self.results}

    def to_frame(self) -> "pd.DataFrame":
        """One row per result: model, status, tokens, cost, latency, TTFT, tokens/s, text."""
        pd = import_pandas()

        return pd.DataFrame([r.to_row() for r in self.results])

    def agreement(self) -> "pd.DataFrame":
        """With a schema: per top-level field, each model's value and whether they all agree."""
        return agreement(self)

    def summary(self, confidence: float = 0.95) -> "pd.DataFrame":
        """Per model: calls, and the mean with a 95% interval of each score, latency and cost."""
        from .scoring import summarize  # (scoring is loaded only when scores are asked for)

        return summarize(self.to_frame(), confidence=confidence)

    def _repr_html_(self) -> str:
        """Each result, model, status and answer, as safe HTML (Result._repr_html_); never raw
        Markdown, which a notebook would render with the answers' HTML."""
        from .session import session

        return session.front_end.results_html(self.results)
