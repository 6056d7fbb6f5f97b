"""Attachments and formatting both ways, through the real pipeline and a real SMTP server.

Customer -> agents: files and inline pictures arrive byte for byte, up to
notify.attach_max_bytes; beyond it they are listed and `#send-attachments` fetches
them. Agent -> customer: the agent's files, inline pictures and sanitised HTML go on;
the quoted notification and its files do not; blocked or oversized files are refused.
"""

from __future__ import annotations

import email
import email.policy

import pytest
from sqlalchemy import select

from maildesk.intake.message import human_size
from maildesk.store.models import OutboxEntry
from tests.attachkit import agent_reply, customer_mail, files_of, pdf, png, quoting_html
from tests.conftest import run_maildesk
from tests.mailflow import MailFlow, parse
from tests.test_agents import body, ticket_row, to
from tests.wirecheck import wire_problems

ALICE = "alice@example.com"
CUSTOMER = "customer@example.org"


@pytest.fixture
def flow(make_desk, smtp_sink, clock):
    """A desk on a real SMTP sink; `deliver()` sends the outbox and returns the new mail
    (each checked to be valid on the wire)."""
    return _flow(make_desk, smtp_sink, clock)


def _flow(make_desk, smtp_sink, clock, extra: str = ""):
    desk = make_desk(extra=smtp_sink.smtp_config() + extra)
    return MailFlow(desk, smtp_sink, clock, check=_valid_on_wire)


def _valid_on_wire(data: bytes) -> None:
    assert wire_problems(data) == [], data[:3000]


def alice_copy(mails: list):
    return next(m for m in mails if to(m) == [ALICE])


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def test_a_customers_png_and_pdf_reach_the_agents_byte_for_byte(flow):
    shot, invoice = png(), pdf(pages=2)
    flow.desk.pipeline.process_one(
        customer_mail(
            files=[("screen.png", "image/png", shot), ("invoice.pdf", "application/pdf", invoice)]
        )
    )
    mails = flow.deliver()
    notice = alice_copy(mails)
    assert files_of(notice) == {"screen.png": shot, "invoice.pdf": invoice}
    assert "Attached: screen.png" in body(notice)
    ack = next(m for m in mails if to(m) == [CUSTOMER])
    assert files_of(ack) == {}  # the customer's own files do not come back to them


def test_inline_pictures_of_customer_html_keep_working(flow):
    picture = png("green")
    html = '<p>Look: <b>here</b><img src="cid:shot1@example.org"></p><script>steal()</script>'
    flow.desk.pipeline.process_one(
        customer_mail(html=html, inline=[("shot1@example.org", picture)])
    )
    notice = alice_copy(flow.deliver())
    shown = html_of(notice)
    assert '<img src="cid:shot1@example.org">' in shown and "<b>here</b>" in shown
    assert "<script" not in shown and "steal" not in shown
    related = notice.get_body(("related",))
    (image,) = [p for p in related.iter_parts() if p.get_content_type() == "image/png"]
    assert image["Content-ID"] == "<shot1@example.org>"
    assert image.get_content() == picture


def test_over_the_limit_a_file_is_listed_then_fetched_by_mail(make_desk, smtp_sink, clock):
    flow = _flow(make_desk, smtp_sink, clock, "notify:\n  attach_max_bytes: 20000\n")
    small, big = png(), pdf(filler=60_000)
    flow.desk.pipeline.process_one(
        customer_mail(
            files=[("small.png", "image/png", small), ("big.pdf", "application/pdf", big)]
        )
    )
    notice = alice_copy(flow.deliver())
    assert files_of(notice) == {"small.png": small}
    text = " ".join(body(notice).split())
    assert f"big.pdf ({human_size(len(big))}): over the size one mail carries" in text
    assert "#send-attachments" in text and 'maildesk tickets attachment MD-1 "NAME" -o FILE' in text

    flow.clock.advance(minutes=5)
    flow.desk.pipeline.process_one(agent_reply(notice, "#send-attachments big.pdf"))
    (answer,) = flow.deliver()  # to Alice only: nothing is relayed to the customer
    assert to(answer) == [ALICE]
    assert files_of(answer) == {"big.pdf": big}  # alone, though over the limit
    assert "Attachments" in str(answer["Subject"])


