"""Helpers for tests that send notifications to a real SMTP server and read them back."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from sqlalchemy import select

from maildesk.common.backoff import Backoff
from maildesk.outgoing.render_jobs import render_entry
from maildesk.outgoing.sender import OutboxSender, build_sender
from maildesk.service.desk import Desk
from maildesk.store.models import OutboxEntry, Ticket


def sender(desk: Desk, **options: Any) -> OutboxSender:
    """An OutboxSender for `desk` on the desk's own clock, over its configured SMTP."""
    options.setdefault("clock", desk.pipeline.clock)
    options.setdefault("backoff", Backoff(base_seconds=60, cap_seconds=3600))
    options.setdefault("blobs", desk.blobs)
    return build_sender(desk.config, desk.sessions, **options)


def send_all(desk: Desk, **options: Any) -> int:
    """Drain the desk's outbox once over a fresh connection; the number sent."""
    return asyncio.run(sender(desk, **options).drain_and_close())


def outbox_rows(desk: Desk) -> list[OutboxEntry]:
    """Every queued notification, rendered to bytes as the sender does before sending."""
    with desk.sessions() as session, session.begin():
        rows = list(session.scalars(select(OutboxEntry).order_by(OutboxEntry.id)))
        for row in rows:
            render_entry(row, desk.renderer, desk.config, desk.blobs)
        return rows


def ticket(desk: Desk, ref: str = "MD-1") -> Ticket:
    with desk.sessions() as session:
        return session.scalars(select(Ticket).where(Ticket.ref == ref)).one()


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def ids(value: object) -> list[str]:
    """The Message-IDs in a References/In-Reply-To header value, without brackets."""
    return [part.strip("<>") for part in str(value or "").split()]


def reply_to(message: EmailMessage, **headers: str) -> dict[str, str]:
    """What a mail client sets when replying to `message`: the threading headers, and the
    message's Reply-To (an agent's signed reply address) as the recipient."""
    own = str(message["Message-ID"])
    refs = " ".join([*str(message.get("References", "")).split(), own]).strip()
    answer = {"in_reply_to": own, "references": refs}
    if message.get("Reply-To"):
        answer["to"] = message["Reply-To"].addresses[0].addr_spec
    return {**answer, **headers}


def signed_to(desk, ref: str, agent: str) -> str:
    """The signed reply address our notifications give `agent` for ticket `ref`."""
    from maildesk.triage.reply_tokens import load_reply_keys, signed_reply_address

    keys = load_reply_keys(desk.config.tickets)
    assert keys is not None, "the test desk has a reply secret"
    return signed_reply_address(desk.config.tickets.support_address, ref, agent, keys.current)


@dataclass
class MailFlow:
    """A desk wired to a real SMTP sink: `deliver()` sends the outbox and returns the mail
    that reached the sink since the last call (each passed to `check` first, if given)."""

    desk: Desk
    sink: Any
    clock: Any = None
    check: Callable[[bytes], None] | None = None
    seen: int = 0

    def deliver(self) -> list[EmailMessage]:
        send_all(self.desk)
        fresh = self.sink.received[self.seen :]
        self.seen += len(fresh)
        for item in fresh:
            if self.check is not None:
                self.check(item.data)
        return [parse(item.data) for item in fresh]
