"""Business-hours calendars and SLA policies from rules.yaml: their models, then the objects.

calendars:
  office:
    timezone: Europe/Berlin
    hours: {mon-fri: "09:00-17:00", sat: "10:00-13:00"}
    holidays: [2026-12-25, 2026-12-26]
sla:
  policies:
    urgent: {first_response: 1h, resolution: 8h, calendar: office}
  by_priority: {urgent: urgent}
"""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BeforeValidator, Field, PlainValidator, ValidationInfo, model_validator

from maildesk.common.business_hours import WEEKDAYS, Calendar
from maildesk.common.domain import Priority
from maildesk.common.yamlfile import did_you_mean
from maildesk.rules.definitions import ALWAYS_OPEN, SlaPolicy
from maildesk.rules.fields import (
    CalendarRef,
    PolicyRef,
    PriorityName,
    Spec,
    as_list,
    as_text,
    holder,
    names_of,
    none_as_empty,
    parse_duration,
)
from maildesk.rules.problems import describe, problem, problems_at

_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_END_OF_DAY = time(23, 59, 59, 999999)  # how Calendar spells "until midnight"

Spans = tuple[tuple[time, time], ...]


def _timezone(value: Any) -> str:
    text = as_text(value, "timezone")
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(text, sorted(available_timezones()))
        raise problem(
            f"unknown timezone '{text}'", hint or " — use an IANA name like UTC"
        ) from None
    return text


def _week(value: Any) -> dict[int, Spans]:
    """{'mon-fri': '09:00-17:00', 'sat': ['10:00-12:00', '13:00-15:00'], 'sun': closed}."""
    if not isinstance(value, dict):
        raise problem(f"hours must be a mapping of days to hours, not {describe(value)}")
    week: dict[int, Spans] = {}
    found: list[tuple[tuple[Any, ...], str, str]] = []
    for key, spec in value.items():
        try:
            days, spans = _days(str(key)), _spans(spec)
        except _Wrong as wrong:
            found.append(((key,), *wrong.args))
            continue
        for day in days:
            if day in week:
                found.append(((key,), f"{WEEKDAYS[day]} is given opening hours twice", ""))
            week[day] = spans
    if not found and not any(week.values()):
        found.append(((), "the calendar is never open; give at least one day opening hours", ""))
    if found:
        raise problems_at(found, value)
    return week


class _Wrong(Exception):
    """(problem, hint) about one entry of `hours`."""


def _days(text: str) -> list[int]:
    """'mon-fri', 'sat', 'mon,wed,fri' -> weekday numbers (0 = Monday)."""
    days: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            bad = first if first not in WEEKDAYS else last
            hint = did_you_mean(bad, WEEKDAYS) or f" — use {', '.join(WEEKDAYS)}, or mon-fri"
            raise _Wrong(f"unknown day '{bad}' in '{text}'", hint)
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            raise _Wrong(f"day range '{part}' runs backwards; write it as {last}-{first}", "")
        days.extend(range(start, end + 1))
    return days


def _spans(value: Any) -> Spans:
    """'09:00-17:00', a list of such spans, or 'closed'."""
    spans = []
    for item in as_list(value):
        if not isinstance(item, str):
            raise _Wrong(f'opening hours must be text like "09:00-17:00", not {describe(item)}', "")
        if item.strip().lower() == "closed":
            continue
        span = _span(item.strip())
        if span is None:
            raise _Wrong(f"opening hours '{item}' must look like \"09:00-17:00\"", _hint(item))
        spans.append(span)
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:  # counted twice, due times would come early
            raise _Wrong(f"opening hours {_text(spans)} overlap; join them into one span", "")
    return tuple(spans)


def _hint(item: str) -> str:
    """For a span past midnight: how to write it."""
    match = _SPAN.match(item.strip())
    if match and (int(match[1]), int(match[2])) > (int(match[3]), int(match[4])):
        return " — a span cannot pass midnight: end it at 24:00 and start the next day at 00:00"
    return ""


