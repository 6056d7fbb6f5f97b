"""Screening one message of a batch (with the real author of a post a list rewrote,
`triage.list_author`), and the ticket a bounce proves it is about.

Everything here consumes what the parser read (the ParsedMessage and the report on
its `delivery`); no received bytes are read in the daemon. A bounce is tied to a
ticket only by proof: it came to the return path signed for that ticket
(`triage.return_path`), or it returns a notification we sent (our own Message-ID,
checked against the outbox by `set_aside.returned_and_kept`). Never through a subject
or a header anyone can write (X-Maildesk-Ticket), which would let a forged bounce flag
someone's address.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from maildesk.common.config import TicketsConfig
from maildesk.common.domain import TicketState
from maildesk.decide.batch_state import BatchState
from maildesk.intake.message import ParsedMessage
from maildesk.triage.bounce import read_bounce
from maildesk.triage.list_author import original_author, posted_by, with_author
from maildesk.triage.reply_tokens import ReplyKeys, addressed_to
from maildesk.triage.return_path import bounced_ref
from maildesk.triage.screen import MailClass, Screening, screen_message, second_opinion
from maildesk.triage.thread_keys import ThreadKeys, subject_ticket_numbers, thread_keys

if TYPE_CHECKING:
    from maildesk.service.batch_entry import BatchEntry


def screen_entry(
    entry: BatchEntry,
    tickets: TicketsConfig,
    own_addresses: frozenset[str],
    reply_keys: ReplyKeys | None,
    now: datetime,
) -> None:
    """Fill in what `entry` is (its screening), the thread keys it carries, the ticket
    whose return path it came to, and for a bounce, its report."""
    msg = entry.parsed
    if not isinstance(msg, ParsedMessage):
        return
    # A post a list rewrote for DMARC is its author's from here on (threading, requester,
    # notices); the stored raw mail and its headers keep the list's From. Loops are still
    # caught: by our loop header and Message-IDs, by the list's From when no author is
    # found, and by the author's address when that is one of ours.
    relayed = original_author(msg)
    if relayed is not None:
        msg = entry.parsed = with_author(msg, relayed)
    entry.keys = thread_keys(msg, tickets.prefix)
    screening = screen_message(msg, own_domain=tickets.id_domain, own_addresses=own_addresses)
    screening = second_opinion(screening, msg)
    entry.bounced_ref = bounced_ref(
        addressed_to(msg), support=tickets.support_address, keys=reply_keys, now=now
    )
    if entry.bounced_ref and screening.kind in (MailClass.PERSON, MailClass.LIST):
        # Only machines write to a return path (RFC 3834): never a ticket of its own.
        reason = f"sent to the return path of {entry.bounced_ref}"
        screening = Screening(MailClass.AUTO_REPLY, reason, subtype="auto_reply")
    if relayed is not None:  # marked last, whatever the screening became
        screening = posted_by(screening, msg, relayed)
    entry.screening = screening
    if screening.kind is MailClass.BOUNCE:  # read by the parser, in its limits
        report = read_bounce(msg, own_domain=tickets.id_domain)
        if screening.subtype == "complaint":  # a complaint flags nobody as bouncing
            report = replace(report, kind="complaint")
        entry.bounce = report


def entry_keys(entry: BatchEntry, prefix: str) -> ThreadKeys:
    """What may tie the message to a ticket; a bounce also names what it returns."""
    keys = entry.keys
    original = entry.bounce.original_message_id if entry.bounce else None
    numbers = _ref_numbers(entry, prefix)
    if not original and not numbers:
        return keys
    ids = [original] if original else []
    return ThreadKeys([*numbers, *keys.ticket_numbers], [*ids, *keys.reference_ids])


def return_path_ticket(entry: BatchEntry, state: BatchState, prefix: str) -> TicketState | None:
    """The ticket whose signed return path the message came to, if any."""
    numbers = _ref_numbers(entry, prefix)
    return state.find_ticket(ThreadKeys(numbers, [])) if numbers else None


def returned_ticket(entry: BatchEntry, state: BatchState) -> TicketState | None:
    """For a bounce: the ticket of the notification of ours it returns, if it returns one."""
    original = entry.bounce.original_message_id if entry.bounce else None
    if original and entry.returns_ours:
        return state.find_ticket(ThreadKeys([], [original]))
    return None


def _ref_numbers(entry: BatchEntry, prefix: str) -> list[int]:
    ref = entry.bounced_ref
    return subject_ticket_numbers(f"[{ref}]", prefix) if ref else []
