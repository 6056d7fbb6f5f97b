"""A ticket row and its TicketState, mapped by column name (the columns are named once).

Every column of `tickets` is a field of `TicketState` with the same name; these
functions convert between the two, and save a changed state with its events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from maildesk.common.domain import Priority, Status, TicketState
from maildesk.decide.ticket_changes import TicketEvent
from maildesk.store.models import Event, Ticket

COLUMNS: tuple[str, ...] = tuple(Ticket.__table__.columns.keys())
_STATE_FIELDS = {f.name for f in fields(TicketState)}
assert set(COLUMNS) <= _STATE_FIELDS, "every ticket column is a TicketState field"


def ticket_values(state: TicketState) -> dict[str, Any]:
    """The column values of `state`, ready to INSERT or UPDATE."""
    return {name: _column(getattr(state, name)) for name in COLUMNS}


def changed_values(before: TicketState, after: TicketState) -> dict[str, Any]:
    """The columns whose values differ between two states of one ticket."""
    old, new = ticket_values(before), ticket_values(after)
    return {name: value for name, value in new.items() if old[name] != value}


def state_from_row(row: Any, **gathered: Any) -> TicketState:
    """The TicketState of a row (an ORM object or a Core row); `gathered` fills the
    fields that come from other tables (participants, threads, ...)."""
    values = {name: getattr(row, name) for name in COLUMNS}
    values["status"] = Status(values["status"])
    values["priority"] = Priority(values["priority"])
    values["tags"] = tuple(values["tags"] or ())
    values["rules_fired"] = tuple(values["rules_fired"] or ())
    values["sla_state"] = dict(values["sla_state"] or {})
    values["reopen_count"] = values["reopen_count"] or 0
    return TicketState(**values, **gathered)


def save_ticket(
    session: Session,
    before: TicketState,
    after: TicketState,
    events: Sequence[TicketEvent],
    now: datetime,
) -> None:
    """Write what changed between `before` and `after`, and the events that say why."""
    changed = changed_values(before, after)
    if changed:
        session.execute(update(Ticket).where(Ticket.id == after.id).values(**changed))
    if events:
        session.execute(insert(Event), event_rows(after.id, events, now))


def event_rows(ticket_id: int, events: Sequence[TicketEvent], now: datetime) -> list[dict]:
    """Rows of the `events` table for a ticket's events."""
    return [
        {
            "ticket_id": ticket_id,
            "at": now,
            "actor": e.actor[:320],
            "kind": e.kind,
            "old": e.old,
            "new": e.new,
            "reason": e.reason,
        }
        for e in events
    ]


def _column(value: Any) -> Any:
    if isinstance(value, Status | Priority):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value
