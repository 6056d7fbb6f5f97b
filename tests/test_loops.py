"""Loop and noise protection: auto-replies, bounces, lists and our own mail are kept, never answered."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from maildesk.store.models import AutomaticMail, Event, Message, OutboxEntry, Participant, Ticket
from maildesk.store.queries import ticket_detail
from tests.conftest import make_mail
from tests.mailflow import outbox_rows, send_all
from tests.servers import SmtpSink


def count(desk, model) -> int:
    with desk.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


OUT_OF_OFFICE = {
    "exchange": lambda ack: {
        "subject": f"Automatic reply: {ack['Subject']}",
        "in_reply_to": str(ack["Message-ID"]),
        "headers": {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All"},
    },
    "gmail": lambda ack: {
        "subject": "Out of office until Monday",
        "in_reply_to": str(ack["Message-ID"]),
        "references": str(ack["Message-ID"]),
        "headers": {"Auto-Submitted": "auto-replied"},
    },
    "vacation program, no threading at all": lambda ack: {
        "subject": "I am away",
        "headers": {"Precedence": "bulk", "X-Autorespond": "yes"},
    },
}


@pytest.mark.parametrize("kind", OUT_OF_OFFICE)
def test_out_of_office_reply_to_our_ack_makes_no_ticket_and_no_reply(make_desk, smtp_sink, kind):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(subject="Printer on fire"))
    send_all(desk)
    ack = next(r.parsed() for r in smtp_sink.received if r.rcpt_tos == ["customer@example.org"])
    before = len(outbox_rows(desk))

    result = desk.pipeline.process_one(
        make_mail(body="I am out of the office.", **OUT_OF_OFFICE[kind](ack))
    )
    assert (result.outcome, result.ticket_ref, result.notifications) == ("added", "MD-1", [])
    assert count(desk, Ticket) == 1
    assert len(outbox_rows(desk)) == before
    assert send_all(desk) == 0
    with desk.sessions() as s:
        detail = ticket_detail(s, "MD-1")
    note = detail["messages"][-1]
    assert (note["kind"], note["internal"]) == ("auto_reply", True)
    assert "out of the office" in note["text"]
    assert detail["status"] == "new"  # an auto-reply does not reopen or touch the ticket


def dsn(ack: EmailMessage, *, recipient: str, status: str = "5.1.1", action: str = "failed",
        returned: str = "headers") -> bytes:  # fmt: skip
    """A Postfix-style delivery status notification (RFC 3464) about `ack`."""
    original = ack.as_bytes()
    if returned == "headers":
        returned_part = (
            b"Content-Type: text/rfc822-headers\r\n\r\n" + original.split(b"\r\n\r\n")[0]
        )
    else:
        returned_part = b"Content-Type: message/rfc822\r\n\r\n" + original
    head = f"""Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: support@example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-{action}-{returned}@mx.example.org>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--BOUNDARY
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Arrival-Date: Mon, 23 Nov 2026 10:00:01 +0000

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected: User unknown

