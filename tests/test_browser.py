"""Real-browser tests: JupyterLab + headless Chromium + `%%compare` on the simulator.

The live compare, in the light, dark (1400 px and 700 px) and high-contrast (1400 px) themes:
while it streams, the card body follows the newest text (and stays put once the reader scrolls
up), and Claude's live footer counts output tokens (> 1, within 30% of the final count at the
80% mark). When done: every finished card shows its first line without scrolling, side by side
the answers line up by their first lines, the metrics table's last column can be scrolled into
view, status / footer / chip / code colours contrast >= 4.5:1 with their background (computed
from the page's styles), code keeps its lines and scrolls sideways, no table cell breaks a word,
links open in a new tab with rel=noopener, cards side by side at 1400 px and stacked at 700 px.

A saved notebook, reopened: run in a kernel with its widget state saved, opened on a fresh
server (untrusted: no <style>, no widgets), the static copy shows the cards side by side with
borders (one a row at 700 px), with no widget repr or stray line and every text >= 4.5:1; signed
(trusted), the saved widget state shows the live cards again.

Screenshots go to `test-output/browser/` (the reopened ones to $LLMCELLS_SCREENS when set); the
1400 px compare ones are the README's `docs/compare-light.png` / `docs/compare-dark.png` when
LLMCELLS_UPDATE_DOCS=1.

Needs `/usr/bin/chromium` (Debian: `apt-get install chromium`); `LLMCELLS_SKIP_BROWSER=1` skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from _jupyterlab import JupyterLab

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "test-output" / "browser"
DOCS = ROOT / "docs"
CHROMIUM = Path(os.environ.get("LLMCELLS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
MODELS = ["chatgpt", "claude", "gemini"]
PROMPT = "Explain a p-value to a new analyst, with a small example."
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark",
          "high-contrast": "JupyterLab Dark High Contrast"}
CONFIGS = [("light", 1400), ("dark", 1400), ("light", 700), ("dark", 700)]
#: the compare test also runs in the high-contrast theme (once: its layout is the dark one's)
LIVE_CONFIGS = CONFIGS + [("high-contrast", 1400)]

# A realistic custom answer (simulate().set_model(text=...)): a link, a wide table, a long line
GPT_ANSWER = """A **p-value** is the probability of seeing data at least as extreme as yours if the
null hypothesis were true. See [the ASA statement](https://www.amstat.org/asa/files/pdfs/p-valuestatements.pdf).

| test | statistic | p-value | interpretation_for_the_analyst | decision |
|---|---|---|---|---|
| two-sample t-test | t = 2.31 | 0.024 | unlikely_under_the_null_hypothesis | reject at 5% |
| chi-squared | χ² = 1.20 | 0.273 | compatible_with_the_null_hypothesis | keep H0 |

```python
from scipy import stats
result = stats.ttest_ind(treatment_group_measurements, control_group_measurements, equal_var=False)
if result.pvalue < 0.05:
    print("reject H0")
```

A small p-value is evidence against the null, not the probability that the null is true.
Raw data: https://example.org/datasets/p-values/two_sample_t_test_treatment_vs_control_measurements_2026_12_04_final_v3.csv
"""

SETUP = f"""%load_ext llmcells
import llmcells
sim = llmcells.simulate(ttft=0.3, tokens_per_s=70)
sim.set_model("claude-haiku-5-5", output_tokens=420)
sim.set_model("gpt-6-luna", text={GPT_ANSWER!r})"""

# the widgets: the compare grid is an ipywidgets GridBox whose children are the cards (VBoxes of
# header HTML / scroll box with the body HTML / footer HTML)
CARDS = ".jp-OutputArea-output .widget-gridbox > .llmcells-card"


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
    # a small attachment: its chip is in the contrast check
    (path.parent / "notes.txt").write_text("alpha = 0.05\n")
    nb.cells = [nbformat.v4.new_code_cell(SETUP),
                nbformat.v4.new_code_cell(f"%%compare {' '.join(MODELS)} -a notes.txt\n{PROMPT}")]
    nbformat.write(nb, str(path))


def _set_theme(lab: JupyterLab, theme: str) -> None:
    f = lab.base / "user-settings" / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(json.dumps({"theme": THEMES[theme], "adaptive-theme": False}))


_JS_COLOUR = """
const parse = s => {  // rgb()/rgba()/color(srgb ...) -> [r, g, b, a] in 0..255, alpha 0..1
    let m = s.match(/rgba?\\(([^)]+)\\)/);
    if (m) { const p = m[1].split(/[ ,\\/]+/).filter(x => x).map(Number);
             return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; }
    m = s.match(/color\\(srgb ([^)]+)\\)/);
    if (m) { const p = m[1].split(/[ \\/]+/).filter(x => x).map(Number);
             return [p[0] * 255, p[1] * 255, p[2] * 255, p.length > 3 ? p[3] : 1]; }
    throw new Error('unparsed colour ' + s);
};
const over = (fg, bg) => [0, 1, 2].map(i => fg[i] * fg[3] + bg[i] * (1 - fg[3])).concat([1]);
const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
                   return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
