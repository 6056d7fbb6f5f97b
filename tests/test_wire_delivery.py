"""Hostile names and subjects through the real pipeline and a real SMTP server.

aiosmtpd, like real servers, refuses a line over 998 octets ("500 Line too long"):
a customer's 1,000-character Subject once made every notification of their ticket fail
for good. Here their notifications are delivered, the bytes the server got are valid,
the copies kept in outbox.raw are those bytes, and the raw mail we took in is kept
byte for byte.
"""

from __future__ import annotations

import email.utils
import json
import logging
from email.header import Header

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from maildesk.cli import cli
from maildesk.intake.header_values import MAX_NAME, clip
from maildesk.outgoing.header_text import clean_text
from maildesk.outgoing.render_jobs import render_entry
from maildesk.store.models import Message, OutboxEntry, Ticket
from tests.conftest import make_mail
from tests.mailflow import outbox_rows, send_all
from tests.wirecheck import mailboxes_of, parse, subject_of, wire_problems

LONG_WORD_SUBJECT = "x" * 1000
CYRILLIC_NAME = "Ж" * 500
AGENTS = {"alice@example.com", "bob@example.com"}  # the example rules' general queue


def test_a_1000_character_subject_reaches_the_customer_and_the_agents(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(subject=LONG_WORD_SUBJECT))
    assert send_all(desk) == 3
    assert {r for item in smtp_sink.received for r in item.rcpt_tos} == {
        "customer@example.org",
        *AGENTS,
    }
    for item in smtp_sink.received:
        assert wire_problems(item.data) == []
        assert subject_of(item.data) == f"[MD-1] {LONG_WORD_SUBJECT}"
    _stored_copies_are_what_was_sent(desk, smtp_sink)


def test_a_500_character_cyrillic_name_reaches_the_customer_and_the_agents(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(sender=f"{CYRILLIC_NAME} <cy@example.org>"))
    assert send_all(desk) == 3
    kept = clip(CYRILLIC_NAME, MAX_NAME)  # the documented limit on names
    ack = next(i for i in smtp_sink.received if i.rcpt_tos == ["cy@example.org"])
    assert mailboxes_of(ack.data) == [(kept, "cy@example.org")]
    assert kept in parse(ack.data).get_body(("plain",)).get_content()
    for item in smtp_sink.received:
        assert wire_problems(item.data) == []
    agent_copy = next(i for i in smtp_sink.received if i.rcpt_tos != ["cy@example.org"])
    assert kept in parse(agent_copy.data).get_body(("plain",)).get_content()
    _stored_copies_are_what_was_sent(desk, smtp_sink)


def test_a_lookalike_subject_comes_back_as_typed(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    typed = "=?utf-8?q?Refund=0D=0ABcc:_eve@evil.example?= please"
    msg = make_mail(subject="placeholder", sender="=?utf-8?q?Eve?= <eve@example.org>")
    # As a mail client sends a subject that looks like an encoded word: encoded itself.
    desk.pipeline.process_one(
        msg.replace(b"Subject: placeholder", b"Subject: =?utf-8?b?" + _b64(typed) + b"?=")
    )
    send_all(desk)
    ack = next(i for i in smtp_sink.received if i.rcpt_tos == ["eve@example.org"])
    assert subject_of(ack.data) == f"[MD-1] {typed}"
    assert all(not r.endswith("evil.example") for i in smtp_sink.received for r in i.rcpt_tos)


def _b64(text: str) -> bytes:
    import base64

    return base64.b64encode(text.encode())


def _stored_copies_are_what_was_sent(desk, smtp_sink) -> None:
    sent = {parse(i.data)["Message-ID"].strip("<>"): i.data for i in smtp_sink.received}
    rows = outbox_rows(desk)
    assert {r.status for r in rows} == {"sent"}
    for row in rows:
        assert row.raw == sent[row.message_id]
        assert wire_problems(row.raw) == []


def test_a_refused_notification_is_reported_and_the_others_still_go(make_desk, smtp_sink, caplog):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail())
    smtp_sink.data_replies = ["554 5.6.0 message content rejected"]  # the first one sent
    with caplog.at_level(logging.ERROR, logger="maildesk.outgoing.sender"):
        assert send_all(desk) == 2
    rows = outbox_rows(desk)
    (failed,) = [r for r in rows if r.status == "failed"]
    assert {r.status for r in rows if r is not failed} == {"sent"}
    assert len(smtp_sink.received) == 2
    assert any(
        str(failed.id) in r.getMessage() and "554 5.6.0" in r.getMessage() for r in caplog.records
    )
    listed = CliRunner().invoke(
        cli, ["--config", desk.config.source, "outbox", "list", "--status", "failed", "--json"]
    )
    (row,) = json.loads(listed.output)
    assert (row["id"], row["ticket"]) == (failed.id, "MD-1")
    assert "554 5.6.0" in row["last_error"]


