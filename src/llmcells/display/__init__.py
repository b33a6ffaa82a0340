"""The display layer: live cards in a notebook, plain text in a terminal, nothing in a script.

    mode = detect_mode(display)                      # "notebook", "terminal" or "none"
    handle = open_display("compare", infos, mode, prompt=prompt)   # main thread, before the calls
    ... the runner feeds handle.observers[i] from the private loop thread ...
    handle.close(results)                            # loop thread, once, after every call ended

Importing this package is cheap: ipywidgets is imported only when a notebook display is opened.
"""

from __future__ import annotations

import sys

from ..errors import ConfigError
from ..types import CallInfo
from .base import DisplayHandle
from .jobs import open_job_progress
from .progress import open_progress
from .._log import swallowed

__all__ = ["DisplayHandle", "detect_mode", "open_display", "open_job_progress", "open_progress",
           "results_html"]

_TERMINAL = {"text", "terminal", "plain", "stdout", "print"}
_NOTEBOOK = {"notebook", "widget", "widgets", "html", "jupyter"}
_NONE = {"none", "off", "false", "no", "quiet", ""}


def _shell():
    """The running IPython shell, if any (without importing IPython in a plain script)."""
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython

        return get_ipython()
    except Exception as exc:
        swallowed("finding the IPython shell", exc)
        return None


def _in_kernel(shell) -> bool:
    return any(k.__name__ == "ZMQInteractiveShell" for k in type(shell).__mro__)


def detect_mode(display: bool | str | None) -> str:
    """"notebook", "terminal" or "none".

    display=False -> "none"; "text"/"terminal" -> "terminal"; "notebook" -> "notebook";
    True/None: "notebook" inside an ipykernel (ZMQInteractiveShell), "terminal" in terminal
    IPython; None in a plain script -> "none", True in a plain script -> "terminal".
    """
    if display is False:
        return "none"
    if isinstance(display, str):
        d = display.strip().lower()
        if d in _TERMINAL:
            return "terminal"
        if d in _NOTEBOOK:
            return "notebook"
        if d in _NONE:
            return "none"
        raise ConfigError(
            f"display={display!r} is not understood: use True, False, 'text' or 'notebook'.")
    if display is not None and display is not True:
        raise ConfigError(
            f"display={display!r} is not understood: use True, False, 'text' or 'notebook'.")
    shell = _shell()
    if shell is not None:
        return "notebook" if _in_kernel(shell) else "terminal"
    return "terminal" if display is True else "none"


def open_display(kind: str, infos: list[CallInfo], mode: str, *, prompt: str = "",
                 markdown: bool = True) -> DisplayHandle | None:
    """Create (and, in a notebook, show) the live view of one ask / compare.

    Called on the MAIN thread before the calls start. kind: "ask" or "compare". markdown=False
    shows finished answers as plain text. Returns None for mode "none". Falls back to the
    terminal renderer if widgets can't be made.
    """
    if mode == "none" or mode is None:
        return None
    infos = list(infos)
    if mode == "notebook":
        try:
            from .notebook import NotebookDisplay

            return NotebookDisplay(kind, infos, prompt=prompt, markdown=markdown)
        except Exception as exc:
            swallowed("opening the notebook display (the terminal one instead)", exc)
            mode = "terminal"
    if mode == "terminal":
        from .terminal import TerminalDisplay

        return TerminalDisplay(kind, infos, prompt=prompt)
    raise ConfigError(f"Unknown display mode {mode!r}: use 'notebook', 'terminal' or 'none'.")


def results_html(results) -> str:
    """Results as HTML, the way a Result or a Comparison shows as a cell's value: each one's
    model, status and error, then its answer as Markdown (the cards' renderer: no raw HTML, no
    `javascript:` link), one after another; styles inline, so that a saved notebook reads the same.
    Never raw Markdown: a notebook renders a trusted output's Markdown with its HTML (scripts run)."""
    from .markdown import escape, render_markdown
    from .static import inline_styles

    parts = []
    for r in results:
        head = f"<strong>{escape(str(r.model))}</strong> · {escape(str(r.status))}"
        if r.error:
            head += f" · {escape(str(r.error))}"
        parts.append(f'<div class="llmcells-md"><p>{head}</p></div>{render_markdown(r.text or "")}')
    # (not the static copy's class: the live stylesheet hides that once a card has been shown)
    return inline_styles('<div class="llmcells-result">' + "<hr>".join(parts) + "</div>")
