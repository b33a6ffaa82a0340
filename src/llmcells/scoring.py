"""Scoring answers: built-in scorers, your own functions, a model as judge, and per-model
summaries with 95% intervals.

    score = [llmcells.exact("42"), llmcells.max_words(50), llmcells.judge("claude", rubric="...")]
    c = await llmcells.compare("...", models=[...], repeat=5, score=score)
    c.to_frame()          # a score_<name> column per scorer
    c.summary()           # per model: mean and 95% interval of each score, latency and cost

A scorer is any callable `(result) -> float | bool` or, in a batch, `(result, row) -> ...` where
row holds the prompt's input columns (so `row["expected"]` reads an expected answer). It may also
return `(value, "one-line reason")`, or be async. A scorer that raises gives NaN and a one-line
note; it never breaks the call. Failed calls are not scored (NaN, "no answer").

Nothing heavy is imported here: pandas, scipy and the SDKs only when used.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .structured import json_text, no_json_constant
from .types import CallObserver, Result
from ._log import swallowed
from ._loop import import_pandas

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Scorer", "column", "exact", "contains", "regex", "json_valid", "matches_schema",
           "max_words", "judge", "summarize", "t_quantile", "mean_interval"]

NAN = math.nan
#: the longest note kept for one score
NOTE_CHARS = 160


# ----- reading values from a row --------------------------------------------------------------


class column:
    """A value taken from each batch row: `exact(llmcells.column("expected"))`."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"column({self.name!r})"


def _value(spec: Any, row: dict[str, Any] | None) -> Any:
    """spec itself, or its value in row when it is a column(...) or a function of the row."""
    if isinstance(spec, column):
        if row is None or spec.name not in row:
            have = ", ".join(map(str, row)) if row else "none"
            raise KeyError(f"no column {spec.name!r} in the row (columns: {have})")
        return row[spec.name]
    if callable(spec) and not isinstance(spec, type):
        return spec(row)
    return spec


def _one_line(text: Any) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= NOTE_CHARS else line[: NOTE_CHARS - 1] + "…"


# ----- the built-in scorers ---------------------------------------------------------------------


