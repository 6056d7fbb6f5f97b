"""Conversations with several people: who joins a ticket, and who gets one of their own."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import Event, Message, Participant, Ticket
from tests.conftest import make_mail
from tests.mailflow import parse, reply_to, send_all

ANNA = "Anna <anna@customer.example>"
BEN = "ben@customer.example"
CARLA = "carla@partner.example"


def tickets(desk) -> dict[str, tuple[str, list[str]]]:
    """ref -> (requester, other participants)."""
    with desk.sessions() as s:
        found = {}
        for t in s.scalars(select(Ticket).order_by(Ticket.id)):
            people = s.scalars(
                select(Participant.address).where(
                    Participant.ticket_id == t.id, Participant.role != "requester"
                )
            )
            found[t.ref] = (t.requester, sorted(people))
        return found


def mail_to(sink, address: str) -> list:
    return [parse(r.data) for r in sink.received if address in r.rcpt_tos]


def test_someone_who_answers_the_conversation_joins_it(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(
        make_mail(sender=ANNA, cc=BEN, subject="VPN down", message_id="<a1@customer.example>")
    )
    send_all(desk)
    (ack,) = mail_to(smtp_sink, "anna@customer.example")
    # Anna forwards the thread to Carla, who was on neither To nor Cc; Carla answers it.
    desk.pipeline.process_one(
        make_mail(
            sender=CARLA,
            subject=f"Re: {ack['Subject']}",
            body="Our firewall changed yesterday; that may be it.",
            **reply_to(ack, to="support@example.com"),
        )
    )
    assert tickets(desk) == {"MD-1": ("anna@customer.example", [BEN, CARLA])}
    send_all(desk)
    to_agents = [m for m in mail_to(smtp_sink, "alice@example.com") if "firewall" in str(m)]
    assert to_agents, "the agents hear what Carla wrote"
    with desk.sessions() as s:
        reasons = list(s.scalars(select(Event.reason).where(Event.kind == "joined")))
    assert reasons == [f"{CARLA} joined: their mail answers this ticket's conversation"]


def test_naming_a_ticket_number_is_not_enough_to_join_it(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(sender=ANNA, subject="VPN down"))
    desk.pipeline.process_one(
        make_mail(sender=CARLA, subject="Re: [MD-1] VPN down", body="Same here!")
    )
    assert tickets(desk) == {
        "MD-1": ("anna@customer.example", []),
        "MD-2": (CARLA, []),
    }
    with desk.sessions() as s:
        linked = s.scalars(select(Ticket.linked_from_id).where(Ticket.ref == "MD-2")).one()
    assert linked == 1
    send_all(desk)
    told = [m for m in mail_to(smtp_sink, "alice@example.com") if "[MD-2]" in str(m["Subject"])]
    text = told[0].get_body(("plain",)).get_content()
    assert "Linked to MD-1: the sender named it but is not on it" in text
    assert "Same here!" not in str(mail_to(smtp_sink, "anna@customer.example"))


def test_every_reference_is_tried_before_a_requester_gets_another_ticket(make_desk, smtp_sink):
    """Anna answers Carla's mail, which had been split off into a ticket of its own: her
    reply still belongs to her ticket, which an older reference names."""
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(
        make_mail(sender=ANNA, subject="VPN down", message_id="<a1@customer.example>")
    )
    desk.pipeline.process_one(
        make_mail(
            sender=CARLA,
            to="support@example.com",
            subject="Re: [MD-1] VPN down",
            message_id="<c1@partner.example>",
        )
    )
    desk.pipeline.process_one(
        make_mail(
            sender=ANNA,
            subject="Re: VPN down",  # her client answers Carla's mail: threads, no token
            message_id="<a2@customer.example>",
            in_reply_to="<c1@partner.example>",
            references="<a1@customer.example> <c1@partner.example>",
            body="Carla, thanks; support, see above.",
        )
    )
    found = tickets(desk)
    assert list(found) == ["MD-1", "MD-2"]  # no third ticket for Anna
    with desk.sessions() as s:
        ticket_of_a2 = s.scalars(
            select(Ticket.ref)
            .join(Message, Message.ticket_id == Ticket.id)
            .where(Message.message_id == "a2@customer.example")
        ).one()
    assert ticket_of_a2 == "MD-1"


SAME_DOMAIN_RULES = """
version: 1
default: {queue: general, priority: normal, auto_reply: ack, language: en}
queues:
  general: {agents: [alice], participants: same_domain}
agents:
  alice: {address: alice@example.com, name: Alice Archer}