const bgOf = el => {  // the first opaque background up the tree
    let stack = [];
    for (let e = el; e; e = e.parentElement) {
        const c = parse(getComputedStyle(e).backgroundColor);
        if (c[3] > 0) { stack.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (let i = stack.length - 1; i >= 0; i--) bg = over(stack[i], bg);
    return bg;
};
const contrast = el => { const bg = bgOf(el); return ratio(over(parse(getComputedStyle(el).color), bg), bg); };
"""


def _contrasts(page) -> list[dict]:
    """Contrast with its background of every status, footer, badge, muted text, link, code and
    code token in the compare output."""
    return page.evaluate("() => {" + _JS_COLOUR + """
        const out = [];
        const sel = ['.llmcells-status', '.llmcells-foot', '.llmcells-badge', '.llmcells-muted',
                     '.llmcells-prompt', '.llmcells-legend', '.llmcells-best',
                     'table.llmcells-metrics td', '.llmcells-md a', '.llmcells-md pre',
                     '.llmcells-md pre span', '.llmcells-md td', '.llmcells-md th',
                     '.llmcells-md p', '.llmcells-chip', '.llmcells-sub', '.llmcells-note',
                     'table.llmcells-metrics th', '.llmcells-md li', '.llmcells-md h3',
                     '.llmcells-md code'];
        for (const s of sel) for (const el of document.querySelectorAll('.jp-OutputArea-output ' + s)) {
            if (!el.textContent.trim() || !el.getClientRects().length) continue;
            out.push({sel: s, text: el.textContent.trim().slice(0, 40), ratio: contrast(el),
                      color: getComputedStyle(el).color});
        }
        return out;
    }""")


def _card_states(page) -> list[dict]:
    """Header / body / footer text and scroll geometry of every card, in one round trip."""
    return page.eval_on_selector_all(CARDS, """cards => cards.map(c => {
        const q = s => c.querySelector(s);
        const head = q('.widget-html'), foot = q('.llmcells-foot');  // the header widget: both rows
        const box = q('.llmcells-scroll'), body = q('.llmcells-body');
        const r = c.getBoundingClientRect(), b = box.getBoundingClientRect(),
              inner = body.getBoundingClientRect();
        return {header: head ? head.innerText.trim() : '', body: body.innerText.trim(),
                footer: foot ? foot.innerText.trim() : '',
                x: r.x, y: r.y, width: r.width, height: r.height,
                overflowX: c.scrollWidth > c.clientWidth + 1,
                scrolls: box.scrollHeight > box.clientHeight + 2,
                boxTop: b.top, boxBottom: b.bottom, bodyTop: inner.top, bodyBottom: inner.bottom,
                scrollTop: box.scrollTop};
    })""")


def _wait_kernel_idle(page, timeout_s: float = 45.0) -> None:
    """The notebook is loaded (both cells) and its kernel is connected, has answered kernel_info
    (the debugger button is enabled only then) and is idle. The execution indicator alone says
    "idle" too early: while the notebook is still a one-cell placeholder with "No Kernel"."""
    ready = """() => {
            const q = s => document.querySelector(s);
            const cells = document.querySelectorAll('.jp-Notebook .jp-Cell').length;
            // not scoped to the notebook toolbar: at narrow widths JupyterLab moves some of its
            // items into an overflow menu
            const name = q('.jp-Toolbar-kernelName');
            const bug = q('.jp-DebuggerBugButton');
            const ei = q('.jp-Notebook-ExecutionIndicator');
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


def test_compare_cards_in_jupyterlab_light_dark_and_high_contrast_at_1400_and_700(tmp_path):
    _require_browser()
    from playwright.sync_api import sync_playwright

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "failure.png").unlink(missing_ok=True)
    t0 = time.monotonic()
    report = []
    with JupyterLab(tmp_path) as lab:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                for theme, width in LIVE_CONFIGS:
                    _set_theme(lab, theme)
                    name = f"compare-{theme}-{width}"
                    nb_path = lab.root / f"{name}.ipynb"
                    _write_notebook(nb_path)
                    page = browser.new_page(viewport={"width": width, "height": 1000})
                    page.set_default_timeout(30_000)
                    errors: list[str] = []
                    page.on("pageerror", lambda e: errors.append(str(e)))
                    try:
                        report.append(_run(page, lab, name, theme, width, errors))
                    except BaseException:
                        try:
                            page.screenshot(path=str(OUT_DIR / "failure.png"), full_page=True)
                            print(f"\nfailure screenshot ({name}): {OUT_DIR / 'failure.png'}")
                        except Exception:
                            pass
                        print("\n--- JupyterLab log (tail) ---\n" + lab.log())
                        raise
                    finally:
                        page.close()
            finally:
                browser.close()
    for line in report:
        print(line)
    print(f"browser test took {time.monotonic() - t0:.1f} s for {len(LIVE_CONFIGS)} configurations")


def _run(page, lab: JupyterLab, name: str, theme: str, width: int, errors: list[str]) -> str:
    # its own workspace: no tab of an earlier configuration comes back
    page.goto(lab.page(f"lab/workspaces/{name}/tree/{name}.ipynb"), wait_until="domcontentloaded")
    _wait_kernel_idle(page)
    is_dark = page.evaluate("() => document.body.dataset.jpThemeLight === 'false'")
    assert is_dark == (theme != "light"), f"the {theme} theme is not applied"

    # cell 1: load the extension and configure the simulator; wait until it has run
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

    seen_streaming = False
    grew = False
    last_len: dict[int, int] = {}
    followed = 0            # looks at a streaming, overflowing card whose newest text was in view
    claude_followed = 0
    not_followed: list[dict] = []
    claude_live: list[tuple[int, int]] = []   # (body length, live output-token count)
    scrolled_up: dict | None = None
    deadline = time.monotonic() + 60
    states: list[dict] = []
    while time.monotonic() < deadline:
        states = _card_states(page)
        for i, s in enumerate(states):
            done = "✓ done" in s["header"]
            if done:
                continue
            if "streaming" in s["header"]:
                seen_streaming = True
                if "anthropic:" in s["header"]:
                    m = re.search(r"→~?([\d,]+) tokens", s["footer"])
                    if m:
                        claude_live.append((len(s["body"]), int(m.group(1).replace(",", "")),
                                            s["footer"]))
                if s["scrolls"] and not (scrolled_up and scrolled_up["index"] == i):
                    # the newest text (the body's bottom) is inside the visible box
                    if s["bodyBottom"] <= s["boxBottom"] + 2:
                        followed += 1
                        claude_followed += "anthropic:" in s["header"]
                    else:
                        not_followed.append(s)
                    if scrolled_up is None and "anthropic:" in s["header"] and claude_followed >= 4:
                        scrolled_up = _scroll_up(page, i)
            if s["body"] and len(s["body"]) > last_len.get(i, 0) > 0:
                grew = True
            last_len[i] = len(s["body"])
        if scrolled_up is not None and "top" in scrolled_up and "later" not in scrolled_up:
            scrolled_up["later"] = _box_top_text(page, scrolled_up["index"])
        if len(states) == 3 and all("✓ done" in s["header"] for s in states):
            break
        page.wait_for_timeout(60)
    else:
        raise AssertionError(f"the cards did not all finish within 60 s: {states}")

    page.locator(".jp-OutputArea-output .widget-html table.llmcells-metrics").wait_for(timeout=10_000)
    page.wait_for_timeout(300)  # let the final Markdown settle before measuring and shooting
    states = _card_states(page)

    # --- what streamed ---------------------------------------------------------------------------
    assert seen_streaming and grew, "no card was seen streaming and growing"
    assert followed >= 3 and not not_followed, (
        f"the card body did not show the newest text while streaming: {not_followed[:2]}")
    assert scrolled_up is not None and scrolled_up.get("later"), scrolled_up
    assert scrolled_up["later"]["text"] == scrolled_up["top"]["text"], (
        f"after the reader scrolled up, the view moved: {scrolled_up}")

    # Claude's live footer: > 1 and within 30% of the final count at the 80% mark
    claude = next(s for s in states if "anthropic:" in s["header"])
    final_out = int(re.search(r"→([\d,]+) tokens", claude["footer"]).group(1).replace(",", ""))
    final_len = len(claude["body"])
    assert claude_live, "Claude's live footer never showed a token count"
    # the footer repaints every 0.25 s: from half a second of text on it must count tokens (the
    # very first paint, at the first token, honestly says ~1)
    later = [x for x in claude_live if x[0] >= 200]
    assert later and all(n > 1 for _, n, _ in later), claude_live
    at80 = [n for length, n, _ in claude_live if length >= 0.8 * final_len]
    assert at80, f"no live sample at the 80% mark: {claude_live[-5:]} (final {final_len} chars)"
    err80 = abs(at80[0] - final_out) / final_out
    assert err80 <= 0.30, f"live {at80[0]} vs final {final_out} tokens at the 80% mark"

    # --- finished cards --------------------------------------------------------------------------
    assert len(states) == 3, states
    for s in states:
        assert "✓ done" in s["header"] and "simulated" in s["header"], s
        assert "Simulated answer from" in s["body"] or "p-value" in s["body"], s
        assert "TTFT" in s["footer"] and "tok/s" in s["footer"] and "$" in s["footer"], s
        assert "~" not in s["footer"], s["footer"]
        assert not s["overflowX"], f"a card overflows horizontally: {s}"
    heads = page.eval_on_selector_all(CARDS + " .llmcells-head", """hs => hs.map(h => {
        const r = h.getBoundingClientRect(); return {h: r.height, text: h.innerText};})""")
    assert all(h["h"] < 26 for h in heads), f"a card header wraps: {heads}"
    ys = [round(s["y"]) for s in states]
    if width >= 1400:
        assert max(ys) - min(ys) <= 2, f"the cards are not side by side at {width}px: {states}"
    else:
        assert len(set(ys)) == 3, f"at {width}px the cards should stack, one per row: {states}"
        assert all(s["width"] >= 0.9 * max(t["width"] for t in states) for s in states)

    # finished cards show the whole answer from the top: the first line is in view without
    # scrolling the card, and side by side the answers line up by their first lines
    firsts = page.eval_on_selector_all(CARDS, """cards => cards.map(c => {
        const box = c.querySelector('.llmcells-scroll'), md = c.querySelector('.llmcells-body .llmcells-md');
        const first = md && md.firstElementChild, b = box.getBoundingClientRect();
        const f = first ? first.getBoundingClientRect() : null;
        return {scrollTop: box.scrollTop, boxTop: b.top, boxBottom: b.bottom,
                top: f ? f.top : null, text: first ? first.innerText.slice(0, 40) : null,
                clipped: box.scrollHeight > box.clientHeight + 2};
    })""")
    for f in firsts:
        assert f["top"] is not None and f["boxTop"] - 1 <= f["top"] < f["boxBottom"], (
            f"a finished card does not show its first line: {f}")
        assert abs(f["scrollTop"]) <= 1 and not f["clipped"], f"a finished card is clipped: {f}"
    if width >= 1400:
        tops = [round(f["top"]) for f in firsts]
        assert max(tops) - min(tops) <= 2, f"side by side, the first lines do not line up: {firsts}"

    # the metrics table scrolls sideways inside the output: its last column can be brought into view
    reach = page.evaluate("""() => {
        const wrap = document.querySelector('.jp-OutputArea-output .llmcells-wide .llmcells-table');
        const area = wrap.closest('.jp-OutputArea-output').getBoundingClientRect();
        wrap.scrollLeft = wrap.scrollWidth;
        const ths = wrap.querySelectorAll('th'), last = ths[ths.length - 1].getBoundingClientRect();
        const w = wrap.getBoundingClientRect();
        return {wrapLeft: w.left, wrapRight: w.right, areaRight: area.right, lastLeft: last.left,
                lastRight: last.right, scrollWidth: wrap.scrollWidth, clientWidth: wrap.clientWidth,
                viewport: window.innerWidth, last: ths[ths.length - 1].innerText};
    }""")
    assert reach["wrapRight"] <= reach["areaRight"] + 1 and reach["wrapRight"] <= reach["viewport"], reach
    assert reach["wrapLeft"] - 1 <= reach["lastLeft"] and reach["lastRight"] <= reach["wrapRight"] + 1, (
        f"the metrics table's last column can't be scrolled into view at {width}px: {reach}")
    if width < 1000:
        assert reach["scrollWidth"] > reach["clientWidth"], f"expected a sideways scroll: {reach}"
    page.evaluate("() => { document.querySelector('.jp-OutputArea-output .llmcells-wide "
                  ".llmcells-table').scrollLeft = 0; }")

    # colours: every status / footer / muted / link / code text >= 4.5:1 on its background
    contrasts = _contrasts(page)
    kinds = {c["sel"] for c in contrasts}
    for must in (".llmcells-status", ".llmcells-foot", ".llmcells-badge", ".llmcells-md pre",
                 ".llmcells-md a", "table.llmcells-metrics td", ".llmcells-chip"):
        assert must in kinds, f"nothing measured for {must}: {sorted(kinds)}"
    low = [c for c in contrasts if c["ratio"] < 4.5]
    assert not low, f"contrast below 4.5:1 in the {theme} theme: {low[:6]}"
    worst = min(contrasts, key=lambda c: c["ratio"])

    # code blocks: lines kept, sideways scroll inside the block
    pres = page.eval_on_selector_all(CARDS + " .llmcells-md pre", """ps => ps.map(p => ({
        ws: getComputedStyle(p).whiteSpace, ox: getComputedStyle(p).overflowX,
        wide: p.scrollWidth > p.clientWidth + 1, text: p.innerText}))""")
    assert pres and all(p["ws"] == "pre" and p["ox"] in ("auto", "scroll") for p in pres), pres
    long_line = [p for p in pres if "ttest_ind" in p["text"]]
    assert long_line and long_line[0]["wide"], f"the long code line does not scroll: {long_line}"
    assert "\n    print(" in long_line[0]["text"], "indentation was not kept"

    # tables: no cell breaks a word (each cell's text is on one line), wide tables scroll
    cells_info = page.eval_on_selector_all(CARDS + " .llmcells-md td, " + CARDS + " .llmcells-md th",
        """cs => cs.map(c => { const r = document.createRange(); r.selectNodeContents(c);
            const lines = new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top)));
            return {text: c.innerText, lines: lines.size,
                    border: getComputedStyle(c).borderTopStyle}; })""")
    assert cells_info, "no Markdown table was rendered"
    broken = [c for c in cells_info if c["lines"] > 1]
    assert not broken, f"table cells wrap / break words: {broken[:4]}"
    assert all(c["border"] == "solid" for c in cells_info)
    wraps = page.eval_on_selector_all(CARDS + " .llmcells-table", """ts => ts.map(t => ({
        ox: getComputedStyle(t).overflowX, wide: t.scrollWidth > t.clientWidth + 1}))""")
    assert all(t["ox"] == "auto" for t in wraps)
    if width < 1000:
        assert any(t["wide"] for t in wraps), "the wide table should scroll at 700 px"

    # a long unbroken string in prose wraps inside the card (code never wraps: checked above)
    prose = page.eval_on_selector_all(CARDS + " .llmcells-md p", """ps => ps.map(p => ({
        text: p.innerText.slice(0, 30), url: p.innerText.includes('example.org/datasets'),
        wide: p.scrollWidth > p.clientWidth + 1,
        wrap: getComputedStyle(p).overflowWrap}))""")
    long_url = [p for p in prose if p["url"]]
    assert long_url and not long_url[0]["wide"] and long_url[0]["wrap"] == "anywhere", long_url
    assert not [p for p in prose if p["wide"]], prose

    # links: new tab, no opener
    links = page.eval_on_selector_all(CARDS + " .llmcells-md a",
                                      "as => as.map(a => [a.target, a.rel, a.href])")
    assert links and all(t == "_blank" and "noopener" in r for t, r, _ in links), links

    # the metrics table and the static copy (hidden while the widgets are live)
    table = page.locator(".jp-OutputArea-output .widget-html table.llmcells-metrics")
    assert table.locator("tbody tr").count() == 3
    assert table.locator("tr.fastest").count() >= 1 and table.locator("tr.cheapest").count() >= 1
    static_visible = page.evaluate("""() => Array.from(document.querySelectorAll('.llmcells-static'))
        .some(e => e.getClientRects().length > 0)""")
    assert not static_visible, "the static copy shows next to the live widgets"
    outputs = page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts()
    assert not any("Traceback" in o for o in outputs), outputs
    assert not [e for e in errors if "widget" in e.lower()], errors

    # --- the pictures ------------------------------------------------------------------------------
    output = page.locator(".jp-Notebook .jp-Cell").nth(1)
    output.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)
    shot = OUT_DIR / f"{name}.png"
    page.screenshot(path=str(OUT_DIR / f"{name}-page.png"))
    # the window, not the output element: finished cards open to their full height, taller than
    # the window, and an element shot of a scrolled panel repeats or greys parts of it
    shutil.copyfile(OUT_DIR / f"{name}-page.png", shot)
    if width >= 1400 and theme in ("light", "dark") and os.environ.get("LLMCELLS_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, DOCS / f"compare-{theme}.png")
    return (f"{name}: followed newest text {followed}x; Claude live {at80[0]} vs final {final_out} "
            f"tokens at 80% ({err80:.0%} off); lowest contrast {worst['ratio']:.2f} "
            f"({worst['sel']} {worst['text']!r}); screenshot {shot}")


def _box_top_text(page, index: int) -> dict:
    """The text at the top edge of a card's scroll box (what the reader is looking at)."""
    return page.evaluate("""i => {
        const card = document.querySelectorAll('""" + CARDS + """')[i];
        const box = card.querySelector('.llmcells-scroll'), r = box.getBoundingClientRect();
        const el = document.elementFromPoint(r.left + 20, r.top + 8);
        return {text: el ? el.textContent.slice(0, 60) : null, scrollTop: box.scrollTop};
    }""", index)


def _scroll_up(page, index: int) -> dict:
    """Scroll a streaming card's body to its top, as a reader going back would; remember what
    is at the top of the view, then (next look) check it is still there."""
    page.evaluate("""i => {
        const card = document.querySelectorAll('""" + CARDS + """')[i];
        const box = card.querySelector('.llmcells-scroll');
        box.scrollTop = -(box.scrollHeight);   // column-reverse: the top is the most negative
    }""", index)
    page.wait_for_timeout(50)
    top = _box_top_text(page, index)
    page.wait_for_timeout(700)  # more text arrives meanwhile
    return {"index": index, "top": top}


# ----- a saved notebook, reopened ----------------------------------------------------------------

SCREENS = Path(os.environ.get("LLMCELLS_SCREENS", str(OUT_DIR)))


def _executed_notebook(tmp: Path, path: Path) -> None:
    """The compare notebook run in a real kernel (nbclient) with the widget state saved, as
    "Save Widget State Automatically" does, then written to path."""
    import nbclient
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP.replace("ttft=0.3, tokens_per_s=70",
                                                        "ttft=0.05, tokens_per_s=2000")),
                nbformat.v4.new_code_cell(f"%%compare {' '.join(MODELS)}\n{PROMPT}")]
    env_keep = {k: os.environ.get(k) for k in ("PYTHONPATH", "LLMCELLS_HOME")}
    os.environ["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")
    os.environ["LLMCELLS_HOME"] = str(tmp / "exec-home")
    try:
        nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                                resources={"metadata": {"path": str(tmp)}}).execute()
    finally:
        for k, v in env_keep.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {})
    nbformat.write(nb, str(path))


