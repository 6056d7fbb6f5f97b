"""Business time between many pairs of moments, fast: a per-day index over a Calendar.

`Calendar.between` walks opening intervals from the start on every call; a report over
100,000 tickets asks hundreds of thousands of times. Here each local day's opening
intervals are computed once, with the business time elapsed before that day and the
UTC moment the day begins, so one answer costs a binary search and a few comparisons.
The result equals `Calendar.between`.
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from maildesk.common.business_hours import Calendar

_ZERO = timedelta(0)


class BusinessClock:
    """Answers `between(start, end)` like its Calendar, from a lazily grown day index."""

    def __init__(self, calendar: Calendar):
        self.calendar = calendar
        self._tz = calendar.tz
        self._wall_clock = calendar.hours == Calendar.always_open().hours and not calendar.holidays
        self._first: date | None = None  # the index's first local day
        self._starts: list[datetime] = []  # UTC start of each indexed local day
        self._days: list[list[tuple[datetime, datetime]]] = []  # its opening intervals
        self._before: list[timedelta] = []  # business time from the first day to it
        self._end: datetime | None = None  # UTC end of the last indexed day

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time elapsed from `start` to `end` (zero if end <= start)."""
        if end <= start:
            return _ZERO
        if self._wall_clock:
            return end - start
        before = self._elapsed(start)  # first: it may move the index's origin earlier
        return self._elapsed(end) - before

    def seconds(self, start: datetime, end: datetime) -> float:
        """`between` in seconds."""
        return self.between(start, end).total_seconds()

    def _elapsed(self, moment: datetime) -> timedelta:
        """Business time from the start of the index's first day to `moment`."""
        if self._end is None or not (self._starts[0] <= moment < self._end):
            self._cover(moment.astimezone(self._tz).date())
        index = bisect.bisect_right(self._starts, moment) - 1
        total = self._before[index]
        for begin, end in self._days[index]:
            if moment <= begin:
                break
            total += (moment if moment < end else end) - begin
        return total

    def _cover(self, day: date) -> None:
        """Grow the index to include local `day` (rebuilding it if `day` is earlier)."""
        if self._first is None or day < self._first:
            last = day if self._first is None else max(day, self._last_day())
            self._first, self._starts, self._days, self._before = day, [], [], []
        else:
            last = day
        while self._last_day() < last or not self._days:
            self._append_day()

    def _last_day(self) -> date:
        assert self._first is not None
        return self._first + timedelta(days=len(self._days) - 1)

    def _append_day(self) -> None:
        assert self._first is not None
        day = self._first + timedelta(days=len(self._days))
        before = _ZERO
        if self._days:
            before = self._before[-1] + sum((e - b for b, e in self._days[-1]), _ZERO)
        self._starts.append(_day_start(day, self._tz))
        self._days.append(self.calendar.open_intervals(day))
        self._before.append(before)
        self._end = _day_start(day + timedelta(days=1), self._tz)


def _day_start(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tz).astimezone(UTC)
