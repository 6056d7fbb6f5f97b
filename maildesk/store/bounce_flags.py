"""Record what a bounce says: flag the address that failed, mark the notification, log it.

A complaint (ARF, SES) is logged on the ticket and flags nobody: the address works.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.store.models import Event, OutboxEntry, Participant, Ticket
from maildesk.triage.bounce import BounceReport, Recipient

log = logging.getLogger(__name__)


def record_bounce(
    session: Session, ticket: Ticket, report: BounceReport, actor: str, now: datetime
) -> list[str]:
    """Flag the ticket's participants whose delivery failed; return their addresses."""
    entry = _notification(session, report)
    if report.kind in ("complaint", "delivery"):
        _log_report(session, ticket, report, entry, actor, now)
        return []
    failed = report.failed
    if not failed and not report.recipients and entry is not None and len(entry.recipients) == 1:
        # A bounce without a per-recipient report about a one-recipient notification.
        failed = [Recipient(entry.recipients[0], "failed", "", "bounce without a status report")]
    about = f" about notification <{entry.message_id}>" if entry is not None else ""
    flagged = []
    for recipient in failed:
        participant = _participant(session, ticket, recipient.address)
        if participant is not None:
            participant.bouncing = True
            flagged.append(recipient.address)
        reason = f"{recipient.status} {recipient.diagnostic}".strip() or "delivery failed"
        session.add(
            Event(
                ticket_id=ticket.id,
                at=now,
                actor=actor,
                kind="bouncing",
                new=recipient.address,
                reason=reason + about,
            )
        )
        log.warning("%s: mail to %s bounced%s: %s", ticket.ref, recipient.address, about, reason)
    if entry is not None and failed:
        entry.status = "bounced"
        entry.last_error = f"bounced: {report.summary()}"[:2000]
    elif report.recipients and not failed:
        # Delayed or relayed: nothing failed yet, but the agents may want to know.
        session.add(
            Event(
                ticket_id=ticket.id, at=now, actor=actor, kind="delivery", reason=report.summary()
            )
        )
    return flagged


def our_notifications(session: Session, message_ids: Iterable[str]) -> set[str]:
    """Which of these Message-IDs are notifications we sent (a bounce may name them)."""
    wanted = list(set(message_ids))
    if not wanted:
        return set()
    query = select(OutboxEntry.message_id).where(OutboxEntry.message_id.in_(wanted))
    return set(session.scalars(query))


def _log_report(
    session: Session,
    ticket: Ticket,
    report: BounceReport,
    entry: OutboxEntry | None,
    actor: str,
    now: datetime,
) -> None:
    about = f" about notification <{entry.message_id}>" if entry is not None else ""
    who = ", ".join(r.address for r in report.recipients) or "a recipient"
    verb = "complained" if report.kind == "complaint" else "delivery reported"
    reason = f"{who}: {verb}{about}"
    session.add(Event(ticket_id=ticket.id, at=now, actor=actor, kind=report.kind, reason=reason))
    log.warning("%s: %s", ticket.ref, reason)


def clear_bouncing(session: Session, ticket: Ticket, address: str, now: datetime) -> bool:
    """Mail from a flagged address proves it works again: clear its flag."""
    participant = _participant(session, ticket, address)
    if participant is None or not participant.bouncing:
        return False
    participant.bouncing = False
    session.add(
        Event(
            ticket_id=ticket.id,
            at=now,
            actor=address,
            kind="bouncing_cleared",
            old=address,
            reason="mail arrived from the address that bounced",
        )
    )
    return True


def _participant(session: Session, ticket: Ticket, address: str) -> Participant | None:
    return session.scalar(
        select(Participant).where(
            Participant.ticket_id == ticket.id, Participant.address == address
        )
    )


def _notification(session: Session, report: BounceReport) -> OutboxEntry | None:
    if not report.original_message_id:
        return None
    return session.scalar(
        select(OutboxEntry).where(OutboxEntry.message_id == report.original_message_id)
    )
