"""decide() on an agent's mail: relayed replies, internal notes, #commands, #merge, #kb.

Pure: plain messages, rules and ticket snapshots in memory, no database.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from maildesk.common.domain import Author, MessageKind, Priority, Status, TicketState
from maildesk.decide.batch_state import BatchState
from maildesk.decide.kb import Article
from maildesk.intake.message import Address
from maildesk.triage.reply_tokens import forwarding_address, signed_reply_address
from maildesk.triage.thread_keys import ThreadKeys, subject_ticket_numbers
from tests.decidekit import (
    ALICE,
    BOB,
    CAROL,
    CUSTOMER,
    KEYS,
    NOW,
    agent_writes,
    changed,
    notices,
    one_notice,
    readers,
    tags_added,
    templates,
    ticket,
)

QUOTED = "\n\nOn Mon, 23 Nov 2026, Customer <customer@example.org> wrote:\n> Something is broken.\n"


def test_an_agent_reply_is_relayed_to_the_requester_and_ccs_without_the_quote():
    on = ticket(status=Status.NEW, participants={"boss@example.org": "cc", CAROL: "watcher"})
    d = agent_writes("Please restart it." + QUOTED, on)
    assert (d.author, d.kind, d.internal, d.actor) == (
        Author.AGENT,
        MessageKind.AGENT_REPLY,
        False,
        ALICE,
    )
    reply = one_notice(d, "agent_reply")
    assert reply.to == [Address("Customer", CUSTOMER)]
    assert reply.cc == [Address("", "boss@example.org")]  # watchers are not in its Cc
    assert (reply.body_text, reply.automatic) == ("Please restart it.", False)
    assert reply.from_agent == Address("Alice", ALICE)
    assert changed(d) == {"first_response_at": NOW, "status": Status.OPEN}
    assert templates(d) == ["agent_reply", "agent_replied"]
    copy = one_notice(d, "agent_replied")  # the watcher's own copy, among the agents
    assert (readers(copy), copy.audience, copy.body_text) == (
        [CAROL],
        "agents",
        "Please restart it.",
    )


def test_a_bottom_posted_reply_reaches_the_customer_and_counts_as_first_response():
    on = ticket(status=Status.NEW)
    d = agent_writes(QUOTED.strip() + "\n\nPlease restart it.\n\n-- \nAlice\n", on)
    assert one_notice(d, "agent_reply").body_text == "Please restart it."
    assert changed(d) == {"first_response_at": NOW, "status": Status.OPEN}


def test_a_reply_that_is_only_a_quote_is_relayed_whole_and_the_ticket_says_so():
    d = agent_writes(QUOTED.strip())
    assert one_notice(d, "agent_reply").body_text == QUOTED.strip()
    assert [kind for kind, _ in d.notes] == ["reply_whole"]
    assert changed(d)["first_response_at"] == NOW


def test_a_reply_that_would_send_a_notification_to_agents_whole_sends_nothing():
    # Alice answers a note notification with her signature only. Sent whole, the quoted
    # internal note and her signed forwarding address would reach the customer.
    forward_to = forwarding_address("support@example.com", ALICE, KEYS.current)
    note = (
        "Bob added an internal note to MD-7:\n\nThe customer is on the old plan.\n\n-- \n"
        f"A customer wrote to you directly? Forward their mail to {forward_to}\n"
    )
    quoted = "".join(f"> {line}\n" for line in note.splitlines())
    d = agent_writes(f"-- \nAlice\n\nOn Mon, Nov 23, 2026, Bob wrote:\n{quoted}")
    assert notices(d, "agent_reply") == []
    assert (d.kind, d.internal) == (MessageKind.NOTE, True)
    told = one_notice(d, "command_error")
    assert (
        readers(told) == [ALICE] and "nothing was sent to the requester" in told.extra["errors"][0]
    )


def test_an_empty_reply_sends_nothing_and_tells_the_agent():
    d = agent_writes("\n\n")
    assert (d.kind, d.internal, notices(d, "agent_reply")) == (MessageKind.NOTE, True, [])
    told = one_notice(d, "command_error")
    assert readers(told) == [ALICE] and "nothing to send" in told.extra["errors"][0]


def test_commands_alone_are_confirmed_without_an_empty_reply_warning():
    d = agent_writes("#status pending\n")
    assert templates(d) == ["command_confirm"]


def test_later_replies_set_no_first_response_and_leave_the_status():
    d = agent_writes("One more thing.", ticket(first_response_at=NOW, status=Status.PENDING))
    assert changed(d) == {} and templates(d) == ["agent_reply"]


NOTE_READERS = {"assignee": BOB, "participants": {CAROL: "watcher", "ops@example.org": "watcher"}}


@pytest.mark.parametrize(
    ("body", "cc", "tickets"),
    [
        ("#note\nThe customer is on the old firmware.", None, None),
        (
            "The customer is on the old firmware.",
            "comments@example.com",
            {"comment_address": "Comments@example.com"},
        ),
    ],
    ids=["#note", "comment-address"],
)
def test_a_note_stays_internal_and_reaches_only_the_other_agents(body, cc, tickets):
    d = agent_writes(body, ticket(**NOTE_READERS), cc=cc, tickets=tickets)
    assert (d.kind, d.internal) == (MessageKind.NOTE, True)
    note = one_notice(d, "note")
    # Assignee, queue agents (not Erin, away) and agent watchers, but not the writer
    # and not a customer who watches.
    assert readers(note) == [BOB, CAROL]
    assert note.body_text == "The customer is on the old firmware."
    assert templates(d) == ["note"] and changed(d) == {}


def test_a_note_nobody_else_would_read_tells_nobody():
    carols_alone = ticket(queue="billing", assignee=CAROL)
    d = agent_writes("#note\nmental note", carols_alone, sender=CAROL)
    assert d.internal and d.notices == []


@pytest.mark.parametrize(
    ("line", "field", "value", "applied"),
    [
        ("#status pending", "status", Status.PENDING, "status open -> pending"),
        ("#assign me", "assignee", ALICE, "assigned to Alice"),
        ("#assign Carol", "assignee", CAROL, "assigned to Carol"),
        ("#assign bob@example.com", "assignee", BOB, "assigned to Bob"),
        ("#priority high", "priority", Priority.HIGH, "priority normal -> high"),
        ("#queue billing", "queue", "billing", "queue general -> billing"),
        ("#tag vip", "tag", "vip", "tagged vip"),
    ],
)
def test_each_command_changes_the_ticket_and_is_confirmed_to_the_agent(line, field, value, applied):
    d = agent_writes(f"{line}\n", ticket(first_response_at=NOW))
    assert [(c.field, c.value) for c in d.changes if c.field == field] == [(field, value)]
    assert all(c.reason == "command from Alice" for c in d.changes if c.field == field)
    assert d.commands == [line]
    confirm = one_notice(d, "command_confirm")
    assert readers(confirm) == [ALICE] and confirm.extra == {"applied": [applied]}
    # Commands alone relay nothing to the customer: the mail is kept as a note.
    assert (d.kind, d.internal, notices(d, "agent_reply")) == (MessageKind.NOTE, True, [])


def test_commands_above_a_reply_apply_and_the_rest_is_relayed():
    on = ticket(status=Status.NEW)
    d = agent_writes("#cc boss@example.org\n#status pending\n\nI copied your boss.", on)
    assert changed(d)["status"] is Status.PENDING  # not "open": the command wins
    assert d.participants == [(Address("", "boss@example.org"), "cc")]
    reply = one_notice(d, "agent_reply")
    assert reply.cc == [Address("", "boss@example.org")]
    assert reply.body_text == "I copied your boss."
    assert one_notice(d, "command_confirm").extra["applied"] == [
        "boss@example.org added in Cc",
        "status new -> pending",
    ]


def test_resolving_tells_the_requester_and_ccs():
    on = ticket(participants={"boss@example.org": "cc"})
    d = agent_writes("#status resolved\n", on)
    resolved = one_notice(d, "status_resolved")
    assert resolved.to == [Address("Customer", CUSTOMER)]
    assert resolved.cc == [Address("", "boss@example.org")]


def test_pending_pauses_the_resolution_clock():
    d = agent_writes("#status pending\n", ticket(sla_state={"first_response_warned": True}))
    assert changed(d)["sla_state"] == {
        "first_response_warned": True,
        "pending_since": NOW.isoformat(),
    }


def test_the_status_a_mail_leaves_decides_the_pause_not_the_first_it_names():
    # "#status open" then "#status pending" leaves the ticket pending: its pause goes on.
    waiting = {"pending_since": (NOW - timedelta(hours=2)).isoformat()}
    on = ticket(status=Status.PENDING, sla_state=waiting)
    d = agent_writes("#status open\n#status pending\n", on)
    assert changed(d).get("status", Status.PENDING) is Status.PENDING
    assert "sla_state" not in changed(d) and "resolution_due" not in changed(d)


def test_a_raised_priority_by_command_brings_the_urgent_sla():
    d = agent_writes("#priority urgent\n", ticket())
    assert changed(d)["sla_policy"] == "urgent"


@pytest.mark.parametrize(
    ("commands", "status", "error"),
    [
        ("#assign zed", Status.OPEN, "'#assign zed': no agent called zed (agents: alice, bob"),
        ("#queue nowhere", Status.OPEN, "no queue called nowhere (queues: billing, general)"),
        ("#status done", Status.OPEN, "'done' is not a status"),
        ("#frobnicate now", Status.OPEN, "unknown command #frobnicate"),
        ("#cc not-an-address", Status.OPEN, "'not-an-address' is not an email address"),
        ("#tag two words", Status.OPEN, "'two words' is not a single word"),
        ("#status pending", Status.CLOSED, "a closed ticket cannot become pending (allowed: open)"),
        ("#merge MD-99", Status.OPEN, "there is no ticket MD-99"),
    ],
)
def test_one_bad_command_means_nothing_is_applied_or_relayed(commands, status, error):
    body = f"#tag vip\n#assign me\n{commands}\n\nDone, see attached."
    d = agent_writes(body, ticket(status=status, participants={"boss@example.org": "cc"}))
    assert d.changes == [] and d.participants == [] and d.merge_into is None
    assert (d.kind, d.internal) == (MessageKind.NOTE, True)
    refused = one_notice(d, "command_error")
    assert readers(refused) == [ALICE] and templates(d) == ["command_error"]
    [message] = refused.extra["errors"]
    assert error in message
    [(kind, text)] = d.notes
    assert (kind, text) == ("commands_refused", message)


def test_every_wrong_command_is_explained_at_once():
    d = agent_writes("#status done\n#assign zed\n#queue nowhere\n", ticket())
    errors = one_notice(d, "command_error").extra["errors"]
    assert [e.split("'")[1] for e in errors] == ["#status done", "#assign zed", "#queue nowhere"]
    assert one_notice(d, "command_error").extra["commands"] == ["#assign zed", "#queue nowhere"]


def _desk_tickets(*states: TicketState) -> BatchState:
    batch = BatchState(prefix="MD")
    for state in states:
        batch.add_ticket(state)
    return batch


def _finder(batch: BatchState):
    """What the pipeline gives decide() for #merge: a ref looked up in the batch."""
    return lambda ref: batch.find_ticket(ThreadKeys(subject_ticket_numbers(f"[{ref}]", "MD"), []))


