"""Read a bounce (delivery status notification): which of our messages failed, for whom.

Pure: bytes in, a BounceReport out. RFC 3464 reports are read field by field; other
bounces are read by `bounce_text` (flufl.bounce, SES notifications) and searched for
our Message-IDs and the X-Maildesk-Ticket header.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser

from maildesk.triage.bounce_text import other_report, status_code

_ID = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


@dataclass(frozen=True)
class Recipient:
    """One recipient's line in a delivery status report."""

    address: str
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str = ""  # e.g. 5.1.1
    diagnostic: str = ""

    @property
    def failed(self) -> bool:
        return self.action == "failed" or (not self.action and self.status.startswith("5"))


@dataclass(frozen=True)
class BounceReport:
    """What a bounce says about a message we sent."""

    original_message_id: str | None = None
    ticket_ref: str | None = None
    recipients: list[Recipient] = field(default_factory=list)
    kind: str = "bounce"  # bounce, complaint (ARF, SES) or delivery (SES: it arrived)

    @property
    def failed(self) -> list[Recipient]:
        return [r for r in self.recipients if r.failed]

    def summary(self) -> str:
        """One line for the event log: who failed and why."""
        if not self.recipients:
            return "delivery failed (no per-recipient report)"
        return "; ".join(
            f"{r.address}: {r.action or 'failed'} {r.status} {r.diagnostic}".strip()
            for r in self.recipients
        )


def read_bounce(raw: bytes, *, own_domain: str) -> BounceReport:
    """The report in a bounce; empty fields where the bounce does not say."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    recipients: list[Recipient] = []
    headers: list[Message] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            recipients.extend(_status_blocks(part))
        elif ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                headers.append(inner[0])
        elif ctype in ("text/rfc822-headers", "text/global-headers"):
            headers.append(HeaderParser().parsestr(_text(part)))
    message_id, ref = _original(headers, raw, own_domain)
    kind = "complaint" if _is_complaint(msg) else "bounce"
    if not recipients and kind == "bounce":
        failures, found_id, found_kind = other_report(msg)
        recipients = [Recipient(*f) for f in failures]
        message_id, kind = found_id or message_id, found_kind or kind
    return BounceReport(message_id, ref, recipients, kind)


def _is_complaint(msg: Message) -> bool:
    return any(p.get_content_type() == "message/feedback-report" for p in msg.walk())


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


def _original(headers: list[Message], raw: bytes, own_domain: str) -> tuple[str | None, str | None]:
    for h in headers:
        ids = _ID.findall(str(h.get("Message-ID", "")))
        ref = _field(h, "X-Maildesk-Ticket") or None
        if ids or ref:
            return (ids[0] if ids else None), ref
    # A bounce that only quotes our message as text: look for our ids and ticket header.
    text = raw.decode("utf-8", "replace")
    ours = [i for i in _ID.findall(text) if i.lower().endswith("@" + own_domain.lower())]
    ref_match = re.search(r"^X-Maildesk-Ticket:\s*(\S+)", text, re.MULTILINE | re.IGNORECASE)
    return (ours[0] if ours else None), (ref_match.group(1) if ref_match else None)


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