STATIC_CARDS = ".jp-OutputArea-output table.llmcells-static-grid td.llmcells-card"


def test_a_saved_notebook_reopened_untrusted_shows_cards_side_by_side(tmp_path):
    """Run a %%compare, save the notebook with its widget state, close everything, and open it
    on a fresh JupyterLab (its own notary: the notebook is untrusted, so <style> is stripped and
    the widgets don't render): the static copy shows the three cards side by side with borders
    (at 700 px, one a row, as the live grid does),
    code keeps its lines, no stray line or widget repr, every text >= 4.5:1; in light and dark,
    at 1400 and 700 px."""
    _require_browser()
    pytest.importorskip("nbclient")
    from playwright.sync_api import sync_playwright

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    SCREENS.mkdir(parents=True, exist_ok=True)
    saved = tmp_path / "saved.ipynb"
    _executed_notebook(tmp_path, saved)
    report = []
    with JupyterLab(tmp_path / "fresh") as lab:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                for theme, width in CONFIGS:
                    _set_theme(lab, theme)
                    name = f"reopened-{theme}-{width}"
                    shutil.copyfile(saved, lab.root / f"{name}.ipynb")
                    page = browser.new_page(viewport={"width": width, "height": 1000})
                    page.set_default_timeout(30_000)
                    try:
                        page.goto(lab.page(f"lab/workspaces/{name}/tree/{name}.ipynb"),
                                  wait_until="domcontentloaded")
                        page.wait_for_selector(STATIC_CARDS, timeout=60_000)
                        page.wait_for_timeout(500)
                        report.append(_check_reopened(page, name, theme, width))
                    except BaseException:
                        page.screenshot(path=str(OUT_DIR / "failure.png"), full_page=True)
                        print("\n--- JupyterLab log (tail) ---\n" + lab.log())
                        raise
                    finally:
                        page.close()
                report.append(_check_trusted_with_state(browser, lab, saved))
            finally:
                browser.close()
    for line in report:
        print(line)


