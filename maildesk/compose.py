"""Build outgoing messages: headers that thread in every client and cannot be injected."""

from __future__ import annotations

import email.policy
import email.utils
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage

from maildesk.charsets import decode_encoded_words
from maildesk.errors import MaildeskError
from maildesk.parse import Address
from maildesk.render import Rendered
from maildesk.screen import LOOP_HEADER

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
_SAFE_ID = re.compile(r"^[^\s<>()\[\]\\,;:\"@=?]+@[^\s<>()\[\]\\,;:\"@]+$")
MAX_REFERENCES = 20


class ComposeError(MaildeskError):
    """An outgoing message would not come out as the headers it was built from."""


def clean_header(value: str) -> str:
    """A header value that stays one header line whatever is in it.

    CR, LF and other control characters become one space. Encoded words are decoded
    first (repeatedly: they may be nested), because the email package decodes them
    when the header is set and, before CPython 3.11.10, wrote a decoded CR LF out as
    a real line break (CVE-2024-6923). A `=?` still left is broken up.
    """
    for _ in range(5):
        cleaned = _CONTROL.sub(" ", decode_encoded_words(value) if "=?" in value else value)
        if cleaned == value:
            break
        value = cleaned
    return _CONTROL.sub(" ", value).replace("=?", "= ?").strip()


def safe_ids(ids: list[str]) -> list[str]:
    """Message-IDs fit to repeat in In-Reply-To/References (plain `left@right`)."""
    return [i for i in ids if len(i) <= 900 and _SAFE_ID.match(i)]


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as bytes, checked to have exactly the header lines that were set."""
    raw = msg.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    written = [
        line.split(b":", 1)[0].strip().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in b" \t"
    ]
    expected = sorted(name.lower().encode() for name in msg)
    if sorted(written) != expected:
        raise ComposeError(
            "refusing to send a notification whose headers came out different from what was set"
        )
    return raw


def new_message_id(ref: str, domain: str) -> str:
    """A unique Message-ID in our own domain (without angle brackets)."""
    return f"{ref.lower()}.{uuid.uuid4().hex[:20]}@{domain}"


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
    automatic: bool
    ticket_ref: str
    loop_token: str


def compose(envelope: Envelope, body: Rendered) -> EmailMessage:
    """An RFC 5322 message with a plain-text part and, when given, an HTML alternative."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = _header_address(envelope.sender)
    msg["To"] = [_header_address(a) for a in envelope.to]
    if envelope.cc:
        msg["Cc"] = [_header_address(a) for a in envelope.cc]
    msg["Reply-To"] = _header_address(envelope.reply_to)
    msg["Subject"] = clean_header(envelope.subject)
    msg["Date"] = email.utils.format_datetime(envelope.date)
    msg["Message-ID"] = f"<{envelope.message_id}>"
    if envelope.in_reply_to and safe_ids([envelope.in_reply_to]):
        msg["In-Reply-To"] = f"<{envelope.in_reply_to}>"
    refs = trim_references(safe_ids(envelope.references))
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if envelope.automatic:
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["Precedence"] = "auto_reply"
    msg[LOOP_HEADER] = clean_header(envelope.loop_token)
    msg["X-Maildesk-Ticket"] = clean_header(envelope.ticket_ref)
    msg.set_content(body.text, cte="quoted-printable" if not body.text.isascii() else "7bit")
    if body.html:
        msg.add_alternative(body.html, subtype="html")
    return msg


def trim_references(refs: list[str]) -> list[str]:
    """The first reference (the thread root) plus the most recent ones, per RFC 5322 3.6.4."""
    unique = list(dict.fromkeys(r for r in refs if r))
    if len(unique) <= MAX_REFERENCES:
        return unique
    return [unique[0], *unique[-(MAX_REFERENCES - 1) :]]


_ADDRESS_JUNK = re.compile(r"[\x00-\x20\x7f\u2028\u2029\x85]+")


def _header_address(addr: Address) -> HeaderAddress:
    # Parsing already refuses such addresses; this holds for addresses from anywhere.
    local, _, domain = _ADDRESS_JUNK.sub("", addr.address).rpartition("@")
    return HeaderAddress(display_name=clean_header(addr.name), username=local, domain=domain)
