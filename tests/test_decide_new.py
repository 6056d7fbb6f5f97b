"""decide() on mail that opens a ticket: routing, who is told, quiet tickets, strangers.

Pure: plain messages, rules and ticket snapshots in memory, no database.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from maildesk.common.domain import Author, MessageKind, Priority, Status
from maildesk.decide.inbound import decide, sets_aside
from maildesk.intake.message import Address, ParseLimits
from maildesk.intake.parse import parse_message
from tests.conftest import make_mail
from tests.decidekit import (
    ALICE,
    BOB,
    CAROL,
    CUSTOMER,
    agent_writes,
    context,
    decide_mail,
    notices,
    one_notice,
    readers,
    templates,
    ticket,
)
from tests.rulekit import ruleset

ROUTING = ruleset("""
    - name: invoices
      when: {subject: {contains: invoice}}
      then: {queue: billing, priority: urgent, assignee: carol, tags: [money]}
    - name: spam
      when: {header: {name: X-Spam-Flag, is: "YES"}}
      then: {spam: true}
    - name: newsletters
      when: {from: {starts_with: newsletter@}}
      then: {ignore: true, notify: [postmaster@example.com]}
    - name: tell
      when: {subject: {contains: printer}}
      then: {watchers: [carol], cc: [manager@customer.example], notify: [ops@example.com]}
