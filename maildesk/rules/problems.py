"""rules.yaml problems: pydantic's validation errors as an admin reads them.

Validators raise `problem(text, hint)` (or `problems_at` for several at once); pydantic
adds where in the file each happened. `problems_from` turns every error into a
Problem with its line: "<what is wrong> in <rule 'vip'|queue 'billing'|…><how to fix>".
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from maildesk.common.errors import Problem
from maildesk.common.yamlfile import Path_, YamlDocument

RULES = "rules"  # the error type of every problem our validators raise


def problem(text: str, hint: str = "") -> PydanticCustomError:
    """A problem to raise from a validator; `hint` (" — …") says how to fix it."""
    return PydanticCustomError(RULES, "{text}{hint}", {"text": text, "hint": hint})


def problem_at(path: Path_, text: str, hint: str = "") -> ValidationError:
    """A problem below the value being validated, at `path` relative to it."""
    return problems_at([(path, text, hint)], None)


def problems_at(found: Iterable[tuple[Path_, str, str]], value: Any) -> ValidationError:
    """Several problems below the value being validated, each at its (relative) path."""
    details = [
        InitErrorDetails(type=problem(text, hint), loc=path, input=value)
        for path, text, hint in found
    ]
    return ValidationError.from_exception_data("rules.yaml", details)


def describe(value: Any) -> str:
    """How YAML read `value`, in words an admin recognises."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, datetime | date):
        return f"the date {value.isoformat()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"the number {value}"
    return f"'{value}'"


def quote_hint(value: Any) -> str:
    """YAML turns yes/no/on/off and dates into other types; quoting keeps the text."""
    if isinstance(value, bool | date | datetime):
        return ' — put the value in quotes, e.g. "YES", to compare it as text'
    return ""


def problems_from(exc: ValidationError, doc: YamlDocument, root: type[BaseModel]) -> list[Problem]:
    """Every error of `exc` (from validating `doc` as `root`) as a Problem with its line."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = _located(tuple(error["loc"]), doc)
        if error["type"] == RULES:
            text, hint = error["ctx"]["text"], error["ctx"]["hint"]
        else:
            text, hint = _translate(error, loc, doc, root)
        problems.append(doc.problem(loc, f"{text} in {scope_label(loc, doc.data)}{hint}"))
    return problems


def _located(loc: tuple[Any, ...], doc: YamlDocument) -> Path_:
    """The path in the file: no '[key]' marks; no list index where a scalar was written."""
    path = tuple(part for part in loc if part != "[key]")
    if path and isinstance(path[-1], int) and not doc.has(path):
        path = path[:-1]
    return path


def scope_label(loc: Path_, data: Any) -> str:
    """Which part of the file `loc` is in, as problems name it."""
    match loc:
        case ("rules", int() as index, *_):
            name = raw_at(data, ("rules", index, "name"))
            return f"rule '{name}'" if isinstance(name, str) and name else f"rule #{index + 1}"
        case ("queues", name, *_):
            return f"queue '{name}'"
        case ("agents", key, *_):
            return f"agent '{key}'"
        case ("calendars", name, *_):
            return f"calendar '{name}'"
        case ("sla", "policies", name, *_):
            return f"SLA policy '{name}'"
        case ("default", *_):
            return "default"
    return "rules.yaml"


def raw_at(data: Any, path: Path_) -> Any:
    """The value at `path` in the parsed YAML, or None."""
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _translate(error: Any, loc: Path_, doc: YamlDocument, root: type[BaseModel]) -> tuple[str, str]:
    """pydantic's own error types in rules.yaml's words: (what is wrong, how to fix it)."""
    kind, value = error["type"], error.get("input")
    what = _what(loc)
    if kind in ("extra_forbidden", "missing"):
        model = model_at(root, loc[:-1])
        if model is not None and hasattr(model, "unknown_key"):
            key = str(loc[-1])
            if kind == "missing":
                return model.missing_key(key)
            return model.unknown_key(key, _holder(loc), raw_at(doc.data, loc[:-1]))
        return (f"missing {what}", "") if kind == "missing" else (f"unknown key {what}", "")
    if kind == "string_type":
        return f"{what} must be text, but YAML read {describe(value)}", quote_hint(value)
    if kind == "bool_type":
        return f"{what} must be true or false, not {describe(value)}", ""
    if kind == "list_type":
        hint = "" if isinstance(value, dict) else f" — write it as [{value}]"
        return f"{what} must be a list, not {describe(value)}", hint
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        what = getattr(model_at(root, loc), "WHAT", "") or what
        return f"{what} must be a mapping of keys to values, not {describe(value)}", ""
    if kind == "invalid_key":
        hint = " — put it in quotes to use it as text (YAML reads yes/no/on/off as booleans)"
        return f"YAML read a key as {describe(value)}", hint
    if kind == "too_short":
        return f"{what} is an empty list; give at least one value", ""
    if kind.startswith("int_"):
        return f"{what} must be a whole number, not {describe(value)}", ""
    return f"{what}: {error['msg']}", f" (got {describe(value)})"


def _what(loc: Path_) -> str:
    """The value at `loc` in words: 'tags', entry 2 of 'tags', the file."""
    if not loc:
        return "the file"
    if isinstance(loc[-1], int):
        return f"entry {loc[-1] + 1} of '{loc[-2]}'" if len(loc) > 1 else "an entry"
    return f"'{loc[-1]}'"


def _holder(loc: Path_) -> str:
    """The key whose value holds the mapping the last part of `loc` is in."""
    names = [part for part in loc[:-1] if isinstance(part, str)]
    return names[-1] if names else ""


def model_at(root: type[BaseModel], loc: Path_) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc`, following field annotations."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = next(
                (f for name, f in current.model_fields.items() if (f.alias or name) == part), None
            )
            if field is None:
                return None
            current = field.annotation
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        elif origin is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    """`X` from `X | None` and from Annotated[X, …]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            kept = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(kept) != 1:
                return annotation
            annotation = kept[0]
        else:
            return annotation
