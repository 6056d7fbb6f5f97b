"""decide() on a customer's follow-up: who hears, reopening, ratings, rules, SLA, robots.

Pure: plain messages, rules and ticket snapshots in memory, no database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maildesk.common.domain import Author, MessageKind, Priority, Status
from maildesk.intake.message import Address
from tests.decidekit import (
    ALICE,
    BOB,
    CAROL,
    CREATED,
    CUSTOMER,
    NOW,
    STANDARD_FIRST_DUE,
    STANDARD_RESOLUTION_DUE,
    agent_writes,
    changed,
    decide_mail,
    one_notice,
    readers,
    tags_added,
    templates,
    ticket,
)
from tests.rulekit import BASE, ruleset

REPLY = "Re: [MD-7] Printer on fire"


@pytest.mark.parametrize(
    ("fields", "sender", "told"),
    [
        ({"assignee": ALICE}, CUSTOMER, [ALICE]),
        ({}, CUSTOMER, [ALICE, BOB]),  # the queue, without Erin who is away
        ({"assignee": ALICE, "participants": {CAROL: "watcher"}}, CUSTOMER, [ALICE, CAROL]),
        (
            {"assignee": ALICE, "participants": {"boss@example.org": "cc"}},
            "boss@example.org",
            [ALICE],
        ),
        # A watcher who is a customer hears of others' replies, never of their own.
        (
            {"assignee": ALICE, "participants": {"ops@example.org": "watcher"}},
            CUSTOMER,
            [ALICE, "ops@example.org"],
        ),
        (
            {"assignee": ALICE, "participants": {"ops@example.org": "watcher"}},
            "ops@example.org",
            [ALICE],
        ),
    ],
    ids=["assignee", "queue", "watcher", "cc-writes", "customer-watcher", "watcher-writes"],
)
def test_a_customer_reply_reaches_assignee_or_queue_and_watchers_but_not_its_author(
    fields, sender, told
):
    d = decide_mail(ticket(**fields), sender=sender, subject=REPLY, body="More details.")
    assert (d.ticket_id, d.kind, d.internal) == (7, MessageKind.REPLY, False)
    notice = one_notice(d, "customer_reply")
    assert readers(notice) == told
    assert notice.body_text == "More details.\n" and notice.audience == "agents"
    assert notice.on_behalf_of is not None and notice.on_behalf_of.address == sender
    assert templates(d) == ["customer_reply"]  # the customer gets no acknowledgement


@pytest.mark.parametrize(
    ("sender", "author"),
    [(CUSTOMER, Author.REQUESTER), ("boss@example.org", Author.PARTICIPANT)],
)
def test_requester_and_participants_are_told_apart(sender, author):
    d = decide_mail(ticket(participants={"boss@example.org": "cc"}), sender=sender)
    assert d.author is author and d.actor == sender


def test_new_people_in_cc_of_a_reply_join_and_known_ones_are_not_added_twice():
    on = ticket(participants={"boss@example.org": "cc"})
    cc = "boss@example.org, New <new@example.org>, bob@example.com"
    d = decide_mail(on, cc=cc, options={"in_conversation": True})
    assert d.participants == [(Address("New", "new@example.org"), "cc")]


def test_a_mail_that_only_names_the_ticket_adds_nobody_from_its_cc():
    # The requester's From is easy to forge, and the ticket number easy to guess: only a
    # mail that answers one of the ticket's messages may bring new people onto it.
    d = decide_mail(ticket(), cc="Eve <eve@elsewhere.example>")
    assert d.participants == []
    assert d.notes == [
        (
            "not_joined",
            "eve@elsewhere.example not added: the mail answers none of this ticket's "
            "messages (an agent's #cc adds them)",
        )
    ]


@pytest.mark.parametrize(
    ("status", "body", "setting", "reopened"),
    [
        (Status.NEW, "More details.", True, None),
        (Status.OPEN, "More details.", True, None),
        (Status.PENDING, "Here is the log.", True, Status.OPEN),
        (Status.RESOLVED, "Still broken.", True, Status.OPEN),
        (Status.RESOLVED, "Thanks!", True, None),
        (Status.RESOLVED, "Thanks!", False, Status.OPEN),
        (Status.RESOLVED, "Thanks! But one more question: where is the manual?", True, Status.OPEN),
    ],
)
def test_a_customer_reply_reopens_a_waiting_or_finished_ticket(status, body, setting, reopened):
    d = decide_mail(
        ticket(status=status), tickets={"thanks_keeps_resolved": setting}, subject=REPLY, body=body
    )
    assert changed(d).get("status") == reopened
    if reopened:
        [change] = [c for c in d.changes if c.field == "status"]
        assert change.reason == f"customer replied to a {status.value} ticket"


def test_a_thank_you_on_a_resolved_ticket_is_noted_and_still_reaches_the_agents():
    d = decide_mail(ticket(status=Status.RESOLVED, assignee=ALICE), body="Thank you so much!")
    assert d.notes == [("thanks", "a thank-you on a resolved ticket: it stays resolved")]
    assert readers(one_notice(d, "customer_reply")) == [ALICE]


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.CLOSED])
def test_a_rating_reply_on_a_finished_ticket_is_stored_and_reopens_nothing(status):
    tickets = {"reply_to_closed": "reopen"}
    d = decide_mail(ticket(status=status), tickets=tickets, body="4 - quick, but the fix was odd")
    assert changed(d) == {
        "rating": 4,
        "rating_comment": "quick, but the fix was odd",
        "rated_at": NOW,
    }
    assert d.notes == [("rated", "rated 4 of 5")]
    assert d.notices == []
    assert all(c.reason == f"satisfaction rating by {CUSTOMER}" for c in d.changes)


def test_a_rating_of_an_auto_closed_ticket_is_stored_under_the_default_settings():
    d = decide_mail(ticket(status=Status.CLOSED), body="5")
    assert (d.new_ticket, changed(d).get("rating")) == (None, 5)


def test_a_digit_on_an_open_ticket_is_just_a_reply():
    d = decide_mail(ticket(status=Status.OPEN), body="5")
    assert changed(d) == {} and templates(d) == ["customer_reply"]


ESCALATE = ruleset("""
    - name: outage
      follow_ups: true
      when: {body: {contains_word: outage}}
      then: {priority: urgent, tags: [outage], notify: carol}
    - name: calm
      follow_ups: true
      when: {body: {contains_word: whenever}}
      then: {priority: low}
