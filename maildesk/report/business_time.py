"""Business time between many pairs of moments, fast: a per-day index over a Calendar.

`Calendar.between` walks opening intervals from the start on every call; a report over
100,000 tickets asks hundreds of thousands of times. Here each local day's intervals
are computed once, with the business time elapsed before that day, so one answer costs
one time-zone conversion and a few comparisons. The result equals `Calendar.between`.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from maildesk.business_hours import Calendar

_ZERO = timedelta(0)


class BusinessClock:
    """Answers `between(start, end)` like its Calendar, from a lazily grown day index."""

    def __init__(self, calendar: Calendar):
        self.calendar = calendar
        self._tz = calendar.tz
        self._origin: date | None = None
        self._days: list[list[tuple[datetime, datetime]]] = []
        self._before: list[timedelta] = []  # business time from the origin to each day

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time elapsed from `start` to `end` (zero if end <= start)."""
        if end <= start:
            return _ZERO
        return self._elapsed(end) - self._elapsed(start)

    def seconds(self, start: datetime, end: datetime) -> float:
        """`between` in seconds."""
        return self.between(start, end).total_seconds()

    def _elapsed(self, moment: datetime) -> timedelta:
        """Business time from the start of the index's first day to `moment`."""
        index = self._index(moment.astimezone(self._tz).date())
        total = self._before[index]
        for begin, end in self._days[index]:
            if moment <= begin:
                break
            total += (moment if moment < end else end) - begin
        return total

    def _index(self, day: date) -> int:
        if self._origin is None:
            self._origin = day
        if day < self._origin:
            self._rebuild_from(day)
        assert self._origin is not None
        index = (day - self._origin).days
        while len(self._days) <= index:
            self._append_day()
        return index

    def _append_day(self) -> None:
        assert self._origin is not None
        day = self._origin + timedelta(days=len(self._days))
        before = _ZERO
        if self._days:
            before = self._before[-1] + sum((e - b for b, e in self._days[-1]), _ZERO)
        self._days.append(self.calendar.open_intervals(day))
        self._before.append(before)

    def _rebuild_from(self, day: date) -> None:
        # Moving the origin earlier shifts every offset; rebuild up to the old last day.
        assert self._origin is not None
        last = self._origin + timedelta(days=len(self._days) - 1)
        self._origin, self._days, self._before = day, [], []
        for _ in range((last - day).days + 1):
            self._append_day()
