"""Validation helpers for rules.yaml: every problem names its place, line and a fix.

A Scope collects problems for one part of the file ("rule 'vip'", "queue 'billing'"),
so loading can go on after a mistake and report everything at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from maildesk.common.domain import Priority
from maildesk.common.errors import Problem
from maildesk.common.yamlfile import Path_, YamlDocument, did_you_mean

TOP_KEYS = ("version", "default", "calendars", "sla", "queues", "agents", "rules")
RULE_KEYS = ("name", "description", "when", "then", "stop", "follow_ups", "enabled")
AGENT_KEYS = ("address", "name", "level", "queues", "away")
QUEUE_KEYS = ("agents", "escalation", "language")
CALENDAR_KEYS = ("timezone", "hours", "holidays")
SLA_KEYS = ("policies", "by_priority")
POLICY_KEYS = ("first_response", "resolution", "calendar")
SUPPORTED_VERSIONS = (1,)

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$")
_SIZE_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass
class Scope:
    """Where in rules.yaml we are: problems found here say so in their message."""

    doc: YamlDocument
    problems: list[Problem]
    label: str  # "rule 'vip-customers'", "default", "queue 'billing'"

    def error(self, path: Path_, text: str, hint: str = "") -> None:
        """Record `text` at `path`, naming this scope, followed by `hint`."""
        self.problems.append(self.doc.problem(path, f"{text} in {self.label}{hint}"))

    def within(self, label: str) -> Scope:
        return Scope(self.doc, self.problems, label)

    def unknown_keys(self, path: Path_, mapping: dict[Any, Any], allowed: Sequence[str]) -> None:
        """One problem per key not in `allowed`, with a did-you-mean suggestion."""
        for key in mapping:
            if key in allowed:
                continue
            hint = did_you_mean(str(key), allowed) or f" — allowed here: {', '.join(allowed)}"
            self.error((*path, key), f"unknown key '{key}'", hint)

    def mapping(self, path: Path_, value: Any, what: str) -> dict[Any, Any] | None:
        """`value` when it is a mapping; otherwise record a problem and return None."""
        if isinstance(value, dict):
            return value
        self.error(path, f"{what} must be a mapping of keys to values, not {describe(value)}")
        return None

    def text(self, path: Path_, value: Any, what: str) -> str | None:
        """A string value; numbers are accepted as their text, other types are problems."""
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.error(path, f"{what} must be text, but YAML read {describe(value)}", quote_hint(value))
        return None

    def texts(self, path: Path_, value: Any, what: str) -> list[str] | None:
        """A string or a list of strings, as a list (None after a problem)."""
        items = value if isinstance(value, list) else [value]
        if not items:
            self.error(path, f"{what} is an empty list; give at least one value")
            return None
        result = []
        for index, item in enumerate(items):
            where = (*path, index) if isinstance(value, list) else path
            text = self.text(where, item, what)
            if text is None:
                return None
            result.append(text)
        return result

    def flag(self, path: Path_, value: Any, what: str) -> bool | None:
        if isinstance(value, bool):
            return value
        self.error(path, f"{what} must be true or false, not {describe(value)}")
        return None

    def priority(self, path: Path_, value: Any) -> Priority | None:
        choices = [p.value for p in Priority]
        text = self.text(path, value, "priority")
        if text is None:
            return None
        if text.lower() in choices:
            return Priority(text.lower())
        hint = did_you_mean(text.lower(), choices) or f" — use one of {', '.join(choices)}"
        self.error(path, f"unknown priority '{text}'", hint)
        return None

    def address(self, path: Path_, value: Any, what: str) -> str | None:
        text = self.text(path, value, what)
        if text is None:
            return None
        if not _ADDRESS.match(text.strip()):
            self.error(path, f"{what} '{text}' is not an email address")
            return None
        return text.strip().lower()

    def reference(
        self, path: Path_, name: Any, known: Iterable[str], what: str, where: str
    ) -> str | None:
        """`name` when it is one of `known`, else a problem with a suggestion."""
        choices = list(known)
        text = self.text(path, name, what)
        if text is None:
            return None
        if text in choices:
            return text
        listing = f" — {where}: {', '.join(choices)}" if choices else f" — {where}: none yet"
        self.error(path, f"unknown {what} '{text}'", did_you_mean(text, choices) or listing)
        return None


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


def parse_duration(text: str) -> timedelta | None:
    """'4h', '30m', '1h30m' as business time; None when it is not such a duration."""
    match = _DURATION.match(text.strip().lower())
    if not match or not any(match.groups()):
        return None
    hours, minutes = (int(g) if g else 0 for g in match.groups())
    return timedelta(hours=hours, minutes=minutes)


def parse_size(value: Any) -> int | None:
    """Bytes from 12345, '500KB', '10 MB' (1 KB = 1024 bytes); None when unreadable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _SIZE.match(value.strip().lower())
    if not match:
        return None
    number, unit = float(match.group(1)), (match.group(2) or "b")[0]
    return int(number * _SIZE_UNITS[unit])
