"""A validated `when` compiled into condition nodes, once, at load."""

from __future__ import annotations

from dataclasses import dataclass

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
from maildesk.rules.text_match import make_matcher


@dataclass
class ConditionEnv:
    """What conditions may refer to: calendars by name."""

    calendars: dict[str, Calendar]


def compile_when(spec: WhenSpec, env: ConditionEnv) -> Condition:
    """One Condition for a `when` (its conditions, in the order written, must all hold)."""
    parts = [_compile_key(key, spec.get(key), env) for key in spec.order]
    return parts[0] if len(parts) == 1 else AllOf(parts)


def _compile_key(key: str, value: object, env: ConditionEnv) -> Condition:
    if isinstance(value, list):  # all: or any:
        children: list[Condition] = [compile_when(item, env) for item in value]
        return AllOf(children) if key == "all" else AnyOf(children)
    if isinstance(value, WhenSpec):  # not:
        return Not(compile_when(value, env))
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


def _describe(subject: str, op: str, values: list[str], case_sensitive: bool) -> str:
    shown = repr(values[0]) if len(values) == 1 and op != "in" else repr(values)
    return f"{subject} {op} {shown}" + (" (case-sensitive)" if case_sensitive else "")


def _text_test(key: str, spec: TextSpec) -> Condition:
    op, values = spec.operator()
    matcher = make_matcher(op, values, spec.case_sensitive)
    return TextTest(key, matcher, _describe(key, op, values, spec.case_sensitive))


def _header_test(spec: HeaderSpec) -> Condition:
    op, value = spec.operator()
    name = spec.name
    if op == "exists":
        return HeaderTest(name, None, value, f"header {name} exists: {str(value).lower()}")
    matcher = make_matcher(op, value, spec.case_sensitive)
    return HeaderTest(
        name, matcher, True, _describe(f"header {name}", op, value, spec.case_sensitive)
    )
