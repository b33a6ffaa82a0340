"""Structured output: turning a schema given by the user (a pydantic model, a JSON Schema dict,
`{"field": type}` or a concise string, "name, age int") into an `OutputSchema`, the per-provider strict form, and validating answers.

pydantic is imported only when a schema is used.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from .errors import ConfigError, did_you_mean
from ._loop import import_pandas
from .types import OutputSchema, Result

__all__ = ["output_schema", "concise_schema", "strict_schema", "validate", "check_result", "instructions",
           "is_native", "field_values"]


def _is_model_class(value: Any) -> bool:
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - pydantic is a dependency of the SDKs
        return False
    return isinstance(value, type) and issubclass(value, BaseModel)


def _is_field_map(value: dict) -> bool:
    """{"name": str, "age": int}: every value a type (or a typing form), not JSON Schema."""
    return bool(value) and all(isinstance(v, type) or type(v).__module__ in ("typing", "types")
                               for v in value.values())


#: the types of the concise schema syntax, as in simonw/llm's (str when none is given)
_CONCISE_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
_CONCISE_FIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\s+(\S+))?$")


def concise_schema(text: str) -> dict[str, tuple[Any, Any]]:
    """{"field": (type, FieldInfo)} from the concise schema syntax of simonw/llm:
    "name, age int, tags list[str]". Fields are separated by commas, or by new lines when there
    are any (then a description may hold commas); each is a name, an optional type (str, int,
    float, bool, or list[...] of one of them; str by default) and an optional description after
    a colon: "name: the person's full name". A ConfigError names the field that is wrong."""
    from pydantic import Field

    parts = text.split("\n") if "\n" in text else text.split(",")
    fields: dict[str, tuple[Any, Any]] = {}
    for part in (p.strip() for p in parts):
        if not part:
            continue
        head, _, description = part.partition(":")
        match = _CONCISE_FIELD.match(head.strip())
        if match is None:
            raise ConfigError(f"schema: {part!r} is not a field; write a name, then an optional type "
                              "and description, e.g. \"name, age int, tags list[str]: a few tags\".")
        name, kind = match.group(1), match.group(2) or "str"
        if name in fields:
            raise ConfigError(f"schema: the field {name!r} is there twice.")
        fields[name] = (_concise_type(kind, name),
                        Field(..., description=description.strip() or None))
    if not fields:
        raise ConfigError("schema: the text names no field; e.g. schema=\"name, age int\".")
    return fields


def _concise_type(kind: str, field: str) -> Any:
    inner = re.fullmatch(r"list\[(.+)\]", kind)
    if inner:
        return list[_concise_type(inner.group(1).strip(), field)]  # type: ignore[misc]
    if kind in _CONCISE_TYPES:
        return _CONCISE_TYPES[kind]
    raise ConfigError(f"schema: the field {field!r} has type {kind!r}"
                      f"{did_you_mean(kind, [*_CONCISE_TYPES, 'list[str]'])}; "
                      "types are str, int, float, bool and list[...] of them.")


def output_schema(value: Any) -> OutputSchema | None:
    """An OutputSchema from a pydantic model class, a JSON Schema dict, {"field": type} or a
    concise schema string ("name, age int, tags list[str]", see concise_schema); None for None.
    Anything else is a ConfigError."""
    if value is None or isinstance(value, OutputSchema):
        return value
    plain = isinstance(value, str) or (isinstance(value, dict) and _is_field_map(value))
    if plain:
        from pydantic import create_model

        fields = (concise_schema(value) if isinstance(value, str)
                  else {k: (v, ...) for k, v in value.items()})
        value = create_model("Answer", **fields)
    if _is_model_class(value):
        schema = value.model_json_schema()
        return OutputSchema(name=_name(value.__name__), json_schema=schema, model=value,
                            fields=tuple(schema.get("properties", {})), plain=plain)
    if isinstance(value, dict):
        if value.get("type") not in ("object", None) or "properties" not in value:
            raise ConfigError("A JSON Schema for schema= must describe an object "
                              '({"type": "object", "properties": {...}}).')
        _check_json_schema(value)
        return OutputSchema(name=_name(str(value.get("title") or "Answer")), json_schema=dict(value),
                            model=None, fields=tuple(value.get("properties", {})))
    raise ConfigError(f"schema must be a pydantic model class, a JSON Schema dict, "
                      f'{{"field": type}} or a string such as "name, age int", not {type(value).__name__}.')


def _check_json_schema(schema: dict) -> None:
    try:
        import jsonschema  # optional: a better check when it is there
    except ImportError:
        return
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as err:
        raise ConfigError(f"schema is not a valid JSON Schema: {err.message}") from None


def _name(name: str) -> str:
    """A schema name as OpenAI takes it: letters, digits, _ and -, at most 64."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "Answer"


