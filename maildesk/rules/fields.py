"""The building blocks of rules.yaml's models: the base mapping and shared value types.

Every mapping is a Spec: unknown keys are refused (with a did-you-mean), missing ones
explained, and an empty value (`queue:` with nothing after it) is a problem, not
"unset". References to queues, agents, calendars and SLA policies are checked against
Names, read from the raw file first and passed as pydantic's validation context.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    ValidationInfo,
    model_validator,
)

from maildesk.common.domain import Priority
from maildesk.common.yamlfile import did_you_mean
from maildesk.rules.definitions import ALWAYS_OPEN, NONE, STRATEGIES
from maildesk.rules.problems import describe, problem, problems_at, quote_hint

_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$")
_SIZE_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}

Flag = StrictBool  # YAML's true/false only; the text "true" is a mistake worth reporting


class Spec(BaseModel):
    """A mapping in rules.yaml."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    # What a missing required key means, and how to add it: key -> (problem, hint).
    MISSING: ClassVar[dict[str, tuple[str, str]]] = {}
    # What one of these is called when it is written as something else than a mapping.
    WHAT: ClassVar[str] = ""
    # Keys whose empty value means something (`sla:` alone is `sla: none`).
    EMPTY_OK: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def keys(cls) -> list[str]:
        """The keys this mapping allows, as written in the file."""
        return [field.alias or name for name, field in cls.model_fields.items()]

    def get(self, key: str) -> Any:
        """The value of `key` as written in the file (`from`, not `from_`)."""
        return getattr(self, attributes_of(type(self))[key])

    @classmethod
    def unknown_key(cls, key: str, holder: str, raw: Any) -> tuple[str, str]:
        """The problem and hint for `key`, which this mapping does not allow."""
        allowed = cls.keys()
        return f"unknown key '{key}'", did_you_mean(key, allowed) or (
            f" — allowed here: {', '.join(allowed)}"
        )

    @classmethod
    def missing_key(cls, key: str) -> tuple[str, str]:
        """The problem and hint for required `key`, which is not there."""
        return cls.MISSING.get(key, (f"missing '{key}'", ""))

    @model_validator(mode="before")
    @classmethod
    def _no_empty_values(cls, data: Any) -> Any:
        if isinstance(data, dict) and None in data.values():
            empty = [k for k, v in data.items() if v is None and k not in cls.EMPTY_OK]
            if empty:
                found = [
                    ((k,), f"'{k}' has no value", " — give it one or remove it") for k in empty
                ]
                raise problems_at(found, data)
        return data


@functools.cache
def attributes_of(model: type[Spec]) -> dict[str, str]:
    """A model's attribute names by the key written in the file."""
    return {field.alias or name: name for name, field in model.model_fields.items()}


@dataclass(frozen=True)
class Names:
    """What rules.yaml defines, read before validation: references are checked against it.

    Read from the raw file, so a reference to a queue or policy that itself has a
    problem is not reported a second time.
    """

    queues: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    agent_addresses: frozenset[str] = frozenset()
    calendars: tuple[str, ...] = (ALWAYS_OPEN,)
    policies: tuple[str, ...] = ()
    default_calendar: str | None = None

    @property
    def agents_and_queues(self) -> tuple[str, ...]:
        return tuple(sorted({*self.agents, *self.queues}))

    def is_agent(self, name: str) -> bool:
        """`name` is an agent's key or address."""
        return name in self.agents or name.lower() in self.agent_addresses


def names_of(info: ValidationInfo) -> Names:
    return info.context if isinstance(info.context, Names) else Names()


def holder(info: ValidationInfo) -> str:
    """The key being validated, as written in the file (`from`, not `from_`)."""
    return (info.field_name or "").rstrip("_")


