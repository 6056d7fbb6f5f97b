"""A report's contents, read from the parsed tree while the message is parsed.

Bounces and complaints are received bytes like any other mail, so they are read where
the parser runs (a time- and memory-limited child by default), from the tree it already
built, when `report_signals.looks_like_report` says the message may be one: the
per-recipient fields of RFC 3464 `message/delivery-status` parts (a generic status
refined from the diagnostic), an ARF `message/feedback-report` part, else an Amazon
SES notification's JSON or the failures flufl.bounce finds in the text (`bounce_text`);
the headers of the returned message (attached, or as `text/rfc822-headers`), and for
bounces that only quote it as text, the Message-IDs and X-Maildesk-Ticket line in the
text. `triage.bounce` turns this into a BounceReport for the desk's own domain.
"""

from __future__ import annotations

import re
from dataclasses import replace
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

from maildesk.intake.bounce_text import other_report, status_code
from maildesk.intake.message import DeliveryStatus, Recipient, Spilled
from maildesk.intake.report_signals import FEEDBACK_TYPE, STATUS_TYPES

# No "@" in the local part: with one, a long run of "a@a@a@..." costs quadratic time.
_ID = re.compile(r"<([^<>\s@]+@[^<>\s]+)>")
_TICKET = re.compile(r"^X-Maildesk-Ticket:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
_HEADER_TYPES = ("text/rfc822-headers", "text/global-headers")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
MAX_TEXT_DOMAINS = 1000


def has_report_part(tree: Message) -> bool:
    """A delivery status or ARF feedback part anywhere in the message."""
    return any(p.get_content_type() in STATUS_TYPES or _feedback(p) for p in tree.walk())


def read_delivery_status(tree: Message, raw: bytes, spilled: Spilled | None) -> DeliveryStatus:
    """The report in a parsed bounce; empty fields where it does not say."""
    recipients: list[Recipient] = []
    headers: list[Message] = []
    quoted_text = [raw]
    complaint = False
    for part in tree.walk():
        ctype = part.get_content_type()
        if ctype in STATUS_TYPES:
            recipients.extend(_status_blocks(part))
        elif _feedback(part):
            complaint = True
        elif ctype in _MESSAGE_TYPES:
            stored = spilled.lookup(part) if spilled is not None else None
            if stored is not None and stored.head:  # cut out by the large-message reader
                headers.append(BytesHeaderParser().parsebytes(stored.head))
                quoted_text.append(stored.head)
                continue
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                headers.append(inner[0])
        elif ctype in _HEADER_TYPES:
            headers.append(HeaderParser().parsestr(_text(part)))
    quoted_id, quoted_ref = _quoted(headers)
    text_ids: dict[str, str] = {}
    text_ref = None
    if not (quoted_id or quoted_ref):
        text = b"\n".join(quoted_text).decode("utf-8", "replace")
        text_ids = _ids_by_domain(text)
        ref_match = _TICKET.search(text)
        text_ref = ref_match.group(1) if ref_match else None
    found = DeliveryStatus(tuple(recipients), quoted_id, quoted_ref, text_ids, text_ref)
    if complaint:
        return replace(found, kind="complaint", source="arf")
    if recipients:
        return replace(found, source="dsn")
    others, reported_id, kind = other_report(tree)
    source = "ses" if kind else "text" if others else ""
    kind = kind or "bounce"
    return replace(
        found, recipients=tuple(others), reported_id=reported_id, kind=kind, source=source
    )


def _feedback(part: Message) -> bool:
    """An ARF report part, also one labelled as a plain attached message."""
    ctype = part.get_content_type()
    if ctype == FEEDBACK_TYPE:
        return True
    inner = part.get_payload() if ctype.startswith("message/") else None
    return isinstance(inner, list) and bool(inner) and "Feedback-Type" in inner[0]


def _status_blocks(part: Message) -> list[Recipient]:
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = [b for b in payload if isinstance(b, Message)]
    else:  # left as text by the parser: split the field groups ourselves
        text = _text(part).replace("\r\n", "\n")
        blocks = [HeaderParser().parsestr(b) for b in re.split(r"\n\s*\n", text) if b.strip()]
    found = []
    for block in blocks:
        address = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
        if not address:
            continue  # the per-message block
        diagnostic = _field(block, "Diagnostic-Code")
        found.append(
            Recipient(
                address=address,
                action=_field(block, "Action").lower(),
                status=status_code(_field(block, "Status"), diagnostic),
                diagnostic=diagnostic.partition(";")[2].strip() or diagnostic,
            )
        )
    return found


def _quoted(headers: list[Message]) -> tuple[str | None, str | None]:
    for h in headers:
        ids = _ID.findall(str(h.get("Message-ID", "")))
        ref = _field(h, "X-Maildesk-Ticket") or None
        if ids or ref:
            return (ids[0] if ids else None), ref
    return None, None


def _ids_by_domain(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _ID.finditer(text):
        message_id = match.group(1)
        domain = message_id.rpartition("@")[2].lower()
        if domain not in found:
            if len(found) >= MAX_TEXT_DOMAINS:
                break
            found[domain] = message_id
    return found


def _address(value: str | None) -> str:
    if not value:
        return ""
    _, _, addr = str(value).partition(";")
    addr = (addr or str(value)).strip().strip("<>").strip()
    return addr.lower() if "@" in addr else ""


def _field(block: Message, name: str) -> str:
    return " ".join(str(block.get(name, "")).split())


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode(part.get_content_charset() or "utf-8", "replace")
    payload = part.get_payload()
    return payload if isinstance(payload, str) else ""
