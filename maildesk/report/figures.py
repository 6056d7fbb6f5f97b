"""The report's figures, computed from plain ticket rows: no database, no clock.

Every definition here is the one the README documents; each figure counts an event
in the period in which it happened:

- created: tickets whose `created_at` is in the period.
- resolved: tickets whose resolution moment is in the period. The resolution moment
  is `resolved_at`, or `closed_at` for a ticket closed without being resolved.
- backlog: tickets open at the end of the period (or now, if that is earlier):
  created before it and not resolved before it.
- first response time: business time from `created_at` to `first_response_at`, for
  tickets first answered in the period.
- resolution time: business time from `created_at` to the resolution moment, for
  tickets resolved in the period.
- SLA: tickets created in the period that have a target (see `breaches`), judged as
  known when the report runs; the share is breached / with a target.
- reopens: the sum of `reopen_count` over tickets created in the period.
- satisfaction: ratings given in the period (`rated_at`; a rating without one counts
  at the resolution moment).

Median and 90th percentile use linear interpolation between the nearest ranks
(`quantile`), as spreadsheets' PERCENTILE.INC and numpy's default do.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from maildesk.report.business_time import BusinessClock


class TicketRow(NamedTuple):
    """The columns of one ticket that the report reads."""

    id: int
    ref: str
    queue: str
    priority: str
    assignee: str | None
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    first_response_due: datetime | None
    resolution_due: datetime | None
    sla_state: dict[str, Any] | None
    reopen_count: int
    rating: int | None
    rated_at: datetime | None

    @property
    def done_at(self) -> datetime | None:
        """The resolution moment: resolved, or closed without being resolved."""
        return self.resolved_at or self.closed_at


@dataclass(frozen=True)
class Period:
    """[start, end): the reporting period; `start` None means since the first ticket."""

    start: datetime | None
    end: datetime

    def __contains__(self, moment: datetime | None) -> bool:
        if moment is None:
            return False
        return (self.start is None or moment >= self.start) and moment < self.end


class Measured(NamedTuple):
    """A ticket with what the report derives from it, computed once."""

    row: TicketRow
    first_response_seconds: float | None
    resolution_seconds: float | None
    first_response_breached: bool | None  # None: no first-response target
    resolution_breached: bool | None  # None: no resolution target
    rating_at: datetime | None


def measure(rows: Iterable[TicketRow], clock: BusinessClock, now: datetime) -> list[Measured]:
    """Business-hours durations and SLA breaches (as known `now`) for each row."""
    result = []
    for row in rows:
        done = row.done_at
        fr = clock.seconds(row.created_at, row.first_response_at) if row.first_response_at else None
        res = clock.seconds(row.created_at, done) if done else None
        fr_breached, res_breached = breaches(row, now)
        rating_at = (row.rated_at or done or row.created_at) if row.rating is not None else None
        result.append(Measured(row, fr, res, fr_breached, res_breached, rating_at))
    return result


def breaches(row: TicketRow, now: datetime) -> tuple[bool | None, bool | None]:
    """(first response breached, resolution breached); None where there is no target.

    The SLA engine's record wins: `sla_state["first_response_breached"]` and
    `sla_state["resolution_breached"]` (booleans). Where a key is missing, the breach is
    derived: a due time is set and the response (or resolution) came after it, or has
    not come although the due time has passed by `now`.
    """
    state = row.sla_state or {}
    first = _breach(
        state.get("first_response_breached"), row.first_response_due, row.first_response_at, now
    )
    resolution = _breach(state.get("resolution_breached"), row.resolution_due, row.done_at, now)
    return first, resolution


def _breach(
    recorded: Any, due: datetime | None, done: datetime | None, now: datetime
) -> bool | None:
    if isinstance(recorded, bool):
        return recorded
    if due is None:
        return None
    return (done or now) > due


def quantile(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of sorted values, interpolating linearly; None if empty."""
    if not ordered:
        return None
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Durations:
    """How many durations were measured, their median and 90th percentile (seconds)."""

    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: list[float]) -> Durations:
        ordered = sorted(values)
        return cls(len(ordered), quantile(ordered, 0.5), quantile(ordered, 0.9))


@dataclass(frozen=True)
class SlaFigures:
    """Tickets with an SLA target and how many breached it (either target counts)."""

    tickets: int
    breached: int
    first_response_breached: int
    resolution_breached: int

    @property
    def share(self) -> float | None:
        return self.breached / self.tickets if self.tickets else None


