"""Size limits, streaming of big mail, and the per-message processing time limit."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import random

import pytest
from sqlalchemy import select

from maildesk.intake.parse import parse_message
from maildesk.intake.skeleton import cut_skeleton
from maildesk.outgoing.render_jobs import render_entry
from maildesk.store.models import Attachment, Event, Message, OutboxEntry, Ticket
from tests.conftest import make_mail
from tests.corpus_cases import file_cases, generated_cases, nested


def _limits(**values: object) -> str:
    return "limits:\n" + "".join(f"  {k}: {v}\n" for k, v in values.items())


def _big_mail(size: int, *, mid: str = "<big@example.org>") -> tuple[bytes, bytes]:
    payload = random.Random(size).randbytes(size)
    raw = make_mail(
        subject="Logs attached",
        message_id=mid,
        body="The logs are attached.",
        attachments=[("logs.bin", "application/octet-stream", payload)],
    )
    return raw, payload


def _outbox(desk, template):
    with desk.sessions() as s:
        return s.scalars(select(OutboxEntry).where(OutboxEntry.template == template)).all()


def test_oversized_message_is_stored_raw_tagged_and_requester_told(make_desk):
    desk = make_desk(extra=_limits(max_message_bytes=100_000))
    raw, _ = _big_mail(200_000)
    result = desk.pipeline.process_file(io.BytesIO(raw))
    assert result.outcome == "created"
    with desk.sessions() as s:
        ticket = s.scalars(select(Ticket)).one()
        message = s.scalars(select(Message)).one()
        assert "oversized" in ticket.tags
        assert "over the 98 KB limit" in message.text_body
        assert message.raw_size == len(raw)
        assert s.scalars(select(Attachment)).all() == []
    assert desk.blobs.get(message.raw_sha256) == raw  # kept whole, byte for byte
    (notice,) = _outbox(desk, "oversized")
    assert notice.to_addr == "customer@example.org"
    assert b"too large for us to read" in render_entry(
        notice, desk.renderer, desk.config, desk.blobs
    )


def test_oversized_message_keeps_only_headers_when_configured(make_desk):
    desk = make_desk(extra=_limits(max_message_bytes=100_000, oversized_keep="headers"))
    raw, payload = _big_mail(200_000)
    desk.pipeline.process_file(io.BytesIO(raw))
    with desk.sessions() as s:
        message = s.scalars(select(Message)).one()
    kept = desk.blobs.get(message.raw_sha256)
    assert kept.startswith(b"From: Customer") and b"Subject: Logs attached" in kept
    assert len(kept) < 2000
    chunk = base64.b64encode(payload[:3000])[:200]
    for path in desk.blobs.root.rglob("*"):  # the body went nowhere
        assert not path.is_file() or chunk not in path.read_bytes()


def test_attachment_over_limit_is_dropped_with_a_note_and_a_notice(make_desk):
    desk = make_desk(extra=_limits(max_attachment_bytes=10_000))
    raw = make_mail(
        subject="Two files",
        attachments=[
            ("small.txt", "text/plain", b"small"),
            ("video.mp4", "video/mp4", b"v" * 50_000),
        ],
    )
    desk.pipeline.process_one(raw)
    with desk.sessions() as s:
        names = [a.filename for a in s.scalars(select(Attachment))]
        notes = s.scalars(select(Event.reason).where(Event.kind == "size_limit")).all()
    assert names == ["small.txt"]
    assert notes == [
        "attachment 'video.mp4' (49 KB) not kept: larger than the 10 KB attachment limit"
    ]
    (notice,) = _outbox(desk, "oversized")
    assert b"video.mp4 (49 KB)" in render_entry(notice, desk.renderer, desk.config, desk.blobs)


@pytest.mark.parametrize("isolate", ["true", "false"])
def test_big_message_streams_to_the_store_and_leaves_no_spool_files(make_desk, isolate):
    desk = make_desk(extra=_limits(max_message_bytes=50_000_000, isolate_parser=isolate))
    desk.pipeline.reader.skeleton_from = 1 << 20
    raw, payload = _big_mail(3_000_000)
    result = desk.pipeline.process_file(io.BytesIO(raw))
    assert result.outcome == "created"
    with desk.sessions() as s:
        (att,) = s.scalars(select(Attachment)).all()
        message = s.scalars(select(Message)).one()
    assert (att.filename, att.size) == ("logs.bin", len(payload))
    assert desk.blobs.get(att.sha256) == payload
    assert message.text_body.strip() == "The logs are attached."
    assert desk.blobs.get(message.raw_sha256) == raw
    assert list((desk.blobs.root / ".tmp").iterdir()) == []


def test_big_message_from_a_file_path_via_cli(make_desk, tmp_path):
    from click.testing import CliRunner

    from maildesk.cli import cli

    desk = make_desk(extra=_limits(max_message_bytes=50_000_000))
    raw, payload = _big_mail(5_000_000)
    path = tmp_path / "big.eml"
    path.write_bytes(raw)
    config = desk.config.source
    out = CliRunner().invoke(cli, ["--config", config, "ingest", str(path)])
    assert out.exit_code == 0, out.output
    assert "created MD-1" in out.output
    with desk.sessions() as s:
        (att,) = s.scalars(select(Attachment)).all()
    assert att.sha256 == hashlib.sha256(payload).hexdigest()


def _summary(msg):
    atts = sorted(
        (a.filename, a.content_type, None if a.content_type.startswith("message/") else a.sha256)
        for a in msg.attachments
    )
    return msg.subject, msg.text, msg.html, atts, msg.from_addr, msg.message_id


# Well-formed generated cases; on broken MIME the two readers may differ (both keep the raw).
_STREAMED = ("uuencode-inline-good", "filename-", "500-attachments", "multipart-digest")
_STREAMED += ("smime-opaque", "html-", "text-as-attachment", "rfc2231", "content-id", "nul-bytes")


@pytest.mark.parametrize(
    "case",
    file_cases() + [c for c in generated_cases() if any(k in c.name for k in _STREAMED)],
    ids=lambda c: c.name,
)
def test_streaming_reader_reads_mail_as_the_parser_does(case, tmp_path):
    """With every part cut out to the store, the result matches parsing in memory."""
    from maildesk.intake.large_mail import expand_stored_tnef
    from maildesk.store.blobs import BlobStore

    blobs = BlobStore(tmp_path, fsync=False)
    direct = parse_message(case.raw)
    skeleton = cut_skeleton(
        io.BytesIO(case.raw),
        blobs,
        spill_bytes=8,
        max_attachment_bytes=10**9,
        body_spill_bytes=10**9,
    )
    streamed = parse_message(skeleton.data, spilled=skeleton.spilled)
    expand_stored_tnef(streamed, blobs, 10**9)
    assert _summary(streamed) == _summary(direct)


def test_slow_message_is_quarantined_and_the_next_one_goes_through(make_desk):
    desk = make_desk(extra=_limits(processing_seconds=0.2))
    slow = nested(90, 60_000, "slow-1")  # seconds of work for the stdlib parser
    result = desk.pipeline.process_one(slow)
    assert (result.outcome, result.reason) == ("quarantined", "processing took longer than 0.2 s")
    # A fresh parser child starts for the next message; give it room on a loaded machine.
    relaxed = desk.config.limits.model_copy(update={"processing_seconds": 30})
    desk.pipeline.reader.config = desk.config.model_copy(update={"limits": relaxed})
    assert desk.pipeline.process_one(make_mail(subject="Next")).outcome == "created"
    # The stuck child was killed, not put back: every idle child is alive and answers.
    assert all(worker.alive() for worker in desk.pipeline.reader.parser.idle)


def test_slow_message_is_quarantined_when_parsing_in_process(make_desk):
    desk = make_desk(extra=_limits(processing_seconds=0.2, isolate_parser="false"))
    result = desk.pipeline.process_one(nested(90, 60_000, "slow-2"))
    assert (result.outcome, result.reason) == ("quarantined", "processing took longer than 0.2 s")
    assert desk.pipeline.process_one(make_mail(subject="Next")).outcome == "created"


def test_a_crashing_parser_child_is_quarantined_not_fatal(make_desk):
    desk = make_desk()
    parser = desk.pipeline.reader.parser
    worker = parser._acquire()  # a child that dies before it answers
    os.kill(worker.process.pid, 9)
    worker.process.wait()
    parser.idle.append(worker)
    # The dead idle child is noticed and replaced; the message is parsed normally.
    assert desk.pipeline.process_one(make_mail(subject="After a crash")).outcome == "created"