def strict_schema(schema: dict) -> dict:
    """A copy of schema in OpenAI's strict form: every object closed (additionalProperties false)
    and every property required (an optional field stays nullable through its own type)."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" or "properties" in node:
                # A map (dict[str, int]: additionalProperties a schema) keeps it, as the openai
                # SDK's to_strict_json_schema keeps it: closed, it could only be answered {}.
                if "additionalProperties" not in node or node["additionalProperties"] is True:
                    node["additionalProperties"] = False
                node["required"] = list(node.get("properties", {}))
            node.pop("default", None)  # strict mode refuses defaults
            for key, v in node.items():
                if key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(v, dict):
                    for sub in v.values():  # (names of fields, not keywords: a field "default" stays)
                        walk(sub)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(out)
    return out


def is_native(spec: Any) -> bool:
    """Whether spec's provider has native structured output, as its capability profile says
    (registry.Caps.structured; an agent CLI or an add_endpoint server gets instructions)."""
    from .capabilities import structured_mode

    return structured_mode(spec) == "native"


def instructions(schema: OutputSchema) -> str:
    """The system-prompt addition for endpoints without native structured output."""
    return ("Answer with one JSON object and nothing else (no prose, no code fence). It must "
            f"match this JSON Schema:\n{json.dumps(schema.json_schema)}")


def json_text(text: str) -> str:
    """The JSON in an answer: the whole text, or the first ``` fenced block."""
    body = text.strip()
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", body, flags=re.S)
    return fenced.group(1) if fenced else body


def no_json_constant(name: str) -> Any:
    """json.loads' hook for NaN, Infinity and -Infinity, which Python reads and JSON (RFC 8259)
    has not: such an answer is not JSON."""
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def validate(text: str, schema: OutputSchema) -> Any:
    """The validated answer: a pydantic instance for a model schema, a dict otherwise. Raises
    ValueError with a one-line message when it does not validate."""
    if schema.model is not None:
        from pydantic import ValidationError

        try:
            data = schema.model.model_validate_json(json_text(text))
            return data.model_dump(mode="json") if schema.plain else data
        except ValidationError as err:
            first = err.errors()[0] if err.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ())) or "answer"
            raise ValueError(f"{where}: {first.get('msg', 'invalid')} "
                             f"({err.error_count()} error{'s' if err.error_count() != 1 else ''})") from None
    try:
        data = json.loads(json_text(text), parse_constant=no_json_constant)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err.msg} at character {err.pos}") from None
    except RecursionError:  # an answer of thousands of nested brackets
        raise ValueError("not JSON: nested too deeply to read") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    try:
        import jsonschema
    except ImportError:
        missing = [f for f in schema.json_schema.get("required", []) if f not in data]
        if missing:
            raise ValueError(f"missing field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}") from None
        return data
    try:
        jsonschema.validate(data, schema.json_schema)
    except jsonschema.ValidationError as err:
        where = ".".join(str(p) for p in err.absolute_path) or "answer"
        raise ValueError(f"{where}: {_broken_rule(err)}") from None
    return data


def _broken_rule(err: Any) -> str:
    """The schema rule a jsonschema error broke, without the answer's words. (Its message quotes
    the value, "'...' is not of type 'integer'"; this line becomes Result.error and the ledger's
    error column, which keep no answer text, and /v1/usage shows it to the service's clients.
    The pydantic path says the rule alone too.)"""
    rule = json.dumps(err.validator_value, default=str, ensure_ascii=False)
    rule = rule if len(rule) <= 80 else rule[:77] + "..."
    return f'does not satisfy "{err.validator}": {rule}'


def check_result(result: Result, schema: OutputSchema | None, mode: str | None = None) -> None:
    """The finish step for a call with a schema: an ok answer gets .data, or ends as an
    error of kind invalid_output (the raw text is kept)."""
    if schema is None:
        return
    result.schema_mode = mode
    if result.status != "ok" or result.tool_calls:
        return  # (a turn that asks for tools is not the answer: the tool loop's last turn is)
    refusal = next((n for n in result.notes if n.startswith("refused")), None)
    if refusal is not None:  # no answer to read: not a mismatch that repair= could mend
        result.status, result.error_kind = "error", "refused"
        result.error = f"The model refused, so there is no {schema.name} to read: {refusal}"
        return
    try:
        result.data = validate(result.text, schema)
    except ValueError as err:
        result.status, result.error_kind = "error", "invalid_output"
        result.error = f"The answer does not match the schema {schema.name}: {str(err)[:200]}"


def finish(result: Result, request: Any) -> None:
    """What a rich request adds to its Result: the attachments' count and bytes, and the
    validated answer (the pipeline's finish calls this)."""
    result.attachments_count = len(request.attachments)
    result.attachments_bytes = sum(a.size for a in request.attachments)
    check_result(result, request.schema, request.extra.get("schema_mode"))


def schema_columns(result: Result, schema: OutputSchema, row: dict[str, Any]) -> dict[str, Any]:
    """batch(): a row's field columns from its validated answer (a resumed row is validated
    again from its kept text); a field named like an existing column gets a field_ prefix."""
    data = result.data
    if data is None and result.ok:
        try:
            data = result.data = validate(result.text, schema)
        except ValueError:
            data = None
    values = field_values(data, schema.fields)
    return {(f"field_{k}" if k in row else k): v for k, v in values.items()}


def field_values(data: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The top-level fields of a validated answer (pydantic instance or dict), by name."""
    if data is None:
        return {f: None for f in fields}
    get = data.get if isinstance(data, dict) else (lambda k, _d=None: getattr(data, k, None))
    return {f: get(f) for f in fields}


def _as_dict(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if isinstance(data, dict):
        return data
    dump = getattr(data, "model_dump", None)
    return dump(mode="json") if dump else {}


def agreement(comparison: Any) -> "Any":
    """Per top-level field of a schema'd Comparison: each model's value and whether they agree
    (a DataFrame: field, agree, then one column per model)."""
    pd = import_pandas()

    answers = [(r.model + (f" #{r.sample}" if r.sample else ""), _as_dict(r.data))
               for r in comparison.results]
    fields: list[str] = []
    for _, d in answers:
        fields += [f for f in d if f not in fields]
    rows = []
    for f in fields:
        values = {name: d.get(f) for name, d in answers}
        seen = [json.dumps(v, sort_keys=True, default=str) for name, v in values.items()
                if name in dict(answers) and dict(answers)[name]]
        rows.append({"field": f, "agree": len(set(seen)) == 1 and len(seen) == len(answers), **values})
    return pd.DataFrame(rows, columns=["field", "agree", *[n for n, _ in answers]])


def show_agreement(comparison: Any) -> None:
    """Show the per-field agreement table under a %%compare --schema cell."""
    frame = agreement(comparison)
    try:
        from IPython.display import display

        display(frame)
    except ImportError:  # pragma: no cover - magics run in IPython
        print(frame.to_string(index=False))
