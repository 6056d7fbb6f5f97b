"""Nobody acts as an agent without proof: attacks through the real pipeline and SMTP server.

Each attack below knows the ticket number (references are sequential) and an agent's
address. Each must leave the ticket as it was, send nothing to the customer and add
no one to the ticket; the real agent hears about it at their own address.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk.store.models import Message, Participant, Ticket
from maildesk.triage.reply_tokens import signed_reply_address
from tests.conftest import make_mail
from tests.mailflow import parse, reply_to, send_all, signed_to
from tests.test_agents import with_tickets

CUSTOMER = "customer@example.org"
ALICE = "alice@example.com"
ATTACK = "#status closed\n#assign bob\n#cc attacker@evil.example\n\nYour card number please."


@pytest.fixture
def desk_with_ticket(make_desk, smtp_sink):
    """MD-1 from the customer, its notifications sent; the sink then forgets them."""
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(subject="Printer on fire", message_id="<c1@example.org>"))
    send_all(desk)
    notices = [parse(r.data) for r in smtp_sink.received]
    smtp_sink.received.clear()
    desk.alice_notice = next(m for m in notices if ALICE in str(m["To"]))
    return desk


def snapshot(desk) -> tuple:
    with desk.sessions() as s:
        t = s.scalars(select(Ticket).where(Ticket.ref == "MD-1")).one()
        people = sorted(s.scalars(select(Participant.address).where(Participant.ticket_id == t.id)))
        return (t.status, t.assignee, t.priority, t.merged_into_id, tuple(t.tags), tuple(people))


def delivered_to(desk, smtp_sink) -> list[str]:
    send_all(desk)
    return [a for r in smtp_sink.received for a in r.rcpt_tos]


def attack(desk, smtp_sink, **mail) -> tuple[tuple, list[str]]:
    """Send an attack on MD-1; check that MD-1 is untouched and its customer hears nothing."""
    before = snapshot(desk)
    desk.pipeline.process_one(make_mail(subject="Re: [MD-1] Printer on fire", body=ATTACK, **mail))
    assert snapshot(desk) == before  # nothing changed, nobody added
    recipients = delivered_to(desk, smtp_sink)
    assert CUSTOMER not in recipients
    for received in smtp_sink.received:  # the attacker hears at most of a ticket of their own
        if "attacker@evil.example" in received.rcpt_tos:
            assert "[MD-1]" not in str(parse(received.data)["Subject"])
    return before, recipients


def stored_kind(desk) -> str:
    with desk.sessions() as s:
        return s.scalars(select(Message.author_kind).order_by(Message.id.desc())).first()


def test_a_forged_from_without_the_signed_address_is_unverified(desk_with_ticket, smtp_sink):
    _, recipients = attack(desk_with_ticket, smtp_sink, sender=ALICE)
    assert recipients == [ALICE]  # the real agent is told, at her own address
    told = parse(smtp_sink.received[-1].data)
    assert "could not be verified" in told.get_body(("plain",)).get_content()
    assert stored_kind(desk_with_ticket) == "unverified"


def test_a_guessed_token_is_unverified(desk_with_ticket, smtp_sink):
    guessed = "support+md-1.aaaaaaaaaaaaaaaa@example.com"
    _, recipients = attack(desk_with_ticket, smtp_sink, sender=ALICE, to=guessed)
    assert recipients == [ALICE] and stored_kind(desk_with_ticket) == "unverified"


def test_a_token_for_another_ticket_does_not_open_this_one(desk_with_ticket, smtp_sink):
    other = signed_to(desk_with_ticket, "MD-2", ALICE)
    _, recipients = attack(desk_with_ticket, smtp_sink, sender=ALICE, to=other)
    assert recipients == [ALICE]


def test_a_stolen_signed_address_from_another_agent_is_unverified(desk_with_ticket, smtp_sink):
    alices = signed_to(desk_with_ticket, "MD-1", ALICE)
    _, recipients = attack(desk_with_ticket, smtp_sink, sender="bob@example.com", to=alices)
    assert recipients == ["bob@example.com"]  # Bob's address is told; Alice's token is no use


def test_a_stolen_signed_address_from_a_stranger_gets_a_ticket_of_their_own(
    desk_with_ticket, smtp_sink
):
    alices = signed_to(desk_with_ticket, "MD-1", ALICE)
    attack(desk_with_ticket, smtp_sink, sender="attacker@evil.example", to=alices)
    with desk_with_ticket.sessions() as s:
        refs = s.scalars(select(Ticket.ref).where(Ticket.requester == "attacker@evil.example"))
        assert list(refs) == ["MD-2"]  # and its acknowledgement names MD-2, not MD-1


def test_cc_by_a_stranger_is_plain_text(desk_with_ticket, smtp_sink):
    attack(desk_with_ticket, smtp_sink, sender="attacker@evil.example")
    with desk_with_ticket.sessions() as s:
        own = s.scalars(select(Ticket).where(Ticket.requester == "attacker@evil.example")).one()
        assert own.ref == "MD-2" and own.status == "new"  # the commands did nothing there either


def test_the_signed_reply_address_applies_the_agents_commands(desk_with_ticket, smtp_sink):
    notice = desk_with_ticket.alice_notice
    assert notice["Reply-To"].addresses[0].addr_spec.startswith("support+md-1.")
    desk_with_ticket.pipeline.process_one(
        make_mail(
            sender=ALICE,
            subject=f"Re: {notice['Subject']}",
            body="#status pending\n\nOn it.",
            **reply_to(notice),
        )
    )
    assert snapshot(desk_with_ticket)[0] == "pending"
    assert CUSTOMER in delivered_to(desk_with_ticket, smtp_sink)


def test_an_agents_automatic_reply_is_kept_without_telling_anyone(desk_with_ticket, smtp_sink):
    before = snapshot(desk_with_ticket)
    desk_with_ticket.pipeline.process_one(
        make_mail(
            sender=ALICE,
            subject="Out of office: [MD-1] Printer on fire",
            headers={"Auto-Submitted": "auto-replied"},
        )
    )
    assert snapshot(desk_with_ticket) == before
    assert delivered_to(desk_with_ticket, smtp_sink) == []


def test_mail_from_a_plus_address_of_the_desk_is_our_own(desk_with_ticket, smtp_sink):
    desk_with_ticket.pipeline.process_one(
        make_mail(sender="support+md-1.x@example.com", subject="Re: [MD-1] Printer on fire")
    )
    assert delivered_to(desk_with_ticket, smtp_sink) == []  # a loop is not answered


def _rotate(desk, previous_until: datetime) -> None:
    """Replace the reply secret, keeping the old one valid until `previous_until`."""
    folder = Path(desk.config.source).parent
    old = folder / "reply.key"
    (folder / "reply.key.old").write_text(old.read_text())
    old.write_text("a brand new reply secret, 32+ characters long")
    tickets = desk.config.tickets.model_copy(
        update={
            "reply_secret": desk.config.tickets.reply_secret,
            "previous_reply_secret": desk.config.tickets.reply_secret.model_copy(
                update={"file": folder / "reply.key.old"}
            ),
            "previous_reply_secret_until": previous_until,
        }
    )
    desk.config = desk.config.model_copy(update={"tickets": tickets})
    desk.pipeline.config = desk.config


@pytest.mark.parametrize(("inside_overlap", "applied"), [(True, "pending"), (False, "new")])
def test_a_rotated_secret_keeps_old_reply_addresses_working_until_the_overlap_ends(
    desk_with_ticket, smtp_sink, clock, inside_overlap, applied
):
    notice = desk_with_ticket.alice_notice  # signed with the secret before the rotation
    until = clock() + timedelta(days=7)
    _rotate(desk_with_ticket, until)
    if not inside_overlap:
        clock.advance(days=8)
    desk_with_ticket.pipeline.process_one(
        make_mail(
            sender=ALICE,
            subject=f"Re: {notice['Subject']}",
            body="#status pending\n\nOn it.",
            **reply_to(notice),
        )
    )
    assert snapshot(desk_with_ticket)[0] == applied
    # Notifications made after the rotation are signed with the new secret.
    new_key = (Path(desk_with_ticket.config.source).parent / "reply.key").read_text().encode()
    expected = signed_reply_address("support@example.com", "MD-1", ALICE, new_key)
    recipients = delivered_to(desk_with_ticket, smtp_sink)
    assert ALICE in recipients
    latest = [parse(r.data) for r in smtp_sink.received if ALICE in r.rcpt_tos][-1]
    assert latest["Reply-To"].addresses[0].addr_spec == expected


def test_a_post_a_group_rewrote_in_an_agents_name_is_unverified(desk_with_ticket, smtp_sink):
    """The support address is a Google Group of the agents' own domain: the group signs
    (DKIM d=example.com) what it relays, and its mail keeps the To it was sent to. Neither
    makes the author it names (X-Original-From) an agent; it is unverified mail from her."""
    desk = with_tickets(desk_with_ticket, trusted_authserv=["mx.example.com"])
    before = snapshot(desk)
    mail = make_mail(
        sender="\"'Alice Archer' via Support\" <support@example.com>",
        to=signed_to(desk, "MD-1", ALICE),  # as if she had sent it there, with the group on Cc
        subject="Re: [MD-1] Printer on fire",
        body=ATTACK,
        headers={
            "X-Original-From": f"Alice Archer <{ALICE}>",
            "List-ID": "<support.example.com>",
            "List-Post": "<mailto:support@example.com>",
        },
    )
    vouch = "Authentication-Results: mx.example.com; dkim=pass header.d=example.com\r\n"
    desk.pipeline.process_one(vouch.encode() + mail)
    assert snapshot(desk) == before
    assert delivered_to(desk, smtp_sink) == [ALICE]  # the real agent is told, nobody else
    told = parse(smtp_sink.received[-1].data).get_body(("plain",)).get_content()
    assert "list support@example.com rewrote From" in told
    assert stored_kind(desk) == "unverified"
