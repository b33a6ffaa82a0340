"""`{name}` interpolation of cell bodies (and batch templates) from the user's namespace.

Only plain references are substituted: `{name}`, `{name.attr}`, `{name[0]}`, `{name["key"]}` and
chains of these. JSON, code braces and format specs are left exactly as written, so prompts
containing JSON or code are never broken. `{{` and `}}` escape a brace as in str.format:
`{{name}}` sends `{name}` (a `}}` only counts as an escape in a text that has a `{{`, so JSON's
nested `}}` stays as written). Nothing is evaluated: attribute access and literal indexing only.

With strict=True (the magics, batch templates) a reference that does not resolve is a
ConfigError naming it, so a typo is caught before anything is sent; a reference that reads as
something else (`${HOME}`, LaTeX's `\\frac{a}{b}`, or inside a ``` code block) is left as
written.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

from ._log import swallowed

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INDEX = r"\[\s*(?:-?\d+|'[^'\\\]]*'|\"[^\"\\\]]*\")\s*\]"
# A doubled brace is matched before a reference, so that `{{name}}` is never read as one.
_REF = re.compile(r"(\{\{)|(\}\})|\{\s*(" + _NAME + r"(?:\." + _NAME + r"|" + _INDEX + r")*)\s*\}")
_STEP = re.compile(r"\.(" + _NAME + r")|(" + _INDEX + r")")
_MISSING = object()


def _resolve(expr: str, namespace: Mapping[str, Any]) -> Any:
    head = re.match(_NAME, expr)
    assert head is not None
    value = namespace.get(head.group(0), _MISSING)
    pos = head.end()
    while value is not _MISSING and pos < len(expr):
        step = _STEP.match(expr, pos)
        if step is None:
            return _MISSING
        try:
            if step.group(1):
                attr = step.group(1)
                if attr.startswith("_"):  # no reaching into private or dunder attributes
                    return _MISSING
                value = getattr(value, attr)
            else:
                key = ast.literal_eval(step.group(2).strip()[1:-1].strip())
                value = value[key]
        except Exception as exc:
            swallowed("looking up a placeholder's attribute or key (missing instead)", exc)
            return _MISSING
        pos = step.end()
    return value


def interpolate(text: str, namespace: Mapping[str, Any], *, strict: bool = False,
                hint: str = "") -> str:
    """Replace every resolvable `{reference}` in text by str(value), and `{{` / `}}` escapes by
    one brace; leave the rest as written. strict: a reference that does not resolve raises one
    ConfigError line naming it (hint ends the message, e.g. how to send the text as written)."""
    fences = _fenced_spans(text) if strict else []
    # `}}` is an escape only in a text that uses `{{`: JSON never opens two objects at once, but
    # ends nested ones with `}}`, which must then stay as written.
    escapes = "{{" in text

    def sub(match: re.Match[str]) -> str:
        if match.group(1):
            return "{"
        if match.group(2):
            return "}" if escapes else "}}"
        try:  # a value whose str() fails (or a namespace whose lookup does) is left as written
            value = _resolve(match.group(3), namespace)
            if value is not _MISSING:
                return str(value)
        except Exception as exc:
            swallowed(f"filling in {{{match.group(3)}}}", exc)
            return match.group(0)
        if strict and _reads_as_reference(text, match.start(), fences):
            raise _unresolved(match.group(3), namespace, hint)
        return match.group(0)

    return _REF.sub(sub, text)


def missing_names(text: str, names: Any) -> list[str]:
    """The head names of text's references (`{row.a}` gives "row") that are not among names,
    in order, counting only what strict interpolation would refuse."""
    fences = _fenced_spans(text)
    out: list[str] = []
    for m in _REF.finditer(text):
        if m.group(3):
            head = re.match(_NAME, m.group(3)).group(0)  # type: ignore[union-attr]
            if head not in names and head not in out and _reads_as_reference(text, m.start(), fences):
                out.append(head)
    return out


def _unresolved(expr: str, namespace: Mapping[str, Any], hint: str) -> Exception:
    from .errors import ConfigError, did_you_mean

    head = re.match(_NAME, expr).group(0)  # type: ignore[union-attr]
    if head not in namespace:
        names = [k for k in namespace if not str(k).startswith("_")]
        what = f"{{{expr}}}: no variable {head!r}{did_you_mean(head, names, quote=chr(39))}"
    else:
        what = f"{{{expr}}}: {head} has no such attribute or item"
    return ConfigError(f"{what}; nothing was sent.{(' ' + hint) if hint else ''}")


def _fenced_spans(text: str) -> list[tuple[int, int]]:
    """Where the ``` code blocks and `inline code` of text are: code, not references."""
    return [m.span() for m in re.finditer(r"```.*?(?:```|\Z)|`[^`\n]+`", text, flags=re.S)]


def _reads_as_reference(text: str, at: int, fences: list[tuple[int, int]]) -> bool:
    """Whether the unresolved `{...}` at `at` is meant as a reference: not `${x}` (shell,
    JavaScript), not `\\cmd{x}`, `x^{n}`, `}{b}` (LaTeX), not inside code."""
    if at and (text[at - 1] in "$\\^_}" or text[at - 1].isalnum()):
        return False
    return not any(a <= at < b for a, b in fences)
