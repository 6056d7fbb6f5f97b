"""SLA clocks (pure): when a warning or a breach is due, and pausing while pending.

A ticket's due times are set when it is created, from its policy (rules.yaml). A
warning goes out when `warning_fraction` of the business time to a due time has
passed; a breach when the due time passes. Each is sent once and recorded in the
ticket's `sla_state`, which the report reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maildesk.common.business_hours import Calendar
from maildesk.common.domain import Status
from maildesk.decide.decision import Change

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"


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
        if waited:
            remaining = (
                calendar.between(since, resolution_due) if resolution_due > since else waited * 0
            )
            moved = calendar.add(now, remaining)
            changes.append(
                Change("resolution_due", moved, f"SLA paused for {waited} of business time")
            )
    return changes
