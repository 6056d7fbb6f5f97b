"""Changing a ticket outside ingest (timers, the command line), in the caller's transaction.

The change itself is `decide.ticket_changes.apply_changes`, as in ingest; this loads
the ticket, saves what changed with its events, and queues the notifications.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.domain import Status, TicketState
from maildesk.decide.decision import Change
from maildesk.decide.notices import status_notices
from maildesk.decide.satisfaction import RatingReply, rating_fields
from maildesk.decide.ticket_changes import TicketEvent, apply_changes
from maildesk.store.lookup import load_ticket_state
from maildesk.store.outbox import queue_notices
from maildesk.store.ticket_rows import save_ticket


def update_ticket(
    session: Session,
    ticket_id: int,
    changes: Sequence[Change],
    *,
    actor: str,
    now: datetime,
    events: Sequence[TicketEvent] = (),
) -> tuple[TicketState, TicketState]:
    """Apply `changes` to a stored ticket and log them (plus `events`); (before, after)."""
    before = load_ticket_state(session, ticket_id)
    after, logged = apply_changes(before, changes, actor=actor, now=now)
    save_ticket(session, before, after, [*logged, *events], now)
    return before, after


def change_status(
    session: Session,
    ticket_id: int,
    status: Status,
    *,
    actor: str,
    reason: str,
    now: datetime,
    config: Config,
) -> list[str]:
    """Set a ticket's status and tell the requester when it is resolved or closed;
    returns the Message-IDs of the notifications queued."""
    change = Change("status", status, reason)
    before, after = update_ticket(session, ticket_id, [change], actor=actor, now=now)
    return queue_notices(session, after, status_notices(before, [change]), config, now)


def record_rating(
    session: Session,
    ticket_id: int,
    reply: RatingReply,
    *,
    now: datetime,
    actor: str,
    via: str,
) -> None:
    """Set rating, comment and time on a ticket; a later rating replaces an earlier one."""
    reason = f"satisfaction rating {via}"
    changes = [Change(name, value, reason) for name, value in rating_fields(reply, now).items()]
    update_ticket(session, ticket_id, changes, actor=actor, now=now)
