"""Assemble a Report from ticket rows: totals, groups, volume over time, load per agent.

Pure: the rows, the period, `now` and the business-hours Calendar come in as arguments.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from maildesk.common.business_hours import Calendar
from maildesk.report.business_time import BusinessClock
from maildesk.report.figures import (
    EMPTY,
    Figures,
    Key,
    Measured,
    Period,
    Tally,
    TicketRow,
    histogram,
    measure,
    tally,
)

GroupBy = Literal["queue", "agent", "priority", "day", "week", "month"]
GROUPINGS: tuple[str, ...] = ("queue", "agent", "priority", "day", "week", "month")
TIME_UNITS = ("day", "week", "month")
PRIORITY_ORDER = ("urgent", "high", "normal", "low")
UNASSIGNED = "(unassigned)"
# Response-time distribution: business hours at which one bar ends and the next begins.
HISTOGRAM_EDGES_HOURS = (1, 4, 8, 24, 72)


@dataclass(frozen=True)
class Group:
    """One row of the report: a queue, an agent, a priority or a stretch of time."""

    key: str | None  # the queue/agent address/priority/bucket label; None: unassigned
    label: str
    figures: Figures
    start: datetime | None = None  # time buckets only
    end: datetime | None = None


@dataclass(frozen=True)
class RatingComment:
    """A comment a requester left with a rating."""

    ref: str
    rating: int
    comment: str
    rated_at: datetime


@dataclass(frozen=True)
class Report:
    """What `maildesk report` shows; `to_dict` gives its documented JSON form."""

    period: Period
    as_of: datetime  # the end of the period, or now if that is earlier
    generated_at: datetime
    calendar: Calendar
    by: str | None
    totals: Figures
    groups: list[Group]
    volume_unit: str
    volume: list[Group]  # time buckets, for the volume chart
    load: list[Group]  # per agent, most open tickets first
    first_response_histogram: list[int]
    resolution_histogram: list[int]
    comments: list[RatingComment]


def build_report(
    rows: Sequence[TicketRow],
    period: Period,
    *,
    now: datetime,
    calendar: Calendar | None = None,
    by: str | None = None,
    agent_names: dict[str, str] | None = None,
    comments: Iterable[RatingComment] = (),
) -> Report:
    """The report over `rows` for `period`, with durations in `calendar`'s business hours."""
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"cannot group by {by!r}; choose one of {', '.join(GROUPINGS)}")
    calendar = calendar or Calendar.always_open()
    as_of = min(period.end, now)
    if period.start is None:
        period = Period(min((r.created_at for r in rows), default=as_of), period.end)
    measured = measure(rows, period, BusinessClock(calendar), now)
    names = agent_names or {}
    per_agent = tally(measured, _attribute_key("agent"))
    totals = Tally()
    for part in per_agent.values():  # every ticket has one assignee (or none): a partition
        totals.add(part)
    load = _groups(per_agent, "agent", names)
    load.sort(key=lambda g: (g.key is None, -g.figures.backlog, -g.figures.resolved, g.label))
    unit = _volume_unit(period)
    volume = _by_time(measured, period, as_of, unit, calendar.tz)
    if by in TIME_UNITS:
        groups = volume if by == unit else _by_time(measured, period, as_of, by, calendar.tz)
    elif by == "agent":
        groups = _groups(per_agent, by, names)
    elif by is not None:
        groups = _groups(tally(measured, _attribute_key(by)), by, names)
    else:
        groups = []
    return Report(
        period=period,
        as_of=as_of,
        generated_at=now,
        calendar=calendar,
        by=by,
        totals=totals.figures(),
        groups=groups,
        volume_unit=unit,
        volume=volume,
        load=load,
        first_response_histogram=histogram(
            (m.first_response_seconds for m in measured if m.first_response_seconds is not None),
            HISTOGRAM_EDGES_HOURS,
        ),
        resolution_histogram=histogram(
            (m.resolution_seconds for m in measured if m.resolution_seconds is not None),
            HISTOGRAM_EDGES_HOURS,
        ),
        comments=sorted(
            (c for c in comments if c.rated_at in period), key=lambda c: c.rated_at, reverse=True
        ),
    )


