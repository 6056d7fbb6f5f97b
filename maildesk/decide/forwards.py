"""An agent forwards a customer's mail to the desk: the ticket is the customer's (pure).

The customer wrote to the agent directly; the agent forwards it, inline (Gmail,
Outlook, Apple Mail, Thunderbird) or as an attached `message/rfc822`. The original
becomes the message stored on the ticket, from the original sender, with the original
date, text and attachments; what the agent wrote above it is an internal note.

A forward decides who gets mail (the acknowledgement goes to the original sender), so
it counts only with proof that the agent sent it: sent to the agent's signed
forwarding address `support+fwd.<token>@` (triage.reply_tokens), or vouched for by
the desk's mail server. Anything else from an agent's address that looks forwarded
opens a ticket for the agent, as any mail would, and tells the agent why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any

from maildesk.common.domain import TicketState
from maildesk.decide.agent_identity import Verdict, verify_forward
from maildesk.decide.author import is_customer
from maildesk.decide.decision import DecideContext
from maildesk.intake.message import (
    Address,
    ParsedAttachment,
    ParsedMessage,
    attached_original,
)
from maildesk.triage.reply_tokens import FORWARD_TAG, addressed_to, check_reply

MAX_SCAN = 100_000  # characters of a forward's text searched for the forwarded mail
# Languages whose month and day names forward headers are read in (dateparser).
DATE_LANGUAGES = ["en", "ru", "pl", "bg", "uk", "de", "fr", "es", "it", "nl", "pt", "cs"]
_SEPARATOR_LINE = re.compile(r"(?m)^\s*(?:[-_=]{5,}|>?\s*Begin forwarded message\s?:).*$")
# Forward prefixes of Gmail, Thunderbird, Apple Mail and Outlook (English, German,
# French, Spanish, Portuguese, Nordic, Polish, Italian locales), Thunderbird's "[Fwd: x]".
_FORWARD_PREFIX = re.compile(
    r"^\s*\[?\s*((fwd?|fw|wg|tr|rv|enc|vs|vb|pd|i|пересл)\s*:\s*)+", re.IGNORECASE
)


@dataclass(frozen=True)
class Forward:
    """An agent's mail that forwards someone else's."""

    mail: ParsedMessage  # the forward as it arrived
    agent: Address
    verdict: Verdict
    original: ParsedMessage | None  # None when unverified: nothing of it is used
    original_from: str  # who the forwarded mail says wrote it
    note: str = ""  # what the agent wrote above the forwarded mail
    how: str = "inline"  # or "attached"


def forward_on_behalf(
    msg: ParsedMessage, ticket: TicketState | None, ctx: DecideContext
) -> Forward | None:
    """The forward `msg` is, if it is an agent's forward of a customer's mail; else None.

    A forward is mail from an agent to their forwarding address, or with a forward's
    subject (`Fwd:`, `FW:`, ...); never a reply through a ticket's signed reply address.
    """
    agent = ctx.rules.agent_by_address(msg.from_addr)
    if agent is None or ctx.screening.automatic or msg.text.lstrip().startswith("#find"):
        return None
    if not _to_forwarding_address(msg, ctx) and not _FORWARD_PREFIX.match(msg.subject):
        return None
    if ticket is not None and _replies_about(msg, ticket, agent.address, ctx):
        return None
    attached = attached_original(msg.attachments)
    inner = _sent_original(msg) if attached is not None else None
    meta = None if inner is not None else _inline(msg)
    if inner is not None:
        original_from = inner.from_addr
    elif meta is not None:
        original_from = meta.email.from_.address.strip().lower()
    else:
        return None
    if not is_customer(original_from, ctx):
        return None
    me = Address(agent.name, agent.address)
    verdict = verify_forward(msg, agent.address, ctx)
    if not verdict.verified and ticket is not None:
        return None  # unverified mail about a ticket: an unverified note there, as any
    if not verdict.verified:
        return Forward(msg, me, verdict, None, original_from)
    if inner is not None and attached is not None:
        original = _from_attached(msg, inner, attached)
        return Forward(msg, me, verdict, original, original_from, msg.text.strip(), "attached")
    assert meta is not None
    original = _from_inline(msg, meta, ctx.now)
    return Forward(msg, me, verdict, original, original_from, _note(meta))


def _to_forwarding_address(msg: ParsedMessage, ctx: DecideContext) -> bool:
    """Sent to a `support+fwd.…@` address (whoever's: checking it is verify_forward's job)."""
    local, _, domain = ctx.tickets.support_address.lower().partition("@")
    prefix = f"{local}+{FORWARD_TAG}."
    return any(a.startswith(prefix) and a.endswith(f"@{domain}") for a in addressed_to(msg))


def _replies_about(msg: ParsedMessage, ticket: TicketState, agent: str, ctx: DecideContext) -> bool:
    """Sent through the agent's signed reply address for `ticket`: a reply, not a forward."""
    return check_reply(
        addressed_to(msg),
        support=ctx.tickets.support_address,
        ref=ticket.ref,
        agent=agent,
        keys=ctx.reply_keys,
        now=ctx.now,
    ).signed


