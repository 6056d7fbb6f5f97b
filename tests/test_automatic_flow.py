"""Automatic mail through the real pipeline: bounces tied to tickets only through our
signed return path or our own Message-ID, the rest kept apart from the agents' queue."""

from __future__ import annotations

import email.feedparser
import json
import urllib.request
from pathlib import Path

from sqlalchemy import func, select

from maildesk.intake import bounce_text, delivery_status
from maildesk.service import metrics_server
from maildesk.service.ingest_results import SourceInfo
from maildesk.service.scheduler import Scheduler
from maildesk.store.models import AutomaticMail, Event, Message, Participant, Ticket
from tests.conftest import make_mail, run_maildesk
from tests.mailflow import outbox_rows, send_all
from tests.servers import free_port

CORPUS = Path(__file__).parent / "corpus"


def count(desk, model) -> int:
    with desk.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def bouncing(desk) -> list[tuple[str, int]]:
    with desk.sessions() as s:
        rows = s.scalars(select(Participant).where(Participant.bouncing.is_(True)))
        return [(p.address, p.ticket_id) for p in rows]


def two_tickets_and_their_acks(desk, smtp_sink):
    desk.pipeline.process_one(make_mail(sender="nobody@example.org", subject="Where is my order"))
    desk.pipeline.process_one(make_mail(sender="other@example.org", subject="Another one"))
    send_all(desk)
    return {r.rcpt_tos[0]: r for r in smtp_sink.received if r.rcpt_tos[0].endswith(".org")}


def exim_bounce(to: str, failed: str) -> bytes:
    """A free-text bounce that returns none of our headers: only where it arrived says
    which ticket it is about."""
    return f"""Return-Path: <>
Delivered-To: {to}
From: Mail Delivery System <Mailer-Daemon@mx.example.org>
To: {to}
Subject: Mail delivery failed: returning message to sender
Message-ID: <E1bounce-0001@mx.example.org>
Auto-Submitted: auto-replied

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {failed}
    host mx.example.org [192.0.2.25]
    SMTP error from remote mail server after RCPT TO:<{failed}>:
    550 5.1.1 <{failed}>: Recipient address rejected: User unknown
""".replace("\n", "\r\n").encode()


def test_a_bounce_of_our_notification_through_the_return_path_lands_on_its_ticket(
    make_desk, smtp_sink
):
    desk = make_desk(extra=smtp_sink.smtp_config())
    acks = two_tickets_and_their_acks(desk, smtp_sink)
    ack = acks["nobody@example.org"]
    assert ack.mail_from.startswith("support+bounces.md-1.")  # the ticket's signed VERP
    assert acks["other@example.org"].mail_from.startswith("support+bounces.md-2.")

    result = desk.pipeline.process_one(exim_bounce(ack.mail_from, "nobody@example.org"))
    assert (result.outcome, result.ticket_ref, result.notifications) == ("added", "MD-1", [])
    assert bouncing(desk) == [("nobody@example.org", 1)]
    with desk.sessions() as s:
        event = s.scalars(select(Event).where(Event.kind == "bouncing")).one()
        assert (event.ticket_id, event.new) == (1, "nobody@example.org")
        assert event.reason.startswith("5.1.1")
        note = s.scalars(select(Message).where(Message.kind == "bounce")).one()
        assert (note.ticket_id, note.internal) == (1, True)
    assert count(desk, Ticket) == 2


