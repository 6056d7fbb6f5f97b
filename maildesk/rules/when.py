"""A validated `when` compiled into condition nodes, once, at load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maildesk.common.business_hours import Calendar
from maildesk.rules.condition_spec import HeaderSpec, OpenHours, SizeSpec, TextSpec, WhenSpec
from maildesk.rules.conditions import (
    AllOf,
    AnyOf,
    BusinessHoursTest,
    Condition,
    FlagTest,
    HeaderTest,
    Not,
    SizeTest,
    TextTest,
)
from maildesk.rules.text_match import Matcher, make_matcher, regex_matcher


@dataclass
class ConditionEnv:
    """What conditions may refer to: calendars by name."""

    calendars: dict[str, Calendar]


def compile_when(spec: WhenSpec, written: dict[str, Any], env: ConditionEnv) -> Condition:
    """One Condition for a validated `when`; `written` is the mapping as in the file, whose
    conditions (in the order written: explanations list them so) must all hold."""
    parts = [_compile_key(key, spec.get(key), written[key], env) for key in written]
    return parts[0] if len(parts) == 1 else AllOf(parts)


def _compile_key(key: str, value: object, written: Any, env: ConditionEnv) -> Condition:
    if isinstance(value, list):  # all: or any:
        children = [compile_when(item, raw, env) for item, raw in zip(value, written, strict=True)]
        return AllOf(children) if key == "all" else AnyOf(children)
    if isinstance(value, WhenSpec):  # not:
        return Not(compile_when(value, written, env))
    if isinstance(value, HeaderSpec):
        return _header_test(value)
    if isinstance(value, TextSpec):
        return _text_test(key, value)
    if isinstance(value, SizeSpec):
        op, size = value.operator()
        return SizeTest(op, size.bytes, f"size {op} {size.text}")
    if isinstance(value, OpenHours):
        name, word = value.calendar, "open" if value.open else "closed"
        calendar = env.calendars[name]
        return BusinessHoursTest(name, calendar, value.open, f"business hours ({name}) {word}")
    return FlagTest(key, bool(value), f"{key} is {str(value).lower()}")


def _matcher(spec: TextSpec) -> tuple[Matcher, str]:
    """The matcher of a text condition, and how explanations describe it (after its field)."""
    op, values = spec.operator()
    case_sensitive = spec.case_sensitive
    if op == "matches":  # compiled while validating
        matcher = regex_matcher(values, case_sensitive)
        values = [regex.text for regex in values]
    else:
        matcher = make_matcher(op, values, case_sensitive)
    shown = repr(values[0]) if len(values) == 1 and op != "in" else repr(values)
    return matcher, f"{op} {shown}" + (" (case-sensitive)" if case_sensitive else "")


def _text_test(key: str, spec: TextSpec) -> Condition:
    matcher, described = _matcher(spec)
    return TextTest(key, matcher, f"{key} {described}")


def _header_test(spec: HeaderSpec) -> Condition:
    name = spec.name
    if spec.exists is not None:
        return HeaderTest(
            name, None, spec.exists, f"header {name} exists: {str(spec.exists).lower()}"
        )
    matcher, described = _matcher(spec)
    return HeaderTest(name, matcher, True, f"header {name} {described}")
