"""The static copy of a finished output: the live view's HTML with every style written inline.

A saved notebook is read where no stylesheet reaches it: JupyterLab strips `<style>` from an
untrusted output, and GitHub strips all CSS. So the static copy carries no `<style>` block and no
CSS variables (JupyterLab's sanitizer keeps an inline style only when its value is a plain
colour, length or keyword); it sets its own light colours (a card reads the same on a light or
a dark page, every text above 4.5:1 on its background), lays cards side by side with a
`<table>` (the one layout that survives everywhere), and gives code blocks `white-space: pre`
and tables their rules. `inline_styles()` rewrites the classes the live view uses into those
inline styles; the markup itself is unchanged (and was escaped when it was made) but for its
line breaks, written `&#10;` so that the copy is one line (see `_lines`).
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

#: the static palette (light; every text colour >= 4.5:1 on BG and on CODE_BG)
BG = "#ffffff"
FG = "#1f2328"
MUTED = "#57606a"
BORDER = "#d0d7de"
CODE_BG = "#f6f8fa"
OK = "#1a7f37"
ERROR = "#cf222e"
WARN = "#9a6700"
INFO = "#0969da"
MONO = "ui-monospace, Menlo, Consolas, monospace"

CARD = (f"background-color:{BG};color:{FG};border:1px solid {BORDER};border-radius:4px;"
        "padding:6px 10px;vertical-align:top;text-align:left;overflow-wrap:break-word")

#: class -> inline style
CLASSES = {
    "llmcells-card": CARD,
    "llmcells-head": ("display:flex;justify-content:space-between;align-items:baseline;"
                      "font-size:13px;line-height:1.5;text-align:left"),
    "llmcells-name": "font-weight:600;overflow-wrap:break-word;min-width:0",
    "llmcells-status": "white-space:nowrap;margin-left:8px",
    "llmcells-sub": f"font-size:11.5px;line-height:1.5;color:{MUTED}",
    "llmcells-note": f"font-size:11.5px;line-height:1.5;color:{MUTED};overflow-wrap:break-word",
    "llmcells-badge": (f"white-space:nowrap;font-size:10.5px;border-radius:8px;padding:0 6px;"
                       f"margin-left:4px;border:1px solid {WARN};color:{WARN}"),
    "llmcells-muted": f"color:{MUTED}",
    "llmcells-s-pending": f"color:{MUTED}",
    "llmcells-s-cancelled": f"color:{MUTED};font-weight:600",
    "llmcells-s-waiting": f"color:{WARN}",
    "llmcells-s-retrying": f"color:{WARN}",
    "llmcells-s-incomplete": f"color:{WARN};font-weight:600",
    "llmcells-s-streaming": f"color:{INFO}",
    "llmcells-s-done": f"color:{OK};font-weight:600",
    "llmcells-s-error": f"color:{ERROR};font-weight:600",
    "llmcells-msg": f"color:{ERROR};font-size:12.5px;line-height:1.4;overflow-wrap:break-word",
    "llmcells-foot": f"color:{MUTED};font-size:12px;line-height:1.4",
    "llmcells-prompt": f"color:{MUTED};font-size:12px;line-height:1.4;margin:0 0 4px 0;"
                       "overflow-wrap:break-word",
    "llmcells-md": f"line-height:1.5;color:{FG};font-size:13px;overflow-wrap:break-word",
    "llmcells-plain": "white-space:pre-wrap;overflow-wrap:break-word;line-height:1.45",
    "llmcells-table": "overflow-x:auto;max-width:100%;margin:6px 0",
    "llmcells-metrics": f"border-collapse:collapse;font-size:12.5px;color:{FG};"
                        f"background-color:{BG}",
    "llmcells-best": f"color:{OK};font-weight:700",
    "llmcells-legend": f"color:{MUTED};font-size:11.5px;margin-top:2px",
    "llmcells-static": f"color:{FG};background-color:{BG};padding:2px",
    # a Result or Comparison shown as a cell's value: styled as the static copy, but not hidden
    # as that is where a live card already shows the same answer
    "llmcells-result": f"color:{FG};background-color:{BG};padding:2px",
    "llmcells-attachments": "margin-top:4px",
    "llmcells-chip": (f"display:inline-block;margin:2px 6px 2px 0;padding:2px 6px;"
                      f"border:1px solid {BORDER};border-radius:10px;font-size:11px;color:{MUTED}"),
}

#: Markdown elements inside an answer (tag -> inline style)
MD_TAGS = {
    "p": "margin:4px 0 8px 0", "ul": "margin:4px 0 8px 0", "ol": "margin:4px 0 8px 0",
    "h1": f"margin:10px 0 6px 0;font-size:17px;line-height:1.3;color:{FG}",
    "h2": f"margin:10px 0 6px 0;font-size:15.5px;line-height:1.3;color:{FG}",
    "h3": f"margin:10px 0 6px 0;font-size:14.5px;line-height:1.3;color:{FG}",
    "h4": f"margin:10px 0 6px 0;font-size:13px;line-height:1.3;color:{FG}",
    "a": f"color:{INFO};text-decoration:underline",
    "code": (f"font-family:{MONO};font-size:12px;background-color:{CODE_BG};color:{FG};"
             "padding:0 3px;border-radius:3px"),
    "pre": (f"white-space:pre;overflow-x:auto;word-break:normal;overflow-wrap:normal;"
            f"font-family:{MONO};font-size:12.5px;line-height:1.4;padding:6px 8px;margin:6px 0;"
            f"border-radius:4px;background-color:{CODE_BG};color:{FG};border:1px solid {BORDER};"
            "max-width:100%;text-align:left"),
    "blockquote": f"margin:4px 0;padding-left:8px;border-left:3px solid {BORDER};color:{MUTED}",
    "table": f"border-collapse:collapse;font-size:12.5px;color:{FG}",
    "th": (f"border:1px solid {BORDER};padding:3px 8px;white-space:nowrap;text-align:left;"
           f"font-weight:600;background-color:{CODE_BG};color:{FG}"),
    # colours set on every cell: the page's own table rules (JupyterLab stripes rows with the
    # theme's colours) must not reach the card
    "td": (f"border:1px solid {BORDER};padding:3px 8px;white-space:nowrap;text-align:left;"
           f"background-color:{BG};color:{FG}"),
    "hr": f"border:0;border-top:1px solid {BORDER}",
}
#: code inside a <pre> keeps the block's look
PRE_CODE = (f"white-space:pre;font-family:{MONO};color:{FG};background-color:{CODE_BG};"
            "padding:0")  # ("inherit" is no colour to the sanitizer: it would be dropped)
#: the metrics table's cells
METRIC_CELL = {"th": f"text-align:right;padding:2px 8px;font-weight:600;white-space:nowrap;"
                     f"border:0;border-bottom:1px solid {MUTED};background-color:{BG};color:{FG}",
               "td": (f"text-align:right;padding:2px 8px;white-space:nowrap;border:0;"
                      f"background-color:{BG};color:{FG}")}
#: pygments' short token classes (light colours, >= 4.5:1 on CODE_BG)
TOKENS = {
    **dict.fromkeys(("k", "kn", "kd", "kr", "kc", "ow", "nb", "bp"), "color:#116329;font-weight:600"),
    **dict.fromkeys(("s", "s1", "s2", "sa", "sd", "si", "se", "sb"), "color:#0a3069"),
    **dict.fromkeys(("c", "c1", "cm", "ch"), f"color:{MUTED};font-style:italic"),
    **dict.fromkeys(("m", "mi", "mf"), "color:#0550ae"),
    "nf": "color:#6639ba", "nc": "color:#6639ba", "o": "color:#953800",
}

_VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "source"}


class _Inliner(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.stack: list[tuple[str, set[str]]] = []

    def _inside(self, cls: str = "", tag: str = "") -> bool:
        return any((not cls or cls in c) and (not tag or t == tag) for t, c in self.stack)

    def _style(self, tag: str, classes: set[str]) -> str:
        parts = []
        if tag in ("th", "td") and self._inside("llmcells-metrics"):
            parts.append(METRIC_CELL[tag])
        elif self._inside("llmcells-md") or self._inside("llmcells-fields"):
            if tag == "code" and self._inside(tag="pre"):
                parts.append(PRE_CODE)
            elif tag in MD_TAGS:
                parts.append(MD_TAGS[tag])
        if tag == "code" and self._inside("llmcells-name"):  # the model's id in a card's header
            parts.append(f"font-family:{MONO};font-weight:600;color:{FG};background-color:{BG};"
                         "padding:0")
        if self._inside(tag="pre") and tag == "span":
            parts += [TOKENS[c] for c in classes if c in TOKENS]
        parts += [CLASSES[c] for c in sorted(classes) if c in CLASSES]
        return ";".join(p for p in parts if p)

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], close: bool) -> str:
        classes = set()
        kept = []
        style = ""
        for k, v in attrs:
            if k == "class" and v:
                classes = set(v.split())
            if k == "style":
                style = v or ""
                continue
            kept.append((k, v))
        inline = self._style(tag, classes)
        if style:  # a style the markup set itself wins over the class's
            inline = f"{inline};{style}" if inline else style
        if inline:
            kept.append(("style", inline))
        text = "".join(f' {k}="{_lines(html.escape(v, quote=True))}"' if v is not None else f" {k}"
                       for k, v in kept)
        return f"<{tag}{text}{' /' if close else ''}>", classes

    def handle_starttag(self, tag, attrs):
        text, classes = self._tag(tag, attrs, False)
        self.out.append(text)
        if tag not in _VOID:
            self.stack.append((tag, classes))

    def handle_startendtag(self, tag, attrs):
        self.out.append(self._tag(tag, attrs, True)[0])

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break
        self.out.append(f"</{tag}>")

    def handle_data(self, data):
        self.out.append(_lines(html.escape(data, quote=False)))


_LINE_BREAK = re.compile(r"\r\n?|\n")


def _lines(text: str) -> str:
    """text with its line breaks as character references: the same HTML, on one line. Exported
    to Markdown (`nbconvert --to markdown`), an HTML block ends at the first blank line, and what
    follows (the rest of a code block with an empty line) would be read as Markdown."""
    return _LINE_BREAK.sub("&#10;", text)  # (CR too: a line end to Markdown, an LF to HTML)


def inline_styles(markup: str) -> str:
    """markup with the live view's classes turned into inline styles (classes kept too), for a
    page that has no stylesheet of ours; any <style> or <script> element is dropped."""
    parser = _Inliner()
    parser.feed(_drop_blocks(markup))
    parser.close()
    return "".join(parser.out)


def _drop_blocks(markup: str) -> str:
    return re.sub(r"<(style|script)\b.*?</\1\s*>", "", markup, flags=re.S | re.I)


def side_by_side(cells: list[str], per_row: int = 3) -> str:
    """Cards (HTML) side by side, up to per_row a row, in a <table>: with no CSS at all (GitHub)
    it is a plain table, one card a cell; where inline styles are kept (JupyterLab, nbconvert)
    each row is a wrapping flex box, so that cards stack one per row when the page is too narrow
    for them side by side, as the live grid does."""
    if not cells:
        return ""
    cols = min(per_row, len(cells))
    width = f"{100 // cols}%"
    card = (f"display:block;flex:1 1 {CARD_BASIS_PX}px;min-width:0;margin:4px;"
            "box-sizing:border-box")
    # an empty cell keeps a short last row's card one column wide, where the live grid puts
    # it; it has no height, so it takes no room when the cards stack
    filler = (f'<td width="{width}" style="display:block;flex:1 1 {CARD_BASIS_PX}px;min-width:0;'
              'margin:0 4px;padding:0;border:0;box-sizing:border-box"></td>')
    rows = []
    for i in range(0, len(cells), cols):
        row = cells[i:i + cols]
        # the row's own background and padding: the page's table rules (stripes on every other
        # row, a colour under the pointer, JupyterLab's padding that pushes a full-width row
        # past the output's edge) would otherwise show between and beside the cards
        rows.append('<tr style="display:flex;flex-wrap:wrap;width:100%;padding:0;'
                    f'background-color:{BG}">'
                    + "".join(f'<td class="llmcells-card" valign="top" width="{width}" '
                              f'style="{card}">{c}</td>' for c in row)
                    + filler * (cols - len(row)) + "</tr>")
    return ('<table class="llmcells-static-grid" width="100%" '
            'style="display:block;width:100%;border:0;margin:0">'
            '<tbody style="display:block;width:100%">' + "".join(rows) + "</tbody></table>")


#: below this width a static card goes onto its own row (the live grid's rule, in flex terms)
CARD_BASIS_PX = 240
