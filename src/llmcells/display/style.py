"""The stylesheet of cards, answers and tables, written with JupyterLab's theme CSS variables.

Colours come from the theme (`--jp-*` variables, with light fallbacks for pages that have none,
such as nbconvert's classic template), so light, dark and high-contrast themes all work. Status
colours are the theme's own, mixed 70/30 toward the theme's strongest text colour: that keeps
their hue and takes them above WCAG AA 4.5:1 on the theme's background in both stock themes.

`CARD_CSS` goes into the live widget view (in a hidden HTML widget: a <style> element applies
wherever it sits). The static copy published for saved notebooks is one the
live view hides (`.llmcells-static`) so that a running notebook shows each answer once; the
static copy itself carries only inline styles (static.py).
"""

from __future__ import annotations

#: the height after which a streaming answer scrolls inside its card (a finished one opens to
#: its full height, read from the top)
CARD_MAX_HEIGHT = "420px"

_FG = "var(--jp-content-font-color1, rgba(0,0,0,.87))"
_FG0 = "var(--jp-content-font-color0, #000)"
_BG = "var(--jp-layout-color0, #fff)"


def _mix(var: str, fallback: str) -> str:
    return f"color-mix(in srgb, var({var}, {fallback}) 70%, {_FG0})"


def _tok(var: str, fallback: str) -> str:
    # the editor's token colours, pulled 30% toward the text colour: some stock ones are below
    # 4.5:1 on the code background (light numbers #080, dark comments #408080)
    return _mix(var, fallback)


#: colours by role; also used inline where a class can't reach (the static copy's first paint)
MUTED = "var(--jp-content-font-color2, rgba(0,0,0,.54))"
BORDER = "var(--jp-border-color2, #e0e0e0)"
OK = _mix("--jp-success-color0", "#1b5e20")
ERROR = _mix("--jp-error-color0", "#b71c1c")
WARN = _mix("--jp-warn-color0", "#e65100")
INFO = _mix("--jp-brand-color0", "#0d47a1")

