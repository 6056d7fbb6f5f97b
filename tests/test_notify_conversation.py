"""A whole conversation through the pipeline and a real SMTP server: every message threads."""

from __future__ import annotations

import base64
import re

import pytest

from maildesk.common.domain import Status
from maildesk.store.ticket_updates import change_status
from tests.conftest import make_mail
from tests.mailflow import ids, outbox_rows, parse, reply_to, send_all, signed_to, ticket

CUSTOMER = "customer@example.org"
TOKEN = re.compile(r"\[MD-1\]")


def normalized(subject: str) -> str:
    return re.sub(r"^(re:\s*)+", "", str(subject), flags=re.IGNORECASE).strip()


def to_addresses(message) -> list[str]:
    return [a.addr_spec for a in message["To"].addresses]


@pytest.fixture
def conversation(make_desk, smtp_sink, clock):
    """new request -> ack -> agent reply -> customer reply -> resolved, all sent for real."""
    desk = make_desk(extra=smtp_sink.smtp_config())
    sent = []

    def deliver() -> list:
        send_all(desk)
        fresh = [parse(r.data) for r in smtp_sink.received[len(sent) :]]
        sent.extend(fresh)
        return fresh

    desk.pipeline.process_one(
        make_mail(subject="Printer on fire", message_id="<c1@example.org>", body="It burns.")
    )
    first = deliver()
    ack = next(m for m in first if to_addresses(m) == [CUSTOMER])
    to_alice = next(m for m in first if to_addresses(m) == ["alice@example.com"])
    to_bob = next(m for m in first if to_addresses(m) == ["bob@example.com"])

    clock.advance(minutes=10)
    desk.pipeline.process_one(
        make_mail(
            sender="Alice Archer <alice@example.com>",
            subject=f"Re: {to_alice['Subject']}",
            message_id="<a1@example.com>",
            body="Have you tried turning it off and on again?",
            **reply_to(to_alice),
        )
    )
    (relayed,) = deliver()

    clock.advance(minutes=10)
    desk.pipeline.process_one(
        make_mail(
            subject=f"Re: {relayed['Subject']}",
            message_id="<c2@example.org>",
            body="It still burns.",
            **reply_to(relayed),
        )
    )
    followups = deliver()

    clock.advance(minutes=10)
    with desk.sessions() as session, session.begin():
        change_status(
            session,
            ticket(desk).id,
            Status.RESOLVED,
            actor="alice@example.com",
            reason="fire out",
            now=clock(),
            config=desk.config,
        )
    (resolved,) = deliver()
    return {
        "desk": desk,
        "sent": sent,
        "ack": ack,
        "to_alice": to_alice,
        "to_bob": to_bob,
        "relayed": relayed,
        "followups": followups,
        "resolved": resolved,
    }


def test_requester_messages_chain_references_of_everything_they_saw(conversation):
    ack, relayed, resolved = conversation["ack"], conversation["relayed"], conversation["resolved"]
    t0 = str(ack["Message-ID"]).strip("<>")
    r1 = str(relayed["Message-ID"]).strip("<>")

    assert t0 == ticket(conversation["desk"]).message_id  # the ack is the thread's root
    assert (ids(ack["In-Reply-To"]), ids(ack["References"])) == (
        ["c1@example.org"],
        ["c1@example.org"],
    )
    # The agent's own message never reached the customer: the relay answers the ack.
    assert ids(relayed["In-Reply-To"]) == [t0]
    assert ids(relayed["References"]) == ["c1@example.org", t0]
    assert ids(resolved["In-Reply-To"]) == ["c2@example.org"]
    assert ids(resolved["References"]) == ["c1@example.org", t0, r1, "c2@example.org"]
    # (compared as whole ids: a random one may end in "...a1@example.com")
    assert "a1@example.com" not in ids(relayed["References"]) + ids(resolved["References"])


