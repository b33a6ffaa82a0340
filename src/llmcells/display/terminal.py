"""The plain-text renderer for terminals (terminal IPython, `llmcells.run` in a shell).

ask (one call): the answer is written to stdout as it arrives, then one dim metrics line.
compare: streams would interleave, so each answer is printed whole when it finishes, under a
`── model ──` header, followed by its metrics line; close() prints an aligned table of all models
with the fastest and cheapest marked. Only stdout writes; ANSI dim only when stdout is a tty.
On a tty, a status line counts the seconds while a call waits for its first token (or for a
retry), so a hung server is visibly waiting; it is erased before anything else is written.
Text from a model or a provider (answers, errors, tool lines, model names) is written without its
control characters (`_format.terminal_safe`): an answer can't move the cursor, clear the screen,
retitle the window or plant a hyperlink.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any

from ..types import CallInfo, CallObserver, Result, RetryInfo, Usage
from . import _format as F
from .base import DisplayHandle, match_results, safe
from .._log import swallowed

_DIM, _RESET, _CLEAR = "\x1b[2m", "\x1b[0m", "\r\x1b[2K"


def _out():
    return sys.stdout


def _tty() -> bool:
    try:
        return bool(_out().isatty())
    except Exception as exc:
        swallowed("asking whether the output is a terminal", exc)
        return False


def _dim(text: str) -> str:
    text = F.terminal_safe(text)  # (our own sequences are added after)
    return f"{_DIM}{text}{_RESET}" if _tty() else text


def _write(text: str) -> None:
    try:
        out = _out()
        out.write(text)
        out.flush()
    except Exception as exc:
        swallowed("writing to the terminal", exc)


class _TerminalObserver(CallObserver):
    def __init__(self, owner: "TerminalDisplay", info: CallInfo, live: bool):
        self.owner = owner
        self.info = info
        self.live = live
        self.pieces: list[str] = []   # the answer as it arrived
        self.chars = 0
        self.written = 0              # characters of the answer already written (live mode)
        self.ended_newline = True     # whether the last character written was a newline
        self.result: Result | None = None
        self.t0: float | None = None
        self.first = False
        self.retry: RetryInfo | None = None
        self.retry_at = 0.0
        self.calling: str | None = None  # the tool the model is asking for, while it writes the call

    @property
    def name(self) -> str:
        return self.info.model_id or self.info.model

    @property
    def text(self) -> str:
        if len(self.pieces) > 1:
            self.pieces[:] = ["".join(self.pieces)]
        return self.pieces[0] if self.pieces else ""

    @safe
    def on_start(self, info: CallInfo) -> None:
        if info is not None:
            self.info = info

    @safe
    def on_sent(self, t0: float) -> None:
        self.t0 = t0
        self.owner.ensure_ticker()

    @safe
    def on_status(self, status: str, detail: str | None = None) -> None:
        self.calling = (detail or "a tool") if status == "calling" else None

    @safe
    def on_fallback(self, from_model: str, reason: str, to_model: str) -> None:
        if self.live and not self.written:
            self.owner.write(_dim(f"↪ {from_model}: {reason.replace('_', ' ')} → {to_model}") + "\n")

    @safe
    def on_retry(self, retry: RetryInfo) -> None:
        self.retry, self.retry_at = retry, time.monotonic()
        if self.live and not self.written:
            why = (retry.message or retry.reason.replace("_", " ")).rstrip(". ")
            self.owner.write(_dim(f"⟳ {self.name}: {why}; retrying in {retry.wait_s:.1f} s "
                                  f"(attempt {retry.attempt} of {retry.max_attempts})") + "\n")

    @safe
    def on_first_token(self, ttft_s: float) -> None:
        self.first = True
        self.retry = None

    @safe
    def on_text(self, delta: str) -> None:
        if self.result is not None or not delta:
            return
        self.first = True
        self.calling = None
        self.pieces.append(delta)
        self.chars += len(delta)
        if self.live:
            self.owner.write(F.terminal_safe(delta))
            self.written = self.chars
            self.ended_newline = delta.endswith("\n")

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

    def waiting_label(self, now: float) -> str | None:
        """"waiting for first token… 12 s" while this call waits, "calling get_weather…" while the
        model asks for a tool, None otherwise."""
        if self.result is not None or self.t0 is None:
            return None
        if self.calling is not None:
            return f"calling {self.calling}…"
        if self.first:
            return None
        if self.retry is not None:
            left = self.retry.wait_s - (now - self.retry_at)
            if left > 0:
                return F.retry_label(self.retry, left)
        return f"waiting for first token… {max(0, now - self.t0):.0f} s"

    def _final_text(self, result: Result) -> str:
        text = result.text or ""
        if not self.live and result.tool_calls:  # the tool lines in their place
            from .tools import transcript

            text = transcript(result, markdown=False)
        if result.status != "ok" and self.chars > len(text):
            text = self.text
        return text

    def _finish_live(self, result: Result) -> None:
        text = self._final_text(result)
        if len(text) > self.written and text.startswith(self.text[: self.written]):
            self.owner.write(F.terminal_safe(text[self.written:]))  # e.g. a cached answer that never streamed
            self.ended_newline = text.endswith("\n")
            self.written = len(text)
        if self.written and not self.ended_newline:
            self.owner.write("\n")
        if result.status != "ok":
            self.owner.write(F.terminal_safe(f"✗ {self.name}: {F.short_error(result)}") + "\n")
        if result.status != "error":
            line = F.metrics_line(result, self.name)
            if self.info.simulated:
                line = line[:-1] + " · simulated]"
            self.owner.write(_dim(line) + "\n")
        notes = F.notes_line(result)  # a parameter left out, a refusal...
        if notes:
            self.owner.write(_dim(notes) + "\n")
        note = _agent_note(result)  # an agent CLI's own report
        if note:
            self.owner.write(_dim(note) + "\n")

    def _finish_block(self, result: Result) -> None:
        head = f"── {self.name}" + (" (simulated)" if self.info.simulated else "") + " ──"
        lines = [F.terminal_safe(head)]
        text = self._final_text(result)
        if text:
            lines.append(F.terminal_safe(text.rstrip("\n")))
        if result.status != "ok":
            lines.append(F.terminal_safe(f"✗ {self.name}: {F.short_error(result)}"))
        if result.status != "error":
            lines.append(_dim(F.metrics_line(result, self.name)))
        notes = F.notes_line(result)  # a parameter left out, a refusal...
        if notes:
            lines.append(_dim(notes))
        note = _agent_note(result)  # an agent CLI's own report
        if note:
            lines.append(_dim(note))
        self.owner.write("\n".join(lines) + "\n\n")


def _agent_note(result: Result) -> str | None:
    """[agents] An agent CLI's own report, one line (None for a plain API call)."""
    from ..agents import card_note

    return card_note(result)