def test_a_forged_bounce_naming_a_ticket_in_its_headers_touches_no_ticket(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    two_tickets_and_their_acks(desk, smtp_sink)
    forged = make_mail(
        sender="MAILER-DAEMON@mx.evil.example",
        subject="Undelivered Mail Returned to Sender [MD-1]",
        body="X-Maildesk-Ticket: MD-1\nMessage-ID: <anything@example.com>\n\n550 5.1.1 gone",
        headers={"X-Maildesk-Ticket": "MD-1", "Return-Path": "<>"},
    )
    result = desk.pipeline.process_one(forged)
    assert (result.outcome, result.automatic_kind) == ("automatic", "bounce")
    assert bouncing(desk) == []
    assert count(desk, Ticket) == 2
    with desk.sessions() as s:
        assert s.scalars(select(Message).where(Message.kind == "bounce")).all() == []


def test_a_bounce_to_a_return_path_with_a_wrong_signature_is_kept_apart(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    acks = two_tickets_and_their_acks(desk, smtp_sink)
    good = acks["nobody@example.org"].mail_from
    local, _, domain = good.partition("@")
    forged = f"{local[:-4]}aaaa@{domain}"
    result = desk.pipeline.process_one(exim_bounce(forged, "nobody@example.org"))
    assert result.outcome == "automatic"
    assert bouncing(desk) == []


def ses_bounce(message_id: str, recipient: str, kind: str = "Bounce") -> bytes:
    inner = {
        "notificationType": kind,
        "mail": {"headers": [{"name": "Message-ID", "value": message_id}]},
        "bounce": {
            "bounceType": "Permanent",
            "bouncedRecipients": [
                {"emailAddress": recipient, "status": "5.0.0",
                 "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
            ],
        },
        "complaint": {"complainedRecipients": [{"emailAddress": recipient}]},
    }  # fmt: skip
    body = json.dumps({"Type": "Notification", "Message": json.dumps(inner)}, indent=2)
    return make_mail(
        sender="AWS Notifications <no-reply@sns.amazonaws.com>",
        subject="AWS Notification Message",
        body=body,
        headers={"x-amz-sns-message-id": "1b2c"},
    )


def test_an_ses_bounce_of_our_notification_lands_on_its_ticket(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    acks = two_tickets_and_their_acks(desk, smtp_sink)
    ack = acks["other@example.org"].parsed()
    result = desk.pipeline.process_one(ses_bounce(str(ack["Message-ID"]), "other@example.org"))
    assert (result.outcome, result.ticket_ref) == ("added", "MD-2")
    assert bouncing(desk) == [("other@example.org", 2)]
    with desk.sessions() as s:
        reason = s.scalars(select(Event.reason).where(Event.kind == "bouncing")).one()
    assert reason.startswith("5.1.1")  # the diagnostic's code, not SES's generic 5.0.0


def test_a_complaint_about_our_notification_is_logged_and_flags_nobody(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    acks = two_tickets_and_their_acks(desk, smtp_sink)
    ack = acks["nobody@example.org"].parsed()
    complaint = ses_bounce(str(ack["Message-ID"]), "nobody@example.org", kind="Complaint")
    result = desk.pipeline.process_one(complaint)
    assert (result.outcome, result.ticket_ref) == ("added", "MD-1")
    assert bouncing(desk) == []
    with desk.sessions() as s:
        event = s.scalars(select(Event).where(Event.kind == "complaint")).one()
    assert "nobody@example.org: complained" in event.reason


def test_list_mail_is_a_ticket_agents_hear_of_not_an_auto_reply_to_another_ticket(desk):
    desk.pipeline.process_one(make_mail(sender="anna@customer.example", subject="Invoice"))
    group = {
        "Precedence": "list",
        "List-Id": "<help.groups.example.com>",
        "X-Google-Group-Id": "123456789012",
    }
    post = desk.pipeline.process_one(
        make_mail(sender="anna@customer.example", subject="Login broken", headers=group)
    )
    other = desk.pipeline.process_one(
        make_mail(sender="ben@elsewhere.example", subject="Export fails", headers=group)
    )
    # Before: a silent note on MD-1, the ticket we last wrote Anna about.
    assert [(r.outcome, r.ticket_ref) for r in (post, other)] == [
        ("created", "MD-2"),
        ("created", "MD-3"),
    ]
    rows = outbox_rows(desk)
    by_ticket = {t: sorted(r.template for r in rows if r.ticket_id == t) for t in (2, 3)}
    assert by_ticket == {2: ["new_ticket", "new_ticket"], 3: ["new_ticket", "new_ticket"]}


def test_a_robot_requester_gets_no_acknowledgement(desk):
    result = desk.pipeline.process_one(
        make_mail(sender="Shop <noreply@shop.example>", subject="Order 4711: payment failed")
    )
    assert result.outcome == "created"
    assert sorted(r.template for r in outbox_rows(desk)) == ["new_ticket", "new_ticket"]


def out_of_office(n: int = 1) -> bytes:
    return make_mail(
        sender="away@example.net",
        subject="Automatic reply: our newsletter",
        message_id=f"<ooo-{n}@example.net>",
        headers={"Auto-Submitted": "auto-replied"},
    )


def test_automatic_mail_is_kept_once_per_message(desk):
    first = desk.pipeline.process_one(out_of_office(), SourceInfo("support", 1, 1))
    again = desk.pipeline.process_batch(
        [
            (out_of_office(), SourceInfo("support", 1, 2)),
            (out_of_office(), SourceInfo("support", 1, 3)),
        ]
    )
    assert (first.outcome, first.automatic_kind) == ("automatic", "auto_reply")
    assert [(r.outcome, r.automatic_id) for r in again] == [("duplicate", first.automatic_id)] * 2
    assert count(desk, AutomaticMail) == 1 and count(desk, Ticket) == 0


def test_automatic_list_and_show(desk_dir, tmp_path):
    eml = tmp_path / "ooo.eml"
    eml.write_bytes(out_of_office())
    ingested = run_maildesk(desk_dir, "ingest", str(eml))
    assert ingested.exit_code == 0 and "automatic automatic #1" in ingested.output
    listed = run_maildesk(desk_dir, "automatic", "list")
    assert "auto_reply" in listed.output and "away@example.net" in listed.output
    rows = json.loads(run_maildesk(desk_dir, "automatic", "list", "--json").output)
    assert [(r["id"], r["kind"], r["from"]) for r in rows] == [
        (1, "auto_reply", "away@example.net")
    ]
    shown = json.loads(run_maildesk(desk_dir, "automatic", "show", "1").output)
    assert shown["reason"] == "Auto-Submitted: auto-replied"
    raw = run_maildesk(desk_dir, "automatic", "show", "1", "--raw")
    assert raw.stdout_bytes == eml.read_bytes()
    missing = run_maildesk(desk_dir, "automatic", "show", "9")
    assert missing.exit_code != 0
    assert "automatic list" in str(missing.exception) + missing.output
    assert run_maildesk(desk_dir, "tickets", "list", "--json").output.strip() == "[]"


def test_automatic_mail_is_purged_after_the_configured_days(make_desk, clock):
    desk = make_desk(extra="limits:\n  automatic_keep_days: 2\n")
    kept = desk.pipeline.process_one(out_of_office(1))
    clock.advance(days=1)
    desk.pipeline.process_one(out_of_office(2))
    clock.advance(days=1, hours=1)
    report = Scheduler(desk, holder="test").run_once()
    assert report.purged == 1
    with desk.sessions() as s:
        left = s.scalars(select(AutomaticMail.id)).all()
        assert kept.automatic_id not in left and len(left) == 1
        assert desk.blobs.exists(
            s.get(AutomaticMail, left[0]).raw_sha256, s
        )  # the younger one's bytes stay


def test_automatic_mail_is_counted_in_the_metrics(desk):
    server = metrics_server.serve(free_port(), desk.config.database_url(), address="127.0.0.1")
    try:
        before = scrape(server.port)
        desk.pipeline.process_one(out_of_office())
        after = scrape(server.port)
    finally:
        server.close()
    name = 'maildesk_automatic_mail_total{kind="auto_reply"}'
    assert after[name] - before.get(name, 0.0) == 1
    assert after["maildesk_automatic_mail_kept"] == 1


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


PROBE = b"X-Probe: report-read-in-the-daemon\r\n"


def test_reports_are_read_in_the_parser_child_and_travel_on_the_parsed_message(desk, monkeypatch):
    """flufl.bounce's scan, SES JSON and ARF parts are read where the parser runs; the
    daemon takes what the parse carried back (it fails here if it reads a report itself)."""
    feed = email.feedparser.FeedParser.feed

    def guarded(self, data):
        if PROBE.decode().strip() in data:
            raise AssertionError("a report's bytes were parsed in the daemon process")
        return feed(self, data)

    def not_here(*args, **kwargs):
        raise AssertionError("a report was read in the daemon process")

    monkeypatch.setattr(email.feedparser.FeedParser, "feed", guarded)
    monkeypatch.setattr(bounce_text, "all_failures", not_here)
    monkeypatch.setattr(delivery_status, "other_report", not_here)
    shapes = CORPUS / "automatic" / "shapes"
    mails = [
        exim_bounce("support@example.com", "gone@example.net"),
        ses_bounce("<md-9.00112233445566778899@elsewhere.example>", "nina@mailbox.example"),
        (shapes / "complaint-arf-in-mixed.eml").read_bytes(),
        (CORPUS / "automatic" / "flufl" / "simple_22.txt").read_bytes(),  # only flufl sees it
    ]
    results = desk.pipeline.process_batch([(PROBE + m, SourceInfo("test")) for m in mails])
    assert [(r.outcome, r.automatic_kind) for r in results] == [
        ("automatic", "bounce"),
        ("automatic", "bounce"),
        ("automatic", "complaint"),
        ("automatic", "delay"),  # a delivery warning
    ]
    with desk.sessions() as s:
        rows = s.scalars(select(AutomaticMail).order_by(AutomaticMail.id)).all()
    said = [[(r["address"], r["status"]) for r in row.details["recipients"]] for row in rows]
    assert said[:3] == [[("gone@example.net", "5.1.1")], [("nina@mailbox.example", "5.1.1")], []]
    assert rows[1].details["original_message_id"] == "md-9.00112233445566778899@elsewhere.example"
    assert rows[2].details["original_message_id"] == "md-7.0123456789abcdef@example.com"
    assert [a for a, _ in said[3]] == ["user@example.org"]