--BOUNDARY
"""
    tail = b"\r\n--BOUNDARY--\r\n"
    return head.replace("\n", "\r\n").encode() + returned_part + tail


@pytest.mark.parametrize("returned", ["headers", "message"])
def test_bounce_of_our_ack_lands_on_its_ticket_and_flags_the_address(
    make_desk, smtp_sink, returned
):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(sender="nobody@example.org", subject="Where is my order"))
    desk.pipeline.process_one(make_mail(sender="other@example.org", subject="Another one"))
    send_all(desk)
    ack = next(r.parsed() for r in smtp_sink.received if r.rcpt_tos == ["nobody@example.org"])
    before = len(outbox_rows(desk))

    result = desk.pipeline.process_one(dsn(ack, recipient="nobody@example.org", returned=returned))
    assert (result.outcome, result.ticket_ref, result.notifications) == ("added", "MD-1", [])
    assert count(desk, Ticket) == 2
    assert len(outbox_rows(desk)) == before
    with desk.sessions() as s:
        flagged = s.scalars(select(Participant).where(Participant.bouncing.is_(True))).all()
        assert [(p.address, p.ticket_id) for p in flagged] == [("nobody@example.org", 1)]
        event = s.scalars(select(Event).where(Event.kind == "bouncing")).one()
        assert (event.new, event.ticket_id) == ("nobody@example.org", 1)
        assert "5.1.1" in event.reason and str(ack["Message-ID"]).strip("<>") in event.reason
        stored = s.scalars(select(Message).where(Message.kind == "bounce")).one()
        assert stored.internal and stored.ticket_id == 1
        notification = s.scalars(
            select(OutboxEntry).where(OutboxEntry.message_id == str(ack["Message-ID"]).strip("<>"))
        ).one()
        assert notification.status == "bounced"
        assert "User unknown" in notification.last_error


def test_delayed_delivery_report_flags_nothing(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(sender="slow@example.org"))
    send_all(desk)
    ack = next(r.parsed() for r in smtp_sink.received if r.rcpt_tos == ["slow@example.org"])
    desk.pipeline.process_one(
        dsn(ack, recipient="slow@example.org", status="4.4.1", action="delayed")
    )
    assert count(desk, Ticket) == 1
    with desk.sessions() as s:
        assert not s.scalars(select(Participant).where(Participant.bouncing.is_(True))).all()
        assert (
            s.scalars(select(Event).where(Event.kind == "delivery"))
            .one()
            .reason.startswith("slow@example.org: delayed 4.4.1")
        )


def test_mail_from_a_bouncing_address_clears_its_flag(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail(sender="nobody@example.org"))
    send_all(desk)
    ack = next(r.parsed() for r in smtp_sink.received if r.rcpt_tos == ["nobody@example.org"])
    desk.pipeline.process_one(dsn(ack, recipient="nobody@example.org"))
    desk.pipeline.process_one(
        make_mail(sender="nobody@example.org", subject="Re: [MD-1] Help please")
    )
    with desk.sessions() as s:
        assert not s.scalars(select(Participant).where(Participant.bouncing.is_(True))).all()
        assert s.scalars(select(Event).where(Event.kind == "bouncing_cleared")).one()


def test_acknowledgements_per_address_are_rate_limited(make_desk, clock):
    desk = make_desk()
    for n in range(7):
        clock.advance(minutes=1)
        desk.pipeline.process_one(make_mail(subject=f"Request number {n}"))
    acks = [r for r in outbox_rows(desk) if r.template == "ack"]
    assert count(desk, Ticket) == 7  # every request is still a ticket
    assert len(acks) == 5
    clock.advance(hours=1)
    desk.pipeline.process_one(make_mail(subject="An hour later"))
    assert len([r for r in outbox_rows(desk) if r.template == "ack"]) == 6


def test_rate_limit_is_configurable(make_desk):
    desk = make_desk(extra="limits:\n  auto_replies_per_hour: 2\n")
    for n in range(4):
        desk.pipeline.process_one(make_mail(subject=f"Request number {n}"))
    assert len([r for r in outbox_rows(desk) if r.template == "ack"]) == 2


# --- two maildesks mailing each other -----------------------------------------------------

DESK_RULES = """
version: 1
default: {{queue: general, priority: normal, auto_reply: ack, language: en}}
queues:
  general: {{agents: [agent]}}
agents:
  agent: {{address: agent@{domain}, name: Agent}}
