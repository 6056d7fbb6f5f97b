"""The foundation's promises, through the real pipeline on SQLite."""

from __future__ import annotations

import email
import email.policy
import hashlib

from sqlalchemy import func, select

from maildesk.outgoing.render_jobs import render_entry
from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import Attachment, Blob, Message, OutboxEntry, QuarantineEntry, Ticket
from maildesk.store.queries import ticket_detail
from tests.conftest import make_mail


def count(desk, model) -> int:
    with desk.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_new_message_opens_ticket_and_queues_acknowledgement(desk):
    result = desk.pipeline.process_one(make_mail(subject="Printer on fire"))
    assert result.outcome == "created"
    assert result.ticket_ref == "MD-1"
    with desk.sessions() as s:
        ticket = s.scalars(select(Ticket)).one()
        assert (ticket.subject, ticket.status, ticket.queue, ticket.requester) == (
            "Printer on fire",
            "new",
            "general",
            "customer@example.org",
        )
        ack = s.scalars(select(OutboxEntry).where(OutboxEntry.template == "ack")).one()
        raw = render_entry(ack, desk.renderer, desk.config, desk.blobs)
    sent = email.message_from_bytes(raw, policy=email.policy.default)
    assert sent["To"].addresses[0].addr_spec == "customer@example.org"
    assert "[MD-1]" in sent["Subject"]
    assert sent["Auto-Submitted"] == "auto-replied"


def test_same_message_twice_is_stored_once(desk):
    raw = make_mail(message_id="<dup-1@example.org>")
    first = desk.pipeline.process_one(raw)
    second = desk.pipeline.process_one(raw)
    assert (first.outcome, second.outcome) == ("created", "duplicate")
    assert second.ticket_ref == first.ticket_ref
    assert count(desk, Message) == 1
    assert count(desk, Ticket) == 1


def test_same_content_without_message_id_is_stored_once(desk):
    raw = make_mail(message_id=None)
    assert desk.pipeline.process_one(raw).outcome == "created"
    assert desk.pipeline.process_one(raw).outcome == "duplicate"
    assert count(desk, Message) == 1


def test_redelivery_with_other_received_headers_is_a_duplicate(desk):
    raw = make_mail(message_id="<same@example.org>")
    desk.pipeline.process_one(raw)
    again = (
        b"Received: from relay2.example.net by mx.example.com; Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        + raw
    )
    assert desk.pipeline.process_one(again).outcome == "duplicate"
    assert count(desk, Message) == 1


def test_reply_with_subject_token_lands_on_ticket(desk):
    desk.pipeline.process_one(make_mail(subject="First"))
    desk.pipeline.process_one(make_mail(subject="Other request", sender="x@example.net"))
    reply = desk.pipeline.process_one(
        make_mail(subject="RE: AW: Отв: [md - 1] First", message_id="<r1@example.org>")
    )
    assert (reply.outcome, reply.ticket_ref) == ("added", "MD-1")


def test_reply_with_only_in_reply_to_lands_on_ticket(desk):
    desk.pipeline.process_one(make_mail(subject="Original", message_id="<orig@example.org>"))
    reply = desk.pipeline.process_one(
        make_mail(subject="something else entirely", in_reply_to="<orig@example.org>")
    )
    assert (reply.outcome, reply.ticket_ref) == ("added", "MD-1")


def test_reply_to_our_notification_threads_by_references(desk):
    created = desk.pipeline.process_one(make_mail(subject="Hello"))
    ack_id = created.notifications[0]
    reply = desk.pipeline.process_one(
        make_mail(subject="no token here", references=f"<unknown@x> <{ack_id}>")
    )
    assert reply.ticket_ref == "MD-1"


def test_unparseable_file_is_quarantined_and_next_file_still_processes(desk):
    bad = desk.pipeline.process_one(b"\x00\x01\x02\xff garbage without headers \x00")
    good = desk.pipeline.process_one(make_mail(subject="After the garbage"))
    assert bad.outcome == "quarantined" and bad.quarantine_id
    assert "no headers" in bad.reason
    assert good.outcome == "created"
    with desk.sessions() as s:
        entry = s.get(QuarantineEntry, bad.quarantine_id)
        assert entry.stage == "parse"
        assert desk.blobs.get(entry.raw_sha256, s).startswith(b"\x00\x01\x02")


def test_bad_message_in_a_batch_does_not_spoil_the_others(desk):
    items = [
        (make_mail(subject="one"), SourceInfo()),
        (b"", SourceInfo()),
        (make_mail(subject="three"), SourceInfo()),
    ]
    results = desk.pipeline.process_batch(items)
    assert [r.outcome for r in results] == ["created", "quarantined", "created"]
    assert count(desk, Ticket) == 2


def test_failure_inside_processing_is_quarantined_with_reason(desk, monkeypatch):
    import maildesk.service.pipeline as pipeline_module

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline_module, "write_plans", explode)
    result = desk.pipeline.process_one(make_mail())
    assert result.outcome == "quarantined"
    assert "RuntimeError: disk on fire" in result.reason
    assert count(desk, Ticket) == 0  # the savepoint rolled the half-done work back


