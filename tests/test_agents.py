"""Agents working from their mail client, through the real pipeline and a real SMTP server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from maildesk.common.domain import Status
from maildesk.service.scheduler import Scheduler
from maildesk.store.models import Event, Message, OutboxEntry, Participant, Ticket
from tests.conftest import make_mail
from tests.mailflow import MailFlow, parse, reply_to, send_all

CUSTOMER = "customer@example.org"
ALICE = "Alice Archer <alice@example.com>"


@pytest.fixture
def flow(make_desk, smtp_sink, clock):
    """A desk wired to a real SMTP sink; `deliver()` sends the outbox and returns new mail."""
    return MailFlow(make_desk(extra=smtp_sink.smtp_config()), smtp_sink, clock)


def to(message) -> list[str]:
    return [a.addr_spec for h in ("To", "Cc") for a in getattr(message[h], "addresses", ())]


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def ticket_row(desk, ref="MD-1") -> Ticket:
    with desk.sessions() as s:
        return s.scalars(select(Ticket).where(Ticket.ref == ref)).one()


def open_ticket(flow, **kw):
    flow.desk.pipeline.process_one(
        make_mail(subject="Printer on fire", message_id="<c1@example.org>", **kw)
    )
    first = flow.deliver()
    return next(m for m in first if to(m) == ["alice@example.com"])


def agent_says(flow, notice, text, **kw):
    flow.clock.advance(minutes=5)
    return flow.desk.pipeline.process_one(
        make_mail(
            sender=ALICE, subject=f"Re: {notice['Subject']}", body=text, **reply_to(notice), **kw
        )
    )


def test_agent_reply_is_relayed_from_the_support_address_with_quotes_trimmed(flow):
    notice = open_ticket(flow)
    agent_says(
        flow,
        notice,
        "Turn it off and on again.\n\n-- \nAlice\n\n> On Monday you wrote:\n> It burns.",
    )
    (relayed,) = [m for m in flow.deliver() if CUSTOMER in to(m)]
    assert relayed["From"].addresses[0].addr_spec == "support@example.com"
    assert relayed["From"].addresses[0].display_name == "Alice Archer via Example Support"
    assert "Turn it off and on again." in body(relayed)
    assert "It burns" not in body(relayed) and "On Monday" not in body(relayed)
    assert "[MD-1]" in relayed["Subject"]
    row = ticket_row(flow.desk)
    assert row.first_response_at == flow.clock.now and row.status == "open"
    with flow.desk.sessions() as s:  # the full original stays stored
        original = s.scalars(select(Message).where(Message.author_kind == "agent")).one()
    assert "On Monday you wrote" in original.text_body


def test_internal_note_never_reaches_the_requester(flow):
    notice = open_ticket(flow)
    agent_says(flow, notice, "#note\nCustomer is on the legacy plan; do not promise a refund.")
    mail = flow.deliver()
    assert mail and all(CUSTOMER not in to(m) for m in mail)
    (to_bob,) = [m for m in mail if to(m) == ["bob@example.com"]]
    assert "legacy plan" in body(to_bob)
    assert not [m for m in mail if to(m) == ["alice@example.com"]]  # not back to its author
    with flow.desk.sessions() as s:
        note = s.scalars(select(Message).where(Message.kind == "note")).one()
        assert note.internal


def test_comment_address_makes_an_internal_note(make_desk, smtp_sink, clock):
    desk = make_desk(extra=smtp_sink.smtp_config() + "\n", rules=None)
    desk.config = desk.config.model_copy(
        update={
            "tickets": desk.config.tickets.model_copy(
                update={"comment_address": "support+comment@example.com"}
            )
        }
    )
    desk.pipeline.config = desk.config
    desk.pipeline.process_one(make_mail(subject="Help", message_id="<c9@example.org>"))
    send_all(desk)
    notice = next(
        parse(r.data) for r in smtp_sink.received if "alice@example.com" in str(r.rcpt_tos)
    )
    desk.pipeline.process_one(
        make_mail(
            sender=ALICE,
            cc="support+comment@example.com",
            subject=f"Re: {notice['Subject']}",
            body="checked the logs",
            **reply_to(notice),
        )
    )
    with desk.sessions() as s:
        note = s.scalars(select(Message).where(Message.author_kind == "agent")).one()
        assert (note.kind, note.internal) == ("note", True)
        to_customer = s.scalars(select(OutboxEntry).where(OutboxEntry.to_addr == CUSTOMER)).all()
    assert [e.template for e in to_customer] == ["ack"]


@pytest.mark.parametrize(
    ("command", "field", "expected"),
    [
        ("#status pending", "status", "pending"),
        ("#assign me", "assignee", "alice@example.com"),
        ("#assign bob", "assignee", "bob@example.com"),
        ("#priority urgent", "priority", "urgent"),
        ("#queue billing", "queue", "billing"),
        ("#tag vip", "tags", ["vip"]),
    ],
)
def test_each_command_changes_the_ticket_and_is_confirmed(flow, command, field, expected):
    notice = open_ticket(flow)
    agent_says(flow, notice, f"{command}\n\nWe are on it.")
    mail = flow.deliver()
    assert getattr(ticket_row(flow.desk), field) == expected
    (relayed,) = [m for m in mail if CUSTOMER in to(m)]
    assert "#" not in body(relayed).split("--")[0]  # command lines never reach the customer
    (confirm,) = [m for m in mail if to(m) == ["alice@example.com"]]
    assert "were applied" in body(confirm)
    with flow.desk.sessions() as s:
        kinds = [e.kind for e in s.scalars(select(Event).order_by(Event.id))]
    assert (field if field != "tags" else "tag") in kinds


def test_cc_command_adds_a_participant_who_gets_the_reply(flow):
    notice = open_ticket(flow)
    agent_says(flow, notice, "#cc boss@example.org\n\nCopying your manager.")
    (relayed,) = [m for m in flow.deliver() if CUSTOMER in to(m)]
    assert "boss@example.org" in to(relayed)
    with flow.desk.sessions() as s:
        roles = {p.address: p.role for p in s.scalars(select(Participant))}
    assert roles["boss@example.org"] == "cc"


def test_merge_folds_the_ticket_into_another(flow):
    open_ticket(flow)
    flow.desk.pipeline.process_one(
        make_mail(sender="c2@example.net", subject="Printer again", message_id="<x1@example.net>")
    )
    second = next(m for m in flow.deliver() if to(m) == ["alice@example.com"])
    agent_says(flow, second, "#merge MD-1")
    merged = ticket_row(flow.desk, "MD-2")
    assert merged.status == "closed" and merged.merged_into_id == ticket_row(flow.desk).id
    with flow.desk.sessions() as s:
        cc = s.scalars(
            select(Participant).where(Participant.ticket_id == 1, Participant.role == "cc")
        ).all()
    assert [p.address for p in cc] == ["c2@example.net"]
    later = flow.desk.pipeline.process_one(
        make_mail(sender="c2@example.net", subject="Re: [MD-2] Printer again")
    )
    assert later.ticket_ref == "MD-1"  # mail about the merged ticket lands on the target


def test_a_failed_command_changes_nothing_and_explains(flow):
    notice = open_ticket(flow)
    before = ticket_row(flow.desk)
    agent_says(flow, notice, "#status pending\n#assign zed\n#priority whenever\n\nDone!")
    mail = flow.deliver()
    after = ticket_row(flow.desk)
    assert (after.status, after.assignee, after.priority) == (
        before.status,
        before.assignee,
        before.priority,
    )
    assert all(CUSTOMER not in to(m) for m in mail)  # nothing relayed
    (explain,) = [m for m in mail if to(m) == ["alice@example.com"]]
    text = body(explain)
    assert "nothing from your last message" in text
    assert "no agent called zed" in text and "'whenever' is not a priority" in text


def test_non_agents_hash_lines_are_plain_text(flow):
    open_ticket(flow)
    flow.desk.pipeline.process_one(
        make_mail(subject="Re: [MD-1] Printer on fire", body="#status closed\nstill burning")
    )
    assert ticket_row(flow.desk).status == "new"


def test_customer_reply_reopens_pending_and_resolved(flow):
    notice = open_ticket(flow)
    agent_says(flow, notice, "#status pending\n\nCan you send a photo?")
    flow.desk.pipeline.process_one(
        make_mail(subject="Re: [MD-1] Printer on fire", body="Here it is.")
    )
    assert ticket_row(flow.desk).status == "open"
    agent_says(flow, notice, "#status resolved\n\nFixed.")
    flow.desk.pipeline.process_one(make_mail(subject="Re: [MD-1] Printer on fire", body="Thanks!"))
    assert ticket_row(flow.desk).status == "resolved"  # a thank-you does not reopen
    flow.desk.pipeline.process_one(
        make_mail(subject="Re: [MD-1] Printer on fire", body="It broke again.")
    )
    row = ticket_row(flow.desk)
    assert (row.status, row.reopen_count) == ("open", 1)


def test_reply_to_a_closed_ticket_opens_a_linked_new_one(flow):
    notice = open_ticket(flow)
    agent_says(flow, notice, "#status closed\n\nClosing.")
    result = flow.desk.pipeline.process_one(
        make_mail(subject="Re: [MD-1] Printer on fire", body="New problem")
    )
    assert result.ticket_ref == "MD-2"
    assert ticket_row(flow.desk, "MD-2").linked_from_id == ticket_row(flow.desk).id


def test_resolved_ticket_closes_itself_after_n_days(flow):
    notice = open_ticket(flow)
    agent_says(flow, notice, "#status resolved\n\nFixed.")
    flow.deliver()
    scheduler = Scheduler(flow.desk)
    flow.clock.advance(days=2, hours=23)
    assert scheduler.run_once().closed == []
    flow.clock.advance(hours=1)
    assert scheduler.run_once().closed == ["MD-1"]
    assert scheduler.run_once().closed == []
    mail = flow.deliver()
    (closed,) = [m for m in mail if CUSTOMER in to(m)]
    assert "closed" in body(closed).lower()
    assert ticket_row(flow.desk).status == "closed"


def test_stranger_quoting_a_token_gets_a_separate_ticket_and_nothing_of_the_original(flow):
    open_ticket(flow, body="My account number is 12345.")
    result = flow.desk.pipeline.process_one(
        make_mail(
            sender="mallory@evil.example",
            subject="Re: [MD-1] Printer on fire",
            body="send me the details",
        )
    )
    assert result.ticket_ref == "MD-2"
    mail = flow.deliver()
    to_stranger = [m for m in mail if "mallory@evil.example" in to(m)]
    assert to_stranger and all("[MD-2]" in str(m["Subject"]) for m in to_stranger)
    assert all("12345" not in body(m) for m in to_stranger)
    with flow.desk.sessions() as s:
        on_original = s.scalars(select(Message.from_addr).where(Message.ticket_id == 1)).all()
        watchers = s.scalars(select(Participant.address).where(Participant.ticket_id == 1)).all()
    assert on_original == [CUSTOMER] and "mallory@evil.example" not in watchers


def test_sla_due_times_skip_the_weekend_and_a_holiday(make_desk, clock):
    desk = make_desk()
    clock.now = datetime(2026, 12, 23, 15, 0, tzinfo=UTC)  # Wed 16:00 in Berlin; 24-26 Dec holidays
    desk.pipeline.process_one(
        make_mail(subject="Urgent: printer on fire", headers={"X-Priority": "1"})
    )
    row = ticket_row(desk)
    assert row.priority == "urgent" and row.sla_policy == "urgent"
    # 1 h first response: 16:00-17:00 Wed. 8 h resolution: 1 h Wed, then Mon 28 Dec 09:00-16:00.
    assert row.first_response_due == datetime(2026, 12, 23, 16, 0, tzinfo=UTC)
    assert row.resolution_due == datetime(2026, 12, 28, 15, 0, tzinfo=UTC)


def test_sla_breach_is_notified_once_to_assignee_and_escalation(flow):
    flow.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
    flow.desk.pipeline.process_one(make_mail(subject="URGENT: help"))  # 1 h first response
    flow.deliver()
    scheduler = Scheduler(flow.desk)
    flow.clock.advance(minutes=50)  # 5/6 of the hour: past the 80% warning point
    assert scheduler.run_once().warned == ["MD-1"]
    flow.clock.advance(minutes=15)
    report = scheduler.run_once()
    assert report.breached == ["MD-1"]
    assert scheduler.run_once().breached == []  # once only
    mail = flow.deliver()
    breaches = [m for m in mail if "SLA BREACH" in body(m)]
    assert sorted(a for m in breaches for a in to(m)) == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    row = ticket_row(flow.desk)
    assert row.sla_state["first_response_breached"] is True


def test_pending_pauses_the_resolution_clock(flow):
    flow.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 Berlin
    notice = open_ticket(flow)
    due = ticket_row(flow.desk).resolution_due
    agent_says(flow, notice, "#status pending\n\nPlease send the logs.")
    flow.clock.now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a whole business day later
    flow.desk.pipeline.process_one(
        make_mail(subject="Re: [MD-1] Printer on fire", body="logs attached")
    )
    row = ticket_row(flow.desk)
    assert row.status == Status.OPEN.value
    # 8 business hours (Mon 10:05-17:00 and Tue 09:00-10:00) spent pending move the due time on.
    assert row.resolution_due > due


def with_tickets(desk, **settings):
    """The desk with some `tickets:` settings changed, as if maildesk.yaml said so."""
    desk.config = desk.config.model_copy(
        update={"tickets": desk.config.tickets.model_copy(update=settings)}
    )
    desk.pipeline.config = desk.config
    return desk


def test_stranger_can_be_held_for_an_agents_approval(flow):
    with_tickets(flow.desk, stranger_with_token="hold")
    open_ticket(flow)
    result = flow.desk.pipeline.process_one(
        make_mail(
            sender="mallory@evil.example", subject="Re: [MD-1] Printer on fire", body="me too"
        )
    )
    assert result.ticket_ref == "MD-2"
    assert "held" in ticket_row(flow.desk, "MD-2").tags
    mail = flow.deliver()
    assert not [m for m in mail if "mallory@evil.example" in to(m)]  # no acknowledgement
    to_agents = [m for m in mail if to(m) == ["alice@example.com"]]
    assert to_agents and "[MD-2]" in str(to_agents[0]["Subject"])


def test_resolved_notice_invites_a_rating_and_a_digit_reply_records_it(flow):
    notice = open_ticket(flow)
    agent_says(flow, notice, "#status resolved\n\nFixed it.")
    mail = flow.deliver()
    (resolved,) = [m for m in mail if CUSTOMER in to(m) and "resolved" in body(m)]
    assert "Reply with a single digit from 1" in body(resolved)
    flow.desk.pipeline.process_one(
        make_mail(
            subject=f"Re: {resolved['Subject']}",
            body="5\nQuick and friendly, thanks!",
            **reply_to(resolved),
        )
    )
    row = ticket_row(flow.desk)
    assert (row.rating, row.rating_comment, row.status) == (
        5,
        "Quick and friendly, thanks!",
        "resolved",
    )


def test_only_one_of_several_daemons_runs_the_scheduler(flow):
    first, second = Scheduler(flow.desk, holder="node-a:1"), Scheduler(flow.desk, holder="node-b:2")
    assert first.run_once().skipped is False
    assert second.run_once().skipped is True  # the lease is node-a's until it expires


def test_kb_command_inserts_the_article_into_the_relayed_reply(
    make_desk, smtp_sink, clock, tmp_path
):
    from tests.test_kb import write_kb

    write_kb(tmp_path / "kbdesk" / "kb")
    desk = make_desk("kbdesk", extra=smtp_sink.smtp_config() + "knowledge_base: kb\n")
    desk.pipeline.process_one(
        make_mail(subject="Forgot my password", message_id="<k1@example.org>")
    )
    send_all(desk)
    notice = next(parse(r.data) for r in smtp_sink.received if "alice@example.com" in r.rcpt_tos)
    desk.pipeline.process_one(
        make_mail(
            sender=ALICE,
            subject=f"Re: {notice['Subject']}",
            body="Here is how:\n#kb reset-password\nAlice",
            **reply_to(notice),
        )
    )
    before = len(smtp_sink.received)
    send_all(desk)
    relayed = next(parse(r.data) for r in smtp_sink.received[before:] if CUSTOMER in r.rcpt_tos)
    assert "Open the sign-in page" in body(relayed) and "#kb" not in body(relayed)


def test_reminder_after_hours_without_agent_action_once(flow):
    open_ticket(flow)
    scheduler = Scheduler(flow.desk)
    flow.clock.advance(hours=23)
    assert scheduler.run_once().reminded == []
    flow.clock.advance(hours=2)
    assert scheduler.run_once().reminded == ["MD-1"]
    flow.clock.advance(hours=2)
    assert scheduler.run_once().reminded == []  # once per silence
    mail = flow.deliver()
    reminders = [m for m in mail if "Reminder" in body(m)]
    assert sorted(a for m in reminders for a in to(m)) == ["alice@example.com", "bob@example.com"]


def test_raising_the_priority_brings_the_tighter_sla(flow):
    flow.clock.now = datetime(2026, 12, 23, 15, 0, tzinfo=UTC)  # Wed 16:00 in Berlin
    notice = open_ticket(flow)
    before = ticket_row(flow.desk)
    assert (before.sla_policy, before.priority) == ("standard", "normal")  # 8 h / 40 h
    agent_says(flow, notice, "#priority urgent\n\nLooking at it now.")
    after = ticket_row(flow.desk)
    # Counted from the ticket's creation, as the first policy was: 8 h of business time
    # is 1 h on Wednesday, then Monday 28 Dec 09:00-16:00 (24-26 Dec are holidays).
    assert (after.priority, after.sla_policy) == ("urgent", "urgent")
    assert after.resolution_due == datetime(2026, 12, 28, 15, 0, tzinfo=UTC)
    # The agent's reply was the first response: that target is met and stays as it was.
    assert after.first_response_due == before.first_response_due

    # Lowered again, the ticket gets the low priority's policy (standard here) back.
    agent_says(flow, notice, "#priority low\n\nFalse alarm.")
    lowered = ticket_row(flow.desk)
    assert lowered.priority == "low"
    assert (lowered.sla_policy, lowered.resolution_due) == ("standard", before.resolution_due)
    with flow.desk.sessions() as s:
        logged = [
            (e.kind, e.reason)
            for e in s.scalars(select(Event).order_by(Event.id))
            if e.kind == "resolution_due"
        ]
    assert logged == [
        ("resolution_due", "priority normal -> urgent: SLA urgent"),
        ("resolution_due", "priority urgent -> low: SLA standard"),
    ]


def test_a_policy_a_rule_named_stays_when_the_priority_rises(make_desk):
    rules = (
        "version: 1\ndefault: {queue: general, priority: normal, auto_reply: ack, calendar: 24x7}\n"
        "sla:\n  policies:\n    vip: {first_response: 2h, resolution: 20h}\n"
        "    urgent: {first_response: 1h, resolution: 8h}\n  by_priority: {urgent: urgent}\n"
        "queues:\n  general: {agents: [alice]}\n"
        "agents:\n  alice: {address: alice@example.com, name: Alice Archer}\n"
        "rules:\n  - name: vip\n    when: {from: {domain: example.org}}\n    then: {sla: vip}\n"
        "  - name: escalate\n    follow_ups: true\n    when: {body: {contains_word: outage}}\n"
        "    then: {priority: urgent}\n"
    )
    desk = make_desk(rules=rules)
    desk.pipeline.process_one(make_mail(message_id="<c1@example.org>"))
    desk.pipeline.process_one(make_mail(subject="Re: [MD-1] Help please", body="A full outage."))
    row = ticket_row(desk)
    assert (row.priority, row.sla_policy) == ("urgent", "vip")


def test_warnings_and_breaches_follow_the_new_due_times(flow):
    flow.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
    open_ticket(flow)  # standard: first response due 8 business hours later
    flow.deliver()
    scheduler = Scheduler(flow.desk)
    flow.clock.advance(minutes=30)
    assert scheduler.run_once().warned == []  # 30 min of 8 h: nothing to say yet
    flow.desk.pipeline.process_one(
        make_mail(
            subject="Re: [MD-1] Printer on fire",
            body="This is urgent, the office is filling with smoke.",
        )
    )
    row = ticket_row(flow.desk)
    assert (row.priority, row.sla_policy) == ("urgent", "urgent")
    assert row.first_response_due == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # 1 h from creation
    flow.clock.advance(minutes=20)  # 50 of the urgent policy's 60 minutes
    assert scheduler.run_once().warned == ["MD-1"]
    flow.clock.advance(minutes=15)
    assert scheduler.run_once().breached == ["MD-1"]
    breach = [m for m in flow.deliver() if "SLA BREACH" in body(m)]
    assert breach and "carol@example.com" in {a for m in breach for a in to(m)}


@pytest.mark.parametrize("job", ["sla", "reminder"])
def test_a_ticket_resolved_after_the_scheduler_listed_it_gets_no_notice(flow, monkeypatch, job):
    # The scheduler lists its candidates first, then takes each under its row lock; an
    # agent who resolves the ticket in between must not get a breach or a reminder.
    import maildesk.service.scheduler as scheduler_module
    from maildesk.store.ticket_updates import change_status

    flow.clock.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
    flow.desk.pipeline.process_one(make_mail(subject="URGENT: help"))  # 1 h first response
    flow.deliver()
    flow.clock.advance(hours=30)  # past every due time, and a day without agent action
    load = scheduler_module.load_ticket_state

    def resolved_meanwhile(session, ticket_id):
        with flow.desk.sessions() as other, other.begin():
            change_status(
                other, ticket_id, Status.RESOLVED, actor="alice@example.com",
                reason="fixed", now=flow.clock(), config=flow.desk.config,
            )  # fmt: skip
        return load(session, ticket_id)

    scheduler, now = Scheduler(flow.desk), flow.clock()
    monkeypatch.setattr(scheduler_module, "load_ticket_state", resolved_meanwhile)
    if job == "sla":
        assert scheduler._sla(now) == ([], [])
    else:
        assert scheduler._each(scheduler._reminder_candidates(now), scheduler._remind, now) == []
    with flow.desk.sessions() as s:
        templates = set(s.scalars(select(OutboxEntry.template)))
    assert not templates & {"sla_breach", "sla_warning", "reminder"}, templates


def test_a_scheduler_that_stops_cleanly_hands_the_timers_over_at_once(flow):
    from tests.daemon_helpers import run_for

    first = Scheduler(flow.desk, holder="node-a:1:x", interval=0.1)
    second = Scheduler(flow.desk, holder="node-b:2:x")
    run_for(first.run, 0.3)
    assert not second.run_once().skipped  # not after the lease's 60 s
