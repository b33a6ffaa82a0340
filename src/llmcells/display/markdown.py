"""Markdown to safe HTML for finished answers, with code blocks highlighted by pygments.

Uses mistune 3 when it is installed (it comes with nbconvert / Jupyter), with raw HTML escaped;
otherwise a small built-in renderer that covers what model answers mostly contain: fenced code,
headings, lists, block quotes, paragraphs, **bold**, *italic*, `code` and [links](https://...).
Either way, nothing from the answer is ever passed through as raw HTML.
"""

from __future__ import annotations

import html
import re

#: answers longer than this are shown as plain pre-wrapped text (rendering would take too long)
MAX_MARKDOWN_CHARS = 300_000

_CODE_STYLE = "overflow-x:auto;font-size:12.5px;line-height:1.35;padding:6px 8px;margin:6px 0;border-radius:4px"


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def plain_html(text: str) -> str:
    """Text as escaped, pre-wrapped HTML (what a card shows while it streams)."""
    return ('<div style="white-space:pre-wrap;overflow-wrap:anywhere;font-family:inherit;'
            'line-height:1.45">' + escape(text) + "</div>")


def highlight_code(code: str, lang: str | None = None) -> str:
    """A highlighted code block (inline styles, so it needs no stylesheet)."""
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import TextLexer, get_lexer_by_name
        from pygments.util import ClassNotFound

        name = (lang or "").strip().split()[0] if (lang or "").strip() else ""
        try:
            lexer = get_lexer_by_name(name) if name else TextLexer()
        except ClassNotFound:
            lexer = TextLexer()
        body = highlight(code, lexer, HtmlFormatter(noclasses=True, nowrap=True, style="default"))
    except Exception:
        body = escape(code)
    return (f'<pre style="background:#f6f8fa;color:#1f2328;{_CODE_STYLE}"><code>{body}</code></pre>')


# ----- mistune, when available --------------------------------------------------------------

_md = None


def _mistune():
    global _md
    if _md is None:
        try:
            import mistune
        except ImportError:
            _md = False
        else:
            class _Renderer(mistune.HTMLRenderer):
                def block_code(self, code, info=None):  # noqa: D401 - mistune's signature
                    return highlight_code(code, info) + "\n"

            try:
                _md = mistune.create_markdown(
                    escape=True, renderer=_Renderer(escape=True),
                    plugins=["strikethrough", "table"])
            except Exception:
                _md = False
    return _md or None


# ----- the small built-in renderer ----------------------------------------------------------

_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])|(?<![_\w])_(?=\S)([^_\n]+?)(?<=\S)_(?![_\w])")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)]+)\)")
_FENCE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})\s*([^\s`]*)[^`]*$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_ULIST = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_OLIST = re.compile(r"^(\s*)(\d+)[.)]\s+(.*)$")
_QUOTE = re.compile(r"^\s{0,3}>\s?(.*)$")
_HR = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")


def _inline(text: str) -> str:
    """Inline markdown on escaped text: code spans first (their content is left alone)."""
    out, pos = [], 0
    for m in _INLINE_CODE.finditer(text):
        out.append(_inline_plain(text[pos:m.start()]))
        out.append("<code>" + escape(m.group(1)) + "</code>")
        pos = m.end()
    out.append(_inline_plain(text[pos:]))
    return "".join(out)


def _inline_plain(text: str) -> str:
    s = escape(text)
    s = _LINK.sub(lambda m: f'<a href="{m.group(2)}" target="_blank" rel="noopener">{m.group(1)}</a>', s)
    s = _BOLD.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", s)
    s = _ITALIC.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", s)
    return s


def _simple_markdown(text: str) -> str:
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []
    list_kind: str | None = None

    def end_para():
        if para:
            out.append("<p>" + "<br>\n".join(_inline(p) for p in para) + "</p>")
            para.clear()

    def end_list():
        nonlocal list_kind
        if list_kind:
            out.append(f"</{list_kind}>")
            list_kind = None

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            end_para(); end_list()
            marker, lang = fence.group(2), fence.group(3)
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(marker[:3] if marker[0] == "`" else marker):
                code.append(lines[i])
                i += 1
            out.append(highlight_code("\n".join(code) + "\n", lang))
            i += 1
            continue
        if not line.strip():
            end_para(); end_list()
        elif m := _HEADING.match(line):
            end_para(); end_list()
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif _HR.match(line):
            end_para(); end_list()
            out.append("<hr>")
        elif m := _ULIST.match(line):
            end_para()
            if list_kind != "ul":
                end_list(); out.append("<ul>"); list_kind = "ul"
            out.append(f"<li>{_inline(m.group(2))}</li>")
        elif m := _OLIST.match(line):
            end_para()
            if list_kind != "ol":
                end_list(); out.append(f'<ol start="{int(m.group(2))}">'); list_kind = "ol"
            out.append(f"<li>{_inline(m.group(3))}</li>")
        elif m := _QUOTE.match(line):
            end_para(); end_list()
            out.append(f'<blockquote style="margin:4px 0;padding-left:8px;border-left:3px solid #ccc;color:#555">'
                       f"{_inline(m.group(1))}</blockquote>")
        elif list_kind and line.startswith(("  ", "\t")):
            out[-1] = out[-1][: -len("</li>")] + "<br>" + _inline(line.strip()) + "</li>"
        else:
            end_list()
            para.append(line)
        i += 1
    end_para(); end_list()
    return "\n".join(out)


def render_markdown(text: str) -> str:
    """Markdown answer text as safe HTML (code highlighted); plain pre-wrapped text if very long."""
    if not text:
        return ""
    if len(text) > MAX_MARKDOWN_CHARS:
        return plain_html(text)
    md = _mistune()
    try:
        body = md(text) if md is not None else _simple_markdown(text)
    except Exception:
        try:
            body = _simple_markdown(text)
        except Exception:
            return plain_html(text)
    return f'<div class="llmcells-md" style="line-height:1.5;overflow-wrap:anywhere">{body}</div>'
