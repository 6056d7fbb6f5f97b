"""An agent forwards a customer's mail: the ticket is the customer's, if the forward is
proven to be the agent's (through the real pipeline, SQLite and an SMTP server)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from maildesk.store.models import Attachment, Event, Message, OutboxEntry, Participant
from maildesk.triage.reply_tokens import forwarding_address, load_reply_keys
from tests.conftest import make_mail
from tests.forward_samples import (
    INLINE,
    NOTE,
    ORIGINAL_DATE,
    ORIGINAL_SUBJECT,
    ORIGINAL_TEXT,
    forward,
    forward_as_attachment,
)
from tests.mailflow import parse, send_all, ticket

ALICE = "alice@example.com"
DANA = "dana@example.org"


def alices_forwarding_address(desk, agent: str = ALICE) -> str:
    keys = load_reply_keys(desk.config.tickets)
    assert keys is not None
    return forwarding_address(desk.config.tickets.support_address, agent, keys.current)


def stored(desk):
    with desk.sessions() as s:
        messages = list(s.scalars(select(Message).order_by(Message.id)))
        attachments = {a.message_id: a.filename for a in s.scalars(select(Attachment))}
        events = [(e.kind, e.reason) for e in s.scalars(select(Event).order_by(Event.id))]
        outbox = [(o.template, o.to_addr) for o in s.scalars(select(OutboxEntry))]
    return messages, attachments, events, outbox


@pytest.mark.parametrize("client", [*INLINE, "attached"])
def test_a_forward_to_the_agents_address_opens_the_ticket_for_the_customer(make_desk, client):
    desk = make_desk()
    to = alices_forwarding_address(desk)
    raw = forward_as_attachment(to=to) if client == "attached" else forward(client, to=to)
    result = desk.pipeline.process_one(raw)
    assert result.outcome == "created"
    row = ticket(desk, result.ticket_ref)
    assert (row.requester, row.requester_name, row.subject) == (
        DANA,
        "Dana Customer",
        ORIGINAL_SUBJECT,
    )
    messages, attachments, events, outbox = stored(desk)
    original, note = messages
    assert (original.from_addr, original.author_kind, original.internal) == (
        DANA,
        "requester",
        False,
    )
    assert original.date == ORIGINAL_DATE  # the customer's, not the forward's
    assert original.text_body.strip() == ORIGINAL_TEXT
    assert attachments[original.id] == "photo.png"
    assert (note.from_addr, note.kind, note.internal, note.text_body) == (ALICE, "note", True, NOTE)
    assert ("ack", DANA) in outbox  # the customer hears from the desk
    assert ("new_ticket", ALICE) in outbox  # and Alice learns which ticket it became
    assert any(kind == "forwarded" and "signed forwarding address" in why for kind, why in events)


def without_forward_ack(desk):
    """`tickets.forward_ack: false`: the customer of an agent's forward hears nothing."""
    tickets = desk.config.tickets.model_copy(update={"forward_ack": False})
    desk.config = desk.config.model_copy(update={"tickets": tickets})
    desk.pipeline.config = desk.config
    return desk


def test_the_acknowledgement_to_the_customer_can_be_switched_off(make_desk):
    desk = without_forward_ack(make_desk(extra=""))
    desk.pipeline.process_one(forward("gmail", to=alices_forwarding_address(desk)))
    _, _, _, outbox = stored(desk)
    assert ticket(desk).requester == DANA and not [o for o in outbox if o[1] == DANA]


@pytest.mark.parametrize(
    "how",
    ["plain support address", "someone else's forwarding address", "stranger"],
)
def test_an_unproven_forward_never_speaks_for_the_customer(make_desk, smtp_sink, how):
    desk = make_desk(extra=smtp_sink.smtp_config())
    to, sender = "support@example.com", "Alice Archer <alice@example.com>"
    if how == "someone else's forwarding address":
        to = alices_forwarding_address(desk, "bob@example.com")
    elif how == "stranger":  # not an agent at all: a forward like any other mail
        sender, to = "Mallory <mallory@evil.example>", alices_forwarding_address(desk)
    desk.pipeline.process_one(forward("gmail", to=to, sender=sender))
    send_all(desk)
    assert not [r for r in smtp_sink.received if DANA in r.rcpt_tos]  # nothing to Dana
    row = ticket(desk)
    assert row.requester == sender.split("<")[1].rstrip(">")  # the sender's own ticket
    if how != "stranger":
        to_alice = [r.parsed() for r in smtp_sink.received if ALICE in r.rcpt_tos]
        texts = [m.get_body(("plain",)).get_content() for m in to_alice]
        (text,) = [t for t in texts if "could not be" in t]  # besides the queue's new_ticket
        assert "opened for you, not for dana@example.org" in " ".join(text.split())
        assert alices_forwarding_address(desk) in text  # how to do it right


