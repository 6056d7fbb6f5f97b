"""Business-hours arithmetic: SLA due times and elapsed working time.

A Calendar has weekly opening hours in a time zone, plus holidays. All inputs and
outputs are aware UTC datetimes; local time only matters inside.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Calendar:
    """Opening hours per weekday (0 = Monday) as (start, end) local times, and holidays."""

    timezone: str = "UTC"
    hours: dict[int, tuple[tuple[time, time], ...]] = field(default_factory=dict)
    holidays: frozenset[date] = frozenset()
    # Each day's opening intervals in UTC, worked out once: every new ticket's SLA due
    # times walk them, and building aware datetimes is most of that walk's cost.
    _utc_days: dict[date, list[tuple[datetime, datetime]]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )
    # Answers for the latest moments asked about: a batch of mail is routed at one
    # `now`, so every new ticket in it asks for the same due times and opening state.
    _answers: dict[tuple[datetime, timedelta | None], datetime | bool] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def always_open(cls) -> Calendar:
        """A 24/7 calendar: business time equals wall-clock time."""
        full = ((time(0), time(23, 59, 59, 999999)),)
        return cls("UTC", dict.fromkeys(range(7), full))

    @classmethod
    def office(
        cls,
        timezone: str,
        days: Iterable[int] = range(5),
        start: time = time(9),
        end: time = time(17),
        holidays: Iterable[date] = (),
    ) -> Calendar:
        """Same opening hours on each of `days` (0 = Monday)."""
        return cls(timezone, {d: ((start, end),) for d in days}, frozenset(holidays))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_open(self, moment: datetime) -> bool:
        """True when `moment` falls inside opening hours."""
        key = (moment, None)
        found = self._answers.get(key)
        if found is None:
            local = moment.astimezone(self.tz)
            found = any(s <= local < e for s, e in self._intervals_on(local.date()))
            self._remember(key, found)
        return bool(found)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of business time after `start`."""
        if duration <= timedelta(0):
            return start
        key = (start, duration)
        found = self._answers.get(key)
        if found is None:
            found = self._add(start, duration)
            self._remember(key, found)
        assert isinstance(found, datetime)
        return found

    def _remember(self, key: tuple[datetime, timedelta | None], answer: datetime | bool) -> None:
        if len(self._answers) >= 64:  # only the latest moments are asked about again
            self._answers.clear()
        self._answers[key] = answer

    def _add(self, start: datetime, duration: timedelta) -> datetime:
        remaining = duration
        for begin, end in self._intervals_from(start):
            span = end - begin
            if span >= remaining:
                return begin + remaining
            remaining -= span
        raise ValueError("calendar has no opening hours")  # _intervals_from never ends otherwise

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time elapsed from `start` to `end` (zero if end <= start)."""
        total = timedelta(0)
        if end <= start:
            return total
        for begin, stop in self._intervals_from(start):
            if begin >= end:
                break
            total += min(stop, end) - begin
        return total

    def open_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The opening intervals of local `day`, as UTC (begin, end) pairs in order."""
        return sorted((b.astimezone(UTC), e.astimezone(UTC)) for b, e in self._intervals_on(day))

    def _intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        if day in self.holidays:
            return []
        tz = self.tz
        result = []
        for s, e in self.hours.get(day.weekday(), ()):
            begin = datetime.combine(day, s, tz)
            end = (
                datetime.combine(day, e, tz)
                if e != time(23, 59, 59, 999999)
                else (datetime.combine(day + timedelta(days=1), time(0), tz))
            )
            result.append((begin, end))
        return result

    def _utc_intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        found = self._utc_days.get(day)
        if found is None:
            found = [(b.astimezone(UTC), e.astimezone(UTC)) for b, e in self._intervals_on(day)]
            if len(self._utc_days) > 4000:  # a long-running daemon walks into new days
                self._utc_days.clear()
            self._utc_days[day] = found
        return found

    def _intervals_from(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Opening intervals (UTC) from `start` onwards, clipped at `start`."""
        if not any(self.hours.values()):
            raise ValueError("calendar has no opening hours")
        day = start.astimezone(self.tz).date()
        empty_days = 0
        while empty_days < 3700:  # ten years of holidays would be a broken calendar
            intervals = self._utc_intervals_on(day)
            empty_days = 0 if intervals else empty_days + 1
            for begin_utc, end_utc in intervals:
                if end_utc <= start:
                    continue
                yield max(begin_utc, start), end_utc
            day += timedelta(days=1)
        raise ValueError("calendar has no opening hours in the next ten years")
