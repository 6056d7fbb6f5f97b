"""The transactional outbox: notifications queued with the change that caused them.

Ingest stores what to send (template, variables, headers) in the same transaction as
the ticket change; the sender renders it once into bytes before the first attempt, so
retries resend exactly the same message with the same Message-ID. A broken template
therefore fails one notification, visibly, and never holds up incoming mail.

`outbox_rows` is the one place outbox rows are built; `queue_notices` writes them
for changes made outside ingest (timers, the command line).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.domain import AUTO_GENERATED, AUTO_REPLIED, TicketState
from maildesk.common.thread_index import ticket_thread_root
from maildesk.decide.decision import Notice
from maildesk.decide.notices import QueuedNotice, address_notices
from maildesk.intake.message import ParsedMessage
from maildesk.store.models import OutboxEntry, ThreadRef
from maildesk.store.outbox_signal import signal_outbox
from maildesk.store.pg_bulk import among
from maildesk.triage.reply_tokens import load_reply_keys


def outbox_rows(
    queued: Sequence[QueuedNotice],
    ticket: TicketState,
    *,
    envelope_from: str,
    now: datetime,
    replying: bool = True,
    relayed: tuple[int, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The outbox rows for queued notices about `ticket`, and the thread_refs rows of
    their Message-IDs.

    `replying` says the notices answer a message (Auto-Submitted: auto-replied) rather
    than a timer or the command line (auto-generated). `relayed` is the id and text of
    the message row written with them: a notice whose body is that text refers to it.
    """
    root = ticket_thread_root(ticket.thread_index, ticket.created_at, ticket.message_id)
    entries, refs = [], []
    for item in queued:
        entry = _row(item, ticket, envelope_from, now, replying, root)
        if relayed is not None:
            _refer_to_stored_text(entry, *relayed)
        entries.append(entry)
        refs.append(
            {
                "message_id": item.message_id,
                "ticket_id": ticket.id,
                "ours": True,
                "visible": item.notice.audience == "requester",
                "created_at": now,
            }
        )
    return entries, refs


def _refer_to_stored_text(entry: dict[str, Any], message_pk: int, text: str) -> None:
    """Leave the body out of `entry`'s context when it is the stored message's text: each
    agent's copy of a customer's mail would otherwise store the whole text again."""
    context = entry["context"]
    if text and context.get("body") == text:
        entry["context"] = {k: v for k, v in context.items() if k != "body"}
        entry["body_message_id"] = message_pk


def _row(
    item: QueuedNotice,
    ticket: TicketState,
    envelope_from: str,
    now: datetime,
    replying: bool,
    thread_root: str,
) -> dict[str, Any]:
    notice = item.notice
    cc = notice.cc if notice.audience == "requester" else []
    on_behalf = notice.from_agent or notice.on_behalf_of
    references = [r for r in item.thread.references if r != item.message_id]
    automatic = (AUTO_REPLIED if replying else AUTO_GENERATED) if notice.automatic else None
    headers = {
        "to": [[a.name, a.address] for a in item.to],
        "cc": [[a.name, a.address] for a in cc],
        "on_behalf_of": [on_behalf.name or on_behalf.address, on_behalf.address]
        if on_behalf
        else None,
        "in_reply_to": item.thread.in_reply_to,
        "references": references,
        "auto_submitted": automatic,
        "reply_to": item.reply_to,
        "thread_root": thread_root,
        "thread_depth": len(references),
    }
    if notice.attachments:  # by SHA-256: the sender fetches the bytes when it renders
        headers["attachments"] = [f.as_json() for f in notice.attachments]
    return pending_row(
        notice,
        ticket_id=ticket.id,
        recipients=list(dict.fromkeys(a.address for a in [*item.to, *cc])),
        # Bounces come back to the ticket's signed return path (triage.return_path).
        envelope_from=item.return_path or envelope_from,
        message_id=item.message_id,
        language=ticket.language,
        context=item.context,
        headers=headers,
        now=now,
    )


def pending_row(
    notice: Notice,
    *,
    ticket_id: int | None,
    recipients: list[str],
    envelope_from: str,
    message_id: str,
    language: str,
    context: dict[str, Any],
    headers: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """The one shape of a new outbox row: due now, never rendered, never tried."""
    return {
        "created_at": now,
        "ticket_id": ticket_id,
        "template": notice.template,
        "audience": notice.audience,
        "automatic": notice.automatic,
        "to_addr": notice.to[0].address,
        "recipients": recipients,
        "envelope_from": envelope_from,
        "message_id": message_id,
        "language": language,
        "context": context,
        "body_message_id": None,
        "headers": headers,
        "subject": "",
        "raw": None,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "claimed_by": None,
        "claimed_until": None,
        "last_error": None,
        "sent_at": None,
    }


def queue_notices(
    session: Session,
    ticket: TicketState,
    notices: list[Notice],
    config: Config,
    now: datetime,
    *,
    msg: ParsedMessage | None = None,
) -> list[str]:
    """Write outbox rows for `notices` about `ticket` in the caller's transaction (for
    changes made outside ingest); returns their Message-IDs."""
    keys = load_reply_keys(config.tickets)
    queued = address_notices(notices, ticket, config, msg=msg, reply_keys=keys)
    entries, refs = outbox_rows(
        queued,
        ticket,
        envelope_from=config.tickets.support_address,
        now=now,
        replying=msg is not None,
    )
    if entries:
        session.execute(insert(OutboxEntry), entries)
        session.execute(insert(ThreadRef), refs)
        signal_outbox(session)
    return [e["message_id"] for e in entries]


def auto_reply_counts(session: Session, addresses: list[str], since: datetime) -> dict[str, int]:
    """Automatic requester notifications per address since `since`, for many addresses at once."""
    if not addresses:
        return {}
    query = (
        select(OutboxEntry.to_addr, func.count(OutboxEntry.id))
        .where(
            among(session, OutboxEntry.to_addr, set(addresses)),
            OutboxEntry.automatic.is_(True),
            OutboxEntry.audience == "requester",
            OutboxEntry.created_at >= since,
        )
        .group_by(OutboxEntry.to_addr)
    )
    return {k: v for k, v in session.execute(query)}


def one_hour_before(now: datetime) -> datetime:
    return now - timedelta(hours=1)