"""

# What a careless forwarder or mailing gateway loses: everything that marks mail as
# automatic or as part of a thread. Only the rate limit is left to stop a loop.
STRIPPED = (
    "Auto-Submitted", "X-Auto-Response-Suppress", "Precedence", "X-Maildesk-Loop",
    "X-Maildesk-Ticket", "In-Reply-To", "References", "Thread-Index", "Thread-Topic",
)  # fmt: skip


def two_desks(make_desk, prefix_a="AA", prefix_b="BB"):
    sinks = {"a": SmtpSink().start(), "b": SmtpSink().start()}
    desks = {}
    for name, prefix in (("a", prefix_a), ("b", prefix_b)):
        domain = f"{name}.example"
        desks[name] = make_desk(
            f"desk-{name}",
            rules=DESK_RULES.format(domain=domain),
            extra=sinks[name].smtp_config(),
            support=f"support@{domain}",
            prefix=prefix,
        )
    return desks, sinks


def exchange(desks, sinks, *, strip: bool, max_rounds: int = 40) -> dict[str, int]:
    """Deliver each desk's mail for the other desk's support address until nothing moves."""
    delivered = {"a": 0, "b": 0}
    other = {"a": "b", "b": "a"}
    for _ in range(max_rounds):
        moved = 0
        for name in ("a", "b"):
            send_all(desks[name])
            target = other[name]
            inbox = f"support@{target}.example"
            fresh = sinks[name].received[delivered[name] :]
            delivered[name] = len(sinks[name].received)
            for item in fresh:
                if inbox not in item.rcpt_tos:
                    continue  # the agents' copies stay home
                message = item.parsed()
                if strip:
                    for header in STRIPPED:
                        del message[header]
                    message.replace_header("Subject", "Hello again")
                desks[target].pipeline.process_one(message.as_bytes())
                moved += 1
        if not moved:
            return {n: sum(inbox_count(sinks[n], other[n])) for n in ("a", "b")}
    raise AssertionError(f"still exchanging mail after {max_rounds} rounds")


def inbox_count(sink, target):
    return [1 for r in sink.received if f"support@{target}.example" in r.rcpt_tos]


def mail_each_other(make_desk, *, strip: bool):
    """Desk A gets mail from desk B's support address; deliver until they stop."""
    desks, sinks = two_desks(make_desk)
    try:
        desks["a"].pipeline.process_one(
            make_mail(sender="support@b.example", to="support@a.example", subject="Hello")
        )
        return desks, exchange(desks, sinks, strip=strip)
    finally:
        for sink in sinks.values():
            sink.stop()


def test_two_maildesks_do_not_answer_each_others_acknowledgements(make_desk):
    desks, sent = mail_each_other(make_desk, strip=False)
    assert sent == {"a": 1, "b": 0}  # A acknowledged once; B saw Auto-Submitted and kept quiet
    # A's acknowledgement names no ticket of B's: kept apart, not in B's agents' queue.
    assert count(desks["b"], Ticket) == 0
    with desks["b"].sessions() as s:
        assert s.scalars(select(AutomaticMail)).one().kind == "auto_reply"


def test_two_maildesks_losing_every_header_stop_within_the_rate_limit(make_desk):
    desks, sent = mail_each_other(make_desk, strip=True)
    assert sent == {"a": 5, "b": 5}  # five acknowledgements each way, then silence
    assert count(desks["a"], Ticket) == 6 and count(desks["b"], Ticket) == 5


# --- other automatic mail -----------------------------------------------------------------


def test_mailing_list_post_is_a_ticket_without_acknowledgement(desk):
    result = desk.pipeline.process_one(
        make_mail(subject="Release 2.0", headers={"List-Id": "<announce.lists.example.org>"})
    )
    assert result.outcome == "created"
    assert [r.template for r in outbox_rows(desk)] == ["new_ticket", "new_ticket"]


def test_outlook_suppress_header_gets_no_acknowledgement_but_agents_hear(desk):
    desk.pipeline.process_one(make_mail(headers={"X-Auto-Response-Suppress": "OOF, AutoReply"}))
    assert [r.template for r in outbox_rows(desk)] == ["new_ticket", "new_ticket"]


