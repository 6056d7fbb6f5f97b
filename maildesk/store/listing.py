"""`maildesk tickets list`: the query and its stable JSON fields, on a DB-API connection.

Plain SQL, no SQLAlchemy, so the command starts fast (store/read_only.py opens the
connection); the ORM's callers hand in their session's own connection.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from maildesk.common.json_time import json_time

# The ticket columns a summary shows, in the order the query selects them.
SUMMARY_COLUMNS = (
    "ref",
    "subject",
    "status",
    "priority",
    "queue",
    "assignee",
    "requester",
    "created_at",
    "updated_at",
    "tags",
)

_LIST = (
    f"SELECT {', '.join(f't.{c}' for c in SUMMARY_COLUMNS)}, coalesce(counts.n, 0) "
    "FROM tickets t LEFT OUTER JOIN "
    "(SELECT ticket_id, count(id) AS n FROM messages GROUP BY ticket_id) counts "
    "ON counts.ticket_id = t.id"
)
_MARK = {"sqlite": "?", "postgresql": "%s"}  # the drivers' parameter styles


def ticket_summary(fields: Mapping[str, Any], message_count: int) -> dict[str, Any]:
    """The fields of `tickets list --json` (a stable, documented format), from a ticket's
    SUMMARY_COLUMNS (datetimes in UTC, tags a list)."""
    return {
        "ref": fields["ref"],
        "subject": fields["subject"],
        "status": fields["status"],
        "priority": fields["priority"],
        "queue": fields["queue"],
        "assignee": fields["assignee"],
        "requester": fields["requester"],
        "created_at": json_time(fields["created_at"]),
        "updated_at": json_time(fields["updated_at"]),
        "message_count": message_count,
        "tags": list(fields["tags"] or []),
    }


def list_tickets(
    connection: Any,
    dialect: str,
    *,
    status: str | None = None,
    queue: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Tickets, newest first, optionally filtered by status and queue; `connection` is a
    DB-API connection (sqlite3 or psycopg) of `dialect` ("sqlite", "postgresql")."""
    mark = _MARK[dialect]
    where = [(column, value) for column, value in (("status", status), ("queue", queue)) if value]
    sql = _LIST
    if where:
        sql += " WHERE " + " AND ".join(f"t.{column} = {mark}" for column, _ in where)
    params: list[Any] = [value for _, value in where]
    sql += " ORDER BY t.id DESC"
    if limit:  # 0 and None alike: no limit
        sql += f" LIMIT {mark}"
        params.append(limit)
    cursor = connection.cursor()
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return [ticket_summary(_decoded(row), row[-1]) for row in rows]


def _decoded(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row's SUMMARY_COLUMNS as the models give them: SQLite hands back times and JSON
    as text, psycopg as datetimes and lists."""
    fields = dict(zip(SUMMARY_COLUMNS, row, strict=False))
    for column in ("created_at", "updated_at"):
        fields[column] = _utc(fields[column])
    if isinstance(fields["tags"], str):
        fields["tags"] = json.loads(fields["tags"])
    return fields


def _utc(value: datetime | str | None) -> datetime | None:
    # As the models' UTCDateTime reads it: SQLite keeps no zone, so its times are UTC.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