def test_send_attachments_splits_by_the_limit_and_never_mails_blocked_types(
    make_desk, smtp_sink, clock
):
    flow = _flow(make_desk, smtp_sink, clock, "notify:\n  attach_max_bytes: 30000\n")
    one, two, tool = pdf(filler=20_000), pdf(pages=2, filler=20_000), b"MZ\x90\x00" * 100
    flow.desk.pipeline.process_one(
        customer_mail(
            files=[
                ("one.pdf", "application/pdf", one),
                ("two.pdf", "application/pdf", two),
                ("tool.exe", "application/octet-stream", tool),
            ]
        )
    )
    notice = alice_copy(flow.deliver())
    assert files_of(notice) == {"one.pdf": one}
    assert "tool.exe (400 bytes): a blocked file type" in " ".join(body(notice).split())
    flow.clock.advance(minutes=5)
    flow.desk.pipeline.process_one(agent_reply(notice, "#send-attachments"))
    answers = flow.deliver()
    assert [files_of(a) for a in answers] == [{"one.pdf": one}, {"two.pdf": two}]
    assert "(1 of 2)" in str(answers[0]["Subject"])
    assert "tool.exe" in body(answers[0]) and "tool.exe" not in files_of(answers[0])


def test_send_attachments_with_an_unknown_name_changes_nothing(flow):
    flow.desk.pipeline.process_one(customer_mail(files=[("a.png", "image/png", png())]))
    notice = alice_copy(flow.deliver())
    flow.clock.advance(minutes=5)
    flow.desk.pipeline.process_one(agent_reply(notice, "#send-attachments b.png\n#status pending"))
    (answer,) = flow.deliver()
    assert "MD-1 has no attachment 'b.png' (a.png)" in " ".join(body(answer).split())
    assert ticket_row(flow.desk).status == "new"


def test_an_agents_pdf_and_inline_picture_reach_the_customer_and_the_quote_stays(flow):
    screenshot, logo_of_quote = png("red"), png("yellow")
    flow.desk.pipeline.process_one(
        customer_mail(files=[("screen.png", "image/png", screenshot)], html="<p>hi</p>")
    )
    notice = alice_copy(flow.deliver())
    answer_pdf, diagram = pdf(pages=3), png("blue", (50, 50))
    html = quoting_html(
        'Hello <b>Jane</b>, see <a href="https://example.com/guide">the guide</a>:'
        '<ul><li>unplug it</li><li>wait</li></ul><img src="cid:diagram1">'
        "<script>alert(1)</script>",
        quoted_cid="quoted1",
    )
    flow.clock.advance(minutes=5)
    reply = agent_reply(
        notice,
        "Hello Jane, see the guide",
        html=html,
        inline=[("diagram1", diagram), ("quoted1", logo_of_quote)],
        # Her client sent the notification's screenshot back with the answer.
        files=[
            ("answer.pdf", "application/pdf", answer_pdf),
            ("screen.png", "image/png", screenshot),
        ],
    )
    flow.desk.pipeline.process_one(reply)
    (relayed,) = [m for m in flow.deliver() if to(m) == [CUSTOMER]]
    assert sorted(files_of(relayed).values()) == sorted([answer_pdf, diagram])
    shown = html_of(relayed)
    assert "<b>Jane</b>" in shown and '<a href="https://example.com/guide"' in shown
    assert "<ul><li>unplug it</li><li>wait</li></ul>" in shown
    assert "<script" not in shown and "alert" not in shown and "&lt;" not in shown
    assert "wrote:" not in shown and "New ticket" not in shown  # the quote is cut
    related = relayed.get_body(("related",))
    (image,) = [p for p in related.iter_parts() if p.get_content_type() == "image/png"]
    assert (image["Content-ID"], image.get_content()) == ("<diagram1>", diagram)
    text = body(relayed)
    assert "the guide <https://example.com/guide>" in text and "- unplug it" in text


