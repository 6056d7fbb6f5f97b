"""Robot addresses: mail daemons, postmasters, no-reply senders and null return paths.

Nothing automatic is ever sent to these addresses: a mail daemon does not read, and an
acknowledgement to one is at best lost and at worst the start of a loop.
"""

from __future__ import annotations

import email.utils
import re

from maildesk.intake.message import ParsedMessage
from maildesk.intake.report_signals import (
    DAEMON_LOCALPARTS,
    LIST_MANAGER,
    NAMED_DAEMON,
    POSTMASTER_LOCALPARTS,
    local_part,
)

_NO_REPLY = re.compile(r"^(no|do-?not|dont)[-_.]?reply(?:$|[-_.+])", re.IGNORECASE)
_BOUNCE_BOX = re.compile(r"^(bounces?|mailer-daemon)(?:$|[-_.+=])", re.IGNORECASE)


def is_daemon(address: str) -> bool:
    """A mail system's own address: MAILER-DAEMON or postmaster, with or without a domain."""
    local = local_part(address)
    return local in DAEMON_LOCALPARTS or local in POSTMASTER_LOCALPARTS


def is_robot_address(address: str) -> bool:
    """An address no person reads: a mail daemon, a postmaster, no-reply, a bounce box,
    or no address at all (the null return path `<>`)."""
    local = local_part(address)
    if not local:
        return True
    return is_daemon(address) or bool(_NO_REPLY.match(local) or _BOUNCE_BOX.match(local))


def is_list_manager(address: str) -> bool:
    """A mailing-list manager's own address (`-request`, `-owner`, `-bounces`, `owner-`)."""
    return bool(LIST_MANAGER.search(local_part(address)))


def null_return_path(msg: ParsedMessage) -> bool:
    """The envelope sender was empty (`Return-Path: <>`): a bounce or an auto-reply."""
    value = msg.header("Return-Path")
    return value is not None and value.strip().strip("<>").strip() == ""


def daemon_sender(msg: ParsedMessage) -> str:
    """Why the From header names a mail daemon, or "". Also reads what the address parser
    drops: `MAILER-DAEMON <>` and `Mail Delivery Subsystem <MAILER-DAEMON>` (no domain)."""
    if msg.from_addr and is_daemon(msg.from_addr):
        return f"sender {msg.from_addr}"
    if msg.from_addr and "@" in msg.from_addr:
        return ""  # a whole address that is no daemon's: nothing was dropped to look at
    raw = msg.header("From")
    if raw is None:
        return ""
    _, address = email.utils.parseaddr(raw)
    no_address = not address.strip("<> ")
    if is_daemon(address) or (no_address and (NAMED_DAEMON.search(raw) or "<>" in raw)):
        return f"sender {' '.join(raw.split())[:80]}"
    return ""


def robot_recipient(address: str, msg: ParsedMessage | None = None) -> bool:
    """True when an automatic answer to `address` (the sender of `msg`) reaches no person."""
    if is_robot_address(address):
        return True
    return msg is not None and (null_return_path(msg) or bool(daemon_sender(msg)))
