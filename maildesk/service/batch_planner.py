"""Deciding a batch: each message screened, threaded and decided against the batch's state.

The pipeline (`service.pipeline`) owns the transaction; this loads what the batch
needs from the store in a few queries, runs the pure stages for each message in
order (so a reply finds a ticket opened earlier in the same batch) and returns the
plans for the writer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from maildesk.common.config import Config
from maildesk.common.domain import CONVERSATION_AUTHORS, Author, TicketState
from maildesk.common.errors import StageError
from maildesk.common.message_ids import new_message_id
from maildesk.decide.batch_state import BatchState
from maildesk.decide.decision import DecideContext, Decision
from maildesk.decide.inbound import decide, sets_aside
from maildesk.decide.kb import kb_context
from maildesk.decide.notices import address_notices
from maildesk.decide.ticket_changes import apply_decision, state_of_new_ticket
from maildesk.intake.message import ParsedMessage
from maildesk.intake.message_reader import MessageReader
from maildesk.rules import AssignmentFactsNeeded, RuleFacts, RuleSet
from maildesk.service.batch_entry import BatchEntry, BatchInputs, batch_languages, merge_targets
from maildesk.service.entry_screening import (
    entry_keys,
    return_path_ticket,
    returned_ticket,
    screen_entry,
)
from maildesk.service.ingest_results import IngestResult, SourceInfo
from maildesk.service.knowledge_base import KnowledgeBase
from maildesk.service.set_aside import keep_once, returned_and_kept
from maildesk.store.assignment import load_assignment_facts
from maildesk.store.bounce_flags import clear_bouncing, record_bounce
from maildesk.store.bulk import RowIds, TicketIds
from maildesk.store.find_mail import answer_ticketless, answered_before, run_find_commands
from maildesk.store.last_message import last_customer_message
from maildesk.store.lookup import load_batch_state
from maildesk.store.models import Message, Ticket
from maildesk.store.ticket_files import ticket_files
from maildesk.store.writer import Plan, add_receipt
from maildesk.triage.reply_tokens import load_reply_keys
from maildesk.triage.screen import MailClass
from maildesk.triage.thread_keys import (
    ThreadKeys,
    format_token,
    subject_ticket_numbers,
)

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
        tickets = self.config.tickets
        prefix = tickets.prefix
        inputs = self._inputs(now)  # one version of the rules (and KB, secret) per batch
        for entry in entries:
            screen_entry(entry, tickets, self.own_addresses, inputs.reply_keys, now)
        auto_repliers = [
            e.parsed.from_addr
            for e in entries
            if e.screening and e.screening.kind is MailClass.AUTO_REPLY and e.parsed.from_addr
        ]
        keyed = [
            (e.parsed, entry_keys(e, prefix))
            for e in entries
            if isinstance(e.parsed, ParsedMessage)
        ]
        receipts = [e.source.receipt for e in entries if e.source.receipt]
        rules = inputs.rules
        with session.no_autoflush:
            state = load_batch_state(
                session,
                keyed,
                receipts,
                prefix=prefix,
                now=now,
                auto_repliers=auto_repliers,
                extra_refs=merge_targets(entries, prefix),
            )
            readable = [e.parsed for e in entries if isinstance(e.parsed, ParsedMessage)]
            searches = run_find_commands(
                session, readable, lambda a: bool(rules.agent_by_address(a))
            )
            answered = answered_before(session, readable)
            inputs = replace(
                inputs,
                languages=batch_languages(entries, state),
                searches=searches,
                last_message=partial(last_customer_message, session),
                ticket_files=lambda tid: ticket_files(session, tid),
            )
            kept = returned_and_kept(session, entries)
            ids = TicketIds(session)
            # One round trip for the batch's ticket numbers, not one per 16: the mail
            # whose language is told is the mail that may open a ticket.
            ids.reserve(len(inputs.languages))
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
                if msg.dedup_key in answered:  # a #find mail taken again: answered once
                    reason = f"already answered ({msg.dedup_key})"
                    results.append(IngestResult("duplicate", reason=reason))
                    continue
                aside = self._set_aside(session, entry, msg, state, kept, now)
                if aside:
                    results.append(aside)
                    continue
                try:
                    plan = self._plan(msg, entry, state, (ids, message_ids), inputs)
                except AssignmentFactsNeeded:
                    load_assignment_facts(session, state, self.config.daemon.assignment_lock)
                    plan = self._plan(msg, entry, state, (ids, message_ids), inputs)
                if isinstance(plan, Decision):  # about no ticket (#find): only answered
                    receipt = entry.source.receipt
                    sent = answer_ticketless(session, msg, plan, receipt, self.config, now)
                    answered.add(msg.dedup_key)
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
        except AssignmentFactsNeeded:
            raise  # plan_batch loads them and asks again
        except Exception as exc:
            raise StageError("decide", f"{type(exc).__name__}: {exc}") from exc
        if decision.ticketless:
            return decision
        if decision.forwarded is not None:  # an agent's forward: the customer's mail is kept
            msg = decision.forwarded.original
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
            conversation=decision.author in CONVERSATION_AUTHORS,
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
        if decision.forwarded is not None and decision.forwarded.note:
            plan.note_pk = ids[1].allocate()
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

    def _set_aside(
        self,
        session: Session,
        entry: BatchEntry,
        msg: ParsedMessage,
        state: BatchState,
        kept: dict[str, int],
        now: datetime,
    ) -> IngestResult | None:
        """Automatic mail that matches no ticket is kept apart (decide.inbound.sets_aside)."""
        assert entry.screening is not None
        if not sets_aside(entry.screening, self._find_ticket(msg, entry, state)):
            return None
        return keep_once(session, self.reader, entry, msg, state.receipts, kept, now)

    def _find_ticket(
        self, msg: ParsedMessage, entry: BatchEntry, state: BatchState
    ) -> TicketState | None:
        found = return_path_ticket(entry, state, self.config.tickets.prefix)
        if found is not None:  # it came back to the return path signed for this ticket
            return found
        if entry.bounce is not None:  # else only the notification of ours it returns
            return returned_ticket(entry, state)
        is_agent = self.rules().agent_by_address(msg.from_addr) is not None
        found, entry.referenced = state.thread(entry.keys, msg.from_addr, is_agent=is_agent)
        entry.answers = found is not None and state.answers(entry.keys, found)
        entry.in_conversation = found is not None and state.answers_conversation(entry.keys, found)
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
            assignment_facts=state.assignment_facts,
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
            last_message=inputs.last_message,
            referenced=entry.referenced,
            answers=entry.answers,
            in_conversation=entry.in_conversation,
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
            languages=inputs.languages,
        )


def _visible(decision: Decision) -> bool:
    """The requester sees an agent's words only as our relayed copy, never the original."""
    return not decision.internal and decision.author is not Author.AGENT