@pytest.mark.parametrize(
    ("extra", "files", "why"),
    [
        (
            "",
            [("setup.exe", "application/octet-stream", b"MZ" * 50)],
            "'setup.exe': files of this type are not sent",
        ),
        (
            "notify:\n  attach_max_bytes: 1000\n",
            [("big.pdf", "application/pdf", b"%PDF" * 500)],
            "over the 1000 bytes a mail to the customer may carry",
        ),
    ],
)
def test_a_blocked_or_oversized_file_refuses_the_reply_with_a_clear_answer(
    make_desk, smtp_sink, clock, extra, files, why
):
    flow = _flow(make_desk, smtp_sink, clock, extra)
    flow.desk.pipeline.process_one(customer_mail())
    notice = alice_copy(flow.deliver())
    flow.clock.advance(minutes=5)
    flow.desk.pipeline.process_one(
        agent_reply(notice, "#status pending\n\nHere you go", files=files)
    )
    (answer,) = flow.deliver()
    assert to(answer) == [ALICE]  # nothing reached the customer
    assert why in " ".join(body(answer).split())
    assert ticket_row(flow.desk).status == "new"  # nothing was applied


def test_a_forwarded_message_reaches_the_agents_as_it_is(flow):
    inner = (
        b"From: Boss <boss@example.org>\r\nTo: customer@example.org\r\n"
        b"Subject: The original\r\nMessage-ID: <orig@example.org>\r\n"
        b"Date: Mon, 23 Nov 2026 08:00:00 +0000\r\n\r\nPlease forward this to support.\r\n"
    )
    forwarded = email.message_from_bytes(inner, policy=email.policy.default)
    outer = email.message_from_bytes(customer_mail(), policy=email.policy.default)
    outer.add_attachment(forwarded)
    flow.desk.pipeline.process_one(outer.as_bytes(policy=email.policy.SMTP))
    flow.deliver()
    raw = next(i.data for i in flow.sink.received if ALICE in i.rcpt_tos)
    notice = parse(raw)
    (part,) = [p for p in notice.walk() if p.get_content_type() == "message/rfc822"]
    assert inner in raw  # the forwarded message's bytes, untouched
    assert str(part.get_content()["Subject"]) == "The original"


def test_tickets_attachment_writes_the_file_byte_for_byte(flow, tmp_path):
    invoice = pdf(pages=2)
    flow.desk.pipeline.process_one(
        customer_mail(files=[("invoice.pdf", "application/pdf", invoice)])
    )
    out = tmp_path / "copy.pdf"
    result = run_maildesk(
        tmp_path / "desk", "tickets", "attachment", "MD-1", "invoice.pdf", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == invoice
    missing = run_maildesk(
        tmp_path / "desk", "tickets", "attachment", "MD-1", "nope.pdf", "-o", str(out)
    )
    assert missing.exit_code == 1 and "MD-1 has no attachment called 'nope.pdf'" in missing.output


def test_notifications_name_files_by_hash_and_never_hold_their_bytes(flow):
    invoice = pdf(filler=50_000)
    flow.desk.pipeline.process_one(
        customer_mail(files=[("invoice.pdf", "application/pdf", invoice)])
    )
    with flow.desk.sessions() as session:
        row = session.scalars(select(OutboxEntry).where(OutboxEntry.to_addr == ALICE)).one()
        assert [f["filename"] for f in row.headers["attachments"]] == ["invoice.pdf"]
        assert len(str(row.headers)) + len(str(row.context)) < 5000  # a name, not the bytes


def test_send_attachments_works_only_for_verified_agents(flow):
    secret = pdf(pages=2)
    flow.desk.pipeline.process_one(customer_mail(files=[("secret.pdf", "application/pdf", secret)]))
    flow.deliver()
    flow.clock.advance(minutes=5)
    # From the customer: plain text, relayed to the agents as text, no file goes back.
    flow.desk.pipeline.process_one(
        customer_mail("Re: [MD-1] Printer on fire", message_id="<c2@example.org>").replace(
            b"The printer is on fire, see the pictures.", b"#send-attachments"
        )
    )
    mails = flow.deliver()
    assert all(files_of(m) == {} for m in mails) and all(CUSTOMER not in to(m) for m in mails)
    # Alice's address without the signed reply address: not proven hers, nothing sent.
    forged = customer_mail(
        "Re: [MD-1] Printer on fire",
        sender="Alice Archer <alice@example.com>",
        message_id="<forged@example.org>",
    ).replace(b"The printer is on fire, see the pictures.", b"#send-attachments")
    flow.desk.pipeline.process_one(forged)
    (told,) = flow.deliver()
    assert to(told) == [ALICE] and files_of(told) == {}
    assert "could not be verified as yours" in " ".join(body(told).split())
