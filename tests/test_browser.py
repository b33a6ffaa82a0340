"""Real-browser smoke test: JupyterLab + headless Chromium + `%%compare` on the simulator.

Starts JupyterLab on loopback (private config/runtime dirs, random token, no provider keys), opens
a notebook in Debian's Chromium through Playwright, runs `%load_ext llmcells` /
`%llmcells simulate on` and a three-model `%%compare`, and checks that three cards streamed to
completion with their metrics and that the metrics table appeared. A full-page screenshot is
left in `test-output/browser/compare.png` (look at it: it is the point of this test).

Needs `/usr/bin/chromium` (Debian: `apt-get install chromium`); `LLMCELLS_SKIP_BROWSER=1` skips.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from _jupyterlab import JupyterLab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "test-output" / "browser"
CHROMIUM = Path(os.environ.get("LLMCELLS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1440, "height": 900}
MODELS = ["chatgpt", "claude", "gemini"]
PROMPT = "Explain a p-value to a new analyst in two sentences."

# the widgets: the compare grid is an ipywidgets GridBox whose children are the cards (VBoxes of
# header / body / footer HTML widgets)
CARDS = ".jp-OutputArea-output .widget-gridbox > .widget-vbox"


def _require_browser() -> None:
    if os.environ.get("LLMCELLS_SKIP_BROWSER") == "1":
        pytest.skip("LLMCELLS_SKIP_BROWSER=1 is set")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the browser smoke test needs Debian's Chromium "
                    "(`apt-get install -y chromium`), or set LLMCELLS_SKIP_BROWSER=1 to skip it",
                    pytrace=False)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright (Python) is not installed: `pip install -e '.[test]'`", pytrace=False)


def _write_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext llmcells\n%llmcells simulate on --ttft 0.3 --tps 60"),
        nbformat.v4.new_code_cell(f"%%compare {' '.join(MODELS)}\n{PROMPT}"),
    ]
    nbformat.write(nb, str(path))


def _card_states(page) -> list[dict]:
    """Header / body / footer text of every card on the page, read in one round trip."""
    return page.eval_on_selector_all(CARDS, """cards => cards.map(c => {
        const parts = Array.from(c.querySelectorAll(':scope > .widget-html'));
        const text = i => parts[i] ? parts[i].innerText.trim() : '';
        const r = c.getBoundingClientRect();
        return {header: text(0), body: text(1), footer: text(2),
                x: r.x, y: r.y, width: r.width, height: r.height,
                overflowX: c.scrollWidth > c.clientWidth + 1};
    })""")


def _wait_kernel_idle(page, timeout_s: float = 45.0) -> None:
    """The notebook is loaded (both cells) and its kernel is connected, has answered kernel_info
    (the debugger button is enabled only then) and is idle. The execution indicator alone says
    "idle" too early: while the notebook is still a one-cell placeholder with "No Kernel"."""
    ready = """() => {
            const q = s => document.querySelector(s);
            const cells = document.querySelectorAll('.jp-Notebook .jp-Cell').length;
            const name = q('.jp-NotebookPanel-toolbar .jp-Toolbar-kernelName');
            const bug = q('.jp-NotebookPanel-toolbar .jp-DebuggerBugButton');
            const ei = q('.jp-NotebookPanel-toolbar .jp-Notebook-ExecutionIndicator');
            return cells === 2
                && name && !/no kernel/i.test(name.innerText)
                && bug && bug.getAttribute('aria-disabled') === 'false'
                && ei && ei.getAttribute('data-status') === 'idle';
        }"""
    try:
        page.wait_for_function(ready, timeout=timeout_s * 1000, polling=100)
    except Exception as e:
        state = page.evaluate("""() => {
            const q = s => document.querySelector(s);
            const name = q('.jp-Toolbar-kernelName'), bug = q('.jp-DebuggerBugButton'),
                  ei = q('.jp-Notebook-ExecutionIndicator');
            return {cells: document.querySelectorAll('.jp-Notebook .jp-Cell').length,
                    kernel: name && name.innerText, debugger_disabled: bug && bug.getAttribute('aria-disabled'),
                    execution: ei && ei.getAttribute('data-status'),
                    dialog: (q('.jp-Dialog') || {}).innerText || null};
        }""")
        raise AssertionError(f"the notebook/kernel was not ready within {timeout_s:.0f} s: {state}") from e


def test_compare_streams_three_cards_in_jupyterlab(tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    shot = OUT_DIR / "compare.png"
    shot.unlink(missing_ok=True)
    (OUT_DIR / "failure.png").unlink(missing_ok=True)
    t0 = time.monotonic()

    with JupyterLab(tmp_path) as lab:
        nb_path = lab.root / "compare.ipynb"
        _write_notebook(nb_path)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(30_000)
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                try:
                    _run(page, lab, shot, errors)
                except BaseException:
                    # leave evidence behind for whoever debugs it
                    try:
                        page.screenshot(path=str(OUT_DIR / "failure.png"), full_page=True)
                        print(f"\nfailure screenshot: {OUT_DIR / 'failure.png'}")
                    except Exception:
                        pass
                    print("\n--- JupyterLab log (tail) ---\n" + lab.log())
                    raise
            finally:
                browser.close()

    elapsed = time.monotonic() - t0
    print(f"\nbrowser smoke test took {elapsed:.1f} s")
    assert elapsed < 120, f"the browser smoke test took {elapsed:.0f} s (budget: 2 minutes)"


def _run(page, lab: JupyterLab, shot: Path, errors: list[str]) -> None:
    page.goto(lab.page("lab/tree/compare.ipynb"), wait_until="domcontentloaded")
    _wait_kernel_idle(page)

    # cell 1: load the extension and turn the simulator on; wait until it has run
    cells = page.locator(".jp-Notebook .jp-Cell")
    assert cells.count() == 2, f"expected the 2 cells of the test notebook, found {cells.count()}"
    cells.nth(0).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    cells.nth(0).locator(".jp-InputPrompt", has_text=re.compile(r"\[1\]")).wait_for(timeout=30_000)
    cell1_out = cells.nth(0).locator(".jp-OutputArea").inner_text()
    assert "Error" not in cell1_out, f"cell 1 failed:\n{cell1_out}"

    # cell 2: %%compare; poll the cards while they stream
    cells.nth(1).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_selector(CARDS, timeout=30_000)

    seen_streaming = False      # a card header said "streaming" before the card was done
    grew = False                # a card's answer got longer between two looks while not done
    last_len: dict[int, int] = {}
    deadline = time.monotonic() + 45
    states: list[dict] = []
    while time.monotonic() < deadline:
        states = _card_states(page)
        for i, s in enumerate(states):
            done = "✓ done" in s["header"]
            if not done and "streaming" in s["header"]:
                if not seen_streaming:
                    print(f"\nseen streaming: {s['header']!r} / {len(s['body'])} chars / "
                          f"{s['footer']!r}")
                seen_streaming = True
            if not done and s["body"] and len(s["body"]) > last_len.get(i, 0) > 0:
                grew = True
            if not done:
                last_len[i] = len(s["body"])
        if len(states) == 3 and all("✓ done" in s["header"] for s in states):
            break
        page.wait_for_timeout(40)
    else:
        raise AssertionError(f"the cards did not all finish within 45 s: {states}")

    # the table is set right after the cards finish
    page.locator(".jp-OutputArea-output table").filter(has_text="tokens/s").wait_for(timeout=10_000)
    page.wait_for_timeout(300)  # let the final Markdown settle before measuring and shooting
    states = _card_states(page)

    # --- what streamed ---------------------------------------------------------------------------
    assert seen_streaming, "no card was ever seen in the 'streaming' state before it was done"
    assert grew, "no card's answer was seen growing while streaming"

    # --- three finished cards, side by side, with answers and metrics -------------------------
    assert len(states) == 3, states
    for s in states:
        assert "✓ done" in s["header"], s
        assert "simulated" in s["header"], s
        assert "Simulated answer from" in s["body"] and len(s["body"]) > 40, s
        footer = s["footer"]
        assert "TTFT" in footer and "tok/s" in footer and "$" in footer, footer
        assert re.search(r"\d+→\d+ tokens", footer), footer
        assert not s["overflowX"], f"a card overflows horizontally: {s}"
        assert s["width"] >= 280, f"a card is squashed to {s['width']:.0f}px: {s}"
    headers = " ".join(s["header"] for s in states)
    for provider in ("openai:", "anthropic:", "google:"):
        assert provider in headers, f"no {provider} card: {headers}"
    ys = [round(s["y"]) for s in states]
    assert max(ys) - min(ys) <= 2, f"the cards are not side by side at 1440px: {states}"
    xs = sorted(s["x"] for s in states)
    widths = [s["width"] for s in states]
    assert xs[0] + widths[0] <= xs[1] and xs[1] + widths[1] <= xs[2], f"cards overlap: {states}"

    # --- the metrics table ----------------------------------------------------------------------
    table = page.locator(".jp-OutputArea-output table").filter(has_text="tokens/s")
    rows = table.locator("tbody tr")
    assert rows.count() == 3, table.inner_text()
    table_text = table.inner_text()
    for head in ("model", "status", "latency", "TTFT", "tokens/s", "cost"):
        assert head in table_text, table_text
    assert table.locator("tr.fastest").count() >= 1 and "⚡" in table_text, table_text
    assert table.locator("tr.cheapest").count() >= 1 and "★" in table_text, table_text
    assert table_text.count("ok") >= 3, table_text
    legend = page.locator(".jp-OutputArea-output", has_text="among successful answers")
    assert legend.count() >= 1

    # no traceback in the notebook
    outputs = page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts()
    assert not any("Traceback" in o for o in outputs), outputs
    assert not [e for e in errors if "widget" in e.lower()], errors

    # --- the picture ----------------------------------------------------------------------------
    # JupyterLab scrolls inside the notebook, so "full page" is the window: bring the whole
    # compare output into view first (its top at the top of the notebook), then also keep a
    # picture of the output area alone
    output = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea")
    output.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)  # no hover highlight
    page.wait_for_timeout(200)
    page.screenshot(path=str(shot), full_page=True)
    cards_shot = shot.with_name("compare-output.png")
    output.screenshot(path=str(cards_shot))
    print(f"\nscreenshot: {shot}\noutput only: {cards_shot}")
    assert shot.stat().st_size > 10_000
    shutil.copyfile(shot, lab.base / "compare.png")  # beside the server log, for the record
    print(f"copy (with jupyterlab.log): {lab.base / 'compare.png'}")