def as_text(value: Any, what: str) -> str:
    """`value` as text; numbers are their text, other types are a problem."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise problem(f"{what} must be text, but YAML read {describe(value)}", quote_hint(value))


def as_list(value: Any) -> Any:
    """One value, or a list of them, as a list."""
    return value if isinstance(value, list) else [value]


def none_as_empty(value: Any) -> Any:
    """A section written with nothing after it (`agents:`) is an empty one."""
    return {} if value is None else value


# One value or a non-empty list of them (pydantic's too_short: "an empty list").
Texts = Annotated[list[str], BeforeValidator(as_list), Field(min_length=1)]


def is_none(value: Any) -> bool:
    """`none`, `false` or nothing: what `assignee:`, `sla:` and `auto_reply:` accept for none."""
    return value is None or value is False or (isinstance(value, str) and value.lower() == NONE)


def _priority(value: Any) -> Priority:
    choices = [p.value for p in Priority]
    text = as_text(value, "priority")
    if text.lower() in choices:
        return Priority(text.lower())
    hint = did_you_mean(text.lower(), choices) or f" — use one of {', '.join(choices)}"
    raise problem(f"unknown priority '{text}'", hint)


PriorityName = Annotated[Priority, PlainValidator(_priority)]


def check_reference(name: str, known: Iterable[str], what: str, where: str) -> str:
    """`name` when it is one of `known`, else a problem with a suggestion."""
    choices = list(known)
    if name in choices:
        return name
    listing = f" — {where}: {', '.join(choices)}" if choices else f" — {where}: none yet"
    raise problem(f"unknown {what} '{name}'", did_you_mean(name, choices) or listing)


def _reference(kind: str, what: str, where: str) -> AfterValidator:
    def check(name: str, info: ValidationInfo) -> str:
        return check_reference(name, getattr(names_of(info), kind), what, where)

    return AfterValidator(check)


QueueRef = Annotated[str, _reference("queues", "queue", "queues defined")]
AgentRef = Annotated[str, _reference("agents", "agent", "agents defined")]
CalendarRef = Annotated[str, _reference("calendars", "calendar", "defined")]
PolicyRef = Annotated[str, _reference("policies", "SLA policy", "defined")]
EscalationRef = Annotated[
    str, _reference("agents_and_queues", "escalation target", "agents and queues")
]


def _address(text: str, info: ValidationInfo) -> str:
    if not _ADDRESS.match(text.strip()):
        raise problem(f"{holder(info)} '{text}' is not an email address")
    return text.strip().lower()


Address = Annotated[str, AfterValidator(_address)]


def _recipient(text: str, info: ValidationInfo) -> str:
    """An agent (key or address) or an email address, as written."""
    if names_of(info).is_agent(text):
        return text
    if "@" not in text:
        agents = names_of(info).agents
        raise problem(
            f"'{text}' in '{holder(info)}' is not an agent or an email address",
            did_you_mean(text, agents) or f" — agents: {', '.join(agents) or 'none defined'}",
        )
    return _address(text, info)


Recipients = Annotated[
    list[Annotated[str, AfterValidator(_recipient)]],
    BeforeValidator(as_list),
    Field(min_length=1),
]
Addresses = Annotated[list[Address], BeforeValidator(as_list), Field(min_length=1)]


def _assignee(value: Any, info: ValidationInfo) -> str | None:
    """None for nobody, a strategy's name, or an agent's key or address as written."""
    if is_none(value):
        return None
    text = as_text(value, "assignee")
    if text in STRATEGIES or names_of(info).is_agent(text):
        return text
    agents = names_of(info).agents
    hint = did_you_mean(text, [*STRATEGIES, *agents]) or (
        f" — name an agent ({', '.join(agents) or 'none defined'})"
        f" or a strategy ({', '.join(STRATEGIES)})"
    )
    raise problem(f"unknown assignee '{text}'", hint)


Assignee = Annotated[str | None, PlainValidator(_assignee)]


def _policy_or_none(value: Any, info: ValidationInfo) -> str | None:
    if is_none(value):
        return None
    name = as_text(value, "sla")
    return check_reference(name, names_of(info).policies, "SLA policy", "defined")


PolicyOrNone = Annotated[str | None, PlainValidator(_policy_or_none)]


def _template_or_none(value: Any) -> str | None:
    return None if is_none(value) else as_text(value, "auto_reply")


TemplateOrNone = Annotated[str | None, PlainValidator(_template_or_none)]


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