""")


def test_a_follow_up_rule_raises_priority_tags_notifies_and_brings_the_urgent_sla():
    d = decide_mail(ticket(), rules=ESCALATE, body="It is an outage now.")
    assert d.rule_hits == ["outage"]
    assert tags_added(d) == ["outage"]
    # The urgent policy counted from the ticket's creation (09:00 in Berlin): both earlier.
    assert changed(d) == {
        "priority": Priority.URGENT,
        "sla_policy": "urgent",
        "first_response_due": datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        "resolution_due": datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
    }
    reasons = {c.field: c.reason for c in d.changes}
    assert reasons["priority"] == "rule outage"
    assert reasons["sla_policy"] == "priority normal -> urgent: SLA urgent"
    assert readers(one_notice(d, "customer_reply")) == [ALICE, BOB, CAROL]


def test_a_follow_up_rule_never_lowers_priority():
    d = decide_mail(ticket(), rules=ESCALATE, body="Fix it whenever you can.")
    assert d.rule_hits == ["calm"] and changed(d) == {}


URGENT_FIRST_DUE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 1 h and 4 h from 09:00 Berlin
URGENT_RESOLUTION_DUE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # A policy a rule named (not the old priority's) stays, with its due times.
        ({"sla_policy": "gold"}, {}),
        # Answered already: the first-response target is met and stays as it was.
        (
            {"first_response_at": CREATED + timedelta(minutes=5)},
            {"sla_policy": "urgent", "resolution_due": URGENT_RESOLUTION_DUE},
        ),
        # Whatever the due times were, the new policy's replace them.
        (
            {"first_response_due": CREATED, "resolution_due": CREATED + timedelta(hours=1)},
            {
                "sla_policy": "urgent",
                "first_response_due": URGENT_FIRST_DUE,
                "resolution_due": URGENT_RESOLUTION_DUE,
            },
        ),
    ],
    ids=["named-policy", "answered", "other-dues"],
)
def test_the_sla_a_raised_priority_brings(fields, expected):
    d = decide_mail(ticket(**fields), rules=ESCALATE, body="outage")
    sla = {k: v for k, v in changed(d).items() if k != "priority"}
    assert changed(d)["priority"] is Priority.URGENT and sla == expected


def test_a_warning_sent_for_the_old_due_time_does_not_count_for_the_new_one():
    state = {
        "first_response_warned": True,
        "first_response_warned_at": CREATED.isoformat(),
        "resolution_breached": True,
        "resolution_warned": True,
        "other": 1,
    }
    d = decide_mail(ticket(sla_state=state), rules=ESCALATE, body="outage")
    # The first-response warning goes out again for the urgent due time; the resolution
    # breach already happened and stays recorded (the report counts it).
    assert changed(d)["sla_state"] == {
        "resolution_breached": True,
        "resolution_warned": True,
        "other": 1,
    }
    quiet = next(c for c in d.changes if c.field == "sla_state")
    assert quiet.quiet


def test_time_spent_pending_is_credited_to_the_new_policy():
    on = ticket(sla_state={"paused_seconds": 2 * 3600})
    d = decide_mail(on, rules=ESCALATE, body="outage")
    # 4 h of business time plus the 2 h waited, from 09:00 Berlin: 15:00 Berlin.
    assert changed(d)["resolution_due"] == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


def test_a_new_policy_credits_the_waiting_on_its_own_calendar():
    # Office hours for normal tickets, round the clock for urgent ones. Pending from
    # Friday 11:00 to Monday 09:00 (Berlin) is 70 hours on the urgent policy's calendar,
    # though only 6 business hours on the office one.
    base = BASE.replace(
        "urgent: {first_response: 1h, resolution: 4h}",
        "urgent: {first_response: 1h, resolution: 8h, calendar: 24x7}",
    )
    rules = ruleset(
        """
        - name: outage
          follow_ups: true
          when: {body: {contains_word: outage}}
          then: {priority: urgent}
        """,
        base,
    )
    friday = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
    pending = [
        (friday + timedelta(hours=1)).isoformat(),
        datetime(2026, 11, 23, 8, 0, tzinfo=UTC).isoformat(),
    ]
    on = ticket(created_at=friday, sla_state={"pauses": [pending]})
    d = decide_mail(on, rules=rules, body="It is an outage now.")
    # 8 hours from Friday 10:00 with the 70 waited credited: Monday 16:00 in Berlin.
    assert changed(d)["resolution_due"] == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def test_lowering_the_priority_brings_the_lower_priority_sla():
    urgent = ticket(
        priority=Priority.URGENT,
        sla_policy="urgent",
        first_response_due=URGENT_FIRST_DUE,
        resolution_due=URGENT_RESOLUTION_DUE,
    )
    d = agent_writes("#priority normal\n#note\n\nFalse alarm.", on=urgent)  # not an answer
    assert changed(d)["sla_policy"] == "standard"
    assert changed(d)["first_response_due"] == STANDARD_FIRST_DUE
    assert changed(d)["resolution_due"] == STANDARD_RESOLUTION_DUE
    # `low` has no policy in these rules: the ticket has no SLA any more.
    d = agent_writes("#priority low\n\nNot important.", on=urgent)
    assert (changed(d)["sla_policy"], changed(d)["resolution_due"]) == (None, None)


def test_a_reply_to_a_pending_ticket_restarts_the_resolution_clock_later():
    # Pending since 09:00 Berlin, reply at 11:00: two business hours of waiting.
    on = ticket(status=Status.PENDING, sla_state={"pending_since": CREATED.isoformat(), "x": 1})
    d = decide_mail(on, subject=REPLY, body="Here is the log.")
    assert changed(d)["status"] is Status.OPEN
    assert changed(d)["sla_state"] == {"x": 1, "pauses": [[CREATED.isoformat(), NOW.isoformat()]]}
    # 16 business hours were left at 09:00 Monday; from 11:00 that is Wednesday 11:00.
    assert changed(d)["resolution_due"] == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    moved = next(c for c in d.changes if c.field == "resolution_due")
    assert moved.reason == "SLA paused for 2:00:00 of business time"


def test_without_pause_sla_when_pending_the_clock_is_not_touched():
    on = ticket(status=Status.PENDING, sla_state={"pending_since": CREATED.isoformat()})
    d = decide_mail(on, tickets={"pause_sla_when_pending": False}, body="Here is the log.")
    assert changed(d) == {"status": Status.OPEN}


def test_leaving_pending_without_a_recorded_pause_moves_no_due_time():
    d = decide_mail(ticket(status=Status.PENDING), body="Here is the log.")
    assert changed(d) == {"status": Status.OPEN}


@pytest.mark.parametrize(
    ("mail", "kind", "author"),
    [
        ({"headers": {"Auto-Submitted": "auto-replied"}}, MessageKind.AUTO_REPLY, Author.REQUESTER),
        (
            {"headers": {"X-Autoreply": "yes"}, "sender": "ooo@elsewhere.example"},
            MessageKind.AUTO_REPLY,
            Author.SYSTEM,
        ),
        ({"sender": "mailer-daemon@mx.example.org"}, MessageKind.BOUNCE, Author.SYSTEM),
        ({"sender": "support@example.com"}, MessageKind.AUTO_REPLY, Author.SYSTEM),
    ],
    ids=["requester-away", "unknown-robot", "bounce", "own-mail"],
)
@pytest.mark.parametrize("status", [Status.OPEN, Status.RESOLVED, Status.CLOSED])
def test_automatic_mail_on_a_ticket_is_an_internal_note_that_tells_nobody(
    mail, kind, author, status
):
    on = ticket(status=status, assignee=ALICE)
    d = decide_mail(on, tickets={"reply_to_closed": "new"}, subject=REPLY, **mail)
    assert (d.ticket_id, d.new_ticket, d.kind, d.author) == (7, None, kind, author)
    assert d.internal and d.notices == [] and d.changes == []
    [(note_kind, reason)] = d.notes
    assert note_kind == kind.value and reason  # the screening's reason, for the log
