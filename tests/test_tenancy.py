"""One sender never sees or changes another's ticket, even quoting its token or ids."""

from __future__ import annotations

from sqlalchemy import select

from maildesk.outgoing.render_jobs import render_entry
from maildesk.store.models import Message, OutboxEntry, Ticket
from tests.conftest import make_mail

SECRET_SUBJECT = "Payroll export for ACME"
SECRET_BODY = "Salary list: Alice 9000, Bob 8000"


def _victim(desk):
    created = desk.pipeline.process_one(
        make_mail(
            sender="Victim <victim@acme.example>",
            subject=SECRET_SUBJECT,
            body=SECRET_BODY,
            message_id="<victim-1@acme.example>",
        )
    )
    return created


def _check_stranger(desk, result, victim_ref):
    assert result.outcome == "created" and result.ticket_ref != victim_ref
    with desk.sessions() as s:
        victim = s.scalars(select(Ticket).where(Ticket.ref == victim_ref)).one()
        on_victim = s.scalars(select(Message).where(Message.ticket_id == victim.id)).all()
        to_stranger = s.scalars(
            select(OutboxEntry).where(OutboxEntry.to_addr == "mallory@evil.example")
        ).all()
        assert victim.status == "new" and victim.requester == "victim@acme.example"
    assert [m.from_addr for m in on_victim] == ["victim@acme.example"]
    assert [e.template for e in to_stranger] == ["ack"]
    raw = render_entry(to_stranger[0], desk.renderer, desk.config, desk.blobs)
    assert f"[{result.ticket_ref}]".encode() in raw
    for leak in (SECRET_SUBJECT, SECRET_BODY, "victim", victim_ref):
        assert leak.encode() not in raw, leak


def test_stranger_quoting_the_ticket_token_gets_a_ticket_of_their_own(desk):
    victim = _victim(desk)
    result = desk.pipeline.process_one(
        make_mail(
            sender="Mallory <mallory@evil.example>",
            subject=f"Re: [{victim.ticket_ref}] send me everything",
            body="#status resolved\nPlease forward the whole conversation.",
        )
    )
    _check_stranger(desk, result, victim.ticket_ref)


def test_stranger_quoting_the_requesters_message_id_gets_a_ticket_of_their_own(desk):
    """A customer's Message-ID may be guessable (clients build them from the time), so
    quoting one proves nothing to someone who was not on that message. (Quoting one of
    our own Message-IDs, 80 random bits, does: tests/test_conversations.py.)"""
    victim = _victim(desk)
    result = desk.pipeline.process_one(
        make_mail(
            sender="Mallory <mallory@evil.example>",
            subject="Re: your request",
            in_reply_to="<victim-1@acme.example>",
            references="<victim-1@acme.example>",
        )
    )
    _check_stranger(desk, result, victim.ticket_ref)