"""


def test_a_queue_can_let_the_requesters_colleagues_join(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config(), rules=SAME_DOMAIN_RULES)
    desk.pipeline.process_one(make_mail(sender=ANNA, subject="VPN down"))
    desk.pipeline.process_one(make_mail(sender=BEN, subject="Re: [MD-1] VPN down", body="Me too"))
    desk.pipeline.process_one(make_mail(sender=CARLA, subject="Re: [MD-1] VPN down"))
    assert tickets(desk) == {
        "MD-1": ("anna@customer.example", [BEN]),  # Ben works with Anna: he joins
        "MD-2": (CARLA, []),  # Carla does not: a ticket of her own
    }


LIST_RULES = """
version: 1
default: {queue: users, priority: normal, auto_reply: ack, language: en}
queues:
  users: {agents: [alice], participants: list}
agents:
  alice: {address: alice@example.com, name: Alice Archer}
"""


def test_a_list_queue_lets_whoever_answers_a_post_join_but_not_who_names_it(make_desk):
    """On a public list every subscriber got every post: an answer to one joins its
    ticket though the list, not the poster, was on To. A ticket number still is not enough."""
    desk = make_desk(rules=LIST_RULES)
    desk.pipeline.process_one(
        make_mail(sender=ANNA, subject="VPN down", message_id="<a1@customer.example>")
    )
    desk.pipeline.process_one(
        make_mail(
            sender=CARLA,
            subject="Re: VPN down",
            message_id="<c1@partner.example>",
            in_reply_to="<a1@customer.example>",
            references="<a1@customer.example>",
        )
    )
    desk.pipeline.process_one(make_mail(sender=BEN, subject="Re: [MD-1] VPN down"))
    assert tickets(desk) == {
        "MD-1": ("anna@customer.example", [CARLA]),
        "MD-2": (BEN, []),
    }
    with desk.sessions() as s:
        reasons = list(s.scalars(select(Event.reason).where(Event.kind == "joined")))
    assert reasons == [
        f"{CARLA} joined: their mail answers a post of this ticket, and queue users is a list"
    ]


def test_outside_a_list_queue_answering_a_customers_message_is_not_enough(make_desk):
    desk = make_desk()
    desk.pipeline.process_one(
        make_mail(sender=ANNA, subject="VPN down", message_id="<a1@customer.example>")
    )
    desk.pipeline.process_one(
        make_mail(sender=CARLA, subject="Re: VPN down", in_reply_to="<a1@customer.example>")
    )
    assert tickets(desk) == {
        "MD-1": ("anna@customer.example", []),
        "MD-2": (CARLA, []),
    }


@pytest.mark.parametrize("one_batch", [False, True], ids=["one by one", "in one batch"])
def test_mail_a_stranger_got_stored_on_a_ticket_is_no_proof_for_joining_it(make_desk, one_batch):
    # An auto-reply naming the ticket is kept on it as an internal note, from whoever sent
    # it. Answering that note proves nothing: only mail from the ticket's own people (its
    # requester, participants and agents) counts as the conversation.
    desk = make_desk()
    desk.pipeline.process_one(make_mail(sender=ANNA, subject="VPN down"))
    planted = make_mail(
        sender=CARLA,
        subject="Re: [MD-1] away",
        message_id="<probe-1@partner.example>",
        headers={"Auto-Submitted": "auto-replied"},
    )
    joining = make_mail(
        sender=CARLA,
        cc="eve@elsewhere.example",
        subject="hello",
        in_reply_to="<probe-1@partner.example>",
    )
    if one_batch:
        results = desk.pipeline.process_batch(
            [(raw, SourceInfo(source="test")) for raw in (planted, joining)]
        )
    else:
        results = [desk.pipeline.process_one(raw) for raw in (planted, joining)]
    assert results[0].ticket_ref == "MD-1"  # kept, as every automatic mail on a ticket is
    found = tickets(desk)
    assert found["MD-1"] == ("anna@customer.example", [])
    assert found[results[1].ticket_ref][0] == CARLA != found["MD-1"][0]


def test_only_a_reply_to_the_conversation_brings_the_people_on_its_cc(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(sender=ANNA, subject="VPN down"))
    send_all(desk)
    (ack,) = mail_to(smtp_sink, "anna@customer.example")
    # Anyone can write From: Anna and name [MD-1]; that mail is Anna's as far as anyone
    # can tell, but it does not get Eve the ticket's mail.
    forged = make_mail(sender=ANNA, cc="eve@elsewhere.example", subject="Re: [MD-1] VPN down")
    assert desk.pipeline.process_one(forged).ticket_ref == "MD-1"
    assert tickets(desk) == {"MD-1": ("anna@customer.example", [])}
    # Anna answering the acknowledgement brings Ben in.
    desk.pipeline.process_one(
        make_mail(sender=ANNA, cc=BEN, subject=f"Re: {ack['Subject']}", **reply_to(ack))
    )
    assert tickets(desk) == {"MD-1": ("anna@customer.example", [BEN])}
    with desk.sessions() as s:
        reasons = list(s.scalars(select(Event.reason).where(Event.kind == "not_joined")))
    assert reasons == [
        "eve@elsewhere.example not added: the mail answers none of this ticket's messages "
        "(an agent's #cc adds them)"
    ]
