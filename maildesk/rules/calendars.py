"""Business-hours calendars and SLA policies from rules.yaml.

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

import re
from datetime import date, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from maildesk.common.business_hours import WEEKDAYS, Calendar
from maildesk.common.domain import Priority
from maildesk.common.yamlfile import Path_, did_you_mean
from maildesk.rules.definitions import SlaPolicy
from maildesk.rules.schema import CALENDAR_KEYS, POLICY_KEYS, SLA_KEYS, Scope, parse_duration

ALWAYS_OPEN = "24x7"  # a built-in calendar every file can name
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_END_OF_DAY = time(23, 59, 59, 999999)  # how Calendar spells "until midnight"
_PENDING = Calendar.always_open()  # a policy's calendar until the default one is known


def load_calendars(scope: Scope, raw: Any) -> dict[str, Calendar]:
    """Named calendars, plus the built-in 24x7."""
    calendars = {ALWAYS_OPEN: Calendar.always_open()}
    if raw is None:
        return calendars
    spec = scope.mapping(("calendars",), raw, "calendars")
    for name, body in (spec or {}).items():
        inner = scope.within(f"calendar '{name}'")
        path = ("calendars", name)
        if name == ALWAYS_OPEN:
            inner.error(path, f"'{ALWAYS_OPEN}' is built in (always open); choose another name")
            continue
        # A broken calendar gets a stand-in, so references to it are not reported too;
        # the problem already recorded keeps the file from loading.
        calendars[str(name)] = _calendar(inner, path, body) or Calendar.always_open()
    return calendars


def _calendar(scope: Scope, path: Path_, raw: Any) -> Calendar | None:
    body = scope.mapping(path, raw, "a calendar")
    if body is None:
        return None
    scope.unknown_keys(path, body, CALENDAR_KEYS)
    zone = _timezone(scope, (*path, "timezone"), body.get("timezone"))
    hours = _hours(scope, (*path, "hours"), body.get("hours"))
    holidays = _holidays(scope, (*path, "holidays"), body.get("holidays") or [])
    if zone is None or hours is None or holidays is None:
        return None
    return Calendar(zone, hours, frozenset(holidays))


def _timezone(scope: Scope, path: Path_, value: Any) -> str | None:
    if value is None:
        scope.error(path, "a timezone is required (e.g. timezone: Europe/Berlin)")
        return None
    text = scope.text(path, value, "timezone")
    if text is None:
        return None
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(text, sorted(available_timezones()))
        scope.error(path, f"unknown timezone '{text}'", hint or " — use an IANA name like UTC")
        return None
    return text


def _hours(scope: Scope, path: Path_, raw: Any) -> dict[int, tuple[tuple[time, time], ...]] | None:
    if raw is None:
        scope.error(path, 'opening hours are required (e.g. hours: {mon-fri: "09:00-17:00"})')
        return None
    spec = scope.mapping(path, raw, "hours")
    if spec is None:
        return None
    result: dict[int, tuple[tuple[time, time], ...]] = {}
    ok = True
    for key, value in spec.items():
        days = _days(scope, (*path, key), str(key))
        spans = _spans(scope, (*path, key), value)
        if days is None or spans is None:
            ok = False
            continue
        for day in days:
            if day in result:
                scope.error((*path, key), f"{WEEKDAYS[day]} is given opening hours twice")
                ok = False
            result[day] = spans
    if ok and not any(result.values()):
        scope.error(path, "the calendar is never open; give at least one day opening hours")
        ok = False
    return result if ok else None


def _days(scope: Scope, path: Path_, text: str) -> list[int] | None:
    """'mon-fri', 'sat', 'mon,wed,fri' -> weekday numbers (0 = Monday)."""
    days: list[int] = []
    for part in text.lower().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            bad = first if first not in WEEKDAYS else last
            hint = did_you_mean(bad, WEEKDAYS) or f" — use {', '.join(WEEKDAYS)}, or mon-fri"
            scope.error(path, f"unknown day '{bad}' in '{text}'", hint)
            return None
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            scope.error(path, f"day range '{part}' runs backwards; write it as {last}-{first}")
            return None
        days.extend(range(start, end + 1))
    return days


def _spans(scope: Scope, path: Path_, value: Any) -> tuple[tuple[time, time], ...] | None:
    """'09:00-17:00', a list of such spans, or 'closed'."""
    items = value if isinstance(value, list) else [value]
    spans = []
    for item in items:
        text = scope.text(path, item, "opening hours")
        if text is None:
            return None
        if text.strip().lower() == "closed":
            continue
        span = _span(text.strip())
        if span is None:
            scope.error(path, f"opening hours '{text}' must look like \"09:00-17:00\"")
            return None
        spans.append(span)
    return tuple(sorted(spans))


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


def _holidays(scope: Scope, path: Path_, raw: Any) -> list[date] | None:
    if not isinstance(raw, list):
        scope.error(path, "holidays must be a list of dates like 2026-12-25")
        return None
    result = []
    for index, item in enumerate(raw):
        if isinstance(item, date):
            result.append(item)
            continue
        try:
            result.append(date.fromisoformat(str(item)))
        except ValueError:
            scope.error((*path, index), f"holiday '{item}' is not a date like 2026-12-25")
            return None
    return result


def load_sla(
    scope: Scope, raw: Any, calendars: dict[str, Calendar]
) -> tuple[dict[str, SlaPolicy], dict[Priority, str]]:
    """SLA policies by name, and which policy each priority gets by default."""
    if raw is None:
        return {}, {}
    spec = scope.mapping(("sla",), raw, "sla")
    if spec is None:
        return {}, {}
    scope.unknown_keys(("sla",), spec, SLA_KEYS)
    policies: dict[str, SlaPolicy] = {}
    raw_policies = scope.mapping(("sla", "policies"), spec.get("policies") or {}, "sla policies")
    for name, body in (raw_policies or {}).items():
        inner = scope.within(f"SLA policy '{name}'")
        policy = _policy(inner, ("sla", "policies", name), str(name), body, calendars)
        if policy is not None:
            policies[str(name)] = policy
    by_priority = _by_priority(scope, spec.get("by_priority"), raw_policies or {})
    return policies, by_priority


def _policy(
    scope: Scope,
    path: Path_,
    name: str,
    raw: Any,
    calendars: dict[str, Calendar],
) -> SlaPolicy | None:
    body = scope.mapping(path, raw, "an SLA policy")
    if body is None:
        return None
    scope.unknown_keys(path, body, POLICY_KEYS)
    targets = {}
    for key in ("first_response", "resolution"):
        if body.get(key) is None:
            targets[key] = None
            continue
        text = scope.text((*path, key), body[key], key)
        duration = parse_duration(text) if text is not None else None
        if duration is None and text is not None:
            scope.error(
                (*path, key),
                f"{key} '{text}' is not a duration",
                " — write business hours and minutes: 4h, 30m, 1h30m (16h = two 8-hour days)",
            )
            return None
        targets[key] = duration
    if not any(targets.values()):
        scope.error(path, "an SLA policy needs first_response, resolution or both")
        return None
    if "calendar" not in body:  # fill_default_calendar gives it the default route's calendar
        return SlaPolicy(name, targets["first_response"], targets["resolution"], "", _PENDING)
    calendar_name = body["calendar"]
    found = scope.reference((*path, "calendar"), calendar_name, calendars, "calendar", "defined")
    if found is None:
        return None
    return SlaPolicy(
        name, targets["first_response"], targets["resolution"], found, calendars[found]
    )


def _by_priority(scope: Scope, raw: Any, policies: dict[Any, Any]) -> dict[Priority, str]:
    if raw is None:
        return {}
    spec = scope.mapping(("sla", "by_priority"), raw, "by_priority")
    result: dict[Priority, str] = {}
    for key, name in (spec or {}).items():
        path = ("sla", "by_priority", key)
        priority = scope.priority(path, key)
        policy = scope.reference(path, name, [str(p) for p in policies], "SLA policy", "defined")
        if priority is not None and policy is not None:
            result[priority] = policy
    return result


def fill_default_calendar(
    scope: Scope,
    policies: dict[str, SlaPolicy],
    calendars: dict[str, Calendar],
    default_calendar: str | None,
) -> dict[str, SlaPolicy]:
    """Give policies without a calendar the default one; without a default, that's a problem."""
    result = {}
    for name, policy in policies.items():
        if policy.calendar_name:
            result[name] = policy
        elif default_calendar is None:
            scope.within(f"SLA policy '{name}'").error(
                ("sla", "policies", name),
                "no calendar to count business hours on",
                f" — add calendar: <name> here or to default ({ALWAYS_OPEN}: round the clock)",
            )
        else:
            result[name] = SlaPolicy(
                name,
                policy.first_response,
                policy.resolution,
                default_calendar,
                calendars[default_calendar],
            )
    return result
