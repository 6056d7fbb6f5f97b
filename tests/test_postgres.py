"""The same pipeline on a real PostgreSQL, started by the suite."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import Message, Ticket
from tests.conftest import make_mail

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_desk(make_desk, postgres_url):
    return make_desk("pg", database_url=postgres_url)


def test_conversation_and_duplicates_on_postgres(pg_desk):
    first = pg_desk.pipeline.process_one(
        make_mail(subject="Hello PG", message_id="<pg-1@example.org>")
    )
    again = pg_desk.pipeline.process_one(
        make_mail(subject="Hello PG", message_id="<pg-1@example.org>")
    )
    token = pg_desk.pipeline.process_one(make_mail(subject="Re: [MD-1] Hello PG"))
    header = pg_desk.pipeline.process_one(make_mail(subject="x", in_reply_to="<pg-1@example.org>"))
    garbage = pg_desk.pipeline.process_one(b"\x00garbage")
    assert [r.outcome for r in (first, again, token, header, garbage)] == [
        "created",
        "duplicate",
        "added",
        "added",
        "quarantined",
    ]
    assert {r.ticket_ref for r in (first, again, token, header)} == {"MD-1"}


def test_batch_with_replies_inside_it_on_postgres(pg_desk):
    items = [
        (make_mail(subject="Batch start", message_id="<b-1@example.org>"), SourceInfo()),
        (make_mail(subject="Re: Batch start", in_reply_to="<b-1@example.org>"), SourceInfo()),
        (b"", SourceInfo()),
        (make_mail(subject="Another", sender="other@example.net"), SourceInfo()),
    ]
    results = pg_desk.pipeline.process_batch(items)
    assert [r.outcome for r in results] == ["created", "added", "quarantined", "created"]
    assert results[1].ticket_ref == results[0].ticket_ref


def test_two_processes_racing_on_one_message_store_it_once(make_desk, postgres_url):
    a = make_desk("a", database_url=postgres_url)
    b = make_desk("b", database_url=postgres_url)
    raw = make_mail(subject="Race", message_id="<race@example.org>")
    results = []
    barrier = threading.Barrier(2)

    def ingest(desk):
        barrier.wait()
        results.append(desk.pipeline.process_one(raw))

    threads = [threading.Thread(target=ingest, args=(d,)) for d in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["created", "duplicate"]
    with a.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 1
        assert s.scalar(select(func.count()).select_from(Ticket)) == 1
