"""Who reads each notification and where it sits in their thread (plan_notices), and a
batch's memory of tickets and threads (BatchState). Pure, in memory.
"""

from __future__ import annotations

from maildesk.common.config import Config
from maildesk.decide.batch_state import BatchState
from maildesk.decide.decision import Notice
from maildesk.decide.inbound import decide
from maildesk.decide.notices import QueuedNotice, address_notices, per_reader, plan_notices
from maildesk.decide.ticket_changes import apply_decision, state_of_new_ticket
from maildesk.intake.message import Address
from maildesk.triage.thread_keys import ThreadKeys, thread_keys
from tests.decidekit import ALICE, BOB, CAROL, CUSTOMER, NOW, agent_writes, context, ticket
from tests.rulekit import message

ROOT = "md-7.00112233445566778899@example.com"  # the ticket's own Message-ID
SEEN = (ROOT, "<customer-2>", "md-7.sent2@example.com")  # what the requester saw so far


def _requester(template: str = "agent_reply") -> Notice:
    return Notice(template, [Address("Customer", CUSTOMER)], "requester")


def _agents(template: str, *addresses: str) -> Notice:
    return Notice(template, [Address("", a) for a in addresses], "agents")


def _threads(queued: list[QueuedNotice]) -> list[tuple[str, list[str], str | None, list[str]]]:
    return [
        (q.notice.template, [a.address for a in q.to], q.thread.in_reply_to, q.thread.references)
        for q in queued
    ]


def test_the_requesters_first_notification_carries_the_tickets_message_id():
    msg = message(message_id="<request-1@example.org>")
    notices = [_requester("ack"), _agents("new_ticket", ALICE, BOB)]
    queued = plan_notices(notices, ticket(), "example.com", msg=msg, requester_saw_msg=True)
    assert queued[0].message_id == ROOT
    assert _threads(queued) == [
        ("ack", [CUSTOMER], "request-1@example.org", ["request-1@example.org"]),
        # Each agent gets a copy of their own, in a thread that starts with it.
        ("new_ticket", [ALICE], None, []),
        ("new_ticket", [BOB], None, []),
    ]
    agent_ids = [q.message_id for q in queued[1:]]
    assert len(set(agent_ids)) == 2 and ROOT not in agent_ids
    assert all(i.startswith("md-7.") and i.endswith("@example.com") for i in agent_ids)


def test_later_notifications_answer_what_the_reader_last_saw_and_then_each_other():
    on = ticket(thread_ids=SEEN)
    agent_msg = message(sender=ALICE, message_id="<alice-1@example.com>")
    notices = [_requester("agent_reply"), _requester("status_resolved")]
    first, second = plan_notices(notices, on, "example.com", msg=agent_msg)
    assert first.message_id != ROOT and second.message_id not in (ROOT, first.message_id)
    # The agent's own mail is not in the customer's thread: the reply answers the last
    # thing the customer saw, and the "resolved" notice answers that reply.
    assert (first.thread.in_reply_to, first.thread.references) == (SEEN[-1], list(SEEN))
    assert second.thread.in_reply_to == first.message_id
    assert second.thread.references == [*SEEN, first.message_id]


def test_a_customer_reply_is_answered_in_the_customers_thread():
    on = ticket(thread_ids=SEEN)
    reply = message(message_id="<customer-3>")
    [ack] = plan_notices([_requester("ack")], on, "example.com", msg=reply, requester_saw_msg=True)
    assert ack.thread.in_reply_to == "customer-3"
    assert ack.thread.references == [*SEEN, "customer-3"]


def test_each_agent_sees_their_own_thread_and_their_own_mail_answered():
    on = ticket(agent_threads={ALICE: ("md-7.a1@example.com",), BOB: ("md-7.b1@example.com",)})
    note = message(sender=ALICE, message_id="<alice-note@example.com>")
    notices = [_agents("note", BOB, CAROL), _agents("command_confirm", ALICE)]
    queued = plan_notices(notices, on, "example.com", msg=note)
    assert _threads(queued) == [
        ("note", [BOB], "md-7.b1@example.com", ["md-7.b1@example.com"]),
        ("note", [CAROL], None, []),
        (
            "command_confirm",
            [ALICE],
            "alice-note@example.com",
            ["md-7.a1@example.com", "alice-note@example.com"],
        ),
    ]


