"""What a batch of messages knows while it is being decided: tickets, threads, duplicates.

Pure: the store fills it once per batch (store/lookup.py), then each decision updates
it, so a reply later in the same batch finds a ticket opened earlier in that batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from maildesk.common.domain import TicketState
from maildesk.intake.message import ParsedMessage
from maildesk.triage.thread_keys import ThreadKeys

ReceiptKey = tuple[str, int, int]


@dataclass
class BatchState:
    """Tickets and Message-IDs known to this batch, keyed the ways threading looks them up."""

    prefix: str
    tickets: dict[int, TicketState] = field(default_factory=dict)
    ref_ids: dict[str, int] = field(default_factory=dict)  # upper-case ref -> ticket id
    thread_refs: dict[str, int] = field(default_factory=dict)  # Message-ID -> ticket id
    our_ids: set[str] = field(default_factory=set)  # Message-IDs we made (80 random bits)
    # Customers' Message-IDs -> who wrote and received that message (From, To, Cc).
    audiences: dict[str, frozenset[str]] = field(default_factory=dict)
    stored: dict[str, tuple[str, int]] = field(default_factory=dict)  # key -> (ref, message pk)
    receipts: set[ReceiptKey] = field(default_factory=set)
    auto_replies: dict[str, int] = field(default_factory=dict)  # address -> count last hour
    last_notified: dict[str, int] = field(default_factory=dict)  # address -> ticket id
    # Facts for assignment strategies, kept current as this batch assigns tickets. Until
    # `assignment_facts`, they hold only this batch's own assignments (see RuleFacts).
    open_counts: dict[str, int] = field(default_factory=dict)
    last_assigned: dict[str, str] = field(default_factory=dict)
    assignment_facts: bool = False
    # Daemons choosing side by side from the same store counts (no assignment lock): each
    # of this batch's own picks counts this many times, so that together they even out
    # a difference once, instead of each of them evening it out in full.
    deciders: int = 1

    def assigned(self, queue: str, agent: str) -> None:
        """A strategy gave `agent` a ticket in `queue`: later messages must see it."""
        self.open_counts[agent] = self.open_counts.get(agent, 0) + self.deciders
        self.last_assigned[queue] = agent

    def take_assignment_facts(
        self, open_counts: dict[str, int], last: dict[str, str], deciders: int = 1
    ) -> None:
        """The store's facts, plus what this batch assigned before they were read."""
        for agent, count in self.open_counts.items():
            open_counts[agent] = open_counts.get(agent, 0) + count * deciders
        self.open_counts = open_counts
        self.last_assigned = {**last, **self.last_assigned}
        self.assignment_facts = True
        self.deciders = deciders

    def add_ticket(self, state: TicketState) -> None:
        self.tickets[state.id] = state
        self.ref_ids[state.ref.upper()] = state.id

    def find_ticket(self, keys: ThreadKeys) -> TicketState | None:
        """Subject token first, then In-Reply-To/References; merged tickets are followed."""
        for number in keys.ticket_numbers:
            ticket_id = self.ref_ids.get(f"{self.prefix}-{number}".upper())
            if ticket_id is not None:
                return self._follow(self.tickets[ticket_id])
        for message_id in keys.reference_ids:
            ticket_id = self.thread_refs.get(message_id)
            if ticket_id is not None and ticket_id in self.tickets:
                return self._follow(self.tickets[ticket_id])
        return None

    def thread(
        self, keys: ThreadKeys, sender: str, *, is_agent: bool = False
    ) -> tuple[TicketState | None, bool]:
        """The ticket a message belongs to, and whether its sender may join it.

        Every ticket the subject names or the references point at (In-Reply-To, then
        References newest first) is a candidate. An agent gets the first; anyone else the
        first they are already on, else the first whose conversation they provably saw
        (they quote one of our Message-IDs, which cannot be guessed, or answer a message
        they were on From/To/Cc of) — they join it —, else the first candidate, where
        they are a stranger.
        """
        named = self._by_tokens(keys.ticket_numbers)
        referenced = [(self._follow(self.tickets[t]), i) for i, t in self._references(keys)]
        candidates = list({t.id: t for t in [*named, *(t for t, _ in referenced)]}.values())
        if not candidates:
            return None, False
        if is_agent:
            return candidates[0], False
        for ticket in candidates:
            if ticket.is_participant(sender):
                return ticket, False
        for ticket, message_id in referenced:
            if message_id in self.our_ids or sender in self.audiences.get(message_id, ()):
                return ticket, True
        return candidates[0], False

    def answers(self, keys: ThreadKeys, ticket: TicketState) -> bool:
        """Whether In-Reply-To/References name a message on `ticket` (merges followed)."""
        return any(self._follow(self.tickets[t]).id == ticket.id for _, t in self._references(keys))

    def answers_conversation(self, keys: ThreadKeys, ticket: TicketState) -> bool:
        """Whether In-Reply-To/References name one of our messages on `ticket`, or one of
        its conversation (CONVERSATION_AUTHORS): mail its people saw, not only its number."""
        return any(
            self._follow(self.tickets[t]).id == ticket.id
            and (message_id in self.our_ids or message_id in self.audiences)
            for message_id, t in self._references(keys)
        )

    def _by_tokens(self, numbers: list[int]) -> list[TicketState]:
        found = []
        for number in numbers:
            ticket_id = self.ref_ids.get(f"{self.prefix}-{number}".upper())
            if ticket_id is not None:
                found.append(self._follow(self.tickets[ticket_id]))
        return found

    def _references(self, keys: ThreadKeys) -> list[tuple[str, int]]:
        """(Message-ID, ticket id) of every reference we know, in the order given."""
        found = []
        for message_id in keys.reference_ids:
            ticket_id = self.thread_refs.get(message_id)
            if ticket_id is not None and ticket_id in self.tickets:
                found.append((message_id, ticket_id))
        return found

    def last_notified_ticket(self, address: str) -> TicketState | None:
        """The ticket we last wrote to `address` about, for auto-replies that quote nothing."""
        ticket_id = self.last_notified.get(address)
        return self._follow(self.tickets[ticket_id]) if ticket_id in self.tickets else None

    def _follow(self, state: TicketState) -> TicketState:
        seen = {state.id}
        while state.merged_into:
            target = self.ref_ids.get(state.merged_into.upper())
            if target is None or target in seen:
                break
            seen.add(target)
            state = self.tickets[target]
        return state

    def record(
        self,
        msg: ParsedMessage,
        state: TicketState,
        *,
        message_pk: int,
        visible_message: bool,
        outbound: list[tuple[str, str | None]],
        automatic_to: list[str],
        agent: str | None = None,
        conversation: bool = True,
    ) -> None:
        """Remember what a decided message changed, for the rest of the batch.

        `outbound` is (Message-ID, reader) per queued notification; reader None is the
        requester's side, else the agent's address. `agent` is the author when an agent
        wrote the message (it joins that agent's own thread). `conversation`: its author is
        one of CONVERSATION_AUTHORS, so who was on it may join by answering it.
        """
        thread = list(state.thread_ids)
        agents = {a: list(ids) for a, ids in state.agent_threads.items()}
        if msg.message_id:
            self.thread_refs.setdefault(msg.message_id, state.id)
            if conversation:
                people = {msg.from_addr, *(a.address for a in msg.recipients)}
                self.audiences.setdefault(msg.message_id, frozenset(people))
            if visible_message and msg.message_id not in thread:
                thread.append(msg.message_id)
            if agent:
                agents.setdefault(agent, []).append(msg.message_id)
        for message_id, reader in outbound:
            self.thread_refs[message_id] = state.id
            self.our_ids.add(message_id)
            if reader is None:
                thread.append(message_id)
            else:
                agents.setdefault(reader, []).append(message_id)
        self.add_ticket(
            state.evolved(
                thread_ids=tuple(thread),
                agent_threads={a: tuple(ids) for a, ids in agents.items()},
            )
        )
        self.stored[msg.dedup_key] = (state.ref, message_pk)
        for address in automatic_to:
            self.auto_replies[address] = self.auto_replies.get(address, 0) + 1