def test_merge_folds_the_ticket_into_another_and_closes_it():
    target = ticket(id=3, ref="MD-3", subject="Printer again")
    batch = _desk_tickets(ticket(), target)
    d = agent_writes("#merge md-3\n", ticket(), options={"find_ticket": _finder(batch)})
    assert d.merge_into == target
    assert changed(d) == {"merged_into_id": 3, "status": Status.CLOSED}
    reasons = [c.reason for c in d.changes]
    assert reasons == ["command from Alice: merged into MD-3", "merged into MD-3"]
    assert one_notice(d, "command_confirm").extra["applied"] == ["merged into MD-3"]
    # The requester hears that this ticket is closed, as for any closing.
    assert readers(one_notice(d, "status_closed")) == [CUSTOMER]


def test_merge_follows_a_target_that_was_merged_itself():
    older = ticket(id=2, ref="MD-2")
    middle = ticket(id=3, ref="MD-3", merged_into="MD-2", merged_into_id=2)
    batch = _desk_tickets(ticket(), middle, older)
    d = agent_writes("#merge MD-3\n", ticket(), options={"find_ticket": _finder(batch)})
    assert d.merge_into == older and changed(d)["merged_into_id"] == 2


def test_an_answer_to_a_merged_tickets_notification_is_the_agents_on_the_ticket_it_joined():
    # MD-2 was merged into this ticket; Alice answers a notification she had about MD-2.
    # The mail lands here, and MD-2's signed reply address proves it is hers.
    target = ticket(status=Status.OPEN)
    merged = ticket(id=2, ref="MD-2", merged_into=target.ref, merged_into_id=target.id)
    batch = _desk_tickets(target, merged)
    signed = signed_reply_address("support@example.com", "MD-2", ALICE, KEYS.current)
    d = agent_writes(
        "It is the same printer.", target, to=signed, options={"find_ticket": _finder(batch)}
    )
    assert d.author is Author.AGENT
    assert one_notice(d, "agent_reply").body_text == "It is the same printer."
    # A signed address of a ticket that was not merged here proves nothing here.
    other = ticket(id=3, ref="MD-3")
    batch.add_ticket(other)
    signed = signed_reply_address("support@example.com", "MD-3", ALICE, KEYS.current)
    d = agent_writes("Hello", target, to=signed, options={"find_ticket": _finder(batch)})
    assert d.author is Author.UNVERIFIED