HOSTILE_INBOUND = [
    b"From: a@example.org\nTo: support@example.com\nSubject: bare LF\n\nline\nline\n",
    b"From: a@example.org\r\nTo: support@example.com\r\nSubject: "
    + b"y" * 1500
    + b"\r\n\r\n"
    + b"z" * 3000
    + b"\r\n",
    b"From: \xd0\x96\xd0\xb0 <b@example.org>\r\nTo: support@example.com\r\n"
    b"Subject: 8-bit \xff\xfe raw\r\n\r\nbody \x00 with NUL and no final line break",
    b"From: c@example.org\r\nTo: support@example.com\r\nSubject: =?utf-8?q?x=0D=0A?=\r\n"
    b"Content-Type: text/plain\r\n\r\ntrailing spaces   \r\n\tand tabs\t\r\n.\r\n",
]


def test_inbound_raw_copies_are_kept_byte_for_byte(desk):
    for raw in HOSTILE_INBOUND:
        result = desk.pipeline.process_one(raw)
        assert result.stored, result
        with desk.sessions() as session:
            message = session.get(Message, result.message_pk)
            assert desk.blobs.get(message.raw_sha256, session) == raw
    with desk.sessions() as session:
        assert len(session.scalars(select(Message)).all()) == len(HOSTILE_INBOUND)


# Generated names and subjects through intake, the decision and the outbox: every stored
# copy is valid, and carries the subject and name as intake kept them.
_pieces = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(["=?utf-8?q?x?=", '"', "\\", ",", "Ж" * 90, "b" * 90, "🇺🇦", "  "]),
)
_texts = st.lists(_pieces, max_size=20).map(lambda parts: clean_text("".join(parts)))
_seen = iter(range(10**9))


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(subject=_texts, name=_texts)
def test_property_stored_copies_of_generated_names_and_subjects(desk, subject, name):
    n = next(_seen)
    sender = email.utils.formataddr((name, f"p{n}@example.org"), "utf-8")
    raw = (
        f"From: {sender}\r\nTo: support@example.com\r\n"
        f"Subject: {Header(subject, 'utf-8').encode(linesep=chr(13) + chr(10))}\r\n"
        f"Message-ID: <prop-{n}@example.org>\r\n\r\nHello\r\n"
    ).encode()
    result = desk.pipeline.process_one(raw)
    assert result.outcome == "created", result
    with desk.sessions() as session, session.begin():
        ticket = session.scalars(select(Ticket).where(Ticket.ref == result.ticket_ref)).one()
        rows = session.scalars(select(OutboxEntry).where(OutboxEntry.ticket_id == ticket.id))
        copies = [
            (row.template, render_entry(row, desk.renderer, desk.config, desk.blobs))
            for row in rows
        ]
        kept_subject, kept_name = ticket.subject, ticket.requester_name
    assert copies
    for template, copy in copies:
        assert wire_problems(copy) == [], (template, copy[:1500])
        if template == "ack":
            assert subject_of(copy) == clean_text(f"[{result.ticket_ref}] {kept_subject}")
            assert mailboxes_of(copy) == [(clean_text(kept_name or ""), f"p{n}@example.org")]
