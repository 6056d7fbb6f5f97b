"""What a batch carries through planning: its messages as read, the inputs read once per
batch, and what is worked out for all its messages at once (#merge targets, languages)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from maildesk.common.domain import Status
from maildesk.common.errors import StageError
from maildesk.common.search_query import SearchHit
from maildesk.decide.batch_state import BatchState
from maildesk.decide.commands import parse_commands
from maildesk.decide.decision import FileRef, LastMessage
from maildesk.decide.kb import Article
from maildesk.intake.message import ParsedMessage
from maildesk.intake.raw_mail import IncomingMail
from maildesk.rules import RuleSet
from maildesk.service.ingest_results import SourceInfo
from maildesk.triage.bounce import BounceReport
from maildesk.triage.language import detect_languages, language_text
from maildesk.triage.reply_tokens import ReplyKeys
from maildesk.triage.screen import MailClass, Screening
from maildesk.triage.thread_keys import ThreadKeys, format_token, subject_ticket_numbers

_MERGE = re.compile("#merge", re.IGNORECASE)  # a scan, not a lowered copy of every body


@dataclass(frozen=True)
class BatchInputs:
    """Read once per batch: the rules in force, the time, KB articles, the rating secret."""

    rules: RuleSet
    now: datetime
    kb_articles: tuple[Article, ...]
    rating_secret: str | None
    reply_keys: ReplyKeys | None
    searches: Mapping[str, tuple[SearchHit, ...]] = field(default_factory=dict)  # for #find
    last_message: Callable[[int], LastMessage | None] | None = None  # for #assign's notice
    ticket_files: Callable[[int], Sequence[FileRef]] | None = None  # in the batch's session
    languages: Mapping[str, str | None] = field(default_factory=dict)  # by dedup_key


@dataclass
class BatchEntry:
    """One message of a batch: as received, where from, and as read."""

    mail: IncomingMail
    source: SourceInfo
    parsed: ParsedMessage | StageError
    screening: Screening | None = None
    bounce: BounceReport | None = None
    keys: ThreadKeys = field(default_factory=lambda: ThreadKeys([], []))  # found once
    bounced_ref: str | None = None  # the ticket whose signed return path it came to (VERP)
    returns_ours: bool = False  # the bounce returns a notification we sent
    referenced: bool = False  # its ticket was found by a Message-ID it quotes
    answers: bool = False  # its ticket holds a message it answers (In-Reply-To/References)
    in_conversation: bool = False  # that message is ours or its ticket's people's


def merge_targets(entries: list[BatchEntry], prefix: str) -> set[str]:
    """Tickets named by `#merge REF` commands, loaded so the deciding step can check them."""
    refs = set()
    for entry in entries:
        if isinstance(entry.parsed, ParsedMessage) and _MERGE.search(entry.parsed.text):
            for command in parse_commands(entry.parsed.text).named("merge"):
                for number in subject_ticket_numbers(f"[{command.argument}]", prefix):
                    refs.add(format_token(prefix, number).upper())
    return refs


def batch_languages(entries: list[BatchEntry], state: BatchState) -> dict[str, str | None]:
    """The language of each person's mail in the batch that may open a ticket, told in
    one call (cheaper than calls one by one). Not of a requester's or participant's
    reply to an open ticket the batch holds (a third of the mail of a busy desk): only
    a new ticket takes its language, and should such a reply open one after all,
    deciding tells its language alone."""
    people = [
        e.parsed
        for e in entries
        if isinstance(e.parsed, ParsedMessage)
        and e.screening is not None
        and e.screening.kind in (MailClass.PERSON, MailClass.LIST)
        and not _follows_up(e.parsed, e.keys, state)
    ]
    found = detect_languages([language_text(msg) for msg in people])
    return {msg.dedup_key: language for msg, language in zip(people, found, strict=True)}


def _follows_up(msg: ParsedMessage, keys: ThreadKeys, state: BatchState) -> bool:
    """Is `msg` a reply by one of its people to an open ticket (loaded for the batch)?"""
    ticket = state.find_ticket(keys)
    return (
        ticket is not None
        and ticket.status is not Status.CLOSED
        and (msg.from_addr == ticket.requester or msg.from_addr in ticket.participants)
    )