def test_quarantine_retry_ingests_once_fixed(desk, monkeypatch):
    import maildesk.service.pipeline as pipeline_module
    from maildesk.service.quarantine_retry import retry_entry

    real = pipeline_module.write_plans
    monkeypatch.setattr(pipeline_module, "write_plans", lambda *a, **k: 1 / 0)
    held = desk.pipeline.process_one(make_mail(subject="Retry me"))
    assert held.outcome == "quarantined"
    monkeypatch.setattr(pipeline_module, "write_plans", real)
    result = retry_entry(desk, held.quarantine_id)
    assert (result.outcome, result.ticket_ref) == ("created", "MD-1")
    with desk.sessions() as s:
        entry = s.get(QuarantineEntry, held.quarantine_id)
        assert (entry.status, entry.ticket_ref) == ("released", "MD-1")


def test_attachments_round_trip_byte_exact_with_safe_names(make_desk):
    # A small inline limit sends the big attachment to a file and keeps the small one in the DB.
    desk = make_desk(extra="storage: {path: data, inline_max_bytes: 5000}")
    png = bytes(range(256)) * 40
    passwd = b"root:x:0:0\n"
    raw = make_mail(
        attachments=[
            ("../../etc/passwd", "application/octet-stream", passwd),
            ("pic.png", "image/png", png),
        ]
    )
    desk.pipeline.process_one(raw)
    with desk.sessions() as s:
        atts = {a.filename: a for a in s.scalars(select(Attachment))}
        assert set(atts) == {"passwd", "pic.png"}
        assert desk.blobs.get(atts["pic.png"].sha256, s) == png
        assert atts["pic.png"].sha256 == hashlib.sha256(png).hexdigest()
        assert desk.blobs.get(atts["passwd"].sha256, s) == passwd
    on_disk = {p.name for p in desk.blobs.root.rglob("*") if p.is_file()}
    assert hashlib.sha256(png).hexdigest() in on_disk  # big: a file named by its hash
    assert hashlib.sha256(passwd).hexdigest() not in on_disk  # small: in the database
    assert not any("passwd" in name for name in on_disk)


def test_same_attachment_in_two_messages_is_stored_once(desk):
    data = b"%PDF-1.4 invoice" * 100
    desk.pipeline.process_one(make_mail(attachments=[("a.pdf", "application/pdf", data)]))
    desk.pipeline.process_one(make_mail(attachments=[("b.pdf", "application/pdf", data)]))
    digest = hashlib.sha256(data).hexdigest()
    with desk.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Blob).where(Blob.sha256 == digest)) == 1
        assert s.scalar(select(func.count()).select_from(Attachment)) == 2


def test_imap_uid_is_ingested_once_even_if_message_differs(desk):
    source = SourceInfo(source="support", uidvalidity=7, uid=42)
    assert desk.pipeline.process_one(make_mail(), source).outcome == "created"
    assert desk.pipeline.process_one(make_mail(), source).outcome == "duplicate"
    assert count(desk, Ticket) == 1


def test_every_change_is_in_the_event_log(desk):
    desk.pipeline.process_one(make_mail(subject="Log me", message_id="<log@example.org>"))
    with desk.sessions() as s:
        detail = ticket_detail(s, "MD-1")
    kinds = [e["kind"] for e in detail["events"]]
    assert kinds[0] == "created"
    assert detail["events"][0]["actor"] == "customer@example.org"


def test_batches_read_ahead_thread_into_tickets_of_earlier_batches(desk):
    """process_batches reads batch k+1 while k is written; k+1 still sees k's tickets."""
    first = [
        make_mail(subject=f"Request {i}", message_id=f"<req-{i}@example.org>") for i in range(3)
    ]
    replies = [
        make_mail(
            subject="Re: Request 1",
            message_id="<re-1@example.org>",
            in_reply_to="<req-1@example.org>",
        ),
        make_mail(subject="Re: [MD-3] Request 2", message_id="<re-2@example.org>"),
    ]
    again = [first[0], make_mail(subject="Another one", message_id="<new@example.org>")]
    batches = [[(raw, SourceInfo("test")) for raw in batch] for batch in (first, replies, again)]
    results = list(desk.pipeline.process_batches(iter(batches)))
    outcomes = [[(r.outcome, r.ticket_ref) for r in batch] for batch in results]
    assert outcomes == [
        [("created", "MD-1"), ("created", "MD-2"), ("created", "MD-3")],
        [("added", "MD-2"), ("added", "MD-3")],
        [("duplicate", "MD-1"), ("created", "MD-4")],
    ]
    assert count(desk, Message) == 6


def test_a_message_that_keeps_failing_to_store_is_quarantined_and_its_batch_goes_on(
    desk, monkeypatch
):
    """A poison message: every write of it hits an integrity error, even one by one."""
    from sqlalchemy.exc import IntegrityError

    from maildesk.service import pipeline

    real_write = pipeline.write_plans

    def write(session, plans, config, blobs):
        if any(p.msg.subject == "Poison" for p in plans):
            raise IntegrityError("INSERT INTO messages", {}, Exception("UNIQUE constraint failed"))
        real_write(session, plans, config, blobs)

    monkeypatch.setattr(pipeline, "write_plans", write)
    results = desk.pipeline.process_batch(
        [
            (make_mail(subject="First"), SourceInfo()),
            (make_mail(subject="Poison"), SourceInfo()),
            (make_mail(subject="Third"), SourceInfo()),
        ]
    )
    assert [r.outcome for r in results] == ["created", "quarantined", "created"]
    assert "integrity error" in results[1].reason and "then IntegrityError" in results[1].reason
    with desk.sessions() as s:
        assert sorted(s.scalars(select(Ticket.subject))) == ["First", "Third"]
        held = s.scalars(select(QuarantineEntry)).one()
        assert (held.subject, held.stage) == ("Poison", "store")
