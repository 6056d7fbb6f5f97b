"""Received bytes are read only in the parser child, within its time and memory limits."""

from __future__ import annotations

import email.feedparser
import hashlib
import random
import struct
import time

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from maildesk.common.config import LimitsConfig
from maildesk.intake import large_mail, mime_parts
from maildesk.intake.tnef import parse_tnef
from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import Attachment, AutomaticMail, Event, Message, QuarantineEntry
from tests.conftest import make_mail
from tests.corpus_cases import tiny_parts, tnef
from tests.forward_samples import forward_as_attachment
from tests.mailflow import outbox_rows, parse

PROBE = "received-bytes-probe"


def desk_source() -> SourceInfo:
    return SourceInfo(source="test")


def _limits(**values: object) -> str:
    return "limits:\n" + "".join(f"  {k}: {v}\n" for k, v in values.items())


@pytest.fixture
def no_parsing_here(monkeypatch):
    """Fail any parse, in this process, of mail that carries the probe header."""
    feed = email.feedparser.FeedParser.feed

    def guarded(self, data):
        if PROBE in data:
            raise AssertionError("received bytes were parsed in the daemon process")
        return feed(self, data)

    def no_tnef(data):
        raise AssertionError("a winmail.dat was read in the daemon process")

    monkeypatch.setattr(email.feedparser.FeedParser, "feed", guarded)
    monkeypatch.setattr(large_mail, "parse_tnef", no_tnef)
    monkeypatch.setattr(mime_parts, "parse_tnef", no_tnef)