class TerminalDisplay(DisplayHandle):
    mode = "terminal"

    def __init__(self, kind: str, infos: list[CallInfo], *, prompt: str = ""):
        self.kind = kind
        self.lock = threading.RLock()
        live = kind == "ask" and len(infos) == 1
        self._observers = [_TerminalObserver(self, info, live) for info in infos]
        self._status_shown = False
        self._tick: asyncio.TimerHandle | None = None
        self.tty = _tty()
        super().__init__(self._observers)

    def write(self, text: str) -> None:
        with self.lock:
            if self._status_shown:
                _write(_CLEAR)
                self._status_shown = False
            _write(text)

    # ----- the waiting line (tty only) ---------------------------------------------------------

    def ensure_ticker(self) -> None:
        if not self.tty or self._tick is not None or self.closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._tick = loop.call_later(1.0, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        if self.closed:
            return
        now = time.monotonic()
        waiting = [(o, o.waiting_label(now)) for o in self._observers]
        waiting = [(o, label) for o, label in waiting if label]
        with self.lock:
            # never draw over an answer that is being written on the current line
            busy = any(o.live and o.written and not o.ended_newline for o in self._observers)
            if waiting and not busy:
                o, label = waiting[0]
                more = f" (+{len(waiting) - 1} more)" if len(waiting) > 1 else ""
                _write(_CLEAR + _dim(f"⏳ {o.name}: {label}{more}"))
                self._status_shown = True
            elif self._status_shown:
                _write(_CLEAR)
                self._status_shown = False
        if any(o.result is None for o in self._observers):
            self.ensure_ticker()

    def close(self, results: list[Result]) -> None:
        try:
            if self.closed:
                return
            if self._tick is not None:
                self._tick.cancel()
                self._tick = None
            self.closed = True
            matched = match_results([o.info for o in self._observers], results)
            for obs, r in zip(self._observers, matched):
                if obs.result is None:
                    obs.on_finish(r if r is not None else Result(
                        text=obs.text, model=obs.name, status="cancelled", error="cancelled"))
                elif (r is not None and r.call_id != obs.result.call_id
                      and obs.result.error_kind == "invalid_output"):
                    # the call was answered again (repair=1): the answer that counts, in full
                    with self.lock:
                        self.write(_dim("↻ repaired: the first answer did not match the schema; "
                                        "the answer after the repair:") + "\n")
                        obs.result = r
                        obs._finish_block(r)
            if self.kind == "compare" or len(self._observers) > 1:
                final = [o.result for o in self._observers]
                self.write(table_text([o.info for o in self._observers], final) + "\n")
            elif self._status_shown:
                self.write("")
        except Exception as exc:
            swallowed("writing the final table", exc)


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
            f"{F.result_rate(r):.0f}" if F.result_rate(r) is not None else "–",
            f"{u.input_tokens:,}→{u.output_tokens:,}" if (u.input_tokens or u.output_tokens) else "–",
            F.fmt_cost(r.cost_usd) if F.known(r.cost_usd) and (r.ok or u.input_tokens) else "–",
            *(col[i][0] for _, col in score_cols),
            " ".join(marks),
        ])
        body[-1] = [F.terminal_safe(cell) for cell in body[-1]]  # a model's name, a score
    widths = [max(len(row[c]) for row in [header] + body) for c in range(len(header))]
    right = {2, 3, 4, 5, 6, *range(7, 7 + len(score_cols))}

    def fmt(row):
        cells = [(row[c].rjust(widths[c]) if c in right else row[c].ljust(widths[c]))
                 for c in range(len(row))]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header)] + [fmt(row) for row in body]) + F.terminal_safe(summary_text(infos, rows))
