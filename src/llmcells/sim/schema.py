"""Checking a JSON request body against an SDK's own request type (a TypedDict of openai or
anthropic, a pydantic model of google-genai): missing required fields, unknown fields, values a
`Literal` or enum doesn't allow and values of the wrong JSON type, each with its path.

The SDK types are the ground truth for what a request may carry: when an SDK upgrade adds or
drops a field, the simulator follows without an edit here.
"""

from __future__ import annotations

import collections.abc
import enum
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import typing_extensions

from .._log import swallowed


@dataclass
class Problem:
    """One way a body departs from the type: `kind` is "missing", "unknown", "value" or "type"."""

    kind: str
    path: tuple[str | int, ...]
    value: Any = None
    allowed: list[Any] = field(default_factory=list)   # "value": the values the type allows
    expected: str = ""                                  # "type": the JSON type it wanted

    @property
    def name(self) -> str:
        """The last field name of the path (the unknown or missing field itself)."""
        return str(self.path[-1]) if self.path else ""


_REQUIRED = {typing_extensions.Required, getattr(typing, "Required", None)} - {None}
_NOT_REQUIRED = {typing_extensions.NotRequired, getattr(typing, "NotRequired", None)} - {None}
_WRAPPERS = _REQUIRED | _NOT_REQUIRED | {typing.Annotated, typing_extensions.Annotated}
_LISTS = {list, tuple, collections.abc.Iterable, collections.abc.Sequence, collections.abc.Collection}
_MAPS = {dict, collections.abc.Mapping}


def _strip(hint: Any) -> tuple[Any, bool | None]:
    """(hint without Required/NotRequired/Annotated, True/False when it said which, else None)."""
    required = None
    while typing.get_origin(hint) in _WRAPPERS:
        origin = typing.get_origin(hint)
        if origin in _REQUIRED:
            required = True
        elif origin in _NOT_REQUIRED:
            required = False
        hint = typing.get_args(hint)[0]
    return hint, required


@cache
def fields_of(tp: Any) -> dict[str, tuple[Any, bool]] | None:
    """{wire name: (type, required)} of a TypedDict or pydantic model; None when unreadable."""
    try:
        if typing_extensions.is_typeddict(tp):
            hints = typing.get_type_hints(tp, include_extras=True)
            out = {}
            for name, hint in hints.items():
                inner, required = _strip(hint)
                # A key's own marker wins; else the runtime's view, which knows each class's
                # `total=` along the inheritance chain.
                out[name] = (inner, name in tp.__required_keys__ if required is None else required)
            return out
        model_fields = getattr(tp, "model_fields", None)
        if isinstance(model_fields, dict):
            out = {}
            for name, info in model_fields.items():
                entry = (info.annotation, info.is_required())
                out[name] = entry
                if info.alias:
                    out[info.alias] = entry
                generator = (getattr(tp, "model_config", {}) or {}).get("alias_generator")
                if callable(generator):
                    out[generator(name)] = entry
            return out
    except Exception as exc:  # noqa: BLE001 - a type that can't be read is one that accepts anything
        swallowed(f"reading the SDK type {getattr(tp, '__name__', tp)}", exc)
        return None
    return None


