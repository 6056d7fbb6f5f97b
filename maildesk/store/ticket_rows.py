"""A ticket row and its TicketState, mapped by column name (the columns are named once).

Every column of `tickets` is a field of `TicketState` with the same name; these
functions convert between the two, and save a changed state with its events.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
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


_VALUES = operator.attrgetter(*COLUMNS)
# How a state's field becomes a column value, by the field value's type (others: as is).
_TO_COLUMN: dict[type, Callable[[Any], Any]] = {
    Status: operator.attrgetter("value"),
    Priority: operator.attrgetter("value"),
    tuple: list,
    dict: dict,
}


def ticket_values(state: TicketState) -> dict[str, Any]:
    """The column values of `state`, ready to INSERT or UPDATE."""
    convert = _TO_COLUMN.get
    values = {}
    for name, value in zip(COLUMNS, _VALUES(state), strict=True):
        to_column = convert(type(value))
        values[name] = to_column(value) if to_column else value
    return values


def changed_values(before: TicketState, after: TicketState) -> dict[str, Any]:
    """The columns whose values differ between two states of one ticket."""
    convert = _TO_COLUMN.get
    changed = {}
    for name, old, new in zip(COLUMNS, _VALUES(before), _VALUES(after), strict=True):
        if old != new:
            to_column = convert(type(new))
            changed[name] = to_column(new) if to_column else new
    return changed


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