def test_a_notice_for_nobody_is_not_queued_and_requester_notices_are_not_split():
    with_cc = Notice(
        "agent_reply", [Address("", CUSTOMER)], "requester", cc=[Address("", "b@x.org")]
    )
    assert per_reader(_agents("note")) == []
    assert per_reader(with_cc) == [with_cc]
    assert plan_notices([_agents("note")], ticket(), "example.com") == []


def test_address_notices_give_each_copy_its_template_variables():
    d = agent_writes("#status resolved\nFixed it.", ticket(first_response_at=NOW))
    after, _ = apply_decision(ticket(first_response_at=NOW), d, NOW)
    queued = address_notices(
        d.notices, after, Config(), requester_extra={"kb_articles": ["printer-reset"]}
    )
    by_template = {q.notice.template: q.context for q in queued}
    assert set(by_template) == {"agent_reply", "status_resolved", "command_confirm"}
    reply = by_template["agent_reply"]
    assert reply["ticket"]["ref"] == "MD-7" and reply["ticket"]["status"] == "resolved"
    assert reply["agent"] == {"name": "Alice", "address": ALICE}
    assert reply["body"] == "Fixed it." and reply["kb_articles"] == ["printer-reset"]
    assert "kb_articles" not in by_template["command_confirm"]
    assert by_template["command_confirm"]["applied"] == ["status open -> resolved"]


def test_a_batch_follows_merged_tickets_by_token_and_by_reference():
    batch = BatchState(prefix="MD")
    for state in (
        ticket(id=1, ref="MD-1", merged_into="MD-2"),
        ticket(id=2, ref="MD-2", merged_into="MD-3"),
        ticket(id=3, ref="MD-3"),
        ticket(id=8, ref="MD-8", merged_into="MD-9"),  # MD-9 is not in this batch
    ):
        batch.add_ticket(state)
    batch.thread_refs["ack-1@example.com"] = 1
    assert batch.find_ticket(ThreadKeys([1], [])).ref == "MD-3"
    assert batch.find_ticket(ThreadKeys([], ["unknown", "ack-1@example.com"])).ref == "MD-3"
    assert batch.find_ticket(ThreadKeys([8], [])).ref == "MD-8"
    assert batch.find_ticket(ThreadKeys([99], ["unknown"])) is None


def test_a_merge_cycle_ends_instead_of_looping():
    batch = BatchState(prefix="MD")
    batch.add_ticket(ticket(id=1, ref="MD-1", merged_into="MD-2"))
    batch.add_ticket(ticket(id=2, ref="MD-2", merged_into="MD-1"))
    found = batch.find_ticket(ThreadKeys([1], []))
    assert found is not None and found.ref == "MD-2"  # the last one before the circle closes


def test_a_reply_later_in_the_batch_finds_the_new_ticket_and_answers_in_its_thread():
    batch = BatchState(prefix="MD")
    request = message(message_id="<request-1@example.org>")
    d = decide(request, None, context(request))
    assert d.new_ticket is not None
    start = state_of_new_ticket(d.new_ticket, ticket_id=7, ref="MD-7", message_id=ROOT, now=NOW)
    after, _ = apply_decision(start, d, NOW)
    queued = plan_notices(d.notices, after, "example.com", msg=request, requester_saw_msg=True)
    batch.record(
        request,
        after,
        message_pk=1,
        visible_message=True,
        automatic_to=[CUSTOMER],
        outbound=[
            (q.message_id, None if q.notice.audience == "requester" else q.to[0].address)
            for q in queued
        ],
    )
    assert batch.auto_replies == {CUSTOMER: 1}
    # The customer answers the acknowledgement; the ticket is found by its Message-ID.
    reply = message(subject="Re: Help please", in_reply_to=f"<{ROOT}>", body="More.")
    found = batch.find_ticket(thread_keys(reply, "MD"))
    assert found is not None and found.thread_ids == ("request-1@example.org", ROOT)
    assert found.agent_threads[ALICE] == (queued[1].message_id,)
    d2 = decide(reply, found, context(reply))
    [to_alice, to_bob] = plan_notices(
        d2.notices, found, "example.com", msg=reply, requester_saw_msg=True
    )
    assert to_alice.thread.in_reply_to == queued[1].message_id
    assert to_bob.thread.in_reply_to == queued[2].message_id
