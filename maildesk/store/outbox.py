"""The transactional outbox: notifications queued with the change that caused them.

Ingest stores what to send (template, variables, headers) in the same transaction as
the ticket change; the sender renders it once into bytes before the first attempt, so
retries resend exactly the same message with the same Message-ID. A broken template
therefore fails one notification, visibly, and never holds up incoming mail.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.thread_index import new_root
from maildesk.decide.inbound import Notice
from maildesk.intake.parse import Address
from maildesk.outgoing.compose import AUTO_GENERATED, AUTO_REPLIED, decode_root
from maildesk.outgoing.render_jobs import RenderJob, render_notice, reported
from maildesk.outgoing.templates import Renderer
from maildesk.store.models import OutboxEntry


@dataclass(frozen=True)
class ThreadContext:
    """The Message-IDs a notification answers and refers to."""

    in_reply_to: str | None
    references: list[str]


@dataclass(frozen=True)
class QueuedNotice:
    """One outbox row to write: a notice for one group of recipients, with its Message-ID."""

    notice: Notice
    to: list[Address]
    message_id: str
    thread: ThreadContext


def outbox_row(
    config: Config,
    *,
    ticket_id: int,
    language: str,
    queued: QueuedNotice,
    context: dict[str, Any],
    now: datetime,
    thread_root: str,
    replying: bool = True,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The outbox row for a queued notice, and the thread_refs row of its Message-ID.

    `replying` says the notice answers a message (Auto-Submitted: auto-replied) rather
    than a timer or the command line (auto-generated); `thread_root` is the ticket's
    Outlook conversation root (base64).
    """
    notice = queued.notice
    cc = notice.cc if notice.audience == "requester" else []
    on_behalf = notice.from_agent or notice.on_behalf_of
    references = [r for r in queued.thread.references if r != queued.message_id]
    automatic = (AUTO_REPLIED if replying else AUTO_GENERATED) if notice.automatic else None
    headers = {
        "to": [[a.name, a.address] for a in queued.to],
        "cc": [[a.name, a.address] for a in cc],
        "on_behalf_of": [on_behalf.name or on_behalf.address, on_behalf.address]
        if on_behalf
        else None,
        "in_reply_to": queued.thread.in_reply_to,
        "references": references,
        "auto_submitted": automatic,
        "thread_root": thread_root,
        "thread_depth": len(references),
    }
    entry = {
        "created_at": now,
        "ticket_id": ticket_id,
        "template": notice.template,
        "audience": notice.audience,
        "automatic": notice.automatic,
        "to_addr": queued.to[0].address,
        "recipients": list(dict.fromkeys(a.address for a in [*queued.to, *cc])),
        "envelope_from": config.tickets.support_address,
        "message_id": queued.message_id,
        "language": language,
        "context": context,
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
    ref = {
        "message_id": queued.message_id,
        "ticket_id": ticket_id,
        "ours": True,
        "visible": notice.audience == "requester",
        "created_at": now,
    }
    return entry, ref


def render_entry(entry: OutboxEntry, renderer: Renderer, config: Config) -> bytes:
    """The RFC 5322 bytes of an outbox entry; sets entry.raw and entry.subject once."""
    if entry.raw is None:
        rendered = render_notice(RenderJob.of(entry), renderer, config.tickets)
        reported([rendered])  # an admin template replaced by the shipped one is logged
        entry.raw, entry.subject = rendered.raw, rendered.subject
    return entry.raw


def ticket_thread_root(thread_index: str | None, created_at: datetime, message_id: str) -> str:
    """The ticket's Outlook conversation root (base64): the request's own, else made from it."""
    root = decode_root(thread_index) or new_root(created_at, message_id)
    return base64.b64encode(root).decode("ascii")


def auto_reply_counts(session: Session, addresses: list[str], since: datetime) -> dict[str, int]:
    """Automatic requester notifications per address since `since`, for many addresses at once."""
    if not addresses:
        return {}
    query = (
        select(OutboxEntry.to_addr, func.count(OutboxEntry.id))
        .where(
            OutboxEntry.to_addr.in_(set(addresses)),
            OutboxEntry.automatic.is_(True),
            OutboxEntry.audience == "requester",
            OutboxEntry.created_at >= since,
        )
        .group_by(OutboxEntry.to_addr)
    )
    return {k: v for k, v in session.execute(query)}


def one_hour_before(now: datetime) -> datetime:
    return now - timedelta(hours=1)
