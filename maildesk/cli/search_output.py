"""`maildesk tickets search`: its options read into filters, its results printed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from maildesk.cli.common import echo
from maildesk.common.json_time import json_time

if TYPE_CHECKING:
    from maildesk.common.search_query import SearchHit
    from maildesk.store.search import SearchFilters


def search_filters(
    *,
    status: tuple[str, ...],
    queue: str | None,
    assignee: str | None,
    requester: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> SearchFilters:
    """The filters the command line gave; `--until` takes in its whole day."""
    from maildesk.store.search import SearchFilters

    return SearchFilters(
        statuses=tuple(s.lower() for s in status),
        queue=queue,
        assignee=assignee,
        requester=requester,
        since=_when(since, "--since"),
        until=_when(until, "--until", end_of_day=True),
        limit=limit,
    )


def _when(value: str | None, option: str, *, end_of_day: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM", param_hint=option
        ) from None
    if end_of_day and len(value) == 10:  # a date alone: all of that day
        when += timedelta(days=1)
    elif end_of_day:
        when += timedelta(microseconds=1)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def search_hit_json(hit: SearchHit) -> dict[str, Any]:
    """The fields of `tickets search --json` (a stable, documented format)."""
    return {
        "ref": hit.ref,
        "subject": hit.subject,
        "status": hit.status,
        "queue": hit.queue,
        "assignee": hit.assignee,
        "requester": hit.requester,
        "created_at": json_time(hit.created_at),
        "updated_at": json_time(hit.updated_at),
        "snippet": hit.snippet,
    }


def print_hits(hits: list[SearchHit]) -> None:
    """One line per ticket, and the words that matched under it."""
    width = max(len(h.ref) for h in hits)
    for hit in hits:
        updated = hit.updated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        who = hit.assignee or "-"
        echo(f"{hit.ref.ljust(width)}  {hit.status:8} {hit.queue}  {who}  {updated}  {hit.subject}")
        if hit.snippet:
            echo(f"{'':{width}}  {hit.snippet}")
