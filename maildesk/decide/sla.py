"""SLA clocks (pure): when a warning or a breach is due, pausing while pending, and
following the priority.

A ticket's due times are set when it is created, from its policy (rules.yaml), and
set again from the new priority's policy when its priority changes. A warning goes
out when `warning_fraction` of the business time to a due time has passed; a breach
when the due time passes. Each is sent once per due time and recorded in the ticket's
`sla_state`, which the report reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from maildesk.common.business_hours import Calendar
from maildesk.common.domain import Priority, Status, TicketState
from maildesk.decide.decision import Change
from maildesk.rules import RuleSet, SlaPolicy

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"
# When the ticket waited (pending), as [from, until] ISO times: a new policy credits that
# time on its own calendar (24x7 counts a weekend an office calendar skips).
PAUSES = "pauses"
PAUSED = "paused_seconds"  # written before PAUSES: business time on the calendar of then


@dataclass(frozen=True)
class SlaClock:
    """What the scheduler needs to know about one ticket's SLA."""

    status: Status
    created_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    first_response_due: datetime | None
    resolution_due: datetime | None
    state: dict[str, Any]


@dataclass(frozen=True)
class SlaEvent:
    stage: str  # "warning" or "breach"
    kind: str  # FIRST_RESPONSE or RESOLUTION
    due_at: datetime


def due_events(
    clock: SlaClock, calendar: Calendar, now: datetime, fraction: float, paused: bool
) -> list[SlaEvent]:
    """Warnings and breaches that are due now and were not sent before."""
    events = []
    targets = []
    if clock.first_response_at is None and clock.first_response_due is not None:
        targets.append((FIRST_RESPONSE, clock.first_response_due))
    resolving = clock.status not in (Status.RESOLVED, Status.CLOSED) and not paused
    if resolving and clock.resolution_due is not None:
        targets.append((RESOLUTION, clock.resolution_due))
    for kind, due in targets:
        if now >= due and not clock.state.get(f"{kind}_breached"):
            events.append(SlaEvent("breach", kind, due))
        elif now < due and not clock.state.get(f"{kind}_warned"):
            total = calendar.between(clock.created_at, due)
            if now >= calendar.add(clock.created_at, total * fraction):
                events.append(SlaEvent("warning", kind, due))
    return events


def record(state: dict[str, Any], event: SlaEvent, now: datetime) -> dict[str, Any]:
    """`state` with the event marked as sent (a breach also marks the warning)."""
    new = dict(state)
    stamp = now.isoformat()
    if event.stage == "breach":
        new[f"{event.kind}_breached"] = True
        new[f"{event.kind}_breached_at"] = stamp
        new.setdefault(f"{event.kind}_warned", True)
    else:
        new[f"{event.kind}_warned"] = True
        new[f"{event.kind}_warned_at"] = stamp
    return new


def pause_changes(
    *,
    old_status: Status,
    new_status: Status,
    state: dict[str, Any],
    resolution_due: datetime | None,
    calendar: Calendar | None,
    now: datetime,
) -> list[Change]:
    """While a ticket waits for the customer (pending), its resolution clock stops.

    Entering pending records when; leaving it moves the resolution due time on by the
    business time spent waiting.
    """
    if old_status == new_status:
        return []
    if new_status is Status.PENDING:
        return [
            Change("sla_state", {**state, "pending_since": now.isoformat()}, "SLA paused: pending")
        ]
    if old_status is not Status.PENDING or "pending_since" not in state:
        return []
    since = datetime.fromisoformat(state["pending_since"])
    rest = {k: v for k, v in state.items() if k != "pending_since"}
    changes = [Change("sla_state", rest, "SLA resumed")]
    if resolution_due is not None and calendar is not None:
        waited = calendar.between(since, now)
        # Kept so that a new policy (the priority changed) credits the wait as well.
        rest[PAUSES] = [*rest.get(PAUSES, []), [since.isoformat(), now.isoformat()]]
        if waited:
            remaining = (
                calendar.between(since, resolution_due) if resolution_due > since else waited * 0
            )
            moved = calendar.add(now, remaining)
            changes.append(
                Change("resolution_due", moved, f"SLA paused for {waited} of business time")
            )
    return changes


def priority_changes(ticket: TicketState, changes: list[Change], rules: RuleSet) -> list[Change]:
    """The SLA follows a priority change among `changes`: the new priority's policy
    (`sla.by_priority`) and its due times, counted from the ticket's creation on that
    policy's calendar, with the business time spent pending credited.

    Only when the ticket's policy came from its old priority; a policy a rule named
    stays. A met first response stays met. A warning already sent does not count for
    a new due time (it gets its own); a breach already recorded stays recorded.
    """
    new = next((Priority(c.value) for c in changes if c.field == "priority"), None)
    if new is None or new == ticket.priority:
        return []
    old_policy = rules.sla_policy_for(ticket.priority)
    if ticket.sla_policy != (old_policy.name if old_policy else None):
        return []
    policy = rules.sla_policy_for(new)
    name = policy.name if policy else None
    reason = f"priority {ticket.priority.value} -> {new.value}: SLA {name or 'none'}"
    before = _latest(changes, "sla_state", ticket.sla_state)
    state = dict(before)
    result = [Change("sla_policy", name, reason)] if name != ticket.sla_policy else []
    answered = ticket.first_response_at is not None or _latest(changes, "first_response_at", None)
    in_force = {
        FIRST_RESPONSE: ticket.first_response_due,
        RESOLUTION: _latest(changes, "resolution_due", ticket.resolution_due),
    }
    for kind, due in _due_times(policy, ticket.created_at, state).items():
        if (kind == FIRST_RESPONSE and answered) or due == in_force[kind]:
            continue
        result.append(Change(f"{kind}_due", due, reason))
        if not state.get(f"{kind}_breached"):
            state.pop(f"{kind}_warned", None)
            state.pop(f"{kind}_warned_at", None)
    if state != before:
        result.append(Change("sla_state", state, reason, quiet=True))
    return result


def _due_times(
    policy: SlaPolicy | None, created_at: datetime, state: dict[str, Any]
) -> dict[str, datetime | None]:
    """A policy's due times for a ticket created at `created_at` (none without a policy)."""
    if policy is None:
        return {FIRST_RESPONSE: None, RESOLUTION: None}
    first, resolution = policy.due(created_at)
    credit = timedelta(seconds=state.get(PAUSED, 0))
    for since, until in state.get(PAUSES, []):
        start, end = datetime.fromisoformat(since), datetime.fromisoformat(until)
        credit += policy.calendar.between(start, end)
    if policy.resolution is not None and credit:
        resolution = policy.calendar.add(created_at, policy.resolution + credit)
    return {FIRST_RESPONSE: first, RESOLUTION: resolution}


def _latest(changes: list[Change], name: str, default: Any) -> Any:
    """The value the last change of field `name` sets, else `default`."""
    return next((c.value for c in reversed(changes) if c.field == name), default)
