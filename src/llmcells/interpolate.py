"""`{name}` interpolation of cell bodies from the user's namespace.

Only plain references are substituted: `{name}`, `{name.attr}`, `{name[0]}`, `{name["key"]}` and
chains of these. Anything that does not resolve (an unknown name, JSON, code braces, `{{...}}`,
format specs) is left exactly as written, so prompts containing JSON or code are never broken.
Nothing is evaluated: attribute access and literal indexing only.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_INDEX = r"\[\s*(?:-?\d+|'[^'\\\]]*'|\"[^\"\\\]]*\")\s*\]"
# `{{...}}` is matched first (and kept) so that doubled braces are never read as a reference.
_REF = re.compile(r"(\{\{[^{}]*\}\})|\{\s*(" + _NAME + r"(?:\." + _NAME + r"|" + _INDEX + r")*)\s*\}")
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
        except Exception:
            return _MISSING
        pos = step.end()
    return value


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace every resolvable `{reference}` in text by str(value); leave the rest as written."""

    def sub(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(0)
        try:  # a namespace lookup or a str() that fails leaves the reference as written
            value = _resolve(match.group(2), namespace)
            return match.group(0) if value is _MISSING else str(value)
        except Exception:
            return match.group(0)

    return _REF.sub(sub, text)