class Scorer:
    """Base of the built-in scorers: a name, and `__call__(result, row=None)`."""

    name = "score"

    def __call__(self, result: Result, row: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<scorer {self.name}>"


class exact(Scorer):
    """1 when the answer equals `expected` (surrounding whitespace ignored; `case=False` ignores
    case too), else 0. expected: text, a column("name") of the batch row, or a function of the row."""

    def __init__(self, expected: Any, *, case: bool = True, name: str = "exact"):
        self.expected, self.case, self.name = expected, case, name

    def __call__(self, result: Result, row: dict[str, Any] | None = None) -> float:
        want, got = str(_value(self.expected, row)).strip(), result.text.strip()
        if not self.case:
            want, got = want.casefold(), got.casefold()
        return float(got == want)


class contains(Scorer):
    """1 when the answer contains every one of `needles` (any one of them with `any=True`),
    ignoring case unless `case=True`. Each needle is text, a column("name") or a function of the row."""

    def __init__(self, *needles: Any, any: bool = False, case: bool = False, name: str = "contains"):
        if not needles:
            raise ConfigError("contains(...) needs at least one piece of text to look for.")
        self.needles, self.any, self.case, self.name = needles, any, case, name

    def __call__(self, result: Result, row: dict[str, Any] | None = None) -> float:
        text = result.text if self.case else result.text.casefold()
        found = []
        for needle in self.needles:
            n = str(_value(needle, row))
            found.append((n if self.case else n.casefold()) in text)
        return float(any(found) if self.any else all(found))


class regex(Scorer):
    """1 when `pattern` matches somewhere in the answer (re.search; `full=True`: the whole
    answer, stripped), else 0. The pattern may be a column("name") or a function of the row."""

    def __init__(self, pattern: Any, *, flags: int = 0, full: bool = False, name: str = "regex"):
        if isinstance(pattern, str):
            try:
                re.compile(pattern, flags)
            except re.error as err:
                raise ConfigError(f"regex({pattern!r}): not a valid regular expression ({err}).") from None
        self.pattern, self.flags, self.full, self.name = pattern, flags, full, name

    def __call__(self, result: Result, row: dict[str, Any] | None = None) -> float:
        pattern = str(_value(self.pattern, row))
        if self.full:
            return float(re.fullmatch(pattern, result.text.strip(), self.flags) is not None)
        return float(re.search(pattern, result.text, self.flags) is not None)


class json_valid(Scorer):
    """1 when the answer is valid JSON (alone, or in a ``` fenced block), else 0."""

    def __init__(self, *, name: str = "json_valid"):
        self.name = name

    def __call__(self, result: Result, row: dict[str, Any] | None = None) -> Any:
        try:
            json.loads(json_text(result.text), parse_constant=no_json_constant)
        except ValueError as err:
            return 0.0, _one_line(f"not JSON: {err}")
        except RecursionError:
            return 0.0, "not JSON: nested too deeply to read"
        return 1.0


class matches_schema(Scorer):
    """1 when the answer is JSON that fits `schema`: a pydantic model class, or a JSON Schema dict
    (checked with jsonschema: `pip install "llmcells[scoring]"`); else 0, with the reason."""

    def __init__(self, schema: Any, *, name: str = "matches_schema"):
        self.schema, self.name = schema, name
        if isinstance(schema, dict):
            self._validator = None
        elif isinstance(schema, type) and hasattr(schema, "model_validate_json"):
            self._validator = schema
        else:
            raise ConfigError("matches_schema(...) takes a pydantic model class or a JSON Schema dict.")

    def __call__(self, result: Result, row: dict[str, Any] | None = None) -> Any:
        text = json_text(result.text)
        if self._validator is not None:
            from pydantic import ValidationError

            try:
                self._validator.model_validate_json(text)
            except ValidationError as err:
                first = err.errors()[0] if err.errors() else {}
                where = ".".join(map(str, first.get("loc", ()))) or "answer"
                return 0.0, _one_line(f"{where}: {first.get('msg', 'invalid')}")
            return 1.0
        try:
            import jsonschema
        except ImportError:
            raise RuntimeError('JSON Schema checks need jsonschema: pip install "llmcells[scoring]"') from None
        try:
            data = json.loads(text, parse_constant=no_json_constant)
        except ValueError as err:
            return 0.0, _one_line(f"not JSON: {err}")
        except RecursionError:
            return 0.0, "not JSON: nested too deeply to read"
        try:
            jsonschema.validate(data, self.schema)
        except jsonschema.ValidationError as err:
            return 0.0, _one_line(err.message)
        return 1.0


class max_words(Scorer):
    """1 when the answer has at most n words, else 0."""

    def __init__(self, n: int, *, name: str = "max_words"):
        if int(n) < 0:
            raise ConfigError(f"max_words(n): n is a number of words >= 0, not {n}.")
        self.n, self.name = int(n), name

    def __call__(self, result: Result, row: dict[str, Any] | None = None) -> Any:
        words = len(result.text.split())
        return (1.0, None) if words <= self.n else (0.0, f"{words} words > {self.n}")


# ----- a model as judge ---------------------------------------------------------------------------

JUDGE_TEMPLATE = """You are grading an answer to a question. Criteria: {rubric}

<question>
{question}
</question>
{reference}
<answer>
{answer}
</answer>

Grade the answer from 1 (worst) to 10 (best) against the criteria{against}. Reply with one line and nothing else, in exactly this form:
Score: N — one-line reason"""

_SCORE_LINE = re.compile(r"score\s*[:=]?\s*\**\s*(-?\d+(?:\.\d+)?)\s*\**(?:\s*/\s*10)?\s*[—–\-:|.,]*\s*(.*)",
                         re.I | re.S)

#: set while a scoring run's judge calls should skip the replay file (`--refresh`)
_refreshing: contextvars.ContextVar[bool] = contextvars.ContextVar("llmcells_refresh", default=False)


def parse_judgement(text: str) -> tuple[float, str]:
    """(score 1-10, reason) from a judge's "Score: N — reason" reply; NaN when it has none."""
    m = _SCORE_LINE.search(text or "")
    if not m:
        return NAN, _one_line(f"judge reply has no 'Score: N': {text!r}")
    value = float(m.group(1))
    reason = _one_line(m.group(2).strip().splitlines()[0] if m.group(2).strip() else "")
    if not 1 <= value <= 10:
        return NAN, _one_line(f"judge gave {m.group(1)}, outside 1-10")
    return value, reason


class judge(Scorer):
    """A model grades each answer on 1-10 with a one-line reason ("Score: N — reason").

    model: the judge (alias or provider:model). rubric: what a good answer is. reference: an
    expected answer to grade against (text, column("name") or a function of the row). The
    judge's calls go in the ledger with purpose "judge", under the same group (and batch) as the
    answers they grade; `costs(by=["group", "purpose"])` shows them apart. A model never grades
    its own answer (NaN, with a note) unless allow_self=True. temperature (0 by default; left
    out, with a note, for a judge model that takes none: see data/models.toml), max_tokens and
    timeout apply to the grading calls.
    """

    def __init__(self, model: str = "claude", rubric: str = "Is the answer correct, complete and clear?",
                 *, reference: Any = None, allow_self: bool = False, name: str = "judge",
                 temperature: float | None = 0, max_tokens: int | None = 300,
                 timeout: float | None = None):
        from .errors import ConfigError
        from .models import resolve

        if isinstance(model, str) and len(model.split()) > 2:  # judge("Is it polite?"): a rubric
            raise ConfigError(f"judge() takes the judge's model first, then the rubric: "
                              f"judge(\"claude\", {model!r}) or judge(rubric={model!r}).")
        resolve(model)  # an unknown model fails now, with one line
        self.model, self.rubric, self.reference = model, rubric, reference
        self.allow_self, self.name = allow_self, name
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout

    def prompt(self, result: Result, row: dict[str, Any] | None = None) -> str:
        """The grading prompt sent to the judge for one answer."""
        question = (row or {}).get("prompt", "")
        reference = "" if self.reference is None else \
            f"\n<reference>\n{_value(self.reference, row)}\n</reference>\n"
        return JUDGE_TEMPLATE.format(rubric=self.rubric, question=question, reference=reference,
                                     answer=result.text,
                                     against=" and the reference answer" if reference else "")

    async def __call__(self, result: Result, row: dict[str, Any] | None = None) -> Any:
        from . import _loop, replay
        from .models import resolve
        from .calls import make_plan
        from .pipeline import call as execute

        spec = resolve(self.model)
        if result.model == spec.id and not self.allow_self:
            return NAN, "not judged: this is the judge's own answer (judge(..., allow_self=True) allows it)"
        plan = make_plan(self.prompt(result, row), spec, temperature=self.temperature,
                         max_tokens=self.max_tokens,
                         timeout=self.timeout, group_id=result.group_id, cell=result.cell,
                         batch_id=result.batch_id, cache=False)
        plan.info.purpose = "judge"
        if _refreshing.get():
            replay.refresh([plan])
        graded = await _loop.bridge(execute(plan))
        if not graded.ok:
            return NAN, _one_line(f"judge call failed: {graded.error or graded.status}")
        return parse_judgement(graded.text)


# ----- running scorers ---------------------------------------------------------------------------


def _identifier(name: str) -> str:
    name = re.sub(r"\W+", "_", str(name)).strip("_")
    return name or "score"


def _wants_row(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 2


class _Bound:
    """One scorer, with its column name and how to call it."""

    def __init__(self, fn: Callable, name: str):
        self.fn, self.name, self.row = fn, name, _wants_row(fn)

    def call(self, result: Result, row: dict[str, Any] | None) -> Any:
        return self.fn(result, row) if self.row else self.fn(result)


def prepare(score: Any) -> list[_Bound]:
    """The scorers of `score=` (one, or a list), each with a unique column-safe name."""
    if score is None:
        return []
    items = list(score) if isinstance(score, (list, tuple)) else [score]
    bound: list[_Bound] = []
    seen: dict[str, int] = {}
    for fn in items:
        if not callable(fn):
            raise ConfigError(f"score= takes scorers (functions or llmcells.exact(...), judge(...) ...), "
                              f"not {type(fn).__name__}.")
        raw = getattr(fn, "name", None) if isinstance(fn, Scorer) else getattr(fn, "__name__", None)
        name = _identifier(raw if raw and raw != "<lambda>" else "custom")
        seen[name] = seen.get(name, 0) + 1
        bound.append(_Bound(fn, name if seen[name] == 1 else f"{name}_{seen[name]}"))
    return bound


def _as_score(value: Any) -> tuple[float, str | None]:
    note = None
    if isinstance(value, tuple) and len(value) == 2:
        value, note = value
    if value is None:
        return NAN, note or "the scorer returned None"
    if isinstance(value, bool):
        return float(value), note
    try:
        number = float(value)
    except (TypeError, ValueError):
        return NAN, _one_line(f"the scorer returned {type(value).__name__}, not a number")
    return number, note


def _failed(err: BaseException) -> tuple[float, str]:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return NAN, _one_line(f"{type(err).__name__}: {text}" if text else type(err).__name__)


def _set(result: Result, name: str, value: float, note: str | None) -> None:
    result.scores[name] = value
    if note:
        result.score_notes[name] = _one_line(note)
    else:
        result.score_notes.pop(name, None)


class ScoringRun:
    """Scores the results of one compare or batch as they finish.

    Quick (synchronous) scorers run when a call finishes, before its card paints its final
    state; async ones (a judge) run as tasks, at most `concurrency` at a time, and the card is
    told with on_scores when they are done.
    """

    def __init__(self, scorers: list[_Bound], *, prompt: str | None = None, refresh: bool = False,
                 concurrency: int = 8):
        self.scorers, self.prompt, self.refresh = scorers, prompt, refresh
        self._sem = asyncio.Semaphore(max(1, int(concurrency)))
        self._tasks: list[asyncio.Future] = []
        self.results: list[Result] = []

    def __bool__(self) -> bool:
        return bool(self.scorers)

    def _row(self, row: dict[str, Any] | None) -> dict[str, Any]:
        return dict(row) if row is not None else {"prompt": self.prompt or ""}

    def _start(self, result: Result, row: dict[str, Any] | None) -> list[tuple[_Bound, Any]]:
        """Run the quick scorers; return the async ones' awaitables."""
        self.results.append(result)
        pending = []
        for s in self.scorers:
            if not result.ok:
                _set(result, s.name, NAN, f"no answer ({result.status})")
                continue
            try:
                value = s.call(result, row)
            except Exception as err:
                _set(result, s.name, *_failed(err))
                continue
            if inspect.isawaitable(value):
                result.scores[s.name] = NAN  # until it is known
                pending.append((s, value))
            else:
                _set(result, s.name, *_as_score(value))
        return pending

    async def _finish(self, result: Result, pending: list[tuple[_Bound, Any]]) -> None:
        token = _refreshing.set(self.refresh)
        try:
            for s, awaitable in pending:
                try:
                    async with self._sem:
                        value = await awaitable
                except asyncio.CancelledError:
                    _set(result, s.name, NAN, "cancelled")
                    raise
                except Exception as err:
                    _set(result, s.name, *_failed(err))
                else:
                    _set(result, s.name, *_as_score(value))
        finally:
            _refreshing.reset(token)

    async def score(self, result: Result | None, row: dict[str, Any] | None = None) -> None:
        """Score one result now (waits for async scorers)."""
        if result is None or not self.scorers:
            return
        pending = self._start(result, self._row(row))
        if pending:
            await self._finish(result, pending)

    async def score_unscored(self, pairs: Iterable[tuple[Result | None, dict[str, Any] | None]]) -> None:
        """Score every result not scored yet (e.g. a batch's resumed rows), concurrently."""
        todo = [self.score(r, row) for r, row in pairs
                if r is not None and self.scorers and not all(s.name in r.scores for s in self.scorers)]
        if todo:
            await asyncio.gather(*todo)
        self._done()

    def wrap(self, observers: Sequence[CallObserver | None]) -> list[CallObserver | None]:
        """Observers that score each result before passing on_finish on."""
        if not self.scorers:
            return list(observers)
        return [_ScoringObserver(self, o or CallObserver()) for o in observers]

    async def wait(self) -> None:
        """Wait for every async scorer started by the wrapped observers."""
        if self._tasks:
            await asyncio.gather(*self._tasks)
        self._done()

    def cancel(self) -> None:
        for t in self._tasks:
            if not t.done():
                t.cancel()

    def _done(self) -> None:
        global last_results
        if self.scorers and self.results:
            last_results = list(self.results)


class _ScoringObserver(CallObserver):
    """Passes every event on; at the end scores the result, then tells the inner observer."""

    def __init__(self, run: ScoringRun, inner: CallObserver):
        self.run, self.inner = run, inner
        self.on_start, self.on_sent, self.on_status = inner.on_start, inner.on_sent, inner.on_status
        self.on_retry, self.on_first_token = inner.on_retry, inner.on_first_token
        self.on_text, self.on_usage = inner.on_text, inner.on_usage
        self.on_tool_call = getattr(inner, "on_tool_call", lambda run: None)  # [tools hook]

    def on_finish(self, result: Result) -> None:
        try:
            pending = self.run._start(result, self.run._row(None))
        except Exception as exc:  # scoring must never break a call
            swallowed("starting a call's scorers (no scores for it)", exc)
            pending = []
        self.inner.on_finish(result)
        if pending:
            async def finish() -> None:
                await self.run._finish(result, pending)
                try:
                    getattr(self.inner, "on_scores", lambda r: None)(result)
                except Exception as exc:
                    swallowed("an observer's on_scores", exc)
            self.run._tasks.append(asyncio.ensure_future(finish()))


class _NoScoring(ScoringRun):
    def __init__(self) -> None:
        super().__init__([])


def start(score: Any, *, prompt: str | None = None, refresh: bool = False,
          concurrency: int = 8) -> ScoringRun:
    """A scoring run for `score=` (a run that does nothing when score is None)."""
    scorers = prepare(score)
    if not scorers:
        return _NoScoring()
    return ScoringRun(scorers, prompt=prompt, refresh=refresh, concurrency=concurrency)


#: the results of the last compare or batch that was scored (for `%llmcells frontier`)
last_results: list[Result] | None = None


# ----- summaries with intervals ------------------------------------------------------------------

# Two-sided 95% (p = 0.975) quantiles of Student's t, used when scipy is not installed.
_T975 = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 5: 2.570582, 6: 2.446912,
         7: 2.364624, 8: 2.306004, 9: 2.262157, 10: 2.228139, 11: 2.200985, 12: 2.178813,
         13: 2.160369, 14: 2.144787, 15: 2.131450, 16: 2.119905, 17: 2.109816, 18: 2.100922,
         19: 2.093024, 20: 2.085963, 21: 2.079614, 22: 2.073873, 23: 2.068658, 24: 2.063899,
         25: 2.059539, 26: 2.055529, 27: 2.051831, 28: 2.048407, 29: 2.045230, 30: 2.042272,
         40: 2.021075, 50: 2.008559, 60: 2.000298, 80: 1.990063, 100: 1.983972, 120: 1.979930,
         200: 1.971896, 500: 1.964720, 1000: 1.962339}


def _t975_table(df: float) -> float:
    if df >= 1000:
        return 1.959964 + (1.962339 - 1.959964) * 1000 / df
    keys = sorted(_T975)
    if df in _T975:
        return _T975[int(df)]
    hi = next(k for k in keys if k > df)
    lo = max(k for k in keys if k < df)
    # t quantiles are close to linear in 1/df between the table's points
    w = (1 / df - 1 / hi) / (1 / lo - 1 / hi)
    return _T975[hi] + w * (_T975[lo] - _T975[hi])


def t_quantile(p: float, df: float) -> float:
    """The p quantile of Student's t with df degrees of freedom (scipy when installed; without
    it only p=0.975, from a table)."""
    try:
        from scipy.stats import t
    except ImportError:
        if abs(p - 0.975) > 1e-12:
            raise RuntimeError('intervals other than 95% need scipy: pip install "llmcells[scoring]"') from None
        return _t975_table(df)
    return float(t.ppf(p, df))


def mean_interval(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its t-interval; NaN bounds with fewer than two values."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return NAN, NAN, NAN
    mean = sum(xs) / n
    if n < 2:
        return mean, NAN, NAN
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def _frame_of(data: Any) -> "pd.DataFrame":
    pd = import_pandas()

    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "results") and hasattr(data, "to_frame"):  # a Comparison
        return data.to_frame()
    if isinstance(data, Result):
        return data.to_frame()
    if isinstance(data, Iterable):
        return pd.DataFrame([r.to_row() for r in data])
    raise ConfigError(f"Expected a DataFrame, a Comparison or Results, not {type(data).__name__}.")


def score_columns(frame: "pd.DataFrame") -> list[str]:
    """The score_<name> columns of a compare or batch frame."""
    return [c for c in frame.columns if str(c).startswith("score_") and c != "score_notes"]


def model_figures(frame: "pd.DataFrame") -> "pd.DataFrame":
    """frame with cost_usd and latency_s of replayed calls set to their original call's figures
    (what the model costs and takes, not what the replay did)."""
    frame = frame.copy()
    if "replayed" in frame.columns:
        replayed = frame["replayed"].fillna(False).astype(bool)
        for col in ("cost_usd", "latency_s", "ttft_s"):
            orig = f"original_{col}"
            if orig in frame.columns and col in frame.columns:
                frame.loc[replayed, col] = frame.loc[replayed, orig]
    return frame


def summarize(data: Any, *, by: str = "model", confidence: float = 0.95) -> "pd.DataFrame":
    """One row per model: calls, errors, and for each score, latency_s and cost_usd, its mean
    and a t-interval (`_lo`, `_hi`; 95% by default) over the successful calls.

    data: a compare or batch frame, a Comparison, or Results. Replayed calls count with their
    original cost and latency. With one sample per model the interval is NaN. The low ends of
    latency and cost intervals are clipped at 0.
    """
    pd = import_pandas()

    frame = model_figures(_frame_of(data))
    metrics = [*score_columns(frame), "latency_s", "cost_usd"]
    rows = []
    for key, group in frame.groupby(by, sort=False):
        ok = group[group["status"] == "ok"] if "status" in group.columns else group
        row: dict[str, Any] = {by: key, "calls": len(group), "errors": len(group) - len(ok)}
        for m in metrics:
            vals = pd.to_numeric(ok[m], errors="coerce") if m in ok.columns else []
            mean, lo, hi = mean_interval(vals, confidence)
            if m in ("latency_s", "cost_usd") and lo == lo:
                lo = max(lo, 0.0)  # never below zero, whatever the t-interval says
            row[f"{m}_mean"], row[f"{m}_lo"], row[f"{m}_hi"] = mean, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)