def json_name(value: Any) -> str:
    """The JSON type of a decoded value ("string", "integer", "object", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def check(value: Any, tp: Any, path: tuple[str | int, ...] = ()) -> list[Problem]:
    """Every problem of `value` against the type `tp` (empty when it fits)."""
    tp, _ = _strip(tp)
    if tp in (Any, object) or isinstance(tp, typing.TypeVar):
        return []
    if tp is type(None) or tp is None:
        return [] if value is None else [Problem("type", path, value, expected="null")]
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal or origin is typing_extensions.Literal:
        return [] if value in args else [Problem("value", path, value, allowed=list(args))]
    if origin is typing.Union or origin is types.UnionType:
        return _union(value, args, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        return [] if value in allowed else [Problem("value", path, value, allowed=allowed)]
    shape = fields_of(tp) if isinstance(tp, type) else None
    if shape is not None:
        return _object(value, shape, path)
    if origin in _LISTS or (origin is not None and getattr(origin, "__name__", "") == "SequenceNotStr"):
        if not isinstance(value, list):
            return [Problem("type", path, value, expected="array")]
        item = args[0] if args else Any
        return [p for i, v in enumerate(value) for p in check(v, item, (*path, i))]
    if origin in _MAPS:
        if not isinstance(value, dict):
            return [Problem("type", path, value, expected="object")]
        item = args[1] if len(args) == 2 else Any
        return [p for k, v in value.items() for p in check(v, item, (*path, k))]
    return _scalar(value, tp, path)


def _scalar(value: Any, tp: Any, path: tuple[str | int, ...]) -> list[Problem]:
    wanted = {bool: ("boolean", lambda v: isinstance(v, bool)),
              int: ("integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
                    or isinstance(v, float) and v.is_integer()),
              float: ("number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
              str: ("string", lambda v: isinstance(v, str)),
              bytes: ("string", lambda v: isinstance(v, (str, bytes)))}.get(tp)
    if wanted is None:  # datetimes, file objects, protocols: not JSON types the walk can judge
        return []
    name, ok = wanted
    return [] if ok(value) else [Problem("type", path, value, expected=name)]


def _object(value: Any, shape: dict[str, tuple[Any, bool]], path: tuple[str | int, ...]) -> list[Problem]:
    if not isinstance(value, dict):
        return [Problem("type", path, value, expected="object")]
    problems = [Problem("unknown", (*path, k), value[k]) for k in value if k not in shape]
    problems += [Problem("missing", (*path, k)) for k, (_, req) in shape.items() if req and k not in value]
    for key, item in value.items():
        if key in shape:
            problems += check(item, shape[key][0], (*path, key))
    return problems


def _discriminator(tp: Any, key: str) -> tuple[Any, ...] | None:
    shape = fields_of(_strip(tp)[0]) if isinstance(_strip(tp)[0], type) else None
    if not shape or key not in shape:
        return None
    hint = _strip(shape[key][0])[0]
    if typing.get_origin(hint) in (typing.Literal, typing_extensions.Literal):
        return typing.get_args(hint)
    return None


def _union(value: Any, options: tuple[Any, ...], path: tuple[str | int, ...]) -> list[Problem]:
    # Objects told apart by a `type` or `role` Literal: judge against the matching members only,
    # so the problem named is the real one (an unknown role), not "matches no member".
    if isinstance(value, dict):
        for key in ("type", "role"):
            tags = {opt: _discriminator(opt, key) for opt in options}
            tagged = {opt: t for opt, t in tags.items() if t is not None}
            if tagged and len(tagged) == len([o for o in options if fields_of(_strip(o)[0])
                                              if isinstance(_strip(o)[0], type)]):
                matching = [o for o, t in tagged.items() if value.get(key) in t]
                if not matching:
                    if key not in value:
                        return [Problem("missing", (*path, key))]
                    allowed = sorted({a for t in tagged.values() for a in t}, key=str)
                    return [Problem("value", (*path, key), value.get(key), allowed=allowed)]
                options = tuple(matching) + tuple(o for o in options if o not in tagged)
                break
    best: list[Problem] | None = None
    for option in options:
        problems = check(value, option, path)
        if not problems:
            return []
        if best is None or _worse(best, problems):
            best = problems
    return best or []


def _worse(a: list[Problem], b: list[Problem]) -> bool:
    """True when `b` says more precisely what is wrong than `a` (a wrong value inside an object
    of the right kind beats "not an object")."""
    depth = lambda ps: max(len(p.path) for p in ps)  # noqa: E731
    return (depth(b), -len(b)) > (depth(a), -len(a))
