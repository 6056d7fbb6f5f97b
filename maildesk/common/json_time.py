"""Times as every JSON output of maildesk writes them: ISO 8601 in UTC, with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def json_time(value: datetime | None) -> str | None:
    """`2026-11-23T10:00:00Z` (None stays None, for a time not reached yet)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")
