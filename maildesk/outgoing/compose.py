"""Build outgoing messages: headers that thread in every client and cannot be injected."""

from __future__ import annotations

import binascii
import email.policy
import email.utils
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from typing import Any

from maildesk.common.errors import MaildeskError
from maildesk.common.thread_index import thread_index
from maildesk.intake.charsets import decode_encoded_words
from maildesk.intake.message import Address
from maildesk.outgoing.templates import Rendered
from maildesk.triage.screen import LOOP_HEADER

_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv|отв)\s*:\s*)+", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_SAFE_ID = re.compile(r"^[^\s<>()\[\]\\,;:\"@=?]+@[^\s<>()\[\]\\,;:\"@]+$")
MAX_REFERENCES = 20


class ComposeError(MaildeskError):
    """An outgoing message would not come out as the headers it was built from."""


def clean_header(value: str) -> str:
    """A header value that stays one header line whatever is in it.

    CR, LF and other control characters become one space. Encoded words are decoded
    first (repeatedly: they may be nested), because mail clients decode them and the
    email package, before CPython 3.11.10, wrote a decoded CR LF out as a real line
    break (CVE-2024-6923). A `=?` still left is broken up.
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


def compose(envelope: Envelope, body: Rendered) -> bytes:
    """RFC 5322 bytes: a plain-text part and, when given, an HTML alternative."""
    addresses = [envelope.sender, *envelope.to, *envelope.cc, envelope.reply_to]
    if not all(a.address.isascii() for a in addresses):
        # A non-ASCII address can only be written as UTF-8 (RFC 6532), sent with SMTPUTF8.
        return _compose_utf8(envelope, body)
    headers = _headers(envelope)
    if envelope.language:
        headers.append(("Content-Language", clean_header(envelope.language)))
    mime_headers, mime_body = _mime(body)
    return _assemble([*headers, *mime_headers], mime_body)


def _mime(body: Rendered) -> tuple[list[tuple[str, str]], bytes]:
    """The MIME headers and body: text/plain, with an HTML alternative when there is one.

    Built by hand with C-speed quoted-printable (the stdlib generator is the slowest
    part of sending). QP never writes "=_", so the boundary cannot occur in a part.
    """
    text = _part("text/plain", body.text)
    if not body.html:
        return [("MIME-Version", "1.0"), *text[0]], text[1]
    boundary = f"=_md_{uuid.uuid4().hex}"
    html = _part("text/html", body.html)
    chunks = []
    for headers, data in (text, html):
        head = "".join(f"{n}: {v}\r\n" for n, v in headers).encode("ascii")
        chunks.append(b"--" + boundary.encode() + b"\r\n" + head + b"\r\n" + data)
    payload = b"\r\n".join(chunks) + b"\r\n--" + boundary.encode() + b"--\r\n"
    content_type = f'multipart/alternative; boundary="{boundary}"'
    return [("MIME-Version", "1.0"), ("Content-Type", content_type)], payload


def _part(content_type: str, text: str) -> tuple[list[tuple[str, str]], bytes]:
    data = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    encoded = binascii.b2a_qp(data.encode("utf-8"), istext=True)
    charset = "us-ascii" if text.isascii() else "utf-8"
    headers = [
        ("Content-Type", f'{content_type}; charset="{charset}"'),
        ("Content-Transfer-Encoding", "quoted-printable"),
    ]
    return headers, encoded if encoded.endswith(b"\r\n") else encoded + b"\r\n"


def _assemble(headers: list[tuple[str, Any]], body: bytes) -> bytes:
    """Our header block, folded here (the stdlib folds ~10x slower), then the body.

    Checked: the bytes must carry exactly the header lines that were set.
    """
    lines = [_fold(name, value) for name, value in headers]
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
    head = raw.split(b"\r\n\r\n", 1)[0]
    written = sorted(
        line.split(b":", 1)[0].strip().lower()
        for line in head.split(b"\r\n")
        if line and line[:1] not in b" \t"
    )
    expected = sorted(n.lower().encode() for n, _ in headers)
    if written != expected:
        raise ComposeError(
            "refusing to send a notification whose headers came out different from what was set"
        )
    return raw


def _fold(name: str, value: Any) -> bytes:
    """`Name: value` folded at spaces to lines of at most 78 characters where possible."""
    if isinstance(value, Header):
        return f"{name}: {value.encode(linesep=chr(13) + chr(10))}".encode("ascii")
    text = clean_header(str(value)) if not isinstance(value, str) else value
    line = f"{name}: {text}"
    if len(line) <= 78:
        return line.encode("ascii")
    out, current = [], f"{name}:"
    for word in text.split(" "):
        if len(current) + 1 + len(word) > 78 and current.strip() and current != f"{name}:":
            out.append(current)
            current = " " + word
        else:
            current += " " + word
    out.append(current)
    return "\r\n".join(out).encode("ascii")


def _compose_utf8(envelope: Envelope, body: Rendered) -> bytes:
    """The rare internationalised-address case, built with the SMTPUTF8 policy."""
    msg = EmailMessage(policy=email.policy.SMTPUTF8)
    for name, value in _headers(envelope, utf8=True):
        msg[name] = value
    msg.set_content(body.text)
    if body.html:
        msg.add_alternative(body.html, subtype="html")
    if envelope.language:  # after the body: setting content drops Content-* headers
        msg["Content-Language"] = clean_header(envelope.language)
    raw = msg.as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    names = [ln.split(b":", 1)[0].lower() for ln in head.split(b"\r\n") if ln[:1] not in b" \t"]
    if sorted(names) != sorted(n.lower().encode() for n in msg):
        raise ComposeError("refusing to send a notification whose headers came out different")
    return raw


def thread_topic(subject: str) -> str:
    """The subject without reply prefixes: what Outlook shows as the conversation's topic."""
    return _REPLY_PREFIX.sub("", subject).strip()


