from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from maildesk.common.business_hours import Calendar

BERLIN = Calendar.office("Europe/Berlin", holidays=[date(2026, 12, 25)])


def test_due_time_skips_the_weekend():
    friday_4pm = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 16:00 in Berlin
    assert BERLIN.add(friday_4pm, timedelta(hours=4)) == datetime(2026, 11, 30, 11, 0, tzinfo=UTC)


def test_due_time_skips_a_holiday_and_the_weekend():
    thursday_4pm = datetime(2026, 12, 24, 15, 0, tzinfo=UTC)
    assert BERLIN.add(thursday_4pm, timedelta(hours=2)) == datetime(2026, 12, 28, 9, 0, tzinfo=UTC)


def test_elapsed_business_time_over_a_weekend():
    start = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    assert BERLIN.between(start, datetime(2026, 11, 30, 11, 0, tzinfo=UTC)) == timedelta(hours=4)


def test_start_outside_hours_counts_from_next_opening():
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert BERLIN.add(saturday, timedelta(minutes=30)) == datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
    assert not BERLIN.is_open(saturday)


def test_dst_change_keeps_local_opening_hours():
    # Berlin leaves summer time on 25 Oct 2026: 09:00 local is 07:00 UTC before, 08:00 after.
    friday = datetime(2026, 10, 23, 14, 0, tzinfo=UTC)  # 16:00 CEST
    assert BERLIN.add(friday, timedelta(hours=2)) == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)


def test_always_open_is_wall_clock():
    start = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert Calendar.always_open().add(start, timedelta(hours=50)) == start + timedelta(hours=50)


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1)),
    st.integers(min_value=1, max_value=60 * 24 * 20),
)
def test_a_calendar_in_use_gives_the_due_times_of_a_new_one(start, minutes):
    # A calendar remembers each day's opening hours in UTC: a daemon's calendar, asked
    # thousands of times across DST changes and holidays, must answer as a new one does.
    moment, duration = start.replace(tzinfo=UTC), timedelta(minutes=minutes)
    fresh = Calendar.office("Europe/Berlin", holidays=[date(2026, 12, 25)])
    # It also remembers its latest answers (a batch asks about one moment many times).
    for _ in range(2):
        assert BERLIN.add(moment, duration) == fresh.add(moment, duration)
        assert BERLIN.is_open(moment) == fresh.is_open(moment)
    assert BERLIN.between(moment, moment + duration) == fresh.between(moment, moment + duration)
