"""Every JSON output writes times one way: ISO 8601 in UTC with a `Z` (README, JSON formats)."""

from datetime import UTC, datetime, timedelta, timezone

from maildesk.common.json_time import json_time


def test_times_are_written_in_utc_with_a_z_whatever_zone_they_carry():
    warsaw = timezone(timedelta(hours=1))
    assert json_time(datetime(2026, 11, 23, 11, 0, tzinfo=warsaw)) == "2026-11-23T10:00:00Z"
    assert json_time(datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)) == "2026-11-23T10:00:05Z"
    assert json_time(None) is None  # a time not reached yet (resolved_at of an open ticket)
