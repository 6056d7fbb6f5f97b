"""Build outgoing messages: headers that thread in every client and cannot be injected."""

from __future__ import annotations

import base64
import email.policy
import email.utils
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage

from maildesk.conversation_index import thread_index
from maildesk.parse import Address
from maildesk.render import Rendered
from maildesk.screen import LOOP_HEADER

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv|отв)\s*:\s*)+", re.IGNORECASE)
MAX_REFERENCES = 20

# RFC 3834: a response to a message is "auto-replied"; mail a timer sent is "auto-generated".
AUTO_REPLIED = "auto-replied"
AUTO_GENERATED = "auto-generated"


def clean_header(value: str) -> str:
    """A header value with CR, LF and other control characters folded to one space."""
    return _CONTROL.sub(" ", value).strip()


def new_message_id(ref: str, domain: str) -> str:
    """A unique Message-ID in our own domain (without angle brackets)."""
    return f"{ref.lower()}.{uuid.uuid4().hex[:20]}@{domain}"


def thread_topic(subject: str) -> str:
    """The subject without reply prefixes: what Outlook shows as the conversation's topic."""
    return _REPLY_PREFIX.sub("", subject).strip()


@dataclass(frozen=True)
class Envelope:
    """The headers of one outgoing message."""

    sender: Address
    to: list[Address]
    cc: list[Address]
    reply_to: Address
    subject: str
    message_id: str
    in_reply_to: str | None
    references: list[str]
    date: datetime
    auto_submitted: str | None  # None for mail a person wrote (relayed agent replies)
    ticket_ref: str
    loop_token: str
    thread_root: bytes  # Outlook's 22-byte conversation header block
    thread_depth: int = 0
    language: str | None = None


def compose(envelope: Envelope, body: Rendered) -> EmailMessage:
    """An RFC 5322 message with a plain-text part and, when given, an HTML alternative."""
    addresses = [envelope.sender, *envelope.to, *envelope.cc, envelope.reply_to]
    # A non-ASCII address can only be written as UTF-8 (RFC 6532), sent with SMTPUTF8.
    utf8 = not all(a.address.isascii() for a in addresses)
    msg = EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    msg["From"] = _header_address(envelope.sender)
    msg["To"] = [_header_address(a) for a in envelope.to]
    if envelope.cc:
        msg["Cc"] = [_header_address(a) for a in envelope.cc]
    msg["Reply-To"] = _header_address(envelope.reply_to)
    subject = clean_header(envelope.subject)
    msg["Subject"] = subject
    msg["Date"] = email.utils.format_datetime(envelope.date)
    msg["Message-ID"] = f"<{clean_header(envelope.message_id)}>"
    if envelope.in_reply_to:
        msg["In-Reply-To"] = f"<{clean_header(envelope.in_reply_to)}>"
    refs = trim_references(envelope.references)
    if refs:
        msg["References"] = " ".join(f"<{clean_header(r)}>" for r in refs)
    # Outlook groups conversations by these two, not by References.
    msg["Thread-Topic"] = thread_topic(subject)
    msg["Thread-Index"] = thread_index(envelope.thread_root, envelope.thread_depth, envelope.date)
    if envelope.auto_submitted:
        msg["Auto-Submitted"] = envelope.auto_submitted
        msg["X-Auto-Response-Suppress"] = "All"
        msg["Precedence"] = "auto_reply"
    msg[LOOP_HEADER] = clean_header(envelope.loop_token)
    msg["X-Maildesk-Ticket"] = clean_header(envelope.ticket_ref)
    msg.set_content(body.text)
    if body.html:
        msg.add_alternative(body.html, subtype="html")
    if envelope.language:  # after the body: setting content drops Content-* headers
        msg["Content-Language"] = clean_header(envelope.language)
    return msg


def trim_references(refs: list[str]) -> list[str]:
    """The first reference (the thread root) plus the most recent ones, per RFC 5322 3.6.4."""
    unique = list(dict.fromkeys(r for r in refs if r))
    if len(unique) <= MAX_REFERENCES:
        return unique
    return [unique[0], *unique[-(MAX_REFERENCES - 1) :]]


def decode_root(value: str | None) -> bytes | None:
    """A stored base64 Thread-Index root as bytes (None when absent or damaged)."""
    if not value:
        return None
    try:
        data = base64.b64decode(value)
    except ValueError:
        return None
    return data if len(data) == 22 else None


def _header_address(addr: Address) -> HeaderAddress:
    # Whitespace and control characters never belong in an address; a name keeps spaces.
    local, _, domain = "".join(clean_header(addr.address).split()).rpartition("@")
    return HeaderAddress(display_name=clean_header(addr.name), username=local, domain=domain)
