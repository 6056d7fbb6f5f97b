"""Deciding a batch: each message screened, threaded and decided against the batch's state.

The pipeline (`service.pipeline`) owns the transaction; this loads what the batch
needs from the store in a few queries, runs the pure stages for each message in
order (so a reply finds a ticket opened earlier in the same batch) and returns the
plans for the writer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.domain import Author, TicketState
from maildesk.common.errors import StageError
from maildesk.common.message_ids import new_message_id
from maildesk.common.search_query import SearchHit
from maildesk.decide.batch_state import BatchState
from maildesk.decide.commands import parse_commands
from maildesk.decide.decision import DecideContext, Decision, FileRef
from maildesk.decide.inbound import decide
from maildesk.decide.kb import Article, kb_context
from maildesk.decide.notices import address_notices
from maildesk.decide.ticket_changes import apply_decision, state_of_new_ticket
from maildesk.intake.message import ParsedMessage
from maildesk.intake.message_reader import MessageReader
from maildesk.intake.raw_mail import IncomingMail
from maildesk.rules import RuleFacts, RuleSet
from maildesk.service.ingest_results import IngestResult, SourceInfo
from maildesk.service.knowledge_base import KnowledgeBase
from maildesk.store.assignment import last_assigned, lock_assignments, open_counts
from maildesk.store.bounce_flags import clear_bouncing, record_bounce
from maildesk.store.bulk import RowIds, TicketIds
from maildesk.store.find_mail import answer_ticketless, run_find_commands
from maildesk.store.lookup import load_batch_state
from maildesk.store.models import Message, Ticket
from maildesk.store.ticket_files import ticket_files
from maildesk.store.writer import Plan, add_receipt
from maildesk.triage.bounce import BounceReport, read_bounce
from maildesk.triage.reply_tokens import ReplyKeys, load_reply_keys
from maildesk.triage.screen import MailClass, Screening, screen_message
from maildesk.triage.thread_keys import (
    ThreadKeys,
    format_token,
    subject_ticket_numbers,
    thread_keys,
)


@dataclass(frozen=True)
class BatchInputs:
    """Read once per batch: the rules in force, the time, KB articles, the rating secret."""

    rules: RuleSet
    now: datetime
    kb_articles: tuple[Article, ...]
    rating_secret: str | None
    reply_keys: ReplyKeys | None
    searches: Mapping[str, tuple[SearchHit, ...]] = field(default_factory=dict)  # for #find
    ticket_files: Callable[[int], Sequence[FileRef]] | None = None  # in the batch's session


@dataclass
class BatchEntry:
    """One message of a batch: as received, where from, and as read."""

    mail: IncomingMail
    source: SourceInfo
    parsed: ParsedMessage | StageError
    screening: Screening | None = None
    bounce: BounceReport | None = None
    keys: ThreadKeys = field(default_factory=lambda: ThreadKeys([], []))  # found once
    referenced: bool = False  # its ticket was found by a Message-ID it quotes


# Quarantines an entry at a stage with a reason, in the batch's transaction.
Quarantine = Callable[[BatchEntry, str, str], IngestResult]


class BatchPlanner:
    """Runs screen, thread and decide for the messages of one batch."""

    def __init__(
        self,
        config: Config,
        reader: MessageReader,
        rules: Callable[[], RuleSet],
        knowledge_base: KnowledgeBase | None = None,
    ):
        self.config = config
        self.reader = reader
        self.rules = rules
        self.knowledge_base = knowledge_base  # suggests articles in acknowledgements
        tickets = config.tickets
        self.own_addresses = frozenset(
            a.lower() for a in (tickets.support_address, tickets.comment_address) if a
        ) | frozenset(m.username.lower() for m in config.mailboxes if "@" in m.username)

    def plan_batch(
        self, session: Session, entries: list[BatchEntry], now: datetime, quarantine: Quarantine
    ) -> tuple[list[IngestResult | None], list[tuple[int, Plan]]]:
        """Decide every message of a batch against the state loaded for it.

        Returns a result per entry (None where a Plan is to be written) and the plans
        with their entries' positions. Unreadable messages go to `quarantine`.
        """
        prefix = self.config.tickets.prefix
        for entry in entries:
            self._screen(entry)
        auto_repliers = [
            e.parsed.from_addr
            for e in entries
            if e.screening and e.screening.kind is MailClass.AUTO_REPLY and e.parsed.from_addr
        ]
        keyed = [(e.parsed, self._keys(e)) for e in entries if isinstance(e.parsed, ParsedMessage)]
        receipts = [e.source.receipt for e in entries if e.source.receipt]
        inputs = self._inputs(now)  # one version of the rules (and KB, secret) per batch
        rules = inputs.rules
        with session.no_autoflush:
            state = load_batch_state(
                session,
                keyed,
                receipts,
                prefix=prefix,
                now=now,
                auto_repliers=auto_repliers,
                extra_refs=_merge_targets(entries, prefix),
            )
            readable = [e.parsed for e in entries if isinstance(e.parsed, ParsedMessage)]
            searches = run_find_commands(
                session, readable, lambda a: bool(rules.agent_by_address(a))
            )
            inputs = replace(
                inputs, searches=searches, ticket_files=lambda tid: ticket_files(session, tid)
            )
            if rules.needs_assignment_facts:
                lock_assignments(session)
                state.open_counts, state.last_assigned = (
                    open_counts(session),
                    last_assigned(session),
                )
            ids = TicketIds(session)
            message_ids = RowIds(session, Message, "messages")
            results: list[IngestResult | None] = []
            plans: list[tuple[int, Plan]] = []
            for index, entry in enumerate(entries):
                msg = entry.parsed
                if isinstance(msg, StageError):
                    results.append(quarantine(entry, msg.stage, str(msg)))
                    continue
                duplicate = self._duplicate(session, state, msg, entry.source, now)
                if duplicate:
                    results.append(duplicate)
                    continue
                plan = self._plan(msg, entry, state, (ids, message_ids), inputs)
                if isinstance(plan, Decision):  # about no ticket (#find): only answered
                    receipt = entry.source.receipt
                    sent = answer_ticketless(session, msg, plan, receipt, self.config, now)
                    results.append(IngestResult("answered", notifications=sent))
                    continue
                plans.append((index, plan))
                results.append(None)
        return results, plans

    def _duplicate(
        self,
        session: Session,
        state: BatchState,
        msg: ParsedMessage,
        source: SourceInfo,
        now: datetime,
    ) -> IngestResult | None:
        receipt = source.receipt
        if receipt and receipt in state.receipts:
            return IngestResult(
                "duplicate", reason=f"{source.source} UID {source.uid} already ingested"
            )
        stored = state.stored.get(msg.dedup_key)
        if stored is None:
            return None
        ref, message_pk = stored
        if receipt:
            add_receipt(session, receipt, msg.dedup_key, "duplicate", now)
            state.receipts.add(receipt)
        return IngestResult(
            "duplicate",
            ticket_ref=ref,
            message_pk=message_pk,
            reason=f"already stored ({msg.dedup_key})",
        )

    def _plan(
        self,
        msg: ParsedMessage,
        entry: BatchEntry,
        state: BatchState,
        ids: tuple[TicketIds, RowIds],
        inputs: BatchInputs,
    ) -> Plan | Decision:
        now = inputs.now
        before = self._find_ticket(msg, entry, state)
        try:
            decision = decide(msg, before, self._context(msg, entry, state, inputs))
        except Exception as exc:
            raise StageError("decide", f"{type(exc).__name__}: {exc}") from exc
        if decision.ticketless:
            return decision
        if decision.new_ticket is not None:
            before = None
            start = self._new_ticket_state(decision, ids[0].allocate(), now)
            new = decision.new_ticket
            if new.assign_strategy and new.assignee:
                state.assigned(new.queue, new.assignee)
        else:
            assert before is not None
            start = before
        after, events = apply_decision(start, decision, now)
        suggestions = None
        if before is None and self.knowledge_base is not None:
            suggestions = kb_context(self.knowledge_base.suggest(f"{msg.subject}\n{msg.text}"))
        queued = address_notices(
            decision.notices,
            after,
            self.config,
            msg=msg,
            requester_saw_msg=decision.author in (Author.REQUESTER, Author.PARTICIPANT)
            and not decision.internal,
            requester_extra=suggestions,
            reply_keys=inputs.reply_keys,
        )
        message_pk = ids[1].allocate()
        new_thread_ref = bool(msg.message_id) and msg.message_id not in state.thread_refs
        state.record(
            msg,
            after,
            message_pk=message_pk,
            visible_message=_visible(decision),
            outbound=[
                (q.message_id, None if q.notice.audience == "requester" else q.to[0].address)
                for q in queued
            ],
            agent=msg.from_addr if decision.author is Author.AGENT else None,
            automatic_to=[
                q.to[0].address
                for q in queued
                if q.notice.automatic and q.notice.audience == "requester"
            ],
        )
        source = entry.source
        plan = Plan(
            msg, decision, before, after, events, queued, source.source, source.receipt, now
        )
        plan.message_pk = message_pk
        plan.new_thread_ref = new_thread_ref
        plan.keep_raw = lambda inline: self.reader.keep_raw(entry.mail, msg, inline)
        return plan

    def _new_ticket_state(self, decision: Decision, ticket_id: int, now: datetime) -> TicketState:
        assert decision.new_ticket is not None
        ref = format_token(self.config.tickets.prefix, ticket_id)
        return state_of_new_ticket(
            decision.new_ticket,
            ticket_id=ticket_id,
            ref=ref,
            message_id=new_message_id(ref, self.config.tickets.id_domain),
            now=now,
            rules_fired=decision.rule_hits,
        )

    def _screen(self, entry: BatchEntry) -> None:
        """Is it an auto-reply, a bounce, list mail or our own mail coming back?"""
        msg = entry.parsed
        if not isinstance(msg, ParsedMessage):
            return
        tickets = self.config.tickets
        entry.keys = thread_keys(msg, tickets.prefix)
        entry.screening = screen_message(
            msg, own_domain=tickets.id_domain, own_addresses=self.own_addresses
        )
        if entry.screening.kind is MailClass.BOUNCE and entry.mail.size <= 10 << 20:
            entry.bounce = read_bounce(entry.mail.bytes(), own_domain=tickets.id_domain)

    def _bounce_numbers(self, bounce: BounceReport) -> list[int]:
        prefix = self.config.tickets.prefix
        return subject_ticket_numbers(f"[{bounce.ticket_ref}]", prefix) if bounce.ticket_ref else []

    def _keys(self, entry: BatchEntry) -> ThreadKeys:
        """What may tie the message to a ticket; a bounce also names what it returns."""
        keys = entry.keys
        bounce = entry.bounce
        if bounce is None:
            return keys
        ids = [bounce.original_message_id] if bounce.original_message_id else []
        numbers = self._bounce_numbers(bounce)
        return ThreadKeys([*numbers, *keys.ticket_numbers], [*ids, *keys.reference_ids])

    def _find_ticket(
        self, msg: ParsedMessage, entry: BatchEntry, state: BatchState
    ) -> TicketState | None:
        bounce = entry.bounce
        if bounce is not None:  # the notification it returns, else the ticket it names
            original = bounce.original_message_id
            found = state.find_ticket(ThreadKeys([], [original])) if original else None
            numbers = self._bounce_numbers(bounce)
            found = found or (state.find_ticket(ThreadKeys(numbers, [])) if numbers else None)
            if found is not None:
                return found
        is_agent = self.rules().agent_by_address(msg.from_addr) is not None
        found, entry.referenced = state.thread(entry.keys, msg.from_addr, is_agent=is_agent)
        if found is None and entry.screening and entry.screening.kind is MailClass.AUTO_REPLY:
            found = state.last_notified_ticket(msg.from_addr)
        return found

    def bounce_flags(self, session: Session, written: list[tuple[BatchEntry, Plan]]) -> None:
        """Flag addresses a bounce reports; clear the flag when such an address writes again."""
        for entry, plan in written:
            sender = plan.msg.from_addr
            if entry.bounce is not None:
                ticket = session.get(Ticket, plan.after.id)
                if ticket is not None:
                    record_bounce(
                        session, ticket, entry.bounce, sender or "mailer-daemon", plan.now
                    )
            elif plan.before is not None and sender in plan.before.bouncing:
                ticket = session.get(Ticket, plan.after.id)
                if ticket is not None and entry.screening and not entry.screening.automatic:
                    clear_bouncing(session, ticket, sender, plan.now)

    def _inputs(self, now: datetime) -> BatchInputs:
        """What every message of a batch decides against, read once per batch."""
        secret = self.config.satisfaction.secret
        kb = self.knowledge_base.articles() if self.knowledge_base is not None else []
        return BatchInputs(
            rules=self.rules(),
            now=now,
            kb_articles=tuple(kb),
            rating_secret=secret.read("satisfaction secret") if secret else None,
            reply_keys=load_reply_keys(self.config.tickets),
        )

    def _context(
        self,
        msg: ParsedMessage,
        entry: BatchEntry,
        state: BatchState,
        inputs: BatchInputs,
    ) -> DecideContext:
        source, now = entry.source, inputs.now
        tickets = self.config.tickets
        assert entry.screening is not None, "screened in _run"
        facts = RuleFacts(
            now=now,
            open_counts=state.open_counts,
            last_assigned=state.last_assigned,
            mailbox=source.source,
            mailbox_queue=source.queue,
        )
        prefix = tickets.prefix
        return DecideContext(
            find_ticket=lambda ref: state.find_ticket(
                ThreadKeys(subject_ticket_numbers(f"[{ref}]", prefix), [])
            ),
            searches=inputs.searches,
            kb_articles=inputs.kb_articles,
            rating_secret=inputs.rating_secret,
            reply_keys=inputs.reply_keys,
            referenced=entry.referenced,
            tickets=tickets,
            rules=inputs.rules,
            now=now,
            screening=entry.screening,
            facts=facts,
            auto_replies_last_hour=state.auto_replies.get(msg.from_addr, 0),
            auto_reply_limit=self.config.limits.auto_replies_per_hour,
            own_addresses=self.own_addresses,
            notify=self.config.notify,
            ticket_files=inputs.ticket_files,
        )


def _visible(decision: Decision) -> bool:
    """The requester sees an agent's words only as our relayed copy, never the original."""
    return not decision.internal and decision.author is not Author.AGENT


_MERGE = re.compile("#merge", re.IGNORECASE)  # a scan, not a lowered copy of every body


def _merge_targets(entries: list[BatchEntry], prefix: str) -> set[str]:
    """Tickets named by `#merge REF` commands, loaded so the deciding step can check them."""
    refs = set()
    for entry in entries:
        if isinstance(entry.parsed, ParsedMessage) and _MERGE.search(entry.parsed.text):
            for command in parse_commands(entry.parsed.text).named("merge"):
                for number in subject_ticket_numbers(f"[{command.argument}]", prefix):
                    refs.add(format_token(prefix, number).upper())
    return refs
