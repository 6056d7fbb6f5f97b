"""Time-based work: auto-close, SLA warnings and breaches, reminders, and purging old
automatic mail.

The daemon runs it on its own clock. A lease makes sure only one of several daemons
does the work at a time; each job commits on its own, and what it did is recorded on
the tickets (sla_state, events), so a crash or a second daemon never sends twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from maildesk.common.business_hours import Calendar
from maildesk.common.domain import Status, TicketState
from maildesk.decide.audience import assignee_or_queue
from maildesk.decide.decision import Change, Notice
from maildesk.decide.lifecycle import auto_close_due
from maildesk.decide.notices import sla_notices
from maildesk.decide.sla import SlaClock, SlaEvent, due_events, record
from maildesk.decide.ticket_changes import TicketEvent
from maildesk.store import leases
from maildesk.store.automatic import purge_automatic
from maildesk.store.lookup import load_ticket_state
from maildesk.store.models import Ticket
from maildesk.store.outbox import queue_notices
from maildesk.store.ticket_updates import change_status, update_ticket

log = logging.getLogger(__name__)

LEASE = "scheduler"
OPEN = (Status.NEW.value, Status.OPEN.value, Status.PENDING.value)
AWAITING_AGENT = (Status.NEW.value, Status.OPEN.value)  # what reminders are about


@dataclass
class Report:
    """What one round did."""

    closed: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    breached: list[str] = field(default_factory=list)
    reminded: list[str] = field(default_factory=list)
    purged: int = 0  # automatic mail older than limits.automatic_keep_days
    skipped: bool = False  # another daemon holds the scheduler lease


class Scheduler:
    """Runs the time-based jobs of one desk."""

    def __init__(self, desk: Any, *, holder: str | None = None, interval: float = 30.0):
        self.desk = desk
        self.config = desk.config
        self.holder = holder or leases.holder_id()
        self.interval = interval

    def run_once(self, now: datetime | None = None) -> Report:
        """One round of every job, if this daemon holds the scheduler lease."""
        now = now or self.desk.pipeline.clock()
        with self.desk.sessions() as session, session.begin():
            if not leases.acquire(session, LEASE, self.holder, max(self.interval * 3, 60)):
                return Report(skipped=True)
        report = Report()
        report.closed = self._each(self._auto_close_candidates(now), self._close, now)
        report.warned, report.breached = self._sla(now)
        report.reminded = self._each(self._reminder_candidates(now), self._remind, now)
        with self.desk.sessions() as session, session.begin():
            report.purged = purge_automatic(session, now, self.config.limits.automatic_keep_days)
        return report

    async def run(self, stop: asyncio.Event) -> None:
        """Run rounds until `stop` is set (the daemon's background task)."""
        while not stop.is_set():
            try:
                report = await asyncio.to_thread(self.run_once)
                if report.closed or report.breached or report.warned or report.reminded:
                    log.info(
                        "scheduler: closed %s, SLA warnings %s, breaches %s, reminders %s",
                        report.closed,
                        report.warned,
                        report.breached,
                        report.reminded,
                    )
                if report.purged:
                    log.info("scheduler: purged %d old automatic mail(s)", report.purged)
            except Exception:  # never let one bad round stop the daemon
                log.exception("scheduler round failed; trying again next round")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        # Stopping cleanly: another daemon takes the timers over at its next round, not
        # once the lease runs out (up to three rounds later).
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._release)

    def _release(self) -> None:
        with self.desk.sessions() as session, session.begin():
            leases.release(session, LEASE, self.holder)

    # --- jobs ---------------------------------------------------------------------------

    def _each(self, ids: list[int], job: Any, now: datetime) -> list[str]:
        done = []
        for ticket_id in ids:
            with self.desk.sessions() as session, session.begin():
                try:
                    ticket = load_ticket_state(session, ticket_id)
                except LookupError:
                    continue
                if job(session, ticket, now):
                    done.append(ticket.ref)
        return done

    def _auto_close_candidates(self, now: datetime) -> list[int]:
        days = self.config.tickets.auto_close_days
        if days <= 0:
            return []
        cutoff = now - timedelta(days=days)
        with self.desk.read_session() as session:
            query = select(Ticket.id).where(
                Ticket.status == Status.RESOLVED.value, Ticket.resolved_at <= cutoff
            )
            return list(session.scalars(query))

    def _close(self, session: Session, ticket: TicketState, now: datetime) -> bool:
        days = self.config.tickets.auto_close_days
        if ticket.status is not Status.RESOLVED or not auto_close_due(
            ticket.resolved_at, now, days
        ):
            return False  # reopened meanwhile
        change_status(
            session,
            ticket.id,
            Status.CLOSED,
            actor="system",
            reason=f"resolved {days:g} days ago and not reopened",
            now=now,
            config=self.config,
        )
        return True

    def _sla(self, now: datetime) -> tuple[list[str], list[str]]:
        with self.desk.read_session() as session:
            ids = list(
                session.scalars(
                    select(Ticket.id).where(
                        Ticket.status.in_(OPEN),
                        Ticket.spam.is_(False),
                        Ticket.merged_into_id.is_(None),
                        (Ticket.first_response_due.is_not(None))
                        | (Ticket.resolution_due.is_not(None)),
                    )
                )
            )
        warned: list[str] = []
        breached: list[str] = []
        for ticket_id in ids:
            with self.desk.sessions() as session, session.begin():
                try:
                    ticket = load_ticket_state(session, ticket_id)
                except LookupError:
                    continue
                if not _waiting_for_us(ticket, OPEN):  # changed since it was listed
                    continue
                for event in self._sla_events(ticket, now):
                    ticket = self._send_sla(session, ticket, event, now)
                    (breached if event.stage == "breach" else warned).append(ticket.ref)
        return warned, breached

    def _sla_events(self, ticket: TicketState, now: datetime) -> list[SlaEvent]:
        rules = self.desk.rules()
        policy = rules.sla_policies.get(ticket.sla_policy or "")
        calendar = policy.calendar if policy else Calendar.always_open()
        clock = SlaClock(
            status=ticket.status,
            created_at=ticket.created_at,
            first_response_at=ticket.first_response_at,
            resolved_at=ticket.resolved_at,
            first_response_due=ticket.first_response_due,
            resolution_due=ticket.resolution_due,
            state=ticket.sla_state,
        )
        paused = self.config.tickets.pause_sla_when_pending and ticket.status is Status.PENDING
        return due_events(clock, calendar, now, self.config.tickets.sla_warning_fraction, paused)

    def _send_sla(
        self, session: Session, ticket: TicketState, event: SlaEvent, now: datetime
    ) -> TicketState:
        what = "first response" if event.kind == "first_response" else "resolution"
        sent = Change("sla_state", record(ticket.sla_state, event, now), "SLA notice", quiet=True)
        logged = TicketEvent(
            f"sla_{event.stage}", "system", f"{what} due {event.due_at.isoformat()}", new=what
        )
        _, after = update_ticket(
            session, ticket.id, [sent], actor="system", now=now, events=[logged]
        )
        notices = sla_notices(
            after, self.desk.rules(), stage=event.stage, kind=event.kind, due_at=event.due_at
        )
        queue_notices(session, after, notices, self.config, now)
        return after

    def _reminder_candidates(self, now: datetime) -> list[int]:
        hours = self.config.tickets.remind_after_hours
        if hours <= 0:
            return []
        cutoff = now - timedelta(hours=hours)
        with self.desk.read_session() as session:
            query = select(Ticket.id).where(
                Ticket.status.in_(AWAITING_AGENT),
                Ticket.spam.is_(False),
                Ticket.merged_into_id.is_(None),
                Ticket.updated_at <= cutoff,
            )
            return list(session.scalars(query))

    def _remind(self, session: Session, ticket: TicketState, now: datetime) -> bool:
        hours = self.config.tickets.remind_after_hours
        if not _waiting_for_us(ticket, AWAITING_AGENT):
            return False  # resolved, marked spam or merged since it was listed
        last_agent = ticket.last_agent_at or ticket.created_at
        reminded = ticket.sla_state.get("reminded_at")
        quiet_since = max(last_agent, ticket.last_customer_at or ticket.created_at)
        if now - quiet_since < timedelta(hours=hours):
            return False
        if reminded and datetime.fromisoformat(reminded) >= quiet_since:
            return False  # already reminded about this silence
        agents = assignee_or_queue(ticket, self.desk.rules())
        if not agents:
            return False
        stamp = {**ticket.sla_state, "reminded_at": now.isoformat()}
        logged = TicketEvent("reminder", "system", f"no agent action for {hours:g} hours")
        _, after = update_ticket(
            session,
            ticket.id,
            [Change("sla_state", stamp, "reminder", quiet=True)],
            actor="system",
            now=now,
            events=[logged],
        )
        notice = Notice("reminder", agents, "agents", extra={"hours": hours})
        queue_notices(session, after, [notice], self.config, now)
        return True


def _waiting_for_us(ticket: TicketState, statuses: tuple[str, ...]) -> bool:
    """Read again under the ticket's row lock: the list of candidates was read before,
    and an agent may have resolved, merged or marked it spam in between."""
    return ticket.status.value in statuses and not ticket.spam and ticket.merged_into_id is None
