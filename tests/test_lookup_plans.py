"""A batch's lookups go through indexes: none reads a table that grows with the desk
whole, so a batch costs the same on a desk of a hundred messages as of a million."""

from __future__ import annotations

import sqlite3

from sqlalchemy import event

from maildesk.common.resources import example_rules
from maildesk.service.ingest_results import SourceInfo
from tests.conftest import make_mail

# Tables whose size does not grow with the mail: one row per queue.
SMALL_TABLES = {"assignment_state"}


def _batch(round_: int) -> list[tuple[bytes, SourceInfo]]:
    """New requests, and replies by In-Reply-To and by subject token to the round before."""
    mails = []
    for n in range(6):
        sender = f"client{n}@example.org"
        mails.append(
            make_mail(sender=sender, subject=f"Order {round_}-{n}", message_id=f"<r{round_}-{n}@x>")
        )
        if round_:
            mails.append(make_mail(sender=sender, in_reply_to=f"<r{round_ - 1}-{n}@x>"))
            mails.append(make_mail(sender=sender, subject=f"Re: [md-{n + 1}] any news?"))
    return [(raw, SourceInfo(source="box")) for raw in mails]


def test_no_lookup_of_a_batch_reads_a_growing_table_whole(make_desk):
    # The example rules, with least_open also in the general queue: there it has two
    # agents to choose from, so a batch reads the open tickets per agent.
    rules = example_rules().read_text()
    everywhere = rules.replace("queue: {in: [billing, russian]}", "queue: {in: [general]}")
    assert everywhere != rules, "the example rules no longer assign in billing and russian"
    desk = make_desk(rules=everywhere)
    selects: dict[str, tuple] = {}

    @event.listens_for(desk.engine, "before_cursor_execute")
    def remember(conn, cursor, statement, params, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and not executemany:
            selects.setdefault(statement, params)

    for round_ in range(3):
        results = desk.pipeline.process_batch(_batch(round_))
        assert {r.outcome for r in results} <= {"created", "added"}
    assert any("upper(tickets.ref)" in s for s in selects)  # the token lookup ran
    database = desk.engine.url.database
    with sqlite3.connect(database) as conn:
        for statement, params in selects.items():
            plan = [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + statement, params)]
            whole = [
                step
                for step in plan
                if step.startswith("SCAN ")
                and " USING " not in step
                and step.split()[1] not in SMALL_TABLES
            ]
            assert not whole, (" ".join(statement.split())[:160], plan)
            if "count(tickets.id)" in statement:  # least_open's open tickets per agent
                assert any("COVERING INDEX" in step for step in plan), plan
    assert any("count(tickets.id)" in s for s in selects)  # least_open's facts were read
