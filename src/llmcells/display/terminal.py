"""The plain-text renderer for terminals (terminal IPython, `llmcells.run` in a shell).

ask (one call): the answer is written to stdout as it arrives, then one dim metrics line.
compare: streams would interleave, so each answer is printed whole when it finishes, under a
`── model ──` header, followed by its metrics line; close() prints an aligned table of all models
with the fastest and cheapest marked. Only stdout writes; ANSI dim only when stdout is a tty.
"""

from __future__ import annotations

import sys
import threading

from ..types import CallInfo, CallObserver, Result, Usage
from . import _format as F
from .base import DisplayHandle, match_results, safe

_DIM, _RESET = "\x1b[2m", "\x1b[0m"


def _out():
    return sys.stdout


def _tty() -> bool:
    try:
        return bool(_out().isatty())
    except Exception:
        return False


def _dim(text: str) -> str:
    return f"{_DIM}{text}{_RESET}" if _tty() else text


def _write(text: str) -> None:
    try:
        out = _out()
        out.write(text)
        out.flush()
    except Exception:
        pass


class _TerminalObserver(CallObserver):
    def __init__(self, owner: "TerminalDisplay", info: CallInfo, live: bool):
        self.owner = owner
        self.info = info
        self.live = live
        self.text = ""
        self.written = 0  # characters of text already written (live mode)
        self.result: Result | None = None

    @property
    def name(self) -> str:
        return self.info.model_id or self.info.model

    @safe
    def on_start(self, info: CallInfo) -> None:
        if info is not None:
            self.info = info

    @safe
    def on_status(self, status: str, detail: str | None = None) -> None:
        if status == "retrying" and self.live and not self.written:
            _write(_dim(f"⟳ {self.name}: {detail or 'retrying'}") + "\n")

    @safe
    def on_text(self, delta: str, text: str | None = None) -> None:
        if self.result is not None:
            return
        self.text = text if text is not None else self.text + (delta or "")
        if self.live:
            new = self.text[self.written:]
            if new:
                _write(new)
                self.written = len(self.text)

    @safe
    def on_tool_call(self, run: Any) -> None:  # [tools hook]: one line per tool call
        from .tools import tool_line

        if self.live:
            if self.written and not self.text.endswith("\n"):
                _write("\n")
            _write(_dim(tool_line(run)) + "\n")

    @safe
    def on_finish(self, result: Result) -> None:
        if self.result is not None:
            return
        self.result = result
        with self.owner.lock:
            if self.live:
                self._finish_live(result)
            else:
                self._finish_block(result)

    def _final_text(self, result: Result) -> str:
        text = result.text or ""
        if not self.live and result.tool_calls:  # [tools hook]: the tool lines in their place
            from .tools import transcript

            text = transcript(result, markdown=False)
        if result.status != "ok" and len(self.text) > len(text):
            text = self.text
        return text

    def _finish_live(self, result: Result) -> None:
        text = self._final_text(result)
        if text.startswith(self.text[: self.written]) and len(text) > self.written:
            _write(text[self.written:])  # e.g. a cached answer that never streamed
            self.written = len(text)
        if self.written and not text[: self.written].endswith("\n"):
            _write("\n")
        if result.status != "ok":
            _write(f"✗ {self.name}: {F.short_error(result)}\n")
        if result.status != "error":
            line = F.metrics_line(result, self.name)
            if self.info.simulated:
                line = line[:-1] + " · simulated]"
            _write(_dim(line) + "\n")

    def _finish_block(self, result: Result) -> None:
        head = f"── {self.name}" + (" (simulated)" if self.info.simulated else "") + " ──"
        lines = [head]
        text = self._final_text(result)
        if text:
            lines.append(text.rstrip("\n"))
        if result.status != "ok":
            lines.append(f"✗ {self.name}: {F.short_error(result)}")
        if result.status != "error":
            lines.append(_dim(F.metrics_line(result, self.name)))
        _write("\n".join(lines) + "\n\n")


class TerminalDisplay(DisplayHandle):
    mode = "terminal"

    def __init__(self, kind: str, infos: list[CallInfo], *, prompt: str = ""):
        self.kind = kind
        self.lock = threading.RLock()
        live = kind == "ask" and len(infos) == 1
        self._observers = [_TerminalObserver(self, info, live) for info in infos]
        super().__init__(self._observers)

    def close(self, results: list[Result]) -> None:
        try:
            if self.closed:
                return
            self.closed = True
            matched = match_results([o.info for o in self._observers], results)
            for obs, r in zip(self._observers, matched):
                if obs.result is None:
                    obs.on_finish(r if r is not None else Result(
                        text=obs.text, model=obs.name, status="cancelled", error="cancelled"))
            if self.kind == "compare" or len(self._observers) > 1:
                final = [o.result for o in self._observers]
                with self.lock:
                    _write(table_text([o.info for o in self._observers], final) + "\n")
        except Exception:
            pass


def table_text(infos: list[CallInfo], results: list[Result | None]) -> str:
    """An aligned plain-text table of every model, fastest and cheapest marked."""
    rows = [r if r is not None else Result(status="cancelled") for r in results]
    fastest, cheapest = F.pick_best(rows)
    from .scores import summary_text, table_columns  # [scoring hook]

    score_cols = table_columns(rows)
    header = ["model", "status", "latency", "TTFT", "tok/s", "in→out", "cost",
              *(name for name, _ in score_cols), ""]
    body = []
    for i, (info, r) in enumerate(zip(infos, rows)):
        u = r.usage or Usage()
        marks = []
        if i == fastest:
            marks.append("*fastest*")
        if i == cheapest:
            marks.append("*cheapest*")
        body.append([
            (info.model_id or r.model) + (" (sim)" if info.simulated else ""),
            r.status,
            F.fmt_seconds(r.latency_s),
            F.fmt_seconds(r.ttft_s),
            f"{r.tokens_per_s:.0f}" if F.known(r.tokens_per_s) else "–",
            f"{u.input_tokens:,}→{u.output_tokens:,}" if (u.input_tokens or u.output_tokens) else "–",
            F.fmt_cost(r.cost_usd) if F.known(r.cost_usd) else "–",
            *(col[i][0] for _, col in score_cols),
            " ".join(marks),
        ])
    widths = [max(len(row[c]) for row in [header] + body) for c in range(len(header))]
    right = {2, 3, 4, 5, 6, *range(7, 7 + len(score_cols))}

    def fmt(row):
        cells = [(row[c].rjust(widths[c]) if c in right else row[c].ljust(widths[c]))
                 for c in range(len(row))]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header)] + [fmt(row) for row in body]) + summary_text(infos, rows)