def test_merge_of_a_closed_ticket_leaves_its_status():
    target = ticket(id=3, ref="MD-3")
    on = ticket(status=Status.CLOSED)
    d = agent_writes("#merge MD-3\n", on, options={"find_ticket": _finder(_desk_tickets(target))})
    assert changed(d) == {"merged_into_id": 3}


def test_a_ticket_cannot_be_merged_into_itself():
    batch = _desk_tickets(ticket())
    d = agent_writes("#merge MD-7\n", ticket(), options={"find_ticket": _finder(batch)})
    [error] = one_notice(d, "command_error").extra["errors"]
    assert error == "'#merge MD-7': a ticket cannot be merged into itself"
    assert d.changes == [] and d.merge_into is None


ARTICLES = (Article("printer-reset", "Reset a printer", ("printer",), "Hold the power button."),)


def test_kb_puts_the_article_in_place_of_the_line():
    body = "Hello,\n\n#kb Printer-Reset\n\nRegards"
    d = agent_writes(body, ticket(), options={"kb_articles": ARTICLES})
    reply = one_notice(d, "agent_reply")
    assert reply.body_text == "Hello,\n\nHold the power button.\n\nRegards"
    assert d.notes == [("kb", "inserted printer-reset")]


def test_an_unknown_kb_article_refuses_the_whole_reply():
    d = agent_writes("#tag vip\n#kb printer-rest\n", ticket(), options={"kb_articles": ARTICLES})
    [error] = one_notice(d, "command_error").extra["errors"]
    assert error.startswith("#kb: no knowledge-base article 'printer-rest'")
    assert "printer-reset" in error  # the close name is suggested
    assert d.changes == [] and templates(d) == ["command_error"]


