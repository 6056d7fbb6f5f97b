"""Storing a customer's satisfaction rating on a ticket, with the event log entries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.decide.inbound import Change
from maildesk.decide.satisfaction import RatingReply, rating_fields
from maildesk.store.models import Ticket
from maildesk.store.tickets import apply_change


def record_rating(
    session: Session, ticket: Ticket, reply: RatingReply, *, now: datetime, actor: str, via: str
) -> None:
    """Set rating, comment and time on `ticket`; a later rating replaces an earlier one."""
    reason = f"satisfaction rating {via}"
    for field, value in rating_fields(reply, now).items():
        apply_change(session, ticket, Change(field, value, reason), actor, now)
