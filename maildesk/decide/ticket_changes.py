"""The one place a ticket changes: Changes applied to a TicketState, with their log (pure).

Ingest, the scheduler and the command line all change tickets through these
functions; the store only writes the resulting state's columns and the events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from maildesk.common.domain import Author, Priority, Status, TicketState
from maildesk.decide.decision import Change, Decision, NewTicket
from maildesk.decide.lifecycle import reopens, status_stamps

MAX_SUBJECT = 2000
_FIELDS = {f.name for f in fields(TicketState)}


@dataclass(frozen=True)
class TicketEvent:
    """One entry of a ticket's audit log."""

    kind: str
    actor: str
    reason: str
    old: str | None = None
    new: str | None = None


def apply_change(state: TicketState, change: Change, now: datetime) -> tuple[TicketState, bool]:
    """`state` with one change made, and whether anything changed. 'tag' adds a tag."""
    if change.field == "tag":
        if change.value in state.tags:
            return state, False
        return state.evolved(tags=(*state.tags, change.value)), True
    if change.field not in _FIELDS:
        raise ValueError(f"a ticket has no field {change.field!r}")
    old = getattr(state, change.field)
    value = _typed(change.field, change.value)
    if old == value:
        return state, False
    updates: dict[str, Any] = {change.field: value}
    if change.field == "status":
        updates.update(status_stamps(state.status, value, now))
        if reopens(state.status, value):
            updates["reopen_count"] = state.reopen_count + 1
    return state.evolved(**updates), True


def apply_changes(
    state: TicketState, changes: Sequence[Change], *, actor: str, now: datetime
) -> tuple[TicketState, list[TicketEvent]]:
    """`state` after `changes`, and an event for each change that changed something."""
    events = []
    for change in changes:
        old = state.tags if change.field == "tag" else getattr(state, change.field, None)
        state, changed = apply_change(state, change, now)
        if changed and not change.quiet:
            before = None if change.field == "tag" else _text(old)
            after = _text(change.value if change.field == "tag" else getattr(state, change.field))
            events.append(TicketEvent(change.field, actor, change.reason, before, after))
    if events:  # bookkeeping (quiet changes) does not count as activity on the ticket
        state = state.evolved(updated_at=now)
    return state, events


def apply_decision(
    state: TicketState, decision: Decision, now: datetime
) -> tuple[TicketState, list[TicketEvent]]:
    """The ticket after a decided message: its changes, new people, merge and log."""
    actor = decision.actor
    events = _creation_events(decision, state) if decision.new_ticket is not None else []
    state, changed = apply_changes(state, decision.changes, actor=actor, now=now)
    events += changed
    if decision.new_ticket is None and decision.rule_hits:
        fired = tuple(dict.fromkeys([*state.rules_fired, *decision.rule_hits]))
        state = state.evolved(rules_fired=fired)
        hits = ", ".join(decision.rule_hits)
        events.append(TicketEvent("rules", "rules", f"rules fired on a follow-up: {hits}"))
    events += [TicketEvent(kind, actor, reason) for kind, reason in decision.notes]
    participants = dict(state.participants)
    for address, role in decision.participants:
        if address.address != state.requester:
            participants.setdefault(address.address, role)
    updates: dict[str, Any] = {"updated_at": now, "participants": participants}
    if decision.merge_into is not None:
        updates["merged_into"] = decision.merge_into.ref
    if decision.author in (Author.REQUESTER, Author.PARTICIPANT) and not decision.internal:
        updates["last_customer_at"] = now
    elif decision.author is Author.AGENT:
        updates["last_agent_at"] = now
    return state.evolved(**updates), events


def state_of_new_ticket(
    new: NewTicket,
    *,
    ticket_id: int,
    ref: str,
    message_id: str,
    now: datetime,
    rules_fired: Sequence[str] = (),
) -> TicketState:
    """The snapshot of a ticket a message opens, before its changes are applied."""
    return TicketState(
        id=ticket_id,
        ref=ref,
        subject=new.subject[:MAX_SUBJECT],
        status=Status.NEW,
        priority=new.priority,
        queue=new.queue,
        assignee=new.assignee,
        requester=new.requester.address,
        requester_name=new.requester.name,
        created_at=now,
        updated_at=now,
        message_id=message_id,
        tags=tuple(dict.fromkeys(new.tags)),
        language=new.language,
        rules_fired=tuple(rules_fired),
        thread_index=new.thread_index,
        sla_policy=new.sla_policy,
        first_response_due=new.first_response_due,
        resolution_due=new.resolution_due,
        spam=new.spam,
        linked_from_id=new.linked_from,
    )


def _creation_events(decision: Decision, state: TicketState) -> list[TicketEvent]:
    new = decision.new_ticket
    assert new is not None
    hits = f"; rules: {', '.join(decision.rule_hits)}" if decision.rule_hits else ""
    reason = f"new request in queue {new.queue}, priority {new.priority.value}{hits}"
    events = [TicketEvent("created", decision.actor, reason, None, state.ref)]
    if new.assignee:
        reason = f"assigned by rules{hits}"
        events.append(TicketEvent("assignee", "rules", reason, None, new.assignee))
    return events


def _typed(name: str, value: Any) -> Any:
    if name == "status":
        return Status(value)
    if name == "priority":
        return Priority(value)
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