def _check_trusted_with_state(browser, lab: JupyterLab, saved: Path) -> str:
    """The same notebook, trusted (signed with this server's notary): its saved widget state
    brings the live cards back, and their stylesheet hides the static copy."""
    import nbformat
    from nbformat.sign import NotebookNotary

    _set_theme(lab, "light")
    name = "reopened-trusted-light-1400"
    nb = nbformat.read(str(saved), as_version=4)
    NotebookNotary(data_dir=str(lab.base / "notary")).sign(nb)
    nbformat.write(nb, str(lab.root / f"{name}.ipynb"))
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(lab.page(f"lab/workspaces/{name}/tree/{name}.ipynb"), wait_until="domcontentloaded")
        page.wait_for_selector(CARDS, timeout=60_000)
        page.wait_for_timeout(800)
        cards = page.eval_on_selector_all(CARDS, "cs => cs.map(c => c.innerText.slice(0, 60))")
        assert len(cards) == 3 and all("✓ done" in c for c in cards), cards
        static_visible = page.evaluate("""() => Array.from(document.querySelectorAll('.llmcells-static'))
            .some(e => e.getClientRects().length > 0)""")
        assert not static_visible, "the static copy shows next to the restored live cards"
        ys = page.eval_on_selector_all(CARDS, "cs => cs.map(c => Math.round(c.getBoundingClientRect().y))")
        assert max(ys) - min(ys) <= 2, f"the restored cards are not side by side: {ys}"
        page.locator(".jp-Notebook .jp-Cell").nth(1).evaluate("e => e.scrollIntoView({block: 'start'})")
        page.mouse.move(0, 0)
        page.wait_for_timeout(200)
        shot = SCREENS / f"{name}.png"
        page.screenshot(path=str(shot))
    finally:
        page.close()
    return f"{name}: the saved widget state shows the live cards again; screenshot {shot}"


