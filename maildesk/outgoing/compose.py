"""Build outgoing messages: headers that thread in every client and cannot be injected.

The standard library's generator writes every message (`EmailMessage`, an SMTP policy):
CRLF line ends, a 7-bit transfer encoding chosen per part (7bit, quoted-printable or
base64). Subjects and address headers are
header objects of ours (`header_text`) so that hostile text still folds into short,
valid lines and reads back as it was written.
"""

from __future__ import annotations

import binascii
import email.utils
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import Policy
from typing import Any

from maildesk.common.errors import MaildeskError
from maildesk.common.thread_index import thread_index
from maildesk.intake.header_values import MAX_ID_BYTES
from maildesk.intake.message import Address
from maildesk.outgoing.file_parts import FilePart, file_parts
from maildesk.outgoing.header_text import (
    FoldedHeader,
    TokenHeader,
    address_header,
    clean_text,
    text_header,
)
from maildesk.outgoing.mime_policy import POLICY, UTF8_POLICY
from maildesk.outgoing.rendered import Rendered
from maildesk.triage.screen import LOOP_HEADER

_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv|отв)\s*:\s*)+", re.IGNORECASE)
_SAFE_ID = re.compile(r"^[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+$")
_FIELD_NAME = re.compile(rb"(?:^|\r\n)([!-9;-~]+):")  # at a line start (RFC 5322 2.2)
_ID_UNSAFE = re.compile(r"[\s<>\x00-\x1f\x7f\u0085\u2028\u2029]")
MAX_REFERENCES = 20
MAX_THREAD_DEPTH = 100


class ComposeError(MaildeskError):
    """An outgoing message would not come out as the headers it was built from."""


def safe_ids(ids: list[str]) -> list[str]:
    """Message-IDs fit to repeat in In-Reply-To/References (plain `left@right`)."""
    return [
        i
        for i in ids
        if len(i) <= MAX_ID_BYTES and i.isascii() and "=?" not in i and _SAFE_ID.match(i)
    ]


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
    thread_root: bytes | None = None  # Outlook's 22-byte conversation header block
    thread_depth: int = 0
    language: str | None = None


def compose(envelope: Envelope, body: Rendered, files: Sequence[FilePart] = ()) -> bytes:
    """RFC 5322 bytes: a plain-text part and, when given, an HTML alternative; then the
    pictures the HTML shows (multipart/related) and the attached files (multipart/mixed)."""
    addresses = [envelope.sender, *envelope.to, *envelope.cc, envelope.reply_to]
    # A non-ASCII address can only be written as UTF-8 (RFC 6532), sent with SMTPUTF8.
    policy = POLICY if all(a.address.isascii() for a in addresses) else UTF8_POLICY
    content = _content(body, policy, files)
    msg = EmailMessage(policy=policy)
    for name, value in _headers(envelope):
        _set(msg, name, value)
    for name, value in content.raw_items():  # MIME-Version, Content-Type, ...
        msg.set_raw(name, value)
    if envelope.language:
        _set(msg, "Content-Language", clean_token(envelope.language))
    msg.set_payload(content.get_payload())
    raw = msg.as_bytes()
    _check_header_names(raw, msg.keys())
    return raw


def _content(body: Rendered, policy: Policy, files: Sequence[FilePart]) -> EmailMessage:
    """The MIME structure and parts, made on a message without our headers (the email
    package looks its headers up one by one, many times over)."""
    content = EmailMessage(policy=policy)
    content.set_content(body.text, cte=_cte(body.text))
    parts = file_parts(files, body.html, policy) if files else None
    boundary = _boundary(body, parts.verbatim if parts else ())
    if body.html:
        content.make_alternative(boundary=boundary)
        content.add_alternative(body.html, subtype="html", cte=_cte(body.html))
        for part in content.iter_parts():  # a part made as an EmailMessage gets one too
            del part["MIME-Version"]
    if parts and parts.related:  # only the HTML shows them: text, then (HTML + pictures)
        html = content.get_payload()[1]
        html.make_related(boundary=f"{boundary}.r")
        for part in parts.related:
            html.attach(part)
    if parts and parts.attached:
        content.make_mixed(boundary=f"{boundary}.m")
        for part in parts.attached:
            content.attach(part)
    return content


def _set(msg: EmailMessage, name: str, value: str) -> None:
    """Add a header. Ours (FoldedHeader, TokenHeader) fold themselves; other ASCII values
    are kept as they are (the policy folds a long one): parsing each into a header object
    took longer than the rest of the message."""
    if isinstance(value, FoldedHeader | TokenHeader) or value.isascii():
        msg.set_raw(name, value)
    else:
        msg[name] = value


def _boundary(body: Rendered, verbatim: Sequence[str] = ()) -> str:
    """This process's boundary, or a new one when a part holds it (a customer can quote
    one from a notification they got, or forward the whole notification). The generator
    would make one per message and check it with a regular expression compiled anew
    each time: with the headers that then repeat, a third of the time spent on a
    message. Quoted-printable and base64 cannot hold "=_", so only text that goes out
    as it is needs the check. Nested multiparts add a suffix to it."""
    boundary = _BOUNDARY
    while (
        boundary in body.text
        or boundary in (body.html or "")
        or any(boundary in text for text in verbatim)
    ):
        boundary = f"=_md_{uuid.uuid4().hex}"
    return boundary