def strip_forward_prefix(subject: str) -> str:
    """`Fwd: FW: Printer` -> `Printer`."""
    return _FORWARD_PREFIX.sub("", subject).strip().removesuffix("]").strip()


def _sent_original(msg: ParsedMessage) -> ParsedMessage | None:
    """The attached message as the parser read it (in its child, within its limits: a
    forward from an agent's address is anybody's until verified), if someone sent it."""
    inner = msg.attached_message
    return inner if inner is not None and inner.sender is not None else None


def _from_attached(
    msg: ParsedMessage, inner: ParsedMessage, attachment: ParsedAttachment
) -> ParsedMessage:
    """The attached message as the ticket stores it; it keeps the forward's identity (its
    Message-ID and bytes), so the same forward delivered twice is a duplicate."""
    others = [a for a in msg.attachments if a is not attachment]
    return replace(
        inner,
        sha256=msg.sha256,
        size=msg.size,
        message_id=msg.message_id,
        in_reply_to=[],
        references=[],
        attachments=[*inner.attachments, *others],
        date=inner.date or msg.date,
    )


def _inline(msg: ParsedMessage) -> Any:
    """email-forward-parser's reading of an inline forward, or None."""
    from emailforwardparser.forward_parser import get_forwarded_metadata

    text = msg.text[:MAX_SCAN]
    try:
        meta = get_forwarded_metadata(text, msg.subject)
        if not meta.forwarded or not meta.email.from_.address:
            meta = get_forwarded_metadata(text)  # the agent changed the subject
    except Exception:  # a third-party parser on mail text: never let it stop ingest
        return None
    address = meta.email.from_.address.strip()
    return meta if meta.forwarded and "@" in address else None


def _from_inline(msg: ParsedMessage, meta: Any, now: datetime) -> ParsedMessage:
    """The forwarded mail as the ticket stores it. Its own headers are gone (only what
    the client printed above it is known), so rules see none; the attachments of the
    forward are the ones the client carried over."""
    email = meta.email
    return replace(
        msg,
        sender=_address(email.from_),
        reply_to=[],
        to=[_address(m) for m in email.to if "@" in m.address],
        cc=[_address(m) for m in email.cc if "@" in m.address],
        subject=email.subject.strip() or strip_forward_prefix(msg.subject),
        date=read_date(email.date, msg, now) or msg.date,
        text=email.body.strip(),
        html=None,
        headers=[],
        in_reply_to=[],
        references=[],
    )


def _address(mailbox: Any) -> Address:
    return Address(mailbox.name.strip().strip('"'), mailbox.address.strip().lower())


def _note(meta: Any) -> str:
    """What the agent wrote above the forward, without the client's separator line."""
    return _SEPARATOR_LINE.split(meta.message, maxsplit=1)[0].strip()


def read_date(value: str, msg: ParsedMessage, now: datetime) -> datetime | None:
    """The date a mail client printed in a forward's header block (any of a dozen
    languages), in UTC. Without a zone it is the forwarding client's own zone, which its
    Date header shows. None when it cannot be read or is not plausible."""
    value = value.strip()[:100]
    if not value:
        return None
    import dateparser  # loads its language data on first use: only forwards need it

    try:
        found = dateparser.parse(value, languages=DATE_LANGUAGES)
    except Exception:
        return None
    if found is None:
        return None
    if found.tzinfo is None:
        found = found.replace(tzinfo=_client_zone(msg))
    found = found.astimezone(UTC)
    return found if found.year >= 1970 and found <= now + timedelta(days=1) else None


def _client_zone(msg: ParsedMessage) -> tzinfo:
    try:
        sent = parsedate_to_datetime(msg.header("Date") or "")
    except (TypeError, ValueError):
        return UTC
    return sent.tzinfo or UTC