""")


def test_rules_set_queue_priority_assignee_tags_and_sla_of_a_new_ticket():
    d = decide_mail(rules=ROUTING, subject="Invoice 42 is wrong")
    new = d.new_ticket
    assert new is not None and d.ticket_id is None
    assert (new.queue, new.priority, new.assignee, new.tags) == (
        "billing",
        Priority.URGENT,
        CAROL,
        ["money"],
    )
    # The urgent policy from 11:00 in Berlin: answer within 1 h, solve within 4 h.
    assert new.sla_policy == "urgent"
    assert new.first_response_due == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    assert new.resolution_due == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    assert (d.author, d.kind, d.actor, d.rule_hits) == (
        Author.REQUESTER,
        MessageKind.REQUEST,
        CUSTOMER,
        ["invoices"],
    )
    assert readers(one_notice(d, "new_ticket")) == [CAROL]  # the assignee, not the queue


def test_requester_gets_the_acknowledgement_and_the_queue_agents_present_the_request():
    d = decide_mail(subject="Re: [MD-99] Help please", body="It is broken.")
    assert d.new_ticket is not None and d.new_ticket.subject == "Help please"
    assert (d.new_ticket.queue, d.new_ticket.sla_policy) == ("general", "standard")
    assert templates(d) == ["ack", "new_ticket"]
    ack = one_notice(d, "ack")
    assert (readers(ack), ack.audience, ack.automatic) == ([CUSTOMER], "requester", True)
    agents = one_notice(d, "new_ticket")
    # Erin is in the queue but marked away.
    assert readers(agents) == [ALICE, BOB]
    assert [a.name for a in agents.to] == ["Alice", "Bob"]
    assert agents.body_text == "It is broken.\n"
    assert agents.on_behalf_of == Address("Customer", CUSTOMER)


def test_ccd_customers_join_the_ticket_but_agents_and_our_own_address_do_not():
    d = decide_mail(
        to="support@example.com, Colleague <colleague@example.org>",
        cc="Boss <boss@example.org>, Alice <alice@example.com>",
    )
    assert d.participants == [
        (Address("Boss", "boss@example.org"), "cc"),
        (Address("Colleague", "colleague@example.org"), "cc"),
    ]


def test_rule_watchers_cc_and_notify_join_or_hear_of_the_new_ticket():
    d = decide_mail(rules=ROUTING, subject="The printer is jammed")
    assert d.participants == [
        (Address("", "manager@customer.example"), "cc"),
        (Address("Carol", CAROL), "watcher"),
    ]
    assert readers(one_notice(d, "new_ticket")) == [ALICE, BOB, CAROL, "ops@example.com"]
    assert "ack" in templates(d)


@pytest.mark.parametrize(
    ("mail", "told", "spam", "tags"),
    [
        ({"headers": {"X-Spam-Flag": "YES"}}, [], True, []),
        ({"sender": "newsletter@shop.example"}, ["postmaster@example.com"], False, ["ignored"]),
    ],
    ids=["spam", "ignored"],
)
def test_spam_and_ignored_mail_opens_a_ticket_nobody_but_notify_hears_of(mail, told, spam, tags):
    d = decide_mail(rules=ROUTING, **mail)
    assert d.new_ticket is not None
    assert (d.new_ticket.spam, d.new_ticket.tags, d.new_ticket.sla_policy) == (spam, tags, None)
    assert not notices(d, "ack")
    assert [a for n in notices(d, "new_ticket") for a in readers(n)] == told


@pytest.mark.parametrize(("sent_last_hour", "acknowledged"), [(0, True), (4, True), (5, False)])
def test_acknowledgements_stop_at_the_hourly_limit_per_sender(sent_last_hour, acknowledged):
    options = {"auto_replies_last_hour": sent_last_hour, "auto_reply_limit": 5}
    d = decide_mail(options=options)
    assert bool(notices(d, "ack")) is acknowledged
    assert readers(one_notice(d, "new_ticket")) == [ALICE, BOB]  # agents hear regardless


@pytest.mark.parametrize(
    ("mail", "kind"),
    [
        ({"headers": {"Auto-Submitted": "auto-replied"}}, MessageKind.AUTO_REPLY),
        ({"headers": {"X-Autoreply": "yes"}}, MessageKind.AUTO_REPLY),
        ({"sender": "MAILER-DAEMON@mx.example.org"}, MessageKind.BOUNCE),
        ({"sender": "support@example.com"}, MessageKind.AUTO_REPLY),
    ],
    ids=["auto-submitted", "x-autoreply", "bounce", "own-address"],
)
def test_automatic_mail_that_matches_no_ticket_is_set_aside_and_never_told(mail, kind):
    d = decide_mail(**mail)
    assert sets_aside(d.screening, None) and not sets_aside(d.screening, ticket())
    # Deciding it anyway (without the planner's set-aside step) keeps it quiet.
    assert d.new_ticket is not None and d.kind is kind
    assert d.notices == []


@pytest.mark.parametrize("headers", [{"Precedence": "list"}, {"Precedence": "bulk"},
                                     {"List-Id": "<help.groups.example.com>"}])  # fmt: skip
def test_list_and_bulk_mail_is_a_ticket_agents_hear_of_without_acknowledgement(headers):
    d = decide_mail(headers=headers)
    assert not sets_aside(d.screening, None)
    assert d.new_ticket is not None and d.kind is MessageKind.REQUEST
    assert templates(d) == ["new_ticket"]


@pytest.mark.parametrize(
    "sender", ["noreply@shop.example", "DoNotReply@bank.example", "no-reply+x@example.net"]
)
def test_robots_get_no_acknowledgement(sender):
    d = decide_mail(sender=sender)
    assert d.new_ticket is not None  # not automatic by itself: a ticket, agents told
    assert templates(d) == ["new_ticket"]


def test_a_person_asking_for_no_auto_response_gets_no_ack_but_agents_hear():
    d = decide_mail(headers={"X-Auto-Response-Suppress": "All"})
    assert templates(d) == ["new_ticket"]


@pytest.mark.parametrize("setting", [None, "new"])
def test_a_stranger_quoting_a_ticket_token_gets_a_ticket_of_their_own(setting):
    tickets = {"stranger_with_token": setting} if setting else None
    d = decide_mail(
        ticket(),
        tickets=tickets,
        sender="Eve <eve@elsewhere.example>",
        subject="Re: [MD-7] Printer on fire",
    )
    assert d.ticket_id is None and d.new_ticket is not None
    assert (d.new_ticket.requester.address, d.new_ticket.subject) == (
        "eve@elsewhere.example",
        "Printer on fire",
    )
    assert readers(one_notice(d, "ack")) == ["eve@elsewhere.example"]
    # Linked to the ticket it named, and the agents are told so (not the stranger).
    assert d.new_ticket.linked_from == 7
    told = one_notice(d, "new_ticket")
    assert told.extra["linked_to"] == {"ref": "MD-7", "because": "named"}
    assert "linked_to" not in one_notice(d, "ack").extra


def test_a_held_stranger_gets_no_ack_and_agents_learn_which_ticket_it_claims():
    d = decide_mail(
        ticket(),
        tickets={"stranger_with_token": "hold"},
        sender="eve@elsewhere.example",
        subject="Re: [MD-7] Printer on fire",
    )
    assert d.new_ticket is not None and d.new_ticket.tags == ["held"]
    assert templates(d) == ["new_ticket"]
    assert one_notice(d, "new_ticket").extra == {"held_for": "MD-7"}
    [(kind, text)] = d.notes
    assert kind == "held"
    assert "eve@elsewhere.example is not on MD-7" in text and "#merge MD-7" in text


def test_a_participant_or_an_agent_is_no_stranger():
    on = ticket(participants={"boss@example.org": "cc"})
    assert decide_mail(on, sender="boss@example.org").ticket_id == 7
    assert decide_mail(on, sender=ALICE, tickets={"stranger_with_token": "hold"}).ticket_id == 7


def test_a_reply_to_a_closed_ticket_opens_a_new_linked_ticket_by_default():
    d = decide_mail(ticket(status=Status.CLOSED), subject="Re: [MD-7] Printer on fire")
    assert d.new_ticket is not None and d.new_ticket.linked_from == 7
    assert d.notes == [("linked", "reply to closed ticket MD-7")]
    assert templates(d) == ["ack", "new_ticket"]


def test_with_reply_to_closed_reopen_the_closed_ticket_reopens():
    d = decide_mail(ticket(status=Status.CLOSED), tickets={"reply_to_closed": "reopen"})
    assert d.ticket_id == 7 and d.new_ticket is None
    [status] = [c for c in d.changes if c.field == "status"]
    assert (status.value, status.reason) == (Status.OPEN, "customer replied to a closed ticket")
    assert templates(d) == ["customer_reply"]


def test_an_agent_writing_on_a_closed_ticket_stays_on_it():
    d = agent_writes("For the record.", ticket(status=Status.CLOSED))
    assert d.ticket_id == 7 and d.new_ticket is None and d.author is Author.AGENT


def _with_dropped_attachment() -> bytes:
    return make_mail(attachments=[("video.mp4", "video/mp4", b"x" * 4096)])


def test_a_dropped_attachment_tags_the_new_ticket_and_tells_the_sender():
    msg = parse_message(_with_dropped_attachment(), limits=ParseLimits(max_attachment_bytes=1024))
    d = decide(msg, None, context(msg))
    assert d.new_ticket is not None and d.new_ticket.tags == ["oversized"]
    oversized = one_notice(d, "oversized")
    assert readers(oversized) == [CUSTOMER]
    [attachment] = oversized.extra["oversized"]["attachments"]
    assert (attachment["name"], attachment["size"]) == ("video.mp4", "4 KB")
    assert [kind for kind, _ in d.notes] == ["size_limit"]


def test_a_dropped_attachment_on_a_follow_up_tags_the_ticket():
    msg = parse_message(_with_dropped_attachment(), limits=ParseLimits(max_attachment_bytes=1024))
    d = decide(msg, ticket(), context(msg))
    assert [(c.field, c.value) for c in d.changes] == [("tag", "oversized")]
    assert "oversized" in templates(d)


def test_a_held_strangers_oversized_mail_tells_them_nothing():
    # Held mail gets no acknowledgement on purpose; the size notice must not be one.
    raw = make_mail(
        sender="eve@elsewhere.example",
        subject="Re: [MD-7] Printer on fire",
        attachments=[("video.mp4", "video/mp4", b"x" * 4096)],
    )
    msg = parse_message(raw, limits=ParseLimits(max_attachment_bytes=1024))
    d = decide(msg, ticket(), context(msg, tickets={"stranger_with_token": "hold"}))
    assert d.new_ticket is not None and set(d.new_ticket.tags) == {"held", "oversized"}
    assert "oversized" not in templates(d)
    assert [kind for kind, _ in d.notes] == ["held", "size_limit"]