_COMMON = f"""
.llmcells-card {{ background: {_BG}; color: {_FG}; border: 1px solid {BORDER};
  border-radius: 4px; padding: 6px 10px; box-sizing: border-box; min-width: 0; }}
.llmcells-head {{ display: flex; flex-wrap: nowrap; align-items: baseline; gap: 8px;
  justify-content: space-between; font-size: 13px; line-height: 1.5; min-width: 0; }}
.llmcells-name {{ flex: 0 0 auto; max-width: calc(100% - 7em); overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }}
.llmcells-name code {{ font-weight: 600; background: none; color: {_FG}; padding: 0; }}
.llmcells-sub, .llmcells-note {{ font-size: 11.5px; line-height: 1.5; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }}
.llmcells-badge {{ white-space: nowrap; font-size: 10.5px; border-radius: 8px;
  padding: 0 6px; margin-left: 4px; border: 1px solid {WARN}; color: {WARN}; }}
.llmcells-muted {{ color: {MUTED}; }}
.llmcells-status {{ flex: 0 1 auto; min-width: 0; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }}
.llmcells-s-pending, .llmcells-s-cancelled {{ color: {MUTED}; }}
.llmcells-s-waiting, .llmcells-s-retrying, .llmcells-s-incomplete {{ color: {WARN}; }}
.llmcells-s-streaming {{ color: {INFO}; }}
.llmcells-s-done {{ color: {OK}; font-weight: 600; }}
.llmcells-s-error {{ color: {ERROR}; font-weight: 600; }}
.llmcells-s-cancelled, .llmcells-s-incomplete {{ font-weight: 600; }}
.llmcells-msg {{ color: {ERROR}; font-size: 12.5px; line-height: 1.4; margin-top: 2px;
  overflow-wrap: anywhere; }}
.llmcells-foot {{ color: {MUTED}; font-size: 12px; line-height: 1.4; }}
.llmcells-prompt {{ color: {MUTED}; font-size: 12px; line-height: 1.4; margin: 0 0 4px 0;
  overflow-wrap: anywhere; }}
.llmcells-md {{ line-height: 1.5; color: {_FG}; font-size: 13px; overflow-wrap: anywhere; }}
.llmcells-chip {{ display: inline-block; margin: 2px 6px 2px 0; padding: 2px 6px;
  border: 1px solid {BORDER}; border-radius: 10px; font-size: 11px; color: {MUTED};
  overflow-wrap: anywhere; }}
.llmcells-md > :first-child {{ margin-top: 0; }}
.llmcells-md p, .llmcells-md ul, .llmcells-md ol {{ margin: 4px 0 8px 0; }}
.llmcells-md h1, .llmcells-md h2, .llmcells-md h3, .llmcells-md h4 {{ margin: 10px 0 6px 0;
  line-height: 1.3; color: {_FG}; }}
.llmcells-md h1 {{ font-size: 1.3em; }} .llmcells-md h2 {{ font-size: 1.2em; }}
.llmcells-md h3 {{ font-size: 1.1em; }} .llmcells-md h4 {{ font-size: 1em; }}
.llmcells-md a {{ color: var(--jp-content-link-color, #0d47a1); text-decoration: underline; }}
.llmcells-md :not(pre) > code {{ overflow-wrap: normal; font-family: var(--jp-code-font-family, monospace);
  font-size: 0.92em; background: var(--jp-cell-editor-background, #f5f5f5); color: {_FG};
  padding: 0 3px; border-radius: 3px; }}
.llmcells-md pre {{ white-space: pre; overflow-x: auto; word-break: normal;
  overflow-wrap: normal; font-family: var(--jp-code-font-family, monospace); font-size: 12.5px;
  line-height: 1.4; padding: 6px 8px; margin: 6px 0; border-radius: 4px;
  background: var(--jp-cell-editor-background, #f5f5f5); color: {_FG};
  border: 1px solid {BORDER}; }}
.llmcells-md pre code {{ white-space: pre; background: none; padding: 0; color: inherit;
  font-family: inherit; }}
.llmcells-md blockquote {{ margin: 4px 0; padding-left: 8px; border-left: 3px solid {BORDER};
  color: {MUTED}; }}
.llmcells-table {{ overflow-x: auto; max-width: 100%; margin: 6px 0; overflow-wrap: normal; }}
.llmcells-md table, table.llmcells-metrics {{ border-collapse: collapse; font-size: 12.5px;
  color: {_FG}; }}
.llmcells-md th, .llmcells-md td {{ border: 1px solid {BORDER}; padding: 3px 8px;
  white-space: nowrap; word-break: keep-all; overflow-wrap: normal; text-align: left; }}
.llmcells-md thead th {{ border-bottom: 2px solid var(--jp-border-color1, #bdbdbd);
  font-weight: 600; background: var(--jp-cell-editor-background, #f5f5f5); }}
.llmcells-plain {{ white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.45; }}
table.llmcells-metrics th {{ text-align: right; padding: 2px 8px; font-weight: 600;
  border-bottom: 1px solid var(--jp-border-color1, #bdbdbd); white-space: nowrap; }}
table.llmcells-metrics td {{ text-align: right; padding: 2px 8px; white-space: nowrap; }}
table.llmcells-metrics th:first-child, table.llmcells-metrics td:first-child,
table.llmcells-metrics th:nth-child(2), table.llmcells-metrics td:nth-child(2) {{ text-align: left; }}
.llmcells-best {{ color: {OK}; font-weight: 700; }}
.llmcells-legend {{ color: {MUTED}; font-size: 11.5px; margin-top: 2px; }}
.llmcells-md .k, .llmcells-md .kn, .llmcells-md .kd, .llmcells-md .kr, .llmcells-md .kc,
.llmcells-md .ow {{ color: {_tok('--jp-mirror-editor-keyword-color', '#008000')}; font-weight: 600; }}
.llmcells-md .s, .llmcells-md .s1, .llmcells-md .s2, .llmcells-md .sa, .llmcells-md .sd,
.llmcells-md .si, .llmcells-md .se, .llmcells-md .sb {{
  color: {_tok('--jp-mirror-editor-string-color', '#ba2121')}; }}
.llmcells-md .c, .llmcells-md .c1, .llmcells-md .cm, .llmcells-md .ch {{
  color: {_tok('--jp-mirror-editor-comment-color', '#408080')}; font-style: italic; }}
.llmcells-md .m, .llmcells-md .mi, .llmcells-md .mf {{
  color: {_tok('--jp-mirror-editor-number-color', '#080')}; }}
.llmcells-md .nf, .llmcells-md .nc {{ color: {_tok('--jp-mirror-editor-def-color', '#00f')}; }}
.llmcells-md .nb, .llmcells-md .bp {{ color: {_tok('--jp-mirror-editor-builtin-color', '#008000')}; }}
.llmcells-md .o {{ color: {_tok('--jp-mirror-editor-operator-color', '#7800c2')}; }}
"""

#: the live view's stylesheet: the common rules, the scrolling answer body, and the rule that
#: hides the static copy while the widgets are there to show the same thing. Restored from a
#: saved widget state (no kernel), ipywidgets marks every widget "disconnected" with a ::before
#: icon, which in the cards' grid would take a cell of its own: the finished cards are complete
#: as they are, so the mark is left out.
CARD_CSS = _COMMON + f"""
.llmcells-card .llmcells-scroll {{ max-height: {CARD_MAX_HEIGHT}; overflow: auto;
  display: flex; flex-direction: column-reverse; }}
.llmcells-card.llmcells-finished .llmcells-scroll {{ max-height: none; flex-direction: column;
  overflow-y: visible; overflow-x: auto; }}
.llmcells-wide, .llmcells-wide .widget-html-content {{ min-width: 0; max-width: 100%;
  width: 100%; flex-shrink: 1; }}
.llmcells-card .llmcells-scroll > * {{ flex: none; }}
.llmcells-card .widget-html, .llmcells-card .widget-html-content {{ height: auto;
  line-height: normal; }}
.llmcells-card .widget-html-content {{ width: 100%; min-width: 0; }}
.llmcells-view .jupyter-widgets-disconnected::before,
.llmcells-view.jupyter-widgets-disconnected::before {{ content: none; display: none; }}
.jp-OutputArea-child:has(.llmcells-static), .output_area:has(.llmcells-static),
.llmcells-static {{ display: none !important; }}
"""



def style_tag(css: str = CARD_CSS) -> str:
    return f"<style>{css}</style>"