def _attribute_key(by: str) -> Key:
    """Group by a ticket's queue, priority or assignee ('agent')."""
    index = TicketRow._fields.index("assignee" if by == "agent" else by)

    def key(m: Measured, moment: datetime) -> str:
        value = m.row[index]
        return UNASSIGNED if value is None else value  # addresses never look like this

    return key


def _groups(tallies: dict[Hashable, Tally], by: str, names: dict[str, str]) -> list[Group]:
    groups = [
        Group(None, UNASSIGNED, t.figures())
        if key == UNASSIGNED
        else Group(str(key), names.get(str(key), str(key)), t.figures())
        for key, t in tallies.items()
    ]
    groups.sort(key=lambda g: _attribute_order(by, g))
    return groups


def _attribute_order(by: str, group: Group) -> tuple[int, str]:
    if group.key is None:
        return len(PRIORITY_ORDER) + 1, ""  # unassigned last
    if by == "priority" and group.key in PRIORITY_ORDER:
        return PRIORITY_ORDER.index(group.key), ""
    return len(PRIORITY_ORDER), group.label.lower()


def _by_time(
    measured: list[Measured], period: Period, as_of: datetime, unit: str, tz: ZoneInfo
) -> list[Group]:
    """One group per day/week/month of the period (empty ones too), in order."""
    assert period.start is not None
    buckets = time_buckets(period.start, period.end, unit, tz)
    starts = [start for _, start, _ in buckets]

    def bucket(m: Measured, moment: datetime) -> int:
        return bisect.bisect_right(starts, moment) - 1

    found = tally(measured, bucket, backlog=False)
    # Open at the end of each bucket: created before it minus resolved before it.
    created = sorted(m.row.created_at for m in measured)
    done = sorted(d for m in measured if (d := m.row.done_at) is not None)
    groups = []
    for index, (label, start, end) in enumerate(buckets):
        moment = min(end, as_of)
        backlog = bisect.bisect_left(created, moment) - bisect.bisect_left(done, moment)
        tallied = found[index].figures() if index in found else EMPTY
        figures = dataclasses.replace(tallied, backlog=max(backlog, 0))
        groups.append(Group(label, label, figures, start, end))
    return groups


def _volume_unit(period: Period) -> str:
    """Days for up to two months, weeks for up to two years, months beyond."""
    assert period.start is not None
    span = period.end - period.start
    if span <= timedelta(days=62):
        return "day"
    return "week" if span <= timedelta(days=731) else "month"


def bucket_label(moment: datetime, unit: str, tz: ZoneInfo) -> str:
    """The day (2026-11-23), ISO week (2026-W48) or month (2026-11) of `moment` in `tz`."""
    local = moment.astimezone(tz).date()
    if unit == "day":
        return local.isoformat()
    if unit == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{local.year}-{local.month:02d}"


def time_buckets(
    start: datetime, end: datetime, unit: str, tz: ZoneInfo
) -> list[tuple[str, datetime, datetime]]:
    """(label, start, end) of each day/week/month touching [start, end), clipped to it."""
    day = start.astimezone(tz).date()
    first = _bucket_start(day, unit)
    result = []
    while True:
        following = _next_bucket(first, unit)
        b_start = max(datetime.combine(first, time(0), tz).astimezone(UTC), start)
        b_end = min(datetime.combine(following, time(0), tz).astimezone(UTC), end)
        if b_start >= end:
            break
        result.append((bucket_label(b_start, unit, tz), b_start, b_end))
        first = following
    return result


def _bucket_start(day: date, unit: str) -> date:
    if unit == "week":
        return day - timedelta(days=day.weekday())
    if unit == "month":
        return day.replace(day=1)
    return day


def _next_bucket(day: date, unit: str) -> date:
    if unit == "day":
        return day + timedelta(days=1)
    if unit == "week":
        return day + timedelta(days=7)
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)
