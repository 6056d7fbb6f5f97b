"""`maildesk report`: volume, speed, SLA, reopens, load and satisfaction for a period.

Reads ticket rows with one query and computes the figures without the database
(`figures`, `build`), then renders them as text, JSON, CSV or HTML.
May import: common, store (and the stages before it).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import Engine

from maildesk.common.business_hours import Calendar
from maildesk.report.build import GROUPINGS, Group, RatingComment, Report, build_report
from maildesk.report.figures import Figures, Period, TicketRow
from maildesk.report.query import load_comments, load_rows

__all__ = [
    "GROUPINGS",
    "Figures",
    "Group",
    "Period",
    "RatingComment",
    "Report",
    "TicketRow",
    "build_report",
    "report_from_database",
]


def report_from_database(
    engine: Engine,
    period: Period,
    *,
    now: datetime,
    calendar: Calendar | None = None,
    by: str | None = None,
    agent_names: dict[str, str] | None = None,
) -> Report:
    """Load the period's tickets from the database and build the report."""
    with _gc_paused(), engine.connect() as conn:
        rows = load_rows(conn, period)
        comments = load_comments(conn, period)
        return build_report(
            rows,
            period,
            now=now,
            calendar=calendar,
            by=by,
            agent_names=agent_names,
            comments=comments,
        )


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a report makes its many small objects.

    They hold no reference cycles, and each full collection would walk all of them
    again: at 100,000 tickets this saves about a quarter of the time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
