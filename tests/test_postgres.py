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


def test_a_batch_takes_its_ticket_numbers_in_one_round_trip(pg_desk, monkeypatch):
    from maildesk.store import pg_bulk

    asked: list[tuple[str, int]] = []
    next_ids = pg_bulk.next_ids

    def counting(session, sequence, count):
        asked.append((sequence, count))
        return next_ids(session, sequence, count)

    monkeypatch.setattr(pg_bulk, "next_ids", counting)
    new = [
        make_mail(subject=f"Case {n}", sender=f"c{n}@example.net", message_id=f"<n{n}@x>")
        for n in range(40)
    ]
    replies = [
        make_mail(subject="Re: Case", sender=f"c{n}@example.net", in_reply_to=f"<n{n}@x>")
        for n in range(10)
    ]
    results = pg_desk.pipeline.process_batch([(raw, SourceInfo()) for raw in new + replies])
    assert [r.ticket_ref for r in results[:40]] == [f"MD-{n}" for n in range(1, 41)]
    assert [r.ticket_ref for r in results[40:]] == [f"MD-{n}" for n in range(1, 11)]
    ticket_calls = [count for sequence, count in asked if "tickets" in sequence]
    assert ticket_calls == [50]  # 40 new and 10 that might have been, in one round trip
    # The ten numbers left over are the next batch's, without asking again.
    later = pg_desk.pipeline.process_one(make_mail(subject="Later", sender="late@example.net"))
    assert later.ticket_ref == "MD-41"
    assert [count for sequence, count in asked if "tickets" in sequence] == [50]


def test_every_table_is_copied_in_binary_and_other_types_as_text():
    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.dialects import postgresql

    from maildesk.store.models import Base
    from maildesk.store.pg_bulk import _copy_statement

    dialect = postgresql.dialect()
    for table in Base.metadata.sorted_tables:
        keys = tuple(c.key for c in table.columns)
        statement, types = _copy_statement(dialect, table, keys)
        assert statement.endswith("(FORMAT BINARY)"), table.name
        assert types is not None and len(types) == len(keys)
    odd = Table("odd", MetaData(), Column("id", Integer), Column("tags", postgresql.ARRAY(Integer)))
    statement, types = _copy_statement(dialect, odd, ("id", "tags"))
    assert statement == "COPY odd (id, tags) FROM STDIN" and types is None


def test_a_message_id_too_long_for_an_index_entry_is_left_out_and_the_mail_stored(pg_desk):
    # 700 characters, each 4 bytes in UTF-8 and random enough not to compress: 2,800
    # bytes, over PostgreSQL's 2,704 for an index entry. The batch used to fail for
    # good ("database unavailable: index row size ...") and block the mailbox.
    import random

    rng = random.Random(7)
    hostile = "".join(chr(rng.randrange(0x1F300, 0x1F5FF)) for _ in range(700)) + "@x.org"
    raw = f"Message-ID: <{hostile}>\n".encode() + make_mail(subject="Long id", message_id=None)
    result = pg_desk.pipeline.process_one(raw)
    assert result.outcome == "created", result.reason
    assert pg_desk.pipeline.process_one(raw).outcome == "duplicate"  # by its bytes' hash


def test_a_value_postgresql_refuses_is_the_messages_fault_not_an_outage(postgres_url):
    import random

    import sqlalchemy as sa

    from maildesk.service.pipeline import _outage
    from maildesk.store.db import make_engine

    engine = make_engine(postgres_url)
    rng = random.Random(7)
    value = "".join(chr(rng.randrange(0x1F300, 0x1F5FF)) for _ in range(1000))
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TEMP TABLE t (v text UNIQUE)")
            with pytest.raises(sa.exc.OperationalError) as refused:
                conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": value})
    finally:
        engine.dispose()
    assert "index row size" in str(refused.value) and not _outage(refused.value)
    down = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(sa.exc.OperationalError) as unreachable:
        down.connect()
    assert _outage(unreachable.value)