def test_the_mail_servers_word_proves_a_forward_to_the_plain_address(make_desk):
    desk = make_desk(extra="")
    desk.config = desk.config.model_copy(
        update={
            "tickets": desk.config.tickets.model_copy(
                update={"trusted_authserv": ["mx.example.com"]}
            )
        }
    )
    desk.pipeline.config = desk.config
    vouched = (
        "mx.example.com; spf=pass smtp.mailfrom=alice@example.com; dkim=pass header.d=example.com"
    )
    raw = forward("outlook", to="support@example.com")
    desk.pipeline.process_one(f"Authentication-Results: {vouched}\r\n".encode() + raw)
    assert ticket(desk).requester == DANA


def test_a_forward_of_a_customers_mail_about_their_ticket_joins_it(make_desk):
    desk = make_desk()
    desk.pipeline.process_one(make_mail(sender=f"Dana <{DANA}>", subject="Printer broken"))
    to = alices_forwarding_address(desk)
    raw = forward("gmail", to=to).replace(b"Fwd: ", b"Fwd: Re: [MD-1] ", 1)
    result = desk.pipeline.process_one(raw)
    assert (result.outcome, result.ticket_ref) == ("added", "MD-1")
    messages, _, _, outbox = stored(desk)
    assert [m.author_kind for m in messages] == ["requester", "requester", "agent"]
    assert ("customer_reply", ALICE) in outbox


def test_a_reply_through_a_notification_is_never_taken_for_a_forward(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(subject="Help", message_id="<c1@example.org>"))
    send_all(desk)
    notice = next(parse(r.data) for r in smtp_sink.received if ALICE in r.rcpt_tos)
    reply_to = notice["Reply-To"].addresses[0].addr_spec
    raw = forward("gmail", to=reply_to).replace(b"Fwd: ", b"Fwd: [MD-1] ", 1)
    result = desk.pipeline.process_one(raw)
    messages, _, _, _ = stored(desk)
    assert result.ticket_ref == "MD-1" and messages[-1].author_kind == "agent"


def test_an_unproven_forward_naming_a_ticket_is_an_unverified_note_there(make_desk):
    desk = make_desk()
    desk.pipeline.process_one(make_mail(sender=f"Dana <{DANA}>", subject="Printer broken"))
    raw = forward("gmail", to="support@example.com").replace(b"Fwd: ", b"Fwd: Re: [MD-1] ", 1)
    result = desk.pipeline.process_one(raw)
    messages, _, _, outbox = stored(desk)
    assert result.ticket_ref == "MD-1"
    assert (messages[-1].author_kind, messages[-1].internal) == ("unverified", True)
    assert [o for o in outbox if o[1] == DANA] == [("ack", DANA)]  # the first one only


RUSSIAN_GMAIL = """Возьми, пожалуйста.

---------- Пересылаемое сообщение ---------
От: Дана <dana@example.org>
Date: пн, 23 нояб. 2026 г. в 10:05
Subject: Принтер горит
To: Alice <alice@example.com>


Принтер на третьем этаже снова горит.
"""


def test_a_forward_from_a_russian_gmail_is_read_too(make_desk):
    from email.message import EmailMessage

    desk = make_desk()
    msg = EmailMessage()
    msg["From"], msg["To"] = "Alice Archer <alice@example.com>", alices_forwarding_address(desk)
    msg["Subject"], msg["Date"] = "Fwd: Принтер горит", "Mon, 23 Nov 2026 11:30:00 +0100"
    msg.set_content(RUSSIAN_GMAIL)
    desk.pipeline.process_one(msg.as_bytes())
    row = ticket(desk)
    assert (row.requester, row.requester_name, row.subject) == (DANA, "Дана", "Принтер горит")
    messages, _, _, _ = stored(desk)
    # The client printed 10:05 without a zone: its own zone (+01:00, from its Date header).
    assert messages[0].date == ORIGINAL_DATE
    assert messages[0].text_body == "Принтер на третьем этаже снова горит."
    assert messages[1].text_body == "Возьми, пожалуйста."


def test_the_customer_of_a_forward_is_not_told_of_an_attachment_dropped_for_size(make_desk):
    # Dana never wrote to the desk: Alice's forward lost the attachment, not Dana's mail.
    desk = without_forward_ack(make_desk(extra="limits:\n  max_attachment_bytes: 16\n"))
    desk.pipeline.process_one(forward("gmail", to=alices_forwarding_address(desk)))
    _, _, events, outbox = stored(desk)
    assert any(kind == "size_limit" for kind, _ in events)  # the ticket's log says so
    assert not [o for o in outbox if o[1] == DANA], outbox


def test_a_forward_about_a_customers_ticket_brings_whom_their_mail_copied(make_desk):
    # The agent vouches for the customer's mail: its Cc joins, though the forward itself
    # answers none of the ticket's messages (the rule that keeps forged mail out).
    desk = make_desk()
    desk.pipeline.process_one(make_mail(sender=f"Dana <{DANA}>", subject="Printer broken"))
    raw = forward_as_attachment(
        to=alices_forwarding_address(desk), original_headers={"Cc": "erin@example.net"}
    ).replace(b"Fwd: ", b"Fwd: Re: [MD-1] ", 1)
    assert desk.pipeline.process_one(raw).ticket_ref == "MD-1"
    with desk.sessions() as s:
        cc = list(s.scalars(select(Participant.address).where(Participant.role == "cc")))
    assert cc == ["erin@example.net"]