@dataclass(frozen=True)
class Satisfaction:
    """Ratings 1–5: how many, their mean, and the share of 4 and 5 ("satisfied")."""

    distribution: tuple[int, int, int, int, int]  # how many 1s, 2s, ... 5s

    @property
    def ratings(self) -> int:
        return sum(self.distribution)

    @property
    def average(self) -> float | None:
        total = sum(n * (i + 1) for i, n in enumerate(self.distribution))
        return total / self.ratings if self.ratings else None

    @property
    def satisfied(self) -> int:
        return self.distribution[3] + self.distribution[4]

    @property
    def satisfied_share(self) -> float | None:
        return self.satisfied / self.ratings if self.ratings else None


@dataclass(frozen=True)
class Figures:
    """Everything the report says about one group of tickets in one period."""

    created: int
    resolved: int
    backlog: int
    first_response: Durations
    resolution: Durations
    sla: SlaFigures
    reopens: int
    reopened_tickets: int
    satisfaction: Satisfaction


@dataclass
class _Tally:
    created: int = 0
    resolved: int = 0
    backlog: int = 0
    first_response: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    sla_tickets: int = 0
    sla_breached: int = 0
    first_breached: int = 0
    resolution_breached: int = 0
    reopens: int = 0
    reopened: int = 0
    ratings: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])

    def figures(self) -> Figures:
        return Figures(
            created=self.created,
            resolved=self.resolved,
            backlog=self.backlog,
            first_response=Durations.of(self.first_response),
            resolution=Durations.of(self.resolution),
            sla=SlaFigures(
                self.sla_tickets, self.sla_breached, self.first_breached, self.resolution_breached
            ),
            reopens=self.reopens,
            reopened_tickets=self.reopened,
            satisfaction=Satisfaction(tuple(self.ratings)),  # type: ignore[arg-type]
        )


# Where an event falls: the group it counts in, or None when it is outside the report.
Placer = Callable[[TicketRow, datetime | None], Hashable | None]


def tally(
    measured: Iterable[Measured], place: Placer, open_place: Callable[[TicketRow], Hashable | None]
) -> dict[Hashable, Figures]:
    """Figures per group: `place` puts each event in a group, `open_place` each open ticket."""
    tallies: dict[Hashable, _Tally] = {}

    def at(key: Hashable) -> _Tally:
        found = tallies.get(key)
        if found is None:
            found = tallies[key] = _Tally()
        return found

    for m in measured:
        row = m.row
        key = place(row, row.created_at)
        if key is not None:
            _count_created(at(key), m)
        key = place(row, row.done_at)
        if key is not None:
            t = at(key)
            t.resolved += 1
            if m.resolution_seconds is not None:
                t.resolution.append(m.resolution_seconds)
        key = place(row, row.first_response_at)
        if key is not None and m.first_response_seconds is not None:
            at(key).first_response.append(m.first_response_seconds)
        key = place(row, m.rating_at)
        if key is not None and row.rating is not None and 1 <= row.rating <= 5:
            at(key).ratings[row.rating - 1] += 1
        key = open_place(row)
        if key is not None:
            at(key).backlog += 1
    return {key: t.figures() for key, t in tallies.items()}


def _count_created(t: _Tally, m: Measured) -> None:
    t.created += 1
    t.reopens += m.row.reopen_count or 0
    t.reopened += 1 if m.row.reopen_count else 0
    if m.first_response_breached is not None or m.resolution_breached is not None:
        t.sla_tickets += 1
        t.sla_breached += 1 if (m.first_response_breached or m.resolution_breached) else 0
        t.first_breached += 1 if m.first_response_breached else 0
        t.resolution_breached += 1 if m.resolution_breached else 0


def is_open_at(row: TicketRow, moment: datetime) -> bool:
    """Created before `moment` and not resolved before it."""
    done = row.done_at
    return row.created_at < moment and (done is None or done >= moment)


EMPTY = _Tally().figures()


def histogram(values: Iterable[float], edges_hours: Sequence[float]) -> list[int]:
    """Counts of durations (seconds) below each edge (hours), then at or above the last."""
    counts = [0] * (len(edges_hours) + 1)
    limits = [h * 3600 for h in edges_hours]
    for value in values:
        index = next((i for i, limit in enumerate(limits) if value < limit), len(limits))
        counts[index] += 1
    return counts
