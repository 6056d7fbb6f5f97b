"""A customer's mail relayed to several agents is stored once: each agent's outbox row
names the message row, and the mail that goes out still carries the whole text."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from maildesk.store.models import Message, OutboxEntry
from tests.conftest import make_mail
from tests.mailflow import outbox_rows, parse, reply_to, send_all

DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
TEXT = "".join(f"Line {n}: the printer on the third floor jams.\n" for n in range(1, 41))


def plain_text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def agent_rows(desk) -> list[OutboxEntry]:
    with desk.sessions() as session:
        query = select(OutboxEntry).where(OutboxEntry.audience == "agents")
        return list(session.scalars(query.order_by(OutboxEntry.id)))


@pytest.mark.parametrize("database", DATABASES)
def test_each_agents_copy_names_the_stored_text_and_still_carries_it(
    make_desk, smtp_sink, request, database
):
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    desk = make_desk(database_url=url, extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(subject="Printer jams", body=TEXT))
    with desk.sessions() as session:
        (message_pk,) = session.scalars(select(Message.id))
    rows = agent_rows(desk)
    assert sorted(r.to_addr for r in rows) == ["alice@example.com", "bob@example.com"]
    assert [r.body_message_id for r in rows] == [message_pk, message_pk]
    assert all("body" not in r.context for r in rows)

    assert send_all(desk) == 3  # the acknowledgement and both agents' copies
    to_agents = [
        parse(m.data) for m in smtp_sink.received if m.rcpt_tos[0].endswith("@example.com")
    ]
    assert len(to_agents) == 2
    for mail in to_agents:
        assert "Line 1: the printer" in plain_text(mail)
        assert "Line 40: the printer" in plain_text(mail)


def test_a_body_that_is_not_the_stored_text_stays_in_the_row(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(subject="Printer jams", body=TEXT))
    send_all(desk)
    (to_alice,) = [parse(m.data) for m in smtp_sink.received if m.rcpt_tos == ["alice@example.com"]]
    quoted = "".join(f"> {line}\n" for line in TEXT.splitlines())
    answer = "Please send a photo of the paper tray."
    desk.pipeline.process_one(
        make_mail(
            sender="Alice Archer <alice@example.com>",
            subject=f"Re: {to_alice['Subject']}",
            body=f"{answer}\n\nOn Mon, Nov 23, 2026 at 9:00 AM Customer <customer@example.org> wrote:\n{quoted}",
            **reply_to(to_alice),
        )
    )
    with desk.sessions() as session:
        relayed = session.scalars(
            select(OutboxEntry).where(OutboxEntry.template == "agent_reply")
        ).one()
        # What the requester gets is the answer without the quote: not the stored text.
        assert relayed.body_message_id is None
        assert relayed.context["body"].strip() == answer


def test_outbox_show_renders_the_text_a_row_names(make_desk):
    desk = make_desk()
    desk.pipeline.process_one(make_mail(subject="Printer jams", body=TEXT))
    rendered = [r for r in outbox_rows(desk) if r.audience == "agents"]
    assert len(rendered) == 2
    for row in rendered:
        assert row.body_message_id is not None
        assert "Line 40: the printer" in plain_text(parse(row.raw))
