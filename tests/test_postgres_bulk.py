"""PostgreSQL's batch writes (COPY, ids from the sequences, one statement for blobs and the
search index) store what SQLite stores, number tickets without gaps, and compress with lz4."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import Attachment, Event, Message, OutboxEntry, Participant, Ticket
from maildesk.store.search import search_tickets
from tests.conftest import make_mail

pytestmark = pytest.mark.postgres


def _batch(round_: int) -> list[tuple[bytes, SourceInfo]]:
    """New requests, replies by header and by token, Cc, attachments, non-ASCII text."""
    items = []
    for n in range(12):
        items.append(
            make_mail(
                sender=f"Клиент {n} <client{n}@example.org>",
                cc="boss@example.org" if n % 3 == 0 else None,
                subject=f"Заказ {round_}-{n} не пришёл",
                body=f"Здравствуйте, заказ {round_}-{n} не пришёл. Счёт во вложении.\n" * (n + 1),
                message_id=f"<r{round_}-{n}@example.org>",
                attachments=[("счёт.pdf", "application/pdf", bytes(range(256)) * 8)]
                if n % 4 == 0
                else None,
            )
        )
        if n % 2:
            items.append(
                make_mail(
                    sender=f"client{n}@example.org",
                    subject=f"Re: Заказ {round_}-{n}",
                    in_reply_to=f"<r{round_}-{n}@example.org>",
                    body="Any news?",
                )
            )
    items.append(make_mail(subject="Re: [MD-1] still waiting", sender="client0@example.org"))
    return [(raw, SourceInfo(source="box")) for raw in items]


def _contents(desk) -> dict[str, list[tuple]]:
    """What a reader of the desk would see, without random Message-IDs and signed addresses."""
    with desk.sessions() as s:
        messages = {m.id: m.dedup_key for m in s.scalars(select(Message))}
        return {
            "tickets": sorted(
                (
                    t.ref,
                    t.subject,
                    t.status,
                    t.queue,
                    t.requester,
                    t.requester_name,
                    t.created_at,
                    t.updated_at,
                    t.last_customer_at,
                    tuple(t.tags),
                    t.spam,
                    t.reopen_count,
                )
                for t in s.scalars(select(Ticket))
            ),
            "messages": sorted(
                (
                    m.ticket_id,
                    m.dedup_key,
                    m.subject,
                    m.from_name,
                    tuple(m.to_addrs),
                    tuple(m.cc_addrs),
                    m.text_body,
                    m.date,
                    m.created_at,
                    m.internal,
                    m.raw_size,
                    m.kind,
                    tuple(m.commands),
                )
                for m in s.scalars(select(Message))
            ),
            "attachments": sorted(
                (messages[a.message_id], a.filename, a.size, a.sha256, a.inline)
                for a in s.scalars(select(Attachment))
            ),
            "events": sorted(
                (e.ticket_id, e.at, e.kind, e.old or "", e.new or "", e.reason)
                for e in s.scalars(select(Event))
            ),
            "participants": sorted(
                (p.ticket_id, p.address, p.name, p.role, p.bouncing)
                for p in s.scalars(select(Participant))
            ),
            "outbox": sorted(
                (o.ticket_id, o.template, o.audience, o.to_addr, o.status, o.next_attempt_at)
                for o in s.scalars(select(OutboxEntry))
            ),
        }


def test_postgres_stores_what_sqlite_stores(make_desk, postgres_url, clock):
    lite = make_desk("lite")
    pg = make_desk("pg", database_url=postgres_url)
    for round_ in range(3):
        batch = _batch(round_)
        lite_results = lite.pipeline.process_batch(batch)
        pg_results = pg.pipeline.process_batch(batch)
        assert [(r.outcome, r.ticket_ref) for r in pg_results] == [
            (r.outcome, r.ticket_ref) for r in lite_results
        ]
        clock.advance(minutes=5)
    assert _contents(pg) == _contents(lite)
    for query in ("заказ 1-5", "счёт", "news"):  # the search index was filled as well
        with pg.sessions() as s, lite.sessions() as t:
            found = sorted(hit.ref for hit in search_tickets(s, query))
            assert found == sorted(hit.ref for hit in search_tickets(t, query))
            assert found


def _requests(desk, sizes: tuple[int, ...], tag: str) -> list[str]:
    refs = []
    for size in sizes:
        batch = [
            (
                make_mail(subject=f"{tag} {size}-{n}", sender=f"{tag}{size}x{n}@example.org"),
                SourceInfo(),
            )
            for n in range(size)
        ]
        refs += [r.ticket_ref for r in desk.pipeline.process_batch(batch)]
    return refs


def test_ticket_numbers_skip_at_most_15_when_a_daemon_stops(make_desk, postgres_url):
    first = make_desk("first", database_url=postgres_url)
    numbers = [int(ref[3:]) for ref in _requests(first, (1, 5, 40, 3), "a")]
    assert numbers == list(range(1, 50))  # no gaps while the daemon runs
    first.close()
    # A new daemon (another process, another engine) does not know the ids left over.
    second = make_desk("second", database_url=postgres_url)
    (ref,) = _requests(second, (1,), "b")
    assert 50 <= int(ref[3:]) <= 50 + 15


def test_two_daemons_never_hand_out_one_ticket_number_twice(make_desk, postgres_url):
    a = make_desk("a", database_url=postgres_url)
    b = make_desk("b", database_url=postgres_url)
    refs = []
    for round_ in range(4):
        refs += _requests(a, (7,), f"a{round_}") + _requests(b, (9,), f"b{round_}")
    assert len(set(refs)) == len(refs) == 64
    with a.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 64


def test_blobs_of_a_batch_bigger_than_one_statement_are_all_stored(make_desk, postgres_url):
    desk = make_desk("pg", database_url=postgres_url)
    # Twelve 900 KB messages: each is stored inline (under 1 MiB), one statement each.
    bodies = [bytes([65 + n]) * 900_000 for n in range(12)]
    batch = [
        (make_mail(subject=f"Log {n}", attachments=[("log.txt", "text/plain", body)]), SourceInfo())
        for n, body in enumerate(bodies)
    ]
    results = desk.pipeline.process_batch(batch)
    assert [r.outcome for r in results] == ["created"] * 12
    with desk.sessions() as s:
        stored = {a.sha256 for a in s.scalars(select(Attachment))}
    for body in bodies:
        sha = hashlib.sha256(body).hexdigest()
        assert sha in stored
        with desk.blobs.open(sha) as fh:
            assert fh.read() == body


def test_big_values_are_compressed_with_lz4(make_desk, postgres_url):
    desk = make_desk("pg", database_url=postgres_url)
    with desk.sessions() as s:
        if not s.scalar(
            text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                "WHERE name = 'default_toast_compression'"
            )
        ):
            pytest.skip("this PostgreSQL has no lz4")
    body = "Der Drucker druckt nicht, bitte helfen Sie mir.\n" * 200
    desk.pipeline.process_one(make_mail(body=body, date=datetime(2026, 11, 23, tzinfo=UTC)))
    with desk.sessions() as s:
        assert s.scalar(text("SELECT pg_column_compression(text_body) FROM messages")) == "lz4"
        assert s.scalar(text("SELECT pg_column_compression(data) FROM blobs")) == "lz4"


def test_a_blob_stored_by_another_daemon_meanwhile_fails_no_message(
    make_desk, postgres_url, monkeypatch
):
    from maildesk.store import blob_rows, bulk

    a = make_desk("a", database_url=postgres_url)
    b = make_desk("b", database_url=postgres_url)
    logo = bytes(range(256)) * 16
    mail = [
        make_mail(subject=f"Order {n}", attachments=[("logo.png", "image/png", logo)])
        for n in range(3)
    ]
    assert a.pipeline.process_one(mail[0]).outcome == "created"
    # As if daemon a had stored the logo between b's look for stored blobs and its COPY
    # (once: when b's batch is redone, its look finds the logo).
    calls = []

    def racing(session, blobs):
        pretend = "SELECT sha256 FROM blobs WHERE false AND sha256 = ANY(%s)"
        original = blob_rows._STORED
        if not calls:
            blob_rows._STORED = pretend
        calls.append(len(blobs))
        try:
            return insert_new_blobs(session, blobs)
        finally:
            blob_rows._STORED = original

    insert_new_blobs = blob_rows.insert_new_blobs
    monkeypatch.setattr(bulk, "insert_new_blobs", racing)
    results = b.pipeline.process_batch([(raw, SourceInfo()) for raw in mail[1:]])
    assert [r.outcome for r in results] == ["created", "created"]
    assert len(calls) > 1  # the batch was redone after the COPY failed
    with b.sessions() as s:
        shas = [a.sha256 for a in s.scalars(select(Attachment))]
        assert len(shas) == 3 and len(set(shas)) == 1
    with b.blobs.open(shas[0]) as fh:
        assert fh.read() == logo