def _check_reopened(page, name: str, theme: str, width: int) -> str:
    cards = page.eval_on_selector_all(STATIC_CARDS, """cs => cs.map(c => {
        const r = c.getBoundingClientRect(), st = getComputedStyle(c);
        return {x: r.x, y: r.y, width: r.width, border: st.borderTopStyle,
                borderWidth: parseFloat(st.borderTopWidth), text: c.innerText.slice(0, 80)};
    })""")
    assert len(cards) == 3, cards
    ys = [round(c["y"]) for c in cards]
    if width >= 1400:
        assert max(ys) - min(ys) <= 2 and len({round(c["x"]) for c in cards}) == 3, (
            f"the reopened cards are not side by side at {width}px: {cards}")
    else:  # too narrow for three: one card a row, full width, as the live grid does
        assert len(set(ys)) == 3 and all(c["width"] >= 0.9 * max(d["width"] for d in cards)
                                         for c in cards), cards
    assert all(c["border"] == "solid" and c["borderWidth"] >= 1 for c in cards), cards
    assert all("✓ done" in c["text"] for c in cards), cards
    # no stylesheet made it (untrusted): what we see comes from markup and inline styles
    assert page.evaluate("() => !document.querySelector('.jp-OutputArea-output style')")
    outputs = " ".join(page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts())
    assert "HBox(" not in outputs and "next output" not in outputs and "VBox(" not in outputs
    assert "Error displaying widget" not in outputs
    pres = page.eval_on_selector_all(STATIC_CARDS + " pre", """ps => ps.map(p => ({
        ws: getComputedStyle(p).whiteSpace, ox: getComputedStyle(p).overflowX}))""")
    assert pres and all(p["ws"] == "pre" and p["ox"] in ("auto", "scroll") for p in pres), pres
    tds = page.eval_on_selector_all(STATIC_CARDS + " .llmcells-md td",
                                    "ts => ts.map(t => getComputedStyle(t).borderTopStyle)")
    assert tds and all(b == "solid" for b in tds), tds
    low = page.evaluate("() => {" + _JS_COLOUR + """
        const out = [];
        for (const el of document.querySelectorAll('.jp-OutputArea-output .llmcells-static *')) {
            const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
            if (!own || !el.getClientRects().length) continue;
            const r = contrast(el);
            if (r < 4.5) out.push({text: el.textContent.trim().slice(0, 40), ratio: r});
        }
        return out;
    }""")
    assert not low, f"contrast below 4.5:1 in the reopened notebook ({theme}): {low[:5]}"
    output = page.locator(".jp-Notebook .jp-Cell").nth(1)
    output.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)
    shot = SCREENS / f"{name}.png"
    page.screenshot(path=str(shot))
    return f"{name}: 3 cards side by side with borders; screenshot {shot}"