_BOUNDARY = f"=_md_{uuid.uuid4().hex}"


def _cte(text: str) -> str | None:
    """The transfer encoding to ask for; None lets the email package choose. NUL cannot
    travel as 7bit (RFC 2045 2.7).

    For text that is mostly not ASCII (Cyrillic, Greek, CJK) the answer is base64, the
    one the email package would choose: it quoted-printable encodes the first ten lines
    in pure Python to compare the two, two thirds of the time a message's parts took.
    Quoted-printable writes every byte over 127 as three characters, so when those
    alone are longer than the base64 of the same lines, its comparison picks base64.
    """
    if "\x00" in text:
        return "quoted-printable"
    if text.isascii():
        return None
    sample = b"\r\n".join(text.encode().splitlines()[:10]) + b"\r\n"  # as the package samples
    high = len(sample.translate(None, _ASCII))
    return "base64" if 3 * high > len(binascii.b2a_base64(sample)) else None


_ASCII = bytes(range(128))


def _check_header_names(raw: bytes, names: list[str]) -> None:
    """The bytes must carry exactly the header lines that were set (nothing injected)."""
    head = raw[: raw.find(b"\r\n\r\n") + 2]
    written = _FIELD_NAME.findall(head)
    if len(written) != head.count(b"\r\n") - head.count(b"\r\n ") - head.count(b"\r\n\t"):
        raise ComposeError("refusing to send a notification with a header line without a name")
    if sorted(w.lower() for w in written) != sorted(n.lower().encode() for n in names):
        raise ComposeError(
            "refusing to send a notification whose headers came out different from what was set"
        )


def thread_topic(subject: str) -> str:
    """The subject without reply prefixes: what Outlook shows as the conversation's topic."""
    return _REPLY_PREFIX.sub("", subject).strip()


def _headers(e: Envelope) -> list[tuple[str, Any]]:
    headers: list[tuple[str, Any]] = [
        ("From", address_header("From", [_mailbox(e.sender)])),
        ("To", address_header("To", [_mailbox(a) for a in e.to])),
    ]
    if e.cc:
        headers.append(("Cc", address_header("Cc", [_mailbox(a) for a in e.cc])))
    headers += [
        ("Reply-To", address_header("Reply-To", [_mailbox(e.reply_to)])),
        ("Subject", text_header("Subject", e.subject)),
        ("Date", email.utils.format_datetime(e.date)),
        ("Message-ID", TokenHeader("Message-ID", f"<{clean_id(e.message_id)}>")),
    ]
    if e.in_reply_to and safe_ids([e.in_reply_to]):
        headers.append(("In-Reply-To", TokenHeader("In-Reply-To", f"<{e.in_reply_to}>")))
    refs = trim_references(safe_ids(e.references))
    if refs:
        headers.append(("References", TokenHeader("References", " ".join(f"<{r}>" for r in refs))))
    # Outlook groups conversations by these two, not by References.
    headers.append(("Thread-Topic", text_header("Thread-Topic", thread_topic(e.subject))))
    if e.thread_root:
        # A token is never folded: at most 100 levels (696 characters) keeps its line
        # under RFC 5322's 998; Outlook threads by the root and the first levels anyway.
        index = thread_index(e.thread_root, min(e.thread_depth, MAX_THREAD_DEPTH), e.date)
        headers.append(("Thread-Index", TokenHeader("Thread-Index", index)))
    if e.auto_submitted:
        headers += [
            ("Auto-Submitted", clean_token(e.auto_submitted)),
            ("X-Auto-Response-Suppress", "All"),
            ("Precedence", "auto_reply"),
        ]
    headers.append((LOOP_HEADER, clean_token(e.loop_token)))
    if e.ticket_ref:  # an answer to an agent's #find is about no ticket
        headers.append(("X-Maildesk-Ticket", clean_token(e.ticket_ref)))
    return headers


def _mailbox(addr: Address) -> Address:
    return Address(clean_text(addr.name), clean_id(addr.address))


def clean_token(value: str) -> str:
    """A short value of ours (ticket ref, domain, language) as one plain header token.

    The email package decodes encoded words in the values it is given, so `=?` is
    broken up."""
    return clean_text(value).replace("=?", "= ?")


def clean_id(value: str) -> str:
    """A Message-ID or address with anything that could end a header removed."""
    return _ID_UNSAFE.sub("", value)


def trim_references(refs: list[str]) -> list[str]:
    """The first reference (the thread root) plus the most recent ones, per RFC 5322 3.6.4."""
    unique = list(dict.fromkeys(r for r in refs if r))
    if len(unique) <= MAX_REFERENCES:
        return unique
    return [unique[0], *unique[-(MAX_REFERENCES - 1) :]]
