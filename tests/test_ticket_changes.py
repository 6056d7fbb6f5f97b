"""The one place a ticket changes: apply_change(s), apply_decision, state_of_new_ticket.

Pure: TicketState snapshots in, the changed snapshot and its event log out.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from maildesk.common.domain import Author, MessageKind, Priority, Status
from maildesk.decide.decision import Decision, NewTicket
from maildesk.decide.ticket_changes import (
    TicketEvent,
    apply_change,
    apply_changes,
    apply_decision,
    state_of_new_ticket,
)
from maildesk.intake.message import Address
from maildesk.triage.screen import MailClass, Screening
from tests.decidekit import (
    ALICE,
    CAROL,
    CREATED,
    CUSTOMER,
    NOW,
    agent_writes,
    change,
    decide_mail,
    ticket,
)
from tests.rulekit import ruleset

EARLIER = NOW - timedelta(days=2)
PERSON = Screening(MailClass.PERSON)


@pytest.mark.parametrize(
    ("before", "after", "stamps", "reopens"),
    [
        ({"status": Status.OPEN}, Status.RESOLVED, (NOW, None), 0),
        ({"status": Status.RESOLVED, "resolved_at": EARLIER}, Status.CLOSED, (EARLIER, NOW), 0),
        ({"status": Status.NEW}, Status.CLOSED, (None, NOW), 0),
        ({"status": Status.RESOLVED, "resolved_at": EARLIER}, Status.OPEN, (None, None), 1),
        (
            {
                "status": Status.CLOSED,
                "resolved_at": EARLIER,
                "closed_at": EARLIER,
                "reopen_count": 2,
            },
            Status.PENDING,
            (None, None),
            3,
        ),
        ({"status": Status.PENDING}, Status.OPEN, (None, None), 0),
    ],
)
def test_status_changes_stamp_resolved_and_closed_and_count_reopens(before, after, stamps, reopens):
    state, changed = apply_change(ticket(**before), change("status", after.value), NOW)
    assert changed and state.status is after  # the text value is typed
    assert (state.resolved_at, state.closed_at) == stamps
    assert state.reopen_count == reopens


def test_setting_a_field_to_its_value_changes_nothing_and_logs_nothing():
    start = ticket(priority=Priority.HIGH)
    state, events = apply_changes(start, [change("priority", "high")], actor=ALICE, now=NOW)
    assert (state, events) == (start, [])


def test_a_tag_is_added_once_and_logged_once():
    start = ticket(tags=("printer",))
    changes = [change("tag", "vip", "rule vip"), change("tag", "vip"), change("tag", "printer")]
    state, events = apply_changes(start, changes, actor="rules", now=NOW)
    assert state.tags == ("printer", "vip")
    assert events == [TicketEvent("tag", "rules", "rule vip", None, "vip")]


def test_each_change_is_logged_with_its_old_and_new_text():
    changes = [
        change("priority", Priority.URGENT, "command from Alice"),
        change("assignee", CAROL, "command from Alice"),
        change("first_response_at", NOW, "first agent reply"),
    ]
    state, events = apply_changes(ticket(), changes, actor=ALICE, now=NOW)
    assert [(e.kind, e.old, e.new, e.reason) for e in events] == [
        ("priority", "normal", "urgent", "command from Alice"),
        ("assignee", None, CAROL, "command from Alice"),
        ("first_response_at", None, "2026-11-23T10:00:00+00:00", "first agent reply"),
    ]
    assert {e.actor for e in events} == {ALICE}
    assert state.updated_at == NOW


def test_quiet_changes_are_applied_without_an_event_or_new_activity():
    sla = {"resolution_warned": True}
    state, events = apply_changes(
        ticket(), [change("sla_state", sla, "SLA notice", quiet=True)], actor="scheduler", now=NOW
    )
    assert state.sla_state == sla
    assert events == [] and state.updated_at == CREATED


def test_a_field_a_ticket_does_not_have_is_refused():
    with pytest.raises(ValueError, match="no field 'colour'"):
        apply_change(ticket(), change("colour", "red"), NOW)


def test_a_customer_reply_merges_participants_and_marks_customer_activity():
    start = ticket(participants={"boss@example.org": "cc"})
    cc = "Boss <boss@example.org>, new@example.org, customer@example.org"
    d = decide_mail(start, cc=cc, options={"in_conversation": True})  # it answers us
    state, events = apply_decision(start, d, NOW)
    assert state.participants == {"boss@example.org": "cc", "new@example.org": "cc"}
    assert (state.last_customer_at, state.last_agent_at, state.updated_at) == (NOW, None, NOW)
    assert events == []


def test_an_agent_reply_marks_agent_activity_and_logs_its_changes():
    start = ticket(status=Status.NEW)
    state, events = apply_decision(start, agent_writes("On it.", start), NOW)
    assert (state.status, state.first_response_at, state.last_agent_at) == (Status.OPEN, NOW, NOW)
    assert state.last_customer_at is None
    assert [(e.kind, e.old, e.new) for e in events] == [
        ("first_response_at", None, NOW.isoformat()),
        ("status", "new", "open"),
    ]


def test_an_automatic_reply_from_the_requester_is_no_customer_activity():
    start = ticket(status=Status.RESOLVED)
    d = decide_mail(start, headers={"Auto-Submitted": "auto-replied"})
    state, events = apply_decision(start, d, NOW)
    assert state.last_customer_at is None and state.status is Status.RESOLVED
    assert [(e.kind, e.actor) for e in events] == [("auto_reply", CUSTOMER)]
    assert events[0].reason == "Auto-Submitted: auto-replied"


def test_follow_up_rules_are_remembered_once_and_logged():
    rules = ruleset("""
        - name: outage
          follow_ups: true
          when: {body: {contains_word: outage}}
          then: {tags: [outage]}
    """)
    start = ticket(rules_fired=("outage", "vip"))
    state, events = apply_decision(start, decide_mail(start, rules=rules, body="outage"), NOW)
    assert state.rules_fired == ("outage", "vip") and state.tags == ("outage",)
    assert events[-1] == TicketEvent("rules", "rules", "rules fired on a follow-up: outage")


def test_a_merge_records_the_target_ref():
    target = ticket(id=3, ref="MD-3")
    d = agent_writes("#merge MD-3\n", ticket(), options={"find_ticket": lambda ref: target})
    state, _ = apply_decision(ticket(), d, NOW)
    assert (state.merged_into, state.merged_into_id, state.status) == ("MD-3", 3, Status.CLOSED)
    assert state.closed_at == NOW


def test_a_new_ticket_starts_new_with_its_routing_and_logs_creation_and_assignment():
    rules = ruleset("""
        - name: invoices
          when: {subject: {contains: invoice}}
          then: {queue: billing, assignee: carol, tags: [money, money]}
    """)
    d = decide_mail(rules=rules, subject="Invoice 42", cc="boss@example.org")
    assert d.new_ticket is not None
    start = state_of_new_ticket(
        d.new_ticket,
        ticket_id=12,
        ref="MD-12",
        message_id="md-12.ab@example.com",
        now=NOW,
        rules_fired=d.rule_hits,
    )
    assert (start.status, start.queue, start.assignee, start.tags) == (
        Status.NEW,
        "billing",
        CAROL,
        ("money",),
    )
    assert (start.requester, start.requester_name) == (CUSTOMER, "Customer")
    assert (start.subject, start.rules_fired) == ("Invoice 42", ("invoices",))
    state, events = apply_decision(start, d, NOW)
    assert state.participants == {"boss@example.org": "cc"}
    assert state.last_customer_at == NOW
    assert events == [
        TicketEvent(
            "created",
            CUSTOMER,
            "new request in queue billing, priority normal; rules: invoices",
            None,
            "MD-12",
        ),
        TicketEvent("assignee", "rules", "assigned by rules; rules: invoices", None, CAROL),
    ]


def test_a_new_tickets_subject_is_cut_to_what_the_ticket_keeps():
    long = NewTicket("x" * 3000, Address("", CUSTOMER), "general", Priority.LOW, None, "en")
    start = state_of_new_ticket(long, ticket_id=1, ref="MD-1", message_id="m@x", now=NOW)
    assert start.subject == "x" * 2000 and start.requester_name == ""


def test_notes_of_a_decision_become_events_by_its_actor():
    d = Decision(
        author=Author.SYSTEM,
        kind=MessageKind.BOUNCE,
        actor="mailer-daemon@mx.example.org",
        screening=PERSON,
        ticket_id=7,
        notes=[("bounce", "550 no such user")],
        participants=[(Address("", CUSTOMER), "cc")],  # the requester never becomes a CC
    )
    state, events = apply_decision(ticket(), d, NOW)
    assert events == [TicketEvent("bounce", "mailer-daemon@mx.example.org", "550 no such user")]
    assert state.participants == {} and state.last_customer_at is None


def test_an_evolved_ticket_is_a_new_copy_and_unknown_fields_are_refused():
    before = ticket(status=Status.NEW, tags=("vip",))
    after = before.evolved(status=Status.OPEN, tags=("vip", "billing"))
    assert (before.status, before.tags) == (Status.NEW, ("vip",))
    assert (after.status, after.tags, after.ref) == (Status.OPEN, ("vip", "billing"), before.ref)
    with pytest.raises(TypeError, match="no field stauts"):
        before.evolved(stauts=Status.OPEN)
