"""The hostile-mail corpus through the real pipeline: nothing crashes, nothing is lost.

Every case in tests/corpus_cases.py is fed to one desk, on SQLite and on PostgreSQL.
Each is either stored (and reads as a user would expect) or quarantined with a reason
a user can act on, and stored + quarantined always equals what was fed.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from sqlalchemy import func, select

from maildesk.outgoing.render_jobs import render_entry
from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import (
    AutomaticMail,
    Event,
    Message,
    OutboxEntry,
    QuarantineEntry,
    Ticket,
)
from tests.conftest import make_mail
from tests.corpus_cases import (
    MAX_ATTACHMENT,
    MAX_MESSAGE,
    PROCESSING_SECONDS,
    Case,
    all_cases,
    file_cases,
)

LIMITS = f"""
limits:
  max_message_bytes: {MAX_MESSAGE}
  max_attachment_bytes: {MAX_ATTACHMENT}
  processing_seconds: {PROCESSING_SECONDS}
"""


def corpus_desk(make_desk, database_url=None):
    desk = make_desk("corpus", database_url=database_url, extra=LIMITS)
    # Small thresholds, so the streaming reader for large mail sees part of the corpus too.
    desk.pipeline.reader.skeleton_from = 512 * 1024
    desk.pipeline.reader.spill_bytes = 64 * 1024
    return desk


def test_corpus_is_big_and_varied():
    cases = all_cases()
    assert len(cases) >= 100
    assert len({c.name for c in cases}) == len(cases)
    clients = Counter(c.name.split("-")[0] for c in file_cases())
    assert {"outlook", "gmail", "apple", "thunderbird"} <= set(clients)
    assert all(n >= 4 for k, n in clients.items() if k in ("outlook", "gmail", "apple"))


@pytest.mark.slow
def test_corpus_on_sqlite(make_desk):
    _run_corpus(corpus_desk(make_desk))


@pytest.mark.slow
@pytest.mark.postgres
def test_corpus_on_postgresql(make_desk, postgres_url):
    # PostgreSQL refuses NUL characters and over-long values that SQLite accepts.
    _run_corpus(corpus_desk(make_desk, postgres_url))


def _run_corpus(desk) -> None:
    cases = all_cases()
    results = {
        case.name: desk.pipeline.process_one(case.raw, SourceInfo(source=f"corpus:{case.name}"))
        for case in cases
    }
    outcomes = Counter(r.outcome for r in results.values())
    stored = outcomes["created"] + outcomes["added"]
    assert outcomes["duplicate"] == 0, "every corpus message is distinct"
    assert stored + outcomes["automatic"] + outcomes["quarantined"] == len(cases)
    with desk.sessions() as session:
        in_db = session.scalar(select(func.count()).select_from(Message))
        apart = session.scalar(select(func.count()).select_from(AutomaticMail))
        held = session.scalar(select(func.count()).select_from(QuarantineEntry))
    assert (in_db, apart, held) == (stored, outcomes["automatic"], outcomes["quarantined"])
    # The desk goes on working after all of that.
    after = desk.pipeline.process_one(make_mail(subject="After the corpus"))
    assert after.outcome == "created"
    problems = [p for case in cases for p in _check(desk, case, results[case.name])]
    assert not problems, "\n".join(problems)


def _check(desk, case: Case, result) -> list[str]:
    where = f"{case.name}:"
    if case.quarantine is not None:
        if result.outcome != "quarantined":
            return [f"{where} expected quarantine ({case.quarantine}), got {result.outcome}"]
        if case.quarantine not in result.reason:
            return [f"{where} quarantine reason {result.reason!r} lacks {case.quarantine!r}"]
        with desk.sessions() as session:
            entry = session.get(QuarantineEntry, result.quarantine_id)
            kept = desk.blobs.get(entry.raw_sha256)
        return [] if kept == case.raw else [f"{where} quarantined bytes differ from what was fed"]
    if case.automatic is not None or result.outcome == "automatic":
        return _check_automatic(desk, case, result)
    if not result.stored:
        return [f"{where} not stored: {result.outcome} {result.reason}"]
    with desk.sessions() as session:
        message = session.get(Message, result.message_pk)
        ticket = session.get(Ticket, message.ticket_id)
        attachments = sorted(message.attachments, key=lambda a: a.filename)
        notes = session.scalars(
            select(Event.reason).where(Event.ticket_id == ticket.id, Event.kind == "size_limit")
        ).all()
        return _check_stored(desk, case, message, ticket, attachments, notes)


def _check_automatic(desk, case: Case, result) -> list[str]:
    where = f"{case.name}:"
    if (result.outcome, result.automatic_kind) != ("automatic", case.automatic):
        return [f"{where} expected automatic {case.automatic}, got {result.outcome}"]
    with desk.sessions() as session:
        entry = session.get(AutomaticMail, result.automatic_id)
        kept = desk.blobs.get(entry.raw_sha256, session)
    problems = [] if kept == case.raw else [f"{where} kept bytes differ from what was fed"]
    if case.subject is not None and entry.subject != case.subject:
        problems.append(f"{where} subject {entry.subject!r} != {case.subject!r}")
    return problems


def _check_stored(desk, case, message, ticket, attachments, notes) -> list[str]:
    where = f"{case.name}:"
    problems = []
    if case.subject is not None and message.subject != case.subject:
        problems.append(f"{where} subject {message.subject!r} != {case.subject!r}")
    if case.sender is not None and message.from_addr != case.sender:
        problems.append(f"{where} sender {message.from_addr!r} != {case.sender!r}")
    problems += [f"{where} text lacks {t!r}" for t in case.text if t not in message.text_body]
    problems += [f"{where} text has {t!r}" for t in case.not_text if t in message.text_body]
    html = (message.html_body or "").lower()
    problems += [f"{where} html keeps {h!r}" for h in case.html_absent if h.lower() in html]
    names = [a.filename for a in attachments]
    if case.attachments is not None and names != sorted(case.attachments):
        problems.append(f"{where} attachments {names} != {sorted(case.attachments)}")
    for name in case.dropped:
        if not any(name in note for note in notes):
            problems.append(f"{where} no size_limit note for {name}")
    if (case.oversized or case.dropped) and "oversized" not in ticket.tags:
        problems.append(f"{where} ticket not tagged oversized")
    for att in attachments:
        data = desk.blobs.get(att.sha256)
        if (len(data), hashlib.sha256(data).hexdigest()) != (att.size, att.sha256):
            problems.append(f"{where} attachment {att.filename} blob does not match its row")
    for field in (message.subject, message.text_body, message.html_body or "", *names):
        if "\x00" in field:
            problems.append(f"{where} NUL character stored")
    if not desk.blobs.exists(message.raw_sha256):
        problems.append(f"{where} raw message not kept")
    return problems


@pytest.mark.slow
def test_corpus_senders_get_only_safe_notifications(make_desk):
    """Acks for the corpus: one header block each, no raw requester HTML echoed back."""
    desk = corpus_desk(make_desk)
    for case in all_cases():
        desk.pipeline.process_one(case.raw)
    import email
    import email.policy

    with desk.sessions() as session:
        # Rendered as the sender renders them before the first attempt.
        raws = [
            render_entry(e, desk.renderer, desk.config, desk.blobs)
            for e in session.scalars(select(OutboxEntry))
        ]
    assert raws
    for raw in raws:
        head = raw.split(b"\r\n\r\n", 1)[0]
        names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if line[:1] not in b" \t"]
        assert b"Bcc" not in names and len(names) == len(set(names)), head
        sent = email.message_from_bytes(raw, policy=email.policy.default)
        for part in sent.walk():
            if part.get_content_type() == "text/html":
                content = part.get_content().lower()
                assert "<script" not in content and "onerror" not in content
