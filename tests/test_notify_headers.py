"""Outgoing headers, Outlook's Thread-Index, inbound screening and bounce reports."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from maildesk.common.thread_index import ROOT_BYTES, new_root, root_from_header, thread_index
from maildesk.intake.parse import parse_message
from maildesk.outgoing.compose import trim_references
from maildesk.triage.bounce import read_bounce
from maildesk.triage.screen import MailClass, screen_message
from tests.conftest import make_mail
from tests.mailflow import outbox_rows, parse

OUTLOOK_INDEX = "AdrBQ2VhqNRMwLQrS0OHn0A3OP7fhw=="  # as sent by Outlook for a new message


def test_request_from_outlook_keeps_its_conversation(desk):
    desk.pipeline.process_one(make_mail(headers={"Thread-Index": OUTLOOK_INDEX}))
    desk.pipeline.process_one(
        make_mail(sender="alice@example.com", subject="Re: [MD-1] Help please", body="Hi")
    )
    root = base64.b64decode(OUTLOOK_INDEX)
    for row in outbox_rows(desk):
        index = base64.b64decode(str(parse(row.raw)["Thread-Index"]))
        assert index[:ROOT_BYTES] == root  # Outlook shows our mail in the customer's thread
        assert (len(index) - ROOT_BYTES) % 5 == 0
        if row.audience == "requester":  # replies below the customer's message
            assert len(index) > ROOT_BYTES


def test_thread_index_children_follow_the_reader_depth():
    root = new_root(datetime(2026, 11, 23, tzinfo=UTC), "md-1.abc@example.com")
    later = datetime(2026, 11, 24, tzinfo=UTC)
    assert len(base64.b64decode(thread_index(root, 0, later))) == 22
    assert len(base64.b64decode(thread_index(root, 3, later))) == 37
    assert root_from_header(thread_index(root, 3, later)) == base64.b64encode(root).decode()
    assert root_from_header("not base64!") is None
    assert root_from_header(base64.b64encode(b"short").decode()) is None


def test_references_keep_the_root_and_the_newest():
    refs = [f"m{n}@example.org" for n in range(30)]
    trimmed = trim_references(refs)
    assert trimmed[0] == "m0@example.org" and trimmed[-1] == "m29@example.org"
    assert len(trimmed) == 20


def screen(raw: bytes) -> MailClass:
    return screen_message(
        parse_message(raw),
        own_domain="example.com",
        own_addresses=frozenset({"support@example.com"}),
    ).kind


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"Auto-Submitted": "no (typed by a person)"}, MailClass.PERSON),
        ({"Auto-Submitted": "auto-generated"}, MailClass.AUTO_REPLY),
        ({"X-Autoreply": "yes"}, MailClass.AUTO_REPLY),
        ({"Precedence": "junk"}, MailClass.LIST),
        ({"Precedence": "list"}, MailClass.LIST),
        ({"List-Unsubscribe": "<mailto:leave@lists.example.org>"}, MailClass.LIST),
        ({"X-Maildesk-Loop": "example.com"}, MailClass.OWN),
        ({"X-Maildesk-Loop": "vendor.example"}, MailClass.PERSON),
        ({"Return-Path": "<>"}, MailClass.BOUNCE),
    ],
)
def test_screening_signals(headers, kind):
    assert screen(make_mail(headers=headers)) is kind


def test_read_receipt_is_an_auto_reply_not_a_bounce():
    raw = (
        b"From: customer@example.org\r\nTo: support@example.com\r\nSubject: Read: [MD-1] x\r\n"
        b"Message-ID: <mdn@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n"
        b"--b\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Final-Recipient: rfc822; customer@example.org\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n"
        b"--b--\r\n"
    )
    assert screen(raw) is MailClass.AUTO_REPLY


def test_bounce_without_a_status_report_is_matched_by_our_headers_in_the_text():
    raw = make_mail(
        sender="MAILER-DAEMON@old.example.net",
        subject="failure notice",
        body=(
            "Hi. This is the qmail-send program at old.example.net.\n"
            "<gone@example.net>:\nSorry, no mailbox here by that name.\n\n"
            "--- Below this line is a copy of the message.\n\n"
            "Message-ID: <md-7.0123456789abcdef0123@example.com>\n"
            "X-Maildesk-Ticket: MD-7\n"
        ),
    )
    report = read_bounce(parse_message(raw), own_domain="example.com")
    assert report.original_message_id == "md-7.0123456789abcdef0123@example.com"
    assert report.ticket_ref == "MD-7"
    assert report.recipients == []


def test_status_report_lists_every_recipient():
    raw = (
        b"From: MAILER-DAEMON@mx.example.org\r\nTo: support@example.com\r\nSubject: Undeliverable\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.org\r\n\r\n"
        b"Final-Recipient: rfc822; one@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 unknown user\r\n\r\n"
        b"Final-Recipient: rfc822; two@example.org\r\nAction: delayed\r\nStatus: 4.4.7\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <md-3.aaaaaaaaaaaaaaaaaaaa@example.com>\r\nX-Maildesk-Ticket: MD-3\r\n"
        b"--b--\r\n"
    )
    report = read_bounce(parse_message(raw), own_domain="example.com")
    assert (report.original_message_id, report.ticket_ref) == (
        "md-3.aaaaaaaaaaaaaaaaaaaa@example.com",
        "MD-3",
    )
    assert [(r.address, r.action, r.status) for r in report.recipients] == [
        ("one@example.org", "failed", "5.1.1"),
        ("two@example.org", "delayed", "4.4.7"),
    ]
    assert [r.address for r in report.failed] == ["one@example.org"]
    assert report.recipients[0].diagnostic == "550 5.1.1 unknown user"


def test_message_ids_are_unique_random_and_not_repeated_by_a_forked_child():
    import os
    import re

    from maildesk.common.message_ids import new_message_id

    ids = [new_message_id("MD-7", "desk.example.com") for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert all(re.fullmatch(r"md-7\.[0-9a-f]{20}@desk\.example\.com", i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's next ID must not be the one the parent hands out next
        os.write(write, new_message_id("MD-7", "x").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 200).decode()
    assert child != new_message_id("MD-7", "x")


EXCHANGE_ID = (
    "DB9PR10MB5547A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6@DB9PR10MB5547.EURPRD10.PROD.OUTLOOK.COM"
)


def _raw_headers(raw: bytes) -> dict[str, str]:
    """Header lines as written (folds joined), not as the email package decodes them."""
    head = raw[: raw.index(b"\r\n\r\n")].decode("ascii").replace("\r\n ", " ")
    return {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in head.split("\r\n")}


@pytest.mark.parametrize(
    "message_id",
    [EXCHANGE_ID, "CAJbx5L=Gq0Xk1+ZpL7vQ2m=ab@mail.gmail.com"],
    ids=["exchange", "gmail"],
)
def test_long_and_gmail_message_ids_and_a_deep_thread_index_go_out_as_written(desk, message_id):
    # Mail clients compare Message-IDs as written: an Exchange Online id (87 characters)
    # or the Thread-Index of a long conversation must not come out as an encoded word,
    # and a Gmail id with "=" must not be dropped, or the mail starts a thread apart.
    from maildesk.outgoing.render_jobs import render_entry

    desk.pipeline.process_one(make_mail(message_id=f"<{message_id}>"))
    (ack,) = [r for r in outbox_rows(desk) if r.audience == "requester"]
    written = _raw_headers(ack.raw)
    assert written["In-Reply-To"] == f"<{message_id}>"
    assert written["References"] == f"<{message_id}>"
    # Ten replies deep, as the conversation grows: the same row rendered again.
    deeper = [message_id, *(f"reply{n}.{message_id}" for n in range(9))]
    ack.headers = {**ack.headers, "references": deeper, "thread_depth": len(deeper)}
    ack.raw = None
    written = _raw_headers(render_entry(ack, desk.renderer, desk.config, desk.blobs))
    assert written["References"].split() == [f"<{i}>" for i in deeper]
    index = written["Thread-Index"]
    assert "=?" not in index and len(base64.b64decode(index)) == ROOT_BYTES + 5 * 10
    assert all(len(line) <= 998 for line in ack.raw.split(b"\r\n"))


def test_a_non_ascii_message_id_is_left_out_and_a_very_deep_thread_index_is_capped(desk):
    # Message-IDs are ASCII (RFC 5322); one that is not cannot be repeated as it is, and
    # must not stop the notification. A token is never folded, so the Thread-Index of a
    # conversation hundreds of replies deep is capped to keep its line under 998.
    from maildesk.outgoing.render_jobs import render_entry

    raw = "Message-ID: <café-1@example.org>\n".encode() + make_mail(message_id=None)
    desk.pipeline.process_one(raw)
    (ack,) = [r for r in outbox_rows(desk) if r.audience == "requester"]
    assert "In-Reply-To" not in _raw_headers(ack.raw)
    ack.headers = {**ack.headers, "references": [], "thread_depth": 400}
    ack.raw = None
    rendered = render_entry(ack, desk.renderer, desk.config, desk.blobs)
    assert all(len(line) <= 998 for line in rendered.split(b"\r\n"))
    index = base64.b64decode(_raw_headers(rendered)["Thread-Index"])
    assert len(index) == ROOT_BYTES + 5 * 100
