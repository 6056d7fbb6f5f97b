"""What a bounce says when it is not a tidy RFC 3464 report, read from the parsed tree.

flufl.bounce (Mailman's maintained detectors for Exim, qmail, Exchange, GroupWise, Yahoo
and dozens of other MTAs' free-text bounces) finds the addresses that failed; the
status code is read from the text around each address. Amazon SES notifications are
JSON. Generic codes (5.0.0, 4.4.7) give way to the specific one the diagnostic names.
Like all reading of received bytes, this runs in the parser (`delivery_status`).
"""

from __future__ import annotations

import json
import logging
import re
from email.message import Message
from typing import Any

from flufl.bounce import all_failures

from maildesk.intake.message import Recipient

# flufl.bounce logs every detector it runs, and a traceback when one trips over odd mail.
logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)

# A Message-ID in angle brackets; no "@" in the local part keeps it linear (see
# delivery_status).
_ID = re.compile(r"<([^<>\s@]+@[^<>\s]+)>")
_CODE = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[a-z0-9][a-z0-9.-]*\.[a-z0-9-]+$", re.IGNORECASE)
# Codes that only say "failed" or "gave up": a diagnostic usually names the real cause.
_GENERIC = {"5.0.0", "4.0.0", "4.4.7", "5.4.7", "4.4.0", "5.5.0", "5.4.0"}
_TEXT_TYPES = ("text/plain", "text/html", "message/delivery-status")


def status_code(status: str, diagnostic: str = "") -> str:
    """The enhanced status code of a report: `5.1.1 (user unknown)` -> `5.1.1`; a generic
    code such as 5.0.0 gives way to a specific one of the same class in `diagnostic`."""
    found = _CODE.search(status or "")
    code = found.group(0) if found else ""
    if code and code not in _GENERIC:
        return code
    for match in _CODE.finditer(diagnostic or ""):
        better = match.group(0)
        if better not in _GENERIC and (not code or better[0] == code[0]):
            return better
    return code


def text_failures(msg: Message) -> list[Recipient]:
    """The recipients a free-text bounce reports, with the status code near each one."""
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector that trips over odd mail has found nothing
        return []
    text = _text_of(msg)
    found: list[Recipient] = []
    for action, addresses in (("failed", permanent), ("delayed", temporary)):
        for raw in sorted(addresses):
            address = raw.decode("utf-8", "replace").strip().strip("<>").lower()
            if not _ADDRESS.match(address):
                continue  # a heuristic caught something that is not an address
            diagnostic = _near(text, address)
            found.append(Recipient(address, action, status_code("", diagnostic), diagnostic))
    return found


def ses_failures(text: str) -> tuple[list[Recipient], str | None, str]:
    """Recipients, the original Message-ID and the notification type ("bounce",
    "complaint", "delivery") of an Amazon SES notification mailed by SNS; empty if none."""
    data = _ses_object(text)
    if data is None:
        return [], None, ""
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    mail = data.get("mail") if isinstance(data.get("mail"), dict) else {}
    if kind == "bounce":
        bounce = data.get("bounce") or {}
        action = "delayed" if bounce.get("bounceType") == "Transient" else "failed"
        found = [_ses_recipient(r, action) for r in bounce.get("bouncedRecipients") or []]
    elif kind == "complaint":
        items = (data.get("complaint") or {}).get("complainedRecipients") or []
        found = [Recipient(_email(r), "complained") for r in items]
    elif kind == "delivery":
        delivery = data.get("delivery") or {}
        code = status_code("", str(delivery.get("smtpResponse", ""))) or "2.0.0"
        addresses = delivery.get("recipients") or []
        found = [Recipient(str(a).lower(), "delivered", code) for a in addresses]
    else:
        return [], None, ""
    return [r for r in found if _ADDRESS.match(r.address)], _ses_message_id(mail), kind


def _ses_recipient(item: Any, action: str) -> Recipient:
    item = item if isinstance(item, dict) else {}
    diagnostic = " ".join(str(item.get("diagnosticCode", "")).split())
    code = status_code(str(item.get("status", "")), diagnostic)
    return Recipient(_email(item), str(item.get("action") or action).lower(), code, diagnostic)


def _email(item: Any) -> str:
    value = item.get("emailAddress", "") if isinstance(item, dict) else ""
    return str(value).strip().strip("<>").lower()


def _ses_message_id(mail: dict) -> str | None:
    common = mail.get("commonHeaders") if isinstance(mail.get("commonHeaders"), dict) else {}
    value = common.get("messageId")
    for header in mail.get("headers") or []:
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            value = header.get("value")
    text = str(value or "").strip()
    found = _ID.search(text)
    if found:
        return found.group(1)
    bare = text.strip("<>")  # SES also writes it bare
    return bare if "@" in bare and not re.search(r"[\s<>]", bare) else None


def _ses_object(text: str) -> dict | None:
    start = text.find("{")
    if start < 0:
        return None
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        # sendmail breaks lines over 990 characters with "!" + newline + space.
        try:
            data, _ = json.JSONDecoder().raw_decode(re.sub(r"!\r?\n ", "", text[start:]))
        except ValueError:
            return None
    if isinstance(data, dict) and isinstance(data.get("Message"), str):  # the SNS envelope
        try:
            data = json.loads(data["Message"])
        except ValueError:
            return None
    return data if isinstance(data, dict) else None


def _near(text: str, address: str) -> str:
    """The line naming `address` and the few after it: where MTAs put the reason."""
    lower = text.lower()
    at = lower.find(address)
    if at < 0:
        return ""
    start = lower.rfind("\n", 0, at) + 1
    lines = text[start:].splitlines()[:12]
    return " ".join(" ".join(lines).split())[:800]


def _text_of(msg: Message) -> str:
    chunks = []
    for part in msg.walk():
        if part.get_content_type() not in _TEXT_TYPES:
            continue
        data = part.get_payload(decode=True)
        if isinstance(data, bytes):
            try:
                chunks.append(data.decode(part.get_content_charset() or "utf-8", "replace"))
            except LookupError:  # a charset Python does not know
                chunks.append(data.decode("latin-1"))
    return "\n".join(chunks)[:200_000]


def other_report(msg: Message) -> tuple[list[Recipient], str | None, str]:
    """For a bounce without an RFC 3464 report: an SES notification's recipients, original
    Message-ID and type, else the failures flufl.bounce reads in the text (type "")."""
    failures, message_id, kind = ses_failures(_text_of(msg))
    if kind:
        return failures, message_id, kind
    return text_failures(msg), None, ""
