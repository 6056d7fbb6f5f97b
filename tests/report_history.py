"""A scripted ticket history with known report figures (Berlin office hours, November 2026).

Calendar: Mon–Fri 09:00–17:00 Europe/Berlin, holiday Wednesday 18 Nov 2026.
Period: Mon 2 Nov – Sun 29 Nov 2026 (ISO weeks 45–48). Summer time ended 25 Oct.

Five patterns of 40 tickets each (times are Berlin local):
  A  Mondays 2/9/16/23 Nov 10:00, queue general, alice, normal. First response 11:30
     (1.5 h), resolved 15:00 (5 h). Targets met. Five of the 2 Nov ones reopened twice.
  B  Fridays 6/13/20/27 Nov 16:00, billing, carol, high. First response next Monday
     10:00 (2 h over the weekend), resolved Monday 16:00 (8 h). First-response due
     Monday 09:00: all 40 breached. The 27 Nov ones are answered on 30 Nov, after
     the period: open at its end.
  C  Tuesdays 3/10/17/24 Nov 16:30, general, bob, low. First response Wednesday 09:30
     (1 h), resolved Thursday 09:00 (8.5 h); in the holiday week the response comes on
     the holiday at 12:00 (0.5 h) and the resolution Thursday 09:00 (0.5 h).
     3 Nov: SLA state recorded {"resolution_breached": true, "first_response_breached": false}.
     10 Nov: first-response due at creation (would derive a breach) but recorded
     {"first_response_breached": false}: the record wins. 24 Nov: reopened once.
  D  Friday 23 Oct 16:00 (summer time), before the period, general, unassigned, urgent.
     First response 23 Oct 17:30. Twenty resolved Mon 2 Nov 10:00: 1 + 5×8 + 1 = 42 h
     across the change to winter time; two of them rated 5 without a rating time.
     Twenty still open.
  E  Thursdays 5/12/19/26 Nov 12:00, billing, carol, normal. First-response due 12:30.
     First response 12:45 (0.75 h, breached), resolved Friday 12:00 (8 h), rated Friday
     13:00: 5 Nov ten 5s; 12 Nov five 4s and five 2s; 19 Nov three 1s, two 3s.
     26 Nov: no answer yet (due passed: breached), open at the end.
Plus five spam and five merged tickets in the period, which the report leaves out.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from maildesk.common.business_hours import Calendar
from maildesk.store.models import Ticket

BERLIN = ZoneInfo("Europe/Berlin")
HOLIDAY = date(2026, 11, 18)
CALENDAR = Calendar.office("Europe/Berlin", holidays=[HOLIDAY])
PERIOD_START = datetime(2026, 11, 2, tzinfo=BERLIN).astimezone(UTC)
PERIOD_END = datetime(2026, 11, 30, tzinfo=BERLIN).astimezone(UTC)
NOW = datetime(2026, 12, 15, 12, 0, tzinfo=UTC)

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def _nov(day: int) -> date:
    return date(2026, 11, day)


def history() -> list[dict[str, Any]]:
    """The 210 ticket rows (200 counted, 10 spam/merged)."""
    rows: list[dict[str, Any]] = []

    def add(**fields: Any) -> None:
        n = len(rows) + 1
        created = fields["created_at"]
        rows.append(
            {
                "ref": f"MD-{n}",
                "subject": f"request {n}",
                "status": "resolved" if fields.get("resolved_at") else "open",
                "requester": f"customer{n}@example.org",
                "message_id": f"md-{n}@example.com",
                "updated_at": created,
                "sla_state": {},
                "reopen_count": 0,
                **fields,
            }
        )

    for week in range(4):
        monday = _nov(2 + 7 * week)
        tuesday, wednesday, thursday = (monday + timedelta(days=d) for d in (1, 2, 3))
        friday, next_monday = monday + timedelta(days=4), monday + timedelta(days=7)
        for i in range(10):
            add(  # A
                queue="general",
                priority="normal",
                assignee=ALICE,
                created_at=local(monday, 10),
                first_response_at=local(monday, 11, 30),
                resolved_at=local(monday, 15),
                first_response_due=local(monday, 13),
                resolution_due=local(tuesday, 17),
                reopen_count=2 if week == 0 and i < 5 else 0,
            )
        for _ in range(10):
            add(  # B
                queue="billing",
                priority="high",
                assignee=CAROL,
                created_at=local(friday, 16),
                first_response_at=local(next_monday, 10),
                resolved_at=local(next_monday, 16),
                first_response_due=local(next_monday, 9),
            )
        holiday_week = wednesday == HOLIDAY
        for _ in range(10):
            state: dict[str, Any] = {}
            due = None
            if week == 0:
                state = {"first_response_breached": False, "resolution_breached": True}
            elif week == 1:
                state = {"first_response_breached": False}
                due = local(tuesday, 16, 30)
            add(  # C
                queue="general",
                priority="low",
                assignee=BOB,
                created_at=local(tuesday, 16, 30),
                first_response_at=local(wednesday, 12) if holiday_week else local(wednesday, 9, 30),
                resolved_at=local(thursday, 9),
                sla_state=state,
                first_response_due=due,
                reopen_count=1 if week == 3 else 0,
            )
        ratings = [[5] * 10, [4] * 5 + [2] * 5, [1] * 3 + [3] * 2 + [None] * 5, [None] * 10][week]
        for rating in ratings:
            answered = week < 3
            add(  # E
                queue="billing",
                priority="normal",
                assignee=CAROL,
                created_at=local(thursday, 12),
                first_response_due=local(thursday, 12, 30),
                first_response_at=local(thursday, 12, 45) if answered else None,
                resolved_at=local(friday, 12) if answered else None,
                rating=rating,
                rated_at=local(friday, 13) if rating else None,
                rating_comment="Quick and kind." if rating == 5 else None,
            )
    for i in range(40):  # D
        resolved = i < 20
        add(
            queue="general",
            priority="urgent",
            assignee=None,
            created_at=local(date(2026, 10, 23), 16),
            first_response_at=local(date(2026, 10, 23), 17, 30),
            resolved_at=local(_nov(2), 10) if resolved else None,
            rating=5 if i < 2 else None,
            rated_at=None,
            reopen_count=3,
        )
    for i in range(10):  # left out of every figure
        add(
            queue="general",
            priority="normal",
            assignee=ALICE,
            created_at=local(_nov(10), 10),
            resolved_at=local(_nov(10), 11),
            spam=i < 5,
            merged_into_id=1 if i >= 5 else None,
        )
    return rows


def load_history(engine: Engine) -> int:
    """Insert the history with one Core statement; returns the number of rows."""
    rows = history()
    keys = sorted({k for row in rows for k in row})
    full = [{k: row.get(k) for k in keys} for row in rows]
    for row in full:
        row["spam"] = bool(row["spam"])
        row["reopen_count"] = row["reopen_count"] or 0
    with engine.begin() as conn:
        conn.execute(insert(Ticket.__table__), full)
    return len(rows)
