"""Who is told when a ticket changes hands, and what watchers hear (pure deciding step)."""

from __future__ import annotations

from datetime import UTC, datetime

from maildesk.decide.decision import LastMessage
from tests.decidekit import (
    ALICE,
    BOB,
    CAROL,
    CUSTOMER,
    agent_writes,
    decide_mail,
    notices,
    one_notice,
    readers,
    templates,
    ticket,
)
from tests.rulekit import ruleset

LAST = LastMessage(
    "Customer <customer@example.org>", datetime(2026, 11, 23, 8, 0, tzinfo=UTC), "It smokes."
)


def lookup(ticket_id: int) -> LastMessage | None:
    return LAST if ticket_id == 7 else None


def assign(body: str, **fields) -> object:
    return agent_writes(body, ticket(**fields), options={"last_message": lookup})


def everyone_told(decision) -> list[str]:
    return sorted(a.address for n in decision.notices for a in n.to + n.cc)


def test_the_new_owner_is_told_with_the_summary_and_the_customers_latest_mail():
    d = assign("#assign bob\n\nBob knows this printer.")
    told = one_notice(d, "assigned")
    assert readers(told) == [BOB]
    assert told.body_text == "It smokes."  # the customer's latest mail
    assert told.extra["assigned_by"] == "Alice"
    assert told.extra["last_message"]["from"] == "Customer <customer@example.org>"
    assert told.extra["said"] == {"text": "Bob knows this printer.", "internal": False}
    assert readers(one_notice(d, "command_confirm")) == [ALICE]


def test_assigning_oneself_or_the_same_owner_again_tells_nobody_new():
    assert "assigned" not in templates(assign("#assign me\n\nMine."))
    assert "assigned" not in templates(assign("#assign bob\n\nStill Bob's.", assignee=BOB))


def test_the_new_owner_gets_one_mail_even_when_also_a_reader_of_the_note():
    # Bob is in the queue (so a note would reach him) and a watcher too.
    d = assign("#assign bob\n#note\n\nCall Dana first.", participants={BOB: "watcher"})
    assert everyone_told(d).count(BOB) == 1
    assert one_notice(d, "assigned").extra["said"] == {"text": "Call Dana first.", "internal": True}
    assert "note" not in templates(d)  # Bob was its only other reader


def test_watchers_get_each_agent_reply_but_not_their_own():
    on = {"participants": {BOB: "watcher", CAROL: "watcher"}}
    d = agent_writes("Try the other tray.", ticket(**on), sender=BOB)
    assert readers(one_notice(d, "agent_replied")) == [CAROL]
    assert one_notice(d, "agent_replied").body_text == "Try the other tray."


def test_an_assignee_who_watches_hears_of_a_customer_reply_once():
    on = ticket(assignee=BOB, participants={BOB: "watcher", CAROL: "watcher"})
    d = decide_mail(on, subject="Re: [MD-7] Printer on fire", body="Still smoking.")
    (reply,) = notices(d, "customer_reply")
    assert readers(reply) == [BOB, CAROL]
    assert CUSTOMER not in readers(reply)


ROUND_ROBIN = ruleset("""
    - name: to-the-queue
      when: {subject: {contains: printer}}
      then: {assignee: round_robin}
    - name: vip
      when: {from: {domain: vip.example}}
      then: {assignee: carol}
""")


def test_a_new_tickets_assignee_hears_it_from_the_new_ticket_notice_with_who_chose():
    d = decide_mail(None, rules=ROUND_ROBIN, subject="The printer")
    notice = one_notice(d, "new_ticket")
    assert readers(notice) == [ALICE] and notice.extra["assigned_by"] == "round robin"
    d = decide_mail(None, rules=ROUND_ROBIN, sender="Vera <vera@vip.example>", subject="Hi")
    notice = one_notice(d, "new_ticket")
    assert readers(notice) == [CAROL] and notice.extra["assigned_by"] == "rule vip"
