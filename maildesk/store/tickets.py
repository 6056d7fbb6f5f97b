"""Changing a ticket one field at a time; each change is returned for the event log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maildesk.common.domain import Status
from maildesk.decide.inbound import Change
from maildesk.decide.lifecycle import reopens, status_stamps
from maildesk.store.models import Ticket

TicketRecord = Ticket | dict[str, Any]  # a loaded ticket, or the row of one this batch inserts


def get_field(ticket: TicketRecord, name: str) -> Any:
    return ticket.get(name) if isinstance(ticket, dict) else getattr(ticket, name)


def set_field(ticket: TicketRecord, name: str, value: Any) -> None:
    if isinstance(ticket, dict):
        ticket[name] = value
    else:
        setattr(ticket, name, value)


def change_ticket(
    ticket: TicketRecord, change: Change, now: datetime
) -> tuple[str | None, str | None] | None:
    """Apply one change; return (old, new) as text for the event log, or None if nothing changed.

    'tag' adds a tag rather than replacing the list.
    """
    value: Any = change.value
    if change.field == "tag":
        tags = list(get_field(ticket, "tags") or [])
        if value in tags:
            return None
        set_field(ticket, "tags", [*tags, value])
        return None, str(value)
    old_value = get_field(ticket, change.field)
    stored = value.value if hasattr(value, "value") else value
    if old_value == stored:
        return None
    set_field(ticket, change.field, stored)
    if change.field == "status":
        _status_side_effects(ticket, Status(stored), Status(old_value), now)
    return _text(old_value), _text(stored)


def _status_side_effects(ticket: TicketRecord, new: Status, old: Status, now: datetime) -> None:
    for name, value in status_stamps(old, new, now).items():
        set_field(ticket, name, value)
    if reopens(old, new):
        set_field(ticket, "reopen_count", (get_field(ticket, "reopen_count") or 0) + 1)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def apply_change(session: Any, ticket: Ticket, change: Change, actor: str, now: datetime) -> bool:
    """Change a loaded ticket and add its event to the session; False if nothing changed."""
    from maildesk.store.models import Event

    logged = change_ticket(ticket, change, now)
    if logged is None:
        return False
    old, new = logged
    session.add(
        Event(
            ticket_id=ticket.id,
            at=now,
            actor=actor,
            kind=change.field,
            old=old,
            new=new,
            reason=change.reason,
        )
    )
    ticket.updated_at = now
    return True
