"""Is this mail automatic? Auto-replies, bounces, mailing lists and our own mail coming back.

Such mail is stored but never answered automatically (RFC 3834), so two robots
can't mail each other forever. The shapes themselves are in `shapes` and `robots`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from maildesk.intake.message import ParsedMessage
from maildesk.triage.reply_tokens import base_address
from maildesk.triage.robots import null_return_path
from maildesk.triage.shapes import auto_reply_shape, failure_subject, report_shape, sender_shape

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
    # What kind of automatic mail: bounce, complaint, delivery, receipt, auto_reply.
    subtype: str = ""
    # Mail whose From a list rewrote (`list_author`): the list's address, and the header
    # its author was read from. Anyone can write that header: never an agent's mail.
    relayed_by: str = ""
    author_header: str = ""

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
_LIST_HEADERS = ("List-Id", "List-Unsubscribe", "List-Post")
_BULK_PRECEDENCE = {"bulk", "junk", "list"}


def screen_message(
    msg: ParsedMessage, *, own_domain: str, own_addresses: frozenset[str]
) -> Screening:
    """Classify `msg`; the first matching signal wins and is given as the reason.

    Reports about mail we sent come first (a DSN often also says Auto-Submitted), then
    mail daemons' own addresses, auto-replies, a null return path, and mailing lists.
    `Precedence: list`/`bulk` is list or bulk mail a person may well have written.
    """
    own = _own_mail(msg, own_domain, own_addresses)
    if own:
        return Screening(MailClass.OWN, own)
    found = report_shape(msg) or sender_shape(msg)
    if found:
        return Screening(MailClass.BOUNCE, found[1], subtype=found[0])
    auto = _auto_submitted(msg) or auto_reply_shape(msg)
    if auto:
        return Screening(MailClass.AUTO_REPLY, auto[1], subtype=auto[0])
    if null_return_path(msg):
        return Screening(MailClass.BOUNCE, "empty Return-Path", subtype="bounce")
    for name in _LIST_HEADERS:
        if msg.header(name) is not None:
            return Screening(MailClass.LIST, f"{name} header")
    precedence = (msg.header("Precedence") or "").strip().lower()
    if precedence in _BULK_PRECEDENCE:
        return Screening(MailClass.LIST, f"Precedence: {precedence}")
    if msg.header("X-Auto-Response-Suppress") is not None:
        return Screening(MailClass.PERSON, "X-Auto-Response-Suppress header", suppress_reply=True)
    return Screening(MailClass.PERSON)


def second_opinion(screening: Screening, msg: ParsedMessage) -> Screening:
    """Mail taken for a person's (or a list's) whose subject says delivery failed: the
    failed recipients flufl.bounce found in its text (the parser ran it, see
    intake.delivery_status) make it a bounce."""
    if screening.kind not in (MailClass.PERSON, MailClass.LIST) or not failure_subject(msg):
        return screening
    report = msg.delivery
    failures = report.recipients if report is not None and report.source == "text" else ()
    if not failures:
        return screening
    reason = f"flufl.bounce reads {len(failures)} failed recipient(s)"
    return Screening(MailClass.BOUNCE, reason, subtype="bounce")


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


def _auto_submitted(msg: ParsedMessage) -> tuple[str, str] | None:
    raw = (msg.header("Auto-Submitted") or "").strip().lower()
    # "no" may carry parameters or a comment: `no; x=y`, `no (typed by a person)`.
    auto_submitted = re.split(r"[;(\s]", raw, maxsplit=1)[0]
    if auto_submitted and auto_submitted != "no":
        return "auto_reply", f"Auto-Submitted: {raw}"
    return None