def _text(spans: list[tuple[time, time]]) -> str:
    return ", ".join(f"{s:%H:%M}-{'24:00' if e == _END_OF_DAY else f'{e:%H:%M}'}" for s, e in spans)


def _span(text: str) -> tuple[time, time] | None:
    match = _SPAN.match(text)
    if not match:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        return None
    start = time(h1, m1)
    end = _END_OF_DAY if h2 == 24 else time(h2, m2)
    return (start, end) if start < end else None


def _holiday(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise problem(f"holiday '{value}' is not a date like 2026-12-25") from None


class CalendarSpec(Spec):
    WHAT: ClassVar = "a calendar"
    MISSING: ClassVar = {
        "timezone": ("a timezone is required", " (e.g. timezone: Europe/Berlin)"),
        "hours": ("opening hours are required", ' (e.g. hours: {mon-fri: "09:00-17:00"})'),
    }
    EMPTY_OK: ClassVar = frozenset({"holidays"})

    timezone: Annotated[str, PlainValidator(_timezone)]
    hours: Annotated[dict[int, Spans], PlainValidator(_week)]
    holidays: Annotated[
        list[Annotated[date, PlainValidator(_holiday)]], BeforeValidator(lambda v: v or [])
    ] = Field(default_factory=list)

    def calendar(self) -> Calendar:
        return Calendar(self.timezone, self.hours, frozenset(self.holidays))


def _not_built_in(name: str) -> str:
    if name == ALWAYS_OPEN:
        raise problem(f"'{ALWAYS_OPEN}' is built in (always open); choose another name")
    return name


CalendarName = Annotated[str, PlainValidator(lambda v: _not_built_in(as_text(v, "a name")))]


def _duration(value: Any, info: ValidationInfo) -> timedelta | None:
    if value is None:
        return None
    key = holder(info)
    text = as_text(value, key)
    duration = parse_duration(text)
    if duration is None:
        raise problem(
            f"{key} '{text}' is not a duration",
            " — write business hours and minutes: 4h, 30m, 1h30m (16h = two 8-hour days)",
        )
    return duration


Duration = Annotated[timedelta | None, PlainValidator(_duration)]


class PolicySpec(Spec):
    WHAT: ClassVar = "an SLA policy"
    EMPTY_OK: ClassVar = frozenset({"first_response", "resolution"})

    first_response: Duration = None
    resolution: Duration = None
    calendar: CalendarRef | None = None

    @model_validator(mode="after")
    def _targets_and_calendar(self, info: ValidationInfo) -> PolicySpec:
        if not (self.first_response or self.resolution):
            raise problem("an SLA policy needs first_response, resolution or both")
        if self.calendar is None and names_of(info).default_calendar is None:
            raise problem(
                "no calendar to count business hours on",
                f" — add calendar: <name> here or to default ({ALWAYS_OPEN}: round the clock)",
            )
        return self


class SlaSpec(Spec):
    EMPTY_OK: ClassVar = frozenset({"policies", "by_priority"})

    policies: Annotated[dict[str, PolicySpec], BeforeValidator(none_as_empty)] = Field(
        default_factory=dict
    )
    by_priority: Annotated[dict[PriorityName, PolicyRef], BeforeValidator(none_as_empty)] = Field(
        default_factory=dict
    )


def build_calendars(specs: dict[str, CalendarSpec]) -> dict[str, Calendar]:
    """Named calendars, plus the built-in 24x7."""
    return {ALWAYS_OPEN: Calendar.always_open(), **{n: s.calendar() for n, s in specs.items()}}


def build_policies(
    sla: SlaSpec | None, calendars: dict[str, Calendar], default_calendar: str | None
) -> tuple[dict[str, SlaPolicy], dict[Priority, str]]:
    """SLA policies by name (counted on their calendar, else the default one), and which
    policy each priority gets by default."""
    if sla is None:
        return {}, {}
    policies = {}
    for name, spec in sla.policies.items():
        calendar = spec.calendar or default_calendar or ALWAYS_OPEN
        policies[name] = SlaPolicy(
            name, spec.first_response, spec.resolution, calendar, calendars[calendar]
        )
    return policies, dict(sla.by_priority)
