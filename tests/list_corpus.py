"""The list corpus (tests/corpus/lists, sources in SOURCES.md) run through a desk.

A desk whose support address is the list's posting address (its `List-Post`) ingests
every message of one or more mbox files in date order, one message per batch, its
clock at each message's date. The threads it should reproduce are the connected
components of the In-Reply-To/References graph within the corpus: a message whose
references name no message of the corpus starts a thread. `measure` says how many
threads came out as exactly one ticket of their own, and how many replies landed on
their thread's ticket, and how many of the others are on a ticket linked to it (a
stranger's own ticket, "Linked to MD-N" in the agents' notice).

`LIST_RULES` put everything in a `participants: list` queue, as a desk reading a public
list would; the example rules (the default) let only proven participants join.
"""

from __future__ import annotations

import mailbox
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path

from sqlalchemy import select

from maildesk.service.desk import Desk
from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import Message, Ticket

CORPUS = Path(__file__).parent / "corpus" / "lists"

LIST_RULES = """
version: 1
default: {queue: lists, priority: normal, auto_reply: none, language: en}
queues:
  lists: {agents: [alice], participants: list}
agents:
  alice: {address: alice@example.com, name: Alice Archer}
"""

_ID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class ListMail:
    raw: bytes
    message_id: str  # without angle brackets, as maildesk stores it
    refs: tuple[str, ...]  # In-Reply-To and References, without angle brackets
    sender: str
    date: datetime
    subject: str


@dataclass
class Figures:
    """What a run reproduced; `threads`/`replies` are what the corpus holds."""

    threads: int = 0
    threads_reproduced: int = 0
    replies: int = 0
    replies_joined: int = 0
    replies_linked: int = 0  # the others, on a ticket linked to their thread's ticket
    tickets: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    missed: list[str] = field(default_factory=list)  # one line per reply not on its ticket

    def summary(self) -> str:
        return (
            f"{self.threads_reproduced} of {self.threads} threads reproduced,"
            f" {self.replies_joined} of {self.replies} replies on their thread's ticket"
            f" ({self.replies_linked} more on a ticket linked to it), {self.tickets} tickets"
        )


def mbox_files(path: Path = CORPUS) -> list[Path]:
    return [path] if path.is_file() else sorted(path.glob("*.mbox"))


def read_corpus(files: Iterable[Path]) -> list[ListMail]:
    """Every message with a Message-ID, oldest first (ties keep the files' order)."""
    found = []
    for file in files:
        for msg in mailbox.mbox(file, create=False):
            ids = _ID.findall(str(msg.get("Message-ID", "")))
            if not ids:
                continue
            refs = _ID.findall(f"{msg.get('In-Reply-To', '')} {msg.get('References', '')}")
            date = _date(msg.get("Date"))
            raw = msg.as_bytes(unixfrom=False)
            sender = parseaddr(str(msg.get("From", "")))[1].lower()
            found.append(ListMail(raw, ids[0], tuple(refs), sender, date, str(msg["Subject"])))
    return sorted(found, key=lambda m: m.date)


def list_address(mails: Iterable[ListMail]) -> str:
    """The posting address most of the corpus names in `List-Post` (mailto:)."""
    seen: Counter[str] = Counter()
    for mail in mails:
        match = re.search(rb"(?im)^List-Post:\s*<mailto:([^>\s]+)>", mail.raw)
        if match:
            seen[match.group(1).decode().lower()] += 1
    return seen.most_common(1)[0][0]


def threads(mails: list[ListMail]) -> list[list[ListMail]]:
    """Connected components of the reference graph, each in date order."""
    ids = {m.message_id for m in mails}
    parent = {m.message_id: m.message_id for m in mails}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for mail in mails:
        for ref in mail.refs:
            if ref in ids:
                parent[root(mail.message_id)] = root(ref)
    groups: dict[str, list[ListMail]] = {}
    for mail in mails:
        groups.setdefault(root(mail.message_id), []).append(mail)
    return list(groups.values())


def ingest(desk: Desk, mails: list[ListMail], set_clock: Callable[[datetime], None]) -> Counter:
    """Each message in its own batch, in date order; the outcomes counted."""
    outcomes: Counter[str] = Counter()
    for mail in mails:
        set_clock(mail.date)
        result = desk.pipeline.process_one(mail.raw, SourceInfo(source="list"))
        outcomes[result.outcome] += 1
    return outcomes


def measure(desk: Desk, mails: list[ListMail], outcomes: Counter | None = None) -> Figures:
    """Compare the tickets `desk` made of `mails` with the corpus's threads."""
    with desk.sessions() as s:
        rows = s.execute(
            select(Message.message_id, Ticket.ref).join(Ticket, Message.ticket_id == Ticket.id)
        ).all()
        made = s.execute(select(Ticket.id, Ticket.ref, Ticket.linked_from_id)).all()
    ref_of = {ticket_id: ref for ticket_id, ref, _ in made}
    linked_to = {ref: ref_of.get(linked) for _, ref, linked in made}  # ref -> ref or None
    tickets = len(made)
    stored = dict(rows)
    ticket_of = {m.message_id: stored.get(m.message_id) for m in mails}
    per_ticket = Counter(ticket_of.values())
    figures = Figures(tickets=tickets, outcomes=outcomes or Counter())
    for thread in threads(mails):
        figures.threads += 1
        first = ticket_of[thread[0].message_id]
        on_first = [m for m in thread[1:] if first and ticket_of[m.message_id] == first]
        figures.replies += len(thread) - 1
        figures.replies_joined += len(on_first)
        if first and len(on_first) == len(thread) - 1 and per_ticket[first] == len(thread):
            figures.threads_reproduced += 1
        for mail in thread[1:]:
            if mail in on_first:
                continue
            got = ticket_of[mail.message_id]
            linked = first is not None and _links_to(got, first, linked_to)
            figures.replies_linked += linked
            figures.missed.append(
                f"{mail.sender} {mail.subject[:50]!r}: {got}"
                f" ({'linked to' if linked else 'thread'} {first})"
            )
    return figures


def _links_to(ref: str | None, to: str, linked_to: dict[str, str | None]) -> bool:
    """Whether ticket `ref` is `to` or was linked to it, directly or through others."""
    seen = set()
    while ref is not None and ref not in seen:
        if ref == to:
            return True
        seen.add(ref)
        ref = linked_to.get(ref)
    return False


def _date(value: object) -> datetime:
    try:
        date = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return datetime(1970, 1, 1, tzinfo=UTC)
    return date if date.tzinfo else date.replace(tzinfo=UTC)
