"""A bounce's report, read from the parsed tree while the message is parsed.

Bounces are received bytes like any other mail, so they are read where the parser
runs (a time- and memory-limited child by default), from the tree it already built:
the per-recipient fields of RFC 3464 `message/delivery-status` parts, the headers of
the returned message (attached, or as `text/rfc822-headers`), and for bounces that
only quote it as text, the Message-IDs and X-Maildesk-Ticket line in the text.
`triage.bounce` turns this into a BounceReport for the desk's own domain.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import BytesHeaderParser, HeaderParser

from maildesk.intake.message import DeliveryStatus, Recipient, Spilled

# No "@" in the local part: with one, a long run of "a@a@a@..." costs quadratic time.
_ID = re.compile(r"<([^<>\s@]+@[^<>\s]+)>")
_TICKET = re.compile(r"^X-Maildesk-Ticket:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
_HEADER_TYPES = ("text/rfc822-headers", "text/global-headers")
_MESSAGE_TYPES = ("message/rfc822", "message/global")
# The senders and signals triage.screen takes for a bounce.
DAEMON_LOCALPARTS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
MAX_TEXT_DOMAINS = 1000


def looks_like_bounce(content_type: str, from_addr: str, return_path: str | None) -> bool:
    """A multipart/report, mail from a mailer daemon, or mail with an empty Return-Path."""
    if content_type == "multipart/report":
        return True
    if from_addr.partition("@")[0] in DAEMON_LOCALPARTS:
        return True
    return return_path is not None and return_path.strip() in ("<>", "")


def read_delivery_status(tree: Message, raw: bytes, spilled: Spilled | None) -> DeliveryStatus:
    """The report in a parsed bounce; empty fields where it does not say."""
    recipients: list[Recipient] = []
    headers: list[Message] = []
    quoted_text = [raw]
    for part in tree.walk():
        ctype = part.get_content_type()
        if ctype in _STATUS_TYPES:
            recipients.extend(_status_blocks(part))
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
    return DeliveryStatus(tuple(recipients), quoted_id, quoted_ref, text_ids, text_ref)


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
        found.append(
            Recipient(
                address=address,
                action=_field(block, "Action").lower(),
                status=_field(block, "Status"),
                diagnostic=_field(block, "Diagnostic-Code").partition(";")[2].strip()
                or _field(block, "Diagnostic-Code"),
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
