"""One-line hints for a new user: what to do when `%load_ext llmcells` finds no API key.

The hint is given at the end of the cell that loaded llmcells, so that a cell which goes on to
switch the simulator on (`import llmcells` then `%llmcells simulate on` or `llmcells.simulate()`,
as the README and every example notebook do) is not told to do what it just did."""

from __future__ import annotations

import sys

from .._log import swallowed

NO_KEY_HINT = ("llmcells: no API key found (OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY); "
               "run `%llmcells simulate on` to try everything on the built-in simulator.")


def no_key_hint(out=None) -> bool:
    """Print NO_KEY_HINT when no provider has a key and the simulator is off; True if printed."""
    try:
        from .. import models

        if any(models.key_status().values()) or models.vertex_enabled() or models.vertex_project():
            return False  # (a Vertex AI project: the route signs in with Google's credentials)
        if models.simulator_url():
            return False
    except Exception as exc:
        swallowed("checking for keys before the no-key hint", exc)
        return False
    print(NO_KEY_HINT, file=out)
    return True


def _in_cell(ipython) -> bool:
    """True while ipython runs a cell (the caller's stack goes through its run_code); False when
    llmcells is loaded outside one (an IPython config's `extensions`, a test's shell)."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "run_code" and frame.f_locals.get("self") is ipython:
            return True
        frame = frame.f_back
    return False


def hint_after_cell(ipython) -> None:
    """no_key_hint() once the running cell has ended (IPython's post_run_cell), or now when no
    cell is running or the shell has no events to wait on."""
    events = getattr(ipython, "events", None)
    if events is None or not _in_cell(ipython):
        no_key_hint()
        return

    def _after_cell(*_args) -> None:
        try:
            events.unregister("post_run_cell", _after_cell)
        except ValueError:
            pass
        no_key_hint()

    events.register("post_run_cell", _after_cell)
