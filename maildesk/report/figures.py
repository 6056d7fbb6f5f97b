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

import bisect
import math
from collections import defaultdict
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
    """A ticket with what the report derives from it for one period, computed once.

    Each `*_in` flag says the event happened in the period; durations are measured
    only for events in it, breaches only for tickets created in it.
    """

    row: TicketRow
    created_in: bool
    done_in: bool
    first_response_in: bool
    rating_in: bool
    open_at_end: bool
    first_response_seconds: float | None
    resolution_seconds: float | None
    first_response_breached: bool | None  # None: no first-response target
    resolution_breached: bool | None  # None: no resolution target
    rating_at: datetime | None


def measure(
    rows: Iterable[TicketRow], period: Period, clock: BusinessClock, now: datetime
) -> list[Measured]:
    """Flags, business-hours durations and SLA breaches (as known `now`) for each row."""
    as_of = min(period.end, now)
    result = []
    for row in rows:
        done = row.done_at
        created_in = row.created_at in period
        done_in = done in period
        fr_in = row.first_response_at in period
        rating_at = (row.rated_at or done or row.created_at) if row.rating is not None else None
        fr_breached, res_breached = breaches(row, now) if created_in else (None, None)
        result.append(
            Measured(
                row,
                created_in,
                done_in,
                fr_in,
                rating_at in period and 1 <= (row.rating or 0) <= 5,
                row.created_at < as_of and (done is None or done >= as_of),
                clock.seconds(row.created_at, row.first_response_at) if fr_in else None,
                clock.seconds(row.created_at, done) if done_in else None,
                fr_breached,
                res_breached,
                rating_at,
            )
        )
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
class Tally:
    """Running counts and durations of one group; `figures()` gives the result."""

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

    def add(self, other: Tally) -> None:
        """Fold `other` into this tally (groups that partition the tickets add up)."""
        for name in (
            "created", "resolved", "backlog", "sla_tickets", "sla_breached",
            "first_breached", "resolution_breached", "reopens", "reopened",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.first_response += other.first_response
        self.resolution += other.resolution
        self.ratings = [a + b for a, b in zip(self.ratings, other.ratings, strict=True)]

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


# The group an event counts in, from the ticket and the moment of the event.
Key = Callable[[Measured, datetime], Hashable]


def tally(measured: Iterable[Measured], key: Key, *, backlog: bool = True) -> dict[Hashable, Tally]:
    """A Tally per group: `key` puts each event of the period (and, with `backlog`, each
    ticket open at its end) in a group."""
    tallies: defaultdict[Hashable, Tally] = defaultdict(Tally)
    for m in measured:
        row = m.row
        if m.created_in:
            t = tallies[key(m, row.created_at)]
            t.created += 1
            if row.reopen_count:
                t.reopens += row.reopen_count
                t.reopened += 1
            first, resolution = m.first_response_breached, m.resolution_breached
            if first is not None or resolution is not None:
                t.sla_tickets += 1
                t.sla_breached += 1 if first or resolution else 0
                t.first_breached += 1 if first else 0
                t.resolution_breached += 1 if resolution else 0
        if m.done_in:
            t = tallies[key(m, row.done_at)]
            t.resolved += 1
            t.resolution.append(m.resolution_seconds)
        if m.first_response_in:
            tallies[key(m, row.first_response_at)].first_response.append(m.first_response_seconds)
        if m.rating_in:
            tallies[key(m, m.rating_at)].ratings[row.rating - 1] += 1
        if backlog and m.open_at_end:
            tallies[key(m, row.created_at)].backlog += 1
    return dict(tallies)


EMPTY = Tally().figures()


def histogram(values: Iterable[float], edges_hours: Sequence[float]) -> list[int]:
    """Counts of durations (seconds) below each edge (hours), then at or above the last."""
    counts = [0] * (len(edges_hours) + 1)
    limits = [h * 3600 for h in edges_hours]
    for value in values:
        counts[bisect.bisect_right(limits, value)] += 1
    return counts
