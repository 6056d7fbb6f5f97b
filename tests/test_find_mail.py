"""`#find` by mail, through the real pipeline and a real SMTP server."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import Message, Ticket
from tests.conftest import make_mail
from tests.mailflow import MailFlow, reply_to
from tests.test_agents import ALICE, CUSTOMER, body, ticket_row, to, with_tickets

ALICE_ADDRESS = "alice@example.com"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def flow(request, make_desk, smtp_sink, clock):
    """A desk on each database, wired to a real SMTP sink, with three customer tickets."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    desk = make_desk(request.param, database_url=url, extra=smtp_sink.smtp_config())
    f = MailFlow(desk, smtp_sink, clock)
    for subject, text in [
        ("Printer on fire", "The printer on floor 3 burns."),
        ("Cannot log in", "My password stopped working."),
        ("Toner", "The printers need toner."),
    ]:
        clock.advance(minutes=10)
        desk.pipeline.process_one(make_mail(subject=subject, body=text))
    f.first = f.deliver()
    return f


def counts(desk) -> tuple[int, int]:
    with desk.sessions() as s:
        tickets = s.scalar(select(func.count()).select_from(Ticket))
        return tickets, s.scalar(select(func.count()).select_from(Message))


def alice_writes(flow, text: str, **kw):
    flow.clock.advance(minutes=5)
    return flow.desk.pipeline.process_one(
        make_mail(sender=ALICE, subject=kw.pop("subject", "search"), body=text, **kw)
    )


def test_an_agents_find_is_answered_with_refs_and_subjects_and_opens_nothing(flow):
    before = counts(flow.desk)
    result = alice_writes(flow, "#find printer\n\n-- \nAlice", message_id="<q1@example.com>")
    assert result.outcome == "answered" and result.ticket_ref is None
    assert counts(flow.desk) == before  # no ticket, no stored message
    (answer,) = flow.deliver()
    assert to(answer) == [ALICE_ADDRESS]
    assert answer["Subject"] == "Search: printer" and "X-Maildesk-Ticket" not in answer
    assert answer["In-Reply-To"] == "<q1@example.com>"
    assert answer["Auto-Submitted"] == "auto-replied"
    text = body(answer)
    assert "MD-3  Toner" in text and "MD-1  Printer on fire" in text
    assert text.index("MD-3") < text.index("MD-1")  # most recently updated first
    assert "Cannot log in" not in text
    assert "The printer on floor 3 burns." in text  # the snippet


def test_several_finds_and_a_command_that_needs_a_ticket(flow):
    alice_writes(flow, '#find "password stopped"\n#find warsaw\n#status closed')
    (answer,) = flow.deliver()
    text = body(answer)
    assert answer["Subject"] == 'Search: "password stopped"; warsaw'
    assert "MD-2  Cannot log in" in text and "no ticket matches warsaw." in text
    assert "'#status closed': only #find works in a mail about no ticket" in text
    assert ticket_row(flow.desk, "MD-2").status == "new"


def test_a_customers_find_is_plain_text(flow):
    result = flow.desk.pipeline.process_one(
        make_mail(sender=CUSTOMER, subject="search", body="#find printer")
    )
    assert result.outcome == "created"
    mail = flow.deliver()
    assert all(m["Subject"] != "Search: printer" for m in mail)
    (ack,) = [m for m in mail if to(m) == [CUSTOMER]]
    assert "MD-4" in ack["Subject"]  # a ticket of its own, acknowledged
    (agents_copy,) = [m for m in mail if to(m) == [ALICE_ADDRESS]]
    assert "#find printer" in body(agents_copy)


def test_find_in_a_reply_about_a_ticket_is_one_more_command(flow):
    (notice,) = [m for m in flow.first if to(m) == [ALICE_ADDRESS] and "MD-2" in m["Subject"]]
    alice_writes(
        flow, "#find toner\n#assign me", subject=f"Re: {notice['Subject']}", **reply_to(notice)
    )
    mail = flow.deliver()
    assert ticket_row(flow.desk, "MD-2").assignee == ALICE_ADDRESS
    assert all(CUSTOMER not in to(m) for m in mail)  # nothing relayed
    (answer,) = [m for m in mail if "Search:" in m["Subject"]]
    assert answer["Subject"] == "[MD-2] Search: toner"  # a reply to it lands on MD-2
    assert "MD-3  Toner" in body(answer)


def test_an_unvouched_find_shows_nothing(flow):
    with_tickets(flow.desk, require_agent_auth=True, trusted_authserv=["mx.example.com"])
    result = alice_writes(flow, "#find printer")  # no Authentication-Results at all
    assert result.outcome == "created"  # kept like any other mail, but nobody is told results
    assert all("Search:" not in m["Subject"] for m in flow.deliver())


def test_a_find_without_words_is_explained(flow):
    alice_writes(flow, '#find ""')
    (answer,) = flow.deliver()
    assert "nothing to search for in '\"\"': give at least one word" in body(answer)


def test_a_find_mail_taken_again_is_answered_once(flow):
    # A Maildir or spool file taken again after a crash (between the commit and moving
    # it to cur/), or the same file fed twice: the mail is not stored, yet known.
    raw = make_mail(sender=ALICE, subject="search", body="#find printer", message_id="<q7@x.org>")
    results = [flow.desk.pipeline.process_one(raw) for _ in range(2)]
    batch = flow.desk.pipeline.process_batch([(raw, SourceInfo(source="again"))] * 2)
    assert [(r.outcome, r.reason) for r in [*results, *batch]] == [
        ("answered", ""),
        *[("duplicate", "already answered (mid:q7@x.org)")] * 3,
    ]
    assert len(flow.deliver()) == 1
