"""The report's fast business-time index agrees with Calendar.between, in any order of use."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from maildesk.common.business_hours import Calendar
from maildesk.report.business_time import BusinessClock

CALENDARS = [
    Calendar.office("Europe/Berlin", holidays=[date(2026, 12, 25), date(2026, 3, 30)]),
    Calendar.office("America/New_York", days=range(6), start=time(8), end=time(20)),
    Calendar(
        "Asia/Kolkata",
        {0: ((time(9), time(12, 30)), (time(13, 30), time(18))), 4: ((time(10), time(14)),)},
    ),
    Calendar.always_open(),
]
BASE = datetime(2026, 1, 1, tzinfo=UTC)
moments = st.integers(min_value=0, max_value=400 * 24 * 60).map(
    lambda m: BASE + timedelta(minutes=m, seconds=m % 7)
)
pairs = st.lists(st.tuples(moments, moments), min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(calendar=st.sampled_from(CALENDARS), pairs=pairs)
def test_clock_equals_calendar_between(calendar, pairs):
    clock = BusinessClock(calendar)  # one clock for many questions, as in a report
    for start, end in pairs:
        assert clock.between(start, end) == calendar.between(start, end)


def test_clock_across_the_change_to_summer_time():
    berlin = CALENDARS[0]
    clock = BusinessClock(berlin)
    friday = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)  # 16:00 CET; summer time from Sunday
    tuesday = datetime(2026, 3, 31, 8, 0, tzinfo=UTC)  # 10:00 CEST; Monday 30 Mar a holiday
    assert clock.between(friday, tuesday) == timedelta(hours=2)
    assert clock.seconds(tuesday, friday) == 0