PASS = "mx.example.com; dkim=pass header.d=example.com"
TRUSTED = ["mx.example.com"]


@pytest.mark.parametrize(
    ("headers", "trusted", "relayed"),
    [
        ({}, TRUSTED, False),
        ({"Authentication-Results": PASS}, TRUSTED, True),
        ({"Authentication-Results": PASS}, ["inbound.example.com"], False),
        (
            {"Authentication-Results": "mx.example.com; dkim=fail header.d=example.com"},
            TRUSTED,
            False,
        ),
        (
            {"Authentication-Results": "mx.example.com; dkim=pass header.d=example.com; spf=fail"},
            TRUSTED,
            False,
        ),
    ],
    ids=["no-header", "pass", "pass-untrusted-server", "fail", "pass-vetoed-by-spf-fail"],
)
def test_require_agent_auth_applies_only_authenticated_agent_mail(headers, trusted, relayed):
    tickets = {"require_agent_auth": True, "trusted_authserv": trusted}
    d = agent_writes("#status pending\n\nDone.", ticket(), headers=headers, tickets=tickets)
    assert bool(notices(d, "agent_reply")) is relayed
    assert ("status" in changed(d)) is relayed
    if not relayed:
        told = one_notice(d, "agent_unverified")
        assert "did not vouch that this mail comes from you" in told.extra["reason"]
        assert (d.kind, d.internal, d.author) == (MessageKind.NOTE, True, Author.UNVERIFIED)


def test_tags_from_commands_are_added_by_the_agent():
    d = agent_writes("#tag vip\n#tag billing-issue\n", ticket())
    assert tags_added(d) == ["vip", "billing-issue"]