def test_agent_copies_thread_in_each_agents_own_view(conversation):
    alice_first, bob_first = conversation["to_alice"], conversation["to_bob"]
    by_agent = {to_addresses(m)[0]: m for m in conversation["followups"]}
    assert set(by_agent) == {"alice@example.com", "bob@example.com"}
    n_alice = str(alice_first["Message-ID"]).strip("<>")
    n_bob = str(bob_first["Message-ID"]).strip("<>")

    assert alice_first["In-Reply-To"] is None and alice_first["References"] is None
    # Alice answered her notification, so the customer's follow-up answers her reply.
    assert ids(by_agent["alice@example.com"]["In-Reply-To"]) == ["a1@example.com"]
    assert ids(by_agent["alice@example.com"]["References"]) == [n_alice, "a1@example.com"]
    assert ids(by_agent["bob@example.com"]["In-Reply-To"]) == [n_bob]
    assert ids(by_agent["bob@example.com"]["References"]) == [n_bob]
    assert (
        by_agent["bob@example.com"]["From"].addresses[0].display_name
        == "Customer via Example Support"
    )


def test_every_subject_keeps_the_token_and_one_topic(conversation):
    sent = conversation["sent"]
    assert len(sent) == 7  # ack, 2 new-ticket, relay, 2 follow-ups, resolved
    assert all(TOKEN.search(str(m["Subject"])) for m in sent)
    topics = {normalized(m["Subject"]) for m in sent}
    assert topics == {"[MD-1] Printer on fire"}
    assert {str(m["Thread-Topic"]) for m in sent} == topics
    # Outlook groups by the first 22 bytes of Thread-Index: one conversation.
    roots = {base64.b64decode(str(m["Thread-Index"]))[:22] for m in sent}
    assert len(roots) == 1


def test_message_ids_are_ours_unique_and_stored(conversation):
    sent = conversation["sent"]
    message_ids = [str(m["Message-ID"]).strip("<>") for m in sent]
    assert len(set(message_ids)) == len(message_ids)
    assert all(m.endswith("@example.com") for m in message_ids)
    rows = outbox_rows(conversation["desk"])
    assert {r.message_id for r in rows} == set(message_ids)
    assert {r.status for r in rows} == {"sent"}


def test_headers_of_automatic_and_relayed_mail(conversation):
    ack, relayed, resolved = conversation["ack"], conversation["relayed"], conversation["resolved"]
    for automatic in (ack, resolved, *conversation["followups"]):
        assert automatic["X-Auto-Response-Suppress"] == "All"
    for answer in (ack, *conversation["followups"]):
        assert answer["Auto-Submitted"] == "auto-replied"
    # Resolved outside any incoming message (CLI, timer): RFC 3834 calls that auto-generated.
    assert resolved["Auto-Submitted"] == "auto-generated"
    assert relayed["Auto-Submitted"] is None  # a person wrote it
    sender = relayed["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == (
        "Alice Archer via Example Support",
        "support@example.com",
    )
    for message in conversation["sent"]:
        reply_address = message["Reply-To"].addresses[0].addr_spec
        if "customer@example.org" in str(message["To"]):
            assert reply_address == "support@example.com"
        else:  # an agent's copy: a reply address signed for that agent and ticket
            assert reply_address.startswith("support+md-1.")
    assert "Have you tried turning it off" in relayed.get_body(("plain",)).get_content()
    assert "resolved" in resolved.get_body(("plain",)).get_content()
    assert "reply to this email" in resolved.get_body(("plain",)).get_content()


def test_envelope_recipients_match_the_headers(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(cc="Friend <friend@example.net>"))
    desk.pipeline.process_one(
        make_mail(
            sender="alice@example.com",
            to=signed_to(desk, "MD-1", "alice@example.com"),
            subject="Re: [MD-1] Help please",
            body="On it.",
        )
    )
    send_all(desk)
    relay = next(r for r in smtp_sink.received if r.parsed()["Cc"])
    assert sorted(relay.rcpt_tos) == ["customer@example.org", "friend@example.net"]
    # Bounces come back to the ticket's signed return path (VERP) on the support mailbox.
    assert relay.mail_from.startswith("support+bounces.md-1.")
    assert relay.mail_from.endswith("@example.com")
