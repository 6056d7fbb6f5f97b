"""Is this mail automatic? Auto-replies, bounces, mailing lists and our own mail coming back.

Such mail is stored but never answered automatically (RFC 3834), so two robots
can't mail each other forever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from maildesk.intake.message import ParsedMessage
from maildesk.triage.reply_tokens import base_address

LOOP_HEADER = "X-Maildesk-Loop"


class MailClass(StrEnum):
    PERSON = "person"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    LIST = "list"
    OWN = "own"  # one of our own messages came back


@dataclass(frozen=True)
class Screening:
    """What kind of mail this is and why we think so."""

    kind: MailClass
    reason: str = ""
    # A person's mail that asks not to be auto-answered (X-Auto-Response-Suppress).
    suppress_reply: bool = False

    @property
    def automatic(self) -> bool:
        """True when the mail was sent by a machine, not typed by a person."""
        return self.kind is not MailClass.PERSON

    @property
    def may_auto_reply(self) -> bool:
        """True when an automatic answer to it cannot start a mail loop."""
        return not self.automatic and not self.suppress_reply


# The shape of the Message-IDs compose.new_message_id makes: `md-42.<hex>@domain`.
_OUR_ID = re.compile(r"^[a-z][a-z0-9]*-\d+\.[0-9a-f]{12,32}@", re.IGNORECASE)
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply", "auto-reply"}
_DAEMON_LOCALPARTS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}


def screen_message(
    msg: ParsedMessage, *, own_domain: str, own_addresses: frozenset[str]
) -> Screening:
    """Classify `msg`; the first matching signal wins and is given as the reason."""
    own = _own_mail(msg, own_domain, own_addresses)
    if own:
        return Screening(MailClass.OWN, own)
    bounce = _bounce(msg)
    if bounce:
        return Screening(MailClass.BOUNCE, bounce)
    auto = _auto_reply(msg)
    if auto:
        return Screening(MailClass.AUTO_REPLY, auto)
    for name in ("List-Id", "List-Unsubscribe", "List-Post"):
        if msg.header(name) is not None:
            return Screening(MailClass.LIST, f"{name} header")
    if msg.header("X-Auto-Response-Suppress") is not None:
        return Screening(MailClass.PERSON, "X-Auto-Response-Suppress header", suppress_reply=True)
    return Screening(MailClass.PERSON)


def _own_mail(msg: ParsedMessage, own_domain: str, own_addresses: frozenset[str]) -> str:
    # Another maildesk's loop header names its own domain; its mail is not ours.
    if any(v.strip().lower() == own_domain.lower() for v in msg.header_all(LOOP_HEADER)):
        return f"{LOOP_HEADER}: {own_domain}"
    if (
        msg.message_id
        and _OUR_ID.match(msg.message_id)
        and msg.message_id.lower().endswith("@" + own_domain.lower())
    ):
        return f"Message-ID made by maildesk for {own_domain}"
    if base_address(msg.from_addr) in own_addresses:
        return f"sent from our own address {msg.from_addr}"
    return ""


def _bounce(msg: ParsedMessage) -> str:
    if msg.content_type == "multipart/report" and not _is_read_receipt(msg):
        return "multipart/report delivery status"
    local = msg.from_addr.partition("@")[0]
    if local in _DAEMON_LOCALPARTS:
        return f"sender {msg.from_addr}"
    return_path = msg.header("Return-Path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return "empty Return-Path"
    return ""


def _is_read_receipt(msg: ParsedMessage) -> bool:
    return "disposition-notification" in (msg.header("Content-Type") or "").lower()


def _auto_reply(msg: ParsedMessage) -> str:
    raw = (msg.header("Auto-Submitted") or "").strip().lower()
    # "no" may carry parameters or a comment: `no; x=y`, `no (typed by a person)`.
    auto_submitted = re.split(r"[;(\s]", raw, maxsplit=1)[0]
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {raw}"
    if msg.content_type == "multipart/report" and _is_read_receipt(msg):
        return "read receipt (disposition-notification report)"
    for name in ("X-Autoreply", "X-Autorespond"):
        if msg.header(name) is not None:
            return f"{name} header"
    precedence = (msg.header("Precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    return ""
