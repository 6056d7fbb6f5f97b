"""The data the deciding step returns: a Decision with its notices and changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maildesk.common.config import TicketsConfig
from maildesk.common.domain import Author, MessageKind, Priority, TicketState
from maildesk.common.notify_config import NotifyConfig
from maildesk.common.search_query import SearchHit
from maildesk.intake.message import Address, ParsedMessage
from maildesk.rules import RuleFacts, RuleSet
from maildesk.triage.reply_tokens import ReplyKeys
from maildesk.triage.screen import Screening


@dataclass(frozen=True)
class FileRef:
    """A stored file a notification carries: named by its blob's SHA-256, never copied."""

    sha256: str
    filename: str
    content_type: str
    size: int
    content_id: str | None = None  # what an HTML body's `cid:` links point at
    inline: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "content_id": self.content_id,
            "inline": self.inline,
        }


@dataclass
class Notice:
    """A notification to render from `template` and queue in the outbox."""

    template: str
    to: list[Address]
    audience: str  # "requester" or "agents"
    automatic: bool = True
    cc: list[Address] = field(default_factory=list)
    from_agent: Address | None = None  # relayed replies show the agent's name
    on_behalf_of: Address | None = None  # agents' copies show the customer's name in From
    body_text: str | None = None  # text relayed from an agent or customer
    body_html: str | None = None  # that text's sanitised HTML, when it came with one
    attachments: list[FileRef] = field(default_factory=list)  # files the mail carries
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LastMessage:
    """The latest mail a customer wrote on a ticket, for an agent who takes it over."""

    sender: str  # "Name <address>"
    date: datetime | None
    text: str


@dataclass
class NewTicket:
    """The fields of a ticket this message opens."""

    subject: str
    requester: Address
    queue: str
    priority: Priority
    assignee: str | None
    language: str
    tags: list[str] = field(default_factory=list)
    sla_policy: str | None = None
    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    spam: bool = False
    linked_from: int | None = None  # the closed ticket a reply reopened as a new one
    assign_strategy: str | None = None
    assign_choice: bool = False  # the strategy chose among several agents (see Routing)
    thread_index: str | None = None  # Outlook's conversation root, when the request had one


@dataclass
class Change:
    """One field set on the ticket, with the reason that goes in the event log."""

    field: str
    value: Any
    reason: str
    quiet: bool = False  # bookkeeping (SLA state): applied, but not an event of its own


@dataclass(frozen=True)
class ForwardedBy:
    """An agent forwarded the customer's mail this decision is about (decide.forwards)."""

    agent: Address
    note: str  # what the agent wrote above the forwarded mail: an internal note
    original: ParsedMessage  # what is stored in place of the forward: the customer's mail


@dataclass
class Decision:
    """Everything the store must do for one message, in one transaction."""

    author: Author
    kind: MessageKind
    actor: str
    screening: Screening
    ticket_id: int | None = None
    new_ticket: NewTicket | None = None
    internal: bool = False
    changes: list[Change] = field(default_factory=list)
    participants: list[tuple[Address, str]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (event kind, text)
    rule_hits: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    merge_into: TicketState | None = None  # #merge: this ticket is folded into that one
    forwarded: ForwardedBy | None = None  # an agent's forward, stored as the customer's mail

    @property
    def ticketless(self) -> bool:
        """An answer that opens and changes no ticket (an agent's #find): only its notices
        are sent, and the message itself is not stored."""
        return self.new_ticket is None and self.ticket_id is None


@dataclass(frozen=True)
class DecideContext:
    """Configuration and facts the deciding step reads."""

    tickets: TicketsConfig
    rules: RuleSet
    now: datetime
    screening: Screening
    facts: RuleFacts
    auto_replies_last_hour: int = 0
    auto_reply_limit: int = 5
    own_addresses: frozenset[str] = frozenset()
    # Other tickets by reference (for #merge), knowledge-base articles (for #kb) and the
    # secret that signs rating links; all optional. `searches`: the store's results for
    # the batch's `#find QUERY` commands, by QUERY.
    find_ticket: Callable[[str], TicketState | None] | None = None
    searches: Mapping[str, Sequence[SearchHit]] = field(default_factory=dict)
    kb_articles: tuple[Any, ...] = ()
    rating_secret: str | None = None
    # The secrets that sign agents' reply addresses (None: none configured).
    reply_keys: ReplyKeys | None = None
    # The ticket was found by a Message-ID the message quotes: its sender saw the
    # conversation (Message-IDs cannot be guessed, unlike ticket numbers) and may join.
    referenced: bool = False
    # The ticket was found by a Message-ID of a message on it that this one answers (its
    # In-Reply-To/References), proof or not: enough to join in a `participants: list` queue.
    answers: bool = False
    # What it answers is ours or mail of the ticket's own people (CONVERSATION_AUTHORS):
    # the sender saw the conversation, which a forged From alone does not show.
    in_conversation: bool = False
    # A ticket's latest customer mail by ticket id (told to an agent it is assigned to).
    last_message: Callable[[int], LastMessage | None] | None = None
    # What files notifications carry, and the files stored on a ticket (by ticket id;
    # None: not known here, so `#send-attachments` has nothing to send).
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    ticket_files: Callable[[int], Sequence[FileRef]] | None = None
    # Languages told in advance for a whole batch, by message dedup_key (triage.language);
    # a message not in it is told when it opens a ticket.
    languages: Mapping[str, str | None] = field(default_factory=dict)