def _bounce_returning(notification: bytes, padding: int) -> bytes:
    """A Postfix-style bounce that returns the whole notification, padded to be big."""
    returned = notification.rstrip(b"\r\n") + b"\r\n" + b"x" * 76 + b"\r\n"
    returned += (b"y" * 76 + b"\r\n") * (padding // 78)
    head = (
        "Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        f"To: support@example.com\r\nSubject: Undelivered Mail\r\nX-Probe: {PROBE}\r\n"
        "Message-ID: <dsn-big@mx.example.org>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        "Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        "--B\r\nContent-Type: message/rfc822\r\n\r\n"
    )
    return head.encode() + returned + b"--B--\r\n"


def test_bounces_big_mail_and_winmail_dat_are_read_in_the_child(make_desk, no_parsing_here):
    desk = make_desk()
    desk.pipeline.reader.skeleton_from = 64 << 10  # the large-message path, with small mail
    first = desk.pipeline.process_one(make_mail(sender="nobody@example.org", subject="Order"))
    (ack,) = [r for r in outbox_rows(desk) if r.to_addr == "nobody@example.org"]
    report = random.Random(7).randbytes(300_000)
    winmail = tnef([("report.pdf", report)])
    results = desk.pipeline.process_batch(
        [
            (_bounce_returning(ack.raw, 400_000), desk_source()),
            (
                make_mail(
                    subject="Rich text from Outlook",
                    headers={"X-Probe": PROBE},
                    attachments=[("winmail.dat", "application/ms-tnef", winmail)],
                ),
                desk_source(),
            ),
            (make_mail(subject="Plain", headers={"X-Probe": PROBE}), desk_source()),
        ]
    )
    assert [(r.outcome, r.ticket_ref) for r in results] == [
        ("added", first.ticket_ref),  # the bounce found the notification it returns ...
        ("created", "MD-2"),
        ("created", "MD-3"),
    ]
    with desk.sessions() as s:
        event = s.scalars(select(Event).where(Event.kind == "bouncing")).one()
        assert "5.1.1" in event.reason and parse(ack.raw)["Message-ID"].strip("<>") in event.reason
        files = {a.filename: a.sha256 for a in s.scalars(select(Attachment))}
    assert files["report.pdf"] == hashlib.sha256(report).hexdigest()  # ... and winmail.dat opened
    assert list((desk.blobs.root / ".tmp").iterdir()) == []  # no job folder left behind


def test_the_message_a_forward_carries_is_read_in_the_child(make_desk, no_parsing_here):
    # Anyone can put an agent's address on a "Fwd:" mail: the message it carries is read
    # by the parser child, within its limits, never by the daemon deciding about it.
    desk = make_desk()
    raw = forward_as_attachment(
        to=desk.config.tickets.support_address, original_headers={"X-Probe": PROBE}
    )
    assert PROBE.encode() in raw
    result = desk.pipeline.process_one(raw)
    assert result.outcome == "created", result.reason


def test_a_message_that_needs_too_much_memory_is_quarantined_and_the_batch_goes_on(make_desk):
    desk = make_desk(extra=_limits(parser_memory_bytes=64 << 20))
    bomb = tiny_parts(300_000)  # 2 MB that the stdlib parser turns into ~250 MB
    results = desk.pipeline.process_batch(
        [(bomb, desk_source()), *[(make_mail(subject=f"Fine {i}"), desk_source()) for i in (1, 2)]]
    )
    assert [(r.outcome, r.reason) for r in results] == [
        ("quarantined", "the message needs more than 64 MiB to parse"),
        ("created", ""),
        ("created", ""),
    ]
    assert desk.pipeline.process_one(make_mail(subject="Next")).outcome == "created"
    with desk.sessions() as s:  # what `quarantine list` shows: read from its headers only
        held = s.get(QuarantineEntry, results[0].quarantine_id)
        assert held.subject == "300000 parts" and held.from_addr


def _slow_tnef(attributes: int) -> bytes:
    """A winmail.dat of empty attributes: 11 bytes each, no line breaks, slow to walk."""
    empty = struct.pack("<BII", 2, 0x00018001, 0) + b"\0\0"
    return struct.pack("<IH", 0x223E9F78, 0) + empty * attributes


def _raw_mail(subject: str, body: bytes, content_type: str = "text/plain") -> bytes:
    return (
        b"From: Customer <customer@example.org>\r\nTo: support@example.com\r\n"
        + f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@example.org>\r\n".encode()
        + f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode()
        + body
    )


def _binary_attachment(name: str, data: bytes) -> bytes:
    parts = (
        b"--W\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        + f"--W\r\nContent-Type: application/ms-tnef; name={name}\r\n".encode()
        + b"Content-Transfer-Encoding: binary\r\n\r\n"
        + data
        + b"\r\n--W--\r\n"
    )
    return _raw_mail("Big winmail", parts, "multipart/mixed; boundary=W")


def test_a_slow_winmail_dat_in_a_big_message_is_stopped_by_the_time_limit(make_desk):
    desk = make_desk(extra=_limits(processing_seconds=0.5))
    big = _binary_attachment("winmail.dat", _slow_tnef(2_000_000))  # 22 MB: seconds to walk
    started = time.monotonic()
    results = desk.pipeline.process_batch(
        [(big, desk_source()), (make_mail(subject="After"), desk_source())]
    )
    assert [(r.outcome, r.reason) for r in results] == [
        ("quarantined", "processing took longer than 0.5 s"),
        ("created", ""),
    ]
    assert time.monotonic() - started < 30
    assert list((desk.blobs.root / ".tmp").iterdir()) == []


def test_a_winmail_dat_claiming_millions_of_values_is_read_quickly():
    # attAttachment records whose one multi-valued property claims 10,000 4-byte values.
    def attr(attr_id: int, value: bytes) -> bytes:
        return struct.pack("<BII", 2, attr_id, len(value)) + value + b"\0\0"

    claim = struct.pack("<IHHI", 1, 0x1003, 0x0001, 10_000)
    data = struct.pack("<IH", 0x223E9F78, 0) + attr(0x00069002, b"\0" * 4)
    data += attr(0x00069005, claim) * 5000  # 115 KB
    started = time.monotonic()
    parse_tnef(data)
    assert time.monotonic() - started < 1  # was 50 million loop turns: seconds per 100 KB


def test_a_bounce_crafted_to_backtrack_is_read_in_linear_time(make_desk):
    desk = make_desk(extra=_limits(processing_seconds=20))
    trap = b"<" + b"a@" * 100_000 + b" \r\n"  # no ">": each "@" was a new way to fail
    bounce = _raw_mail("failure notice", b"Your message was not delivered:\r\n" + trap)
    bounce = bounce.replace(b"customer@example.org", b"MAILER-DAEMON@mx.example.org")
    started = time.monotonic()
    results = desk.pipeline.process_batch(
        [(bounce, desk_source()), (make_mail(subject="Next"), desk_source())]
    )
    # A bounce about nothing of ours is kept apart from the tickets.
    assert [(r.outcome, r.automatic_kind) for r in results] == [
        ("automatic", "bounce"),
        ("created", ""),
    ]
    assert time.monotonic() - started < 15
    with desk.sessions() as s:
        assert s.scalars(select(AutomaticMail.kind)).all() == ["bounce"]


@pytest.mark.parametrize("value", [1, 1 << 20, (64 << 20) - 1])
def test_a_memory_limit_too_small_to_start_a_child_is_refused(value):
    with pytest.raises(ValidationError, match="at least 64 MiB"):
        LimitsConfig(parser_memory_bytes=value)
    assert LimitsConfig(parser_memory_bytes=0).parser_memory_bytes == 0  # 0: no limit


@pytest.mark.parametrize("isolate", ["true", "false"])
def test_a_big_message_whose_headers_alone_are_too_big_is_kept_unread(make_desk, isolate):
    desk = make_desk(extra=_limits(isolate_parser=isolate))
    desk.pipeline.reader.skeleton_from = 64 << 10
    junk = b"".join(b"X-Junk-%d: %s\r\n" % (i, b"j" * 100) for i in range(12_000))  # 1.3 MB
    raw = _raw_mail("Header flood", b"Hello\r\n").replace(b"MIME-Version", junk + b"MIME-Version")
    result = desk.pipeline.process_one(raw)
    assert result.outcome == "created"
    with desk.sessions() as s:
        message = s.scalars(select(Message)).one()
    assert "A header block is over 1 MB, too big to read" in message.text_body
    assert desk.blobs.get(message.raw_sha256) == raw