def test_our_own_notification_coming_back_is_kept_quietly(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    desk.pipeline.process_one(make_mail())
    send_all(desk)
    before = len(outbox_rows(desk))
    for item in list(smtp_sink.received):
        result = desk.pipeline.process_one(item.data)
        assert (result.outcome, result.notifications) == ("added", [])
    assert len(outbox_rows(desk)) == before
    assert count(desk, Ticket) == 1


def test_another_maildesks_loop_header_is_not_ours(desk):
    desk.pipeline.process_one(
        make_mail(
            sender="agent@vendor.example",
            subject="Re: [VX-9] Your question",
            headers={"X-Maildesk-Loop": "vendor.example"},
        )
    )
    assert next(r.template for r in outbox_rows(desk)) == "ack"


def test_bounce_without_a_known_notification_is_kept_apart_without_a_ticket(desk):
    raw = make_mail(
        sender="MAILER-DAEMON@mx.example.org",
        subject="Undeliverable: something we never sent",
        headers={"Return-Path": "<>"},
    )
    result = desk.pipeline.process_one(raw)
    assert (result.outcome, result.automatic_kind) == ("automatic", "bounce")
    assert count(desk, Ticket) == 0  # no ticket, so no SLA clock in the agents' queue
    assert outbox_rows(desk) == []  # kept for the record; nobody is told
    with desk.sessions() as s:
        kept = s.get(AutomaticMail, result.automatic_id)
        assert (kept.from_addr, kept.subject) == (
            "mailer-daemon@mx.example.org",
            "Undeliverable: something we never sent",
        )
        assert desk.blobs.get(kept.raw_sha256, s) == raw


# --- header injection ---------------------------------------------------------------------


def test_subject_with_crlf_cannot_add_a_bcc(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    raw = make_mail(subject="placeholder").replace(
        b"Subject: placeholder", b"Subject: =?utf-8?q?Hello=0D=0ABcc:_x@evil.example?="
    )
    desk.pipeline.process_one(raw)
    # A folded subject is one header; the unfolded text must stay one line too.
    folded = make_mail(sender="eve@example.org", subject="Other")
    desk.pipeline.process_one(
        folded.replace(b"Subject: Other", b"Subject: Hi\r\n Bcc: z@evil.example")
    )
    send_all(desk)
    assert len(smtp_sink.received) == 6
    for item in smtp_sink.received:
        assert not any("evil" in r for r in item.rcpt_tos)
        message = item.parsed()
        assert message["Bcc"] is None
        head = item.data.split(b"\r\n\r\n", 1)[0]
        assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n"))
    ack = next(r.parsed() for r in smtp_sink.received if r.rcpt_tos == ["customer@example.org"])
    assert str(ack["Subject"]) == "[MD-1] Hello Bcc: x@evil.example"


def test_names_and_subjects_with_line_breaks_stay_inside_their_header():
    from datetime import UTC, datetime

    from maildesk.intake.message import Address
    from maildesk.outgoing.compose import Envelope, compose
    from maildesk.outgoing.rendered import Rendered

    envelope = Envelope(
        sender=Address("Alice\r\nBcc: a@evil.example via Support", "support@example.com"),
        to=[Address("Bob\nCc: b@evil.example", "bob@example.org")],
        cc=[],
        reply_to=Address("Support", "support@example.com"),
        subject="Hello\r\nBcc: c@evil.example\u2028X-Evil: 1",
        message_id="md-1.abc@example.com",
        in_reply_to="x@example.org>\r\nBcc: <d@evil.example",
        references=["r1@example.org"],
        date=datetime(2026, 11, 23, tzinfo=UTC),
        auto_submitted="auto-replied",
        ticket_ref="MD-1",
        loop_token="example.com",
        thread_root=bytes(22),
    )
    raw = compose(envelope, Rendered("s", "body", None))
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    names = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if not line[:1].isspace()]
    assert "bcc" not in names and "cc" not in names and "x-evil" not in names
    assert len(names) == len(set(names))  # no header was added twice