def _headers(e: Envelope, *, utf8: bool = False) -> list[tuple[str, Any]]:
    fmt = _utf8_address if utf8 else format_address
    headers: list[tuple[str, Any]] = [
        ("From", fmt(e.sender)),
        ("To", ", ".join(str(fmt(a)) for a in e.to)),
    ]
    if e.cc:
        headers.append(("Cc", ", ".join(str(fmt(a)) for a in e.cc)))
    headers += [
        ("Reply-To", fmt(e.reply_to)),
        ("Subject", clean_header(e.subject) if utf8 else encode_text(e.subject)),
        ("Date", email.utils.format_datetime(e.date)),
        ("Message-ID", f"<{clean_id(e.message_id)}>"),
    ]
    if e.in_reply_to and safe_ids([e.in_reply_to]):
        headers.append(("In-Reply-To", f"<{e.in_reply_to}>"))
    refs = trim_references(safe_ids(e.references))
    if refs:
        headers.append(("References", " ".join(f"<{r}>" for r in refs)))
    # Outlook groups conversations by these two, not by References.
    topic = clean_header(thread_topic(e.subject))
    headers.append(("Thread-Topic", topic if utf8 else encode_text(topic, "Thread-Topic")))
    if e.thread_root:
        headers.append(("Thread-Index", thread_index(e.thread_root, e.thread_depth, e.date)))
    if e.auto_submitted:
        headers += [
            ("Auto-Submitted", e.auto_submitted),
            ("X-Auto-Response-Suppress", "All"),
            ("Precedence", "auto_reply"),
        ]
    headers.append((LOOP_HEADER, clean_header(e.loop_token)))
    if e.ticket_ref:  # an answer to an agent's #find is about no ticket
        headers.append(("X-Maildesk-Ticket", clean_header(e.ticket_ref)))
    return headers


def encode_text(value: str, header_name: str = "Subject") -> str | Header:
    """An unstructured header value: cleaned, and RFC 2047-encoded when not ASCII."""
    value = clean_header(value)
    return value if value.isascii() else Header(value, "utf-8", header_name=header_name)


def format_address(addr: Address) -> str:
    """`Name <addr>` with the name quoted or encoded as needed and no control characters."""
    return email.utils.formataddr((clean_header(addr.name), clean_id(addr.address)), "utf-8")


def _utf8_address(addr: Address) -> HeaderAddress:
    local, _, domain = clean_id(addr.address).rpartition("@")
    return HeaderAddress(display_name=clean_header(addr.name), username=local, domain=domain)


def clean_id(value: str) -> str:
    """A Message-ID or address with anything that could end a header removed."""
    return re.sub(r"[\s<>\x00-\x1f\x7f\u0085\u2028\u2029]", "", value)


def trim_references(refs: list[str]) -> list[str]:
    """The first reference (the thread root) plus the most recent ones, per RFC 5322 3.6.4."""
    unique = list(dict.fromkeys(r for r in refs if r))
    if len(unique) <= MAX_REFERENCES:
        return unique
    return [unique[0], *unique[-(MAX_REFERENCES - 1) :]]
