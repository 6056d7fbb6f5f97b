"""Rules through the real pipeline (SQLite; PostgreSQL for two daemons): assignment, follow-ups, SLA, spam, notices."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from maildesk.cli import cli
from maildesk.service.ingest_results import SourceInfo
from maildesk.store import leases
from maildesk.store.models import AssignmentState, Event, OutboxEntry, Participant, Ticket
from maildesk.store.queries import ticket_detail
from tests.conftest import make_mail
from tests.rulekit import BASE, rules_text

ROUND_ROBIN = rules_text("""
    - name: spread
      when: {queue: {is: general}}
      then: {assignee: round_robin}
""")

LEAST_OPEN = rules_text("""
    - name: for-alice
      when: {subject: {starts_with: for alice}}
      then: {assignee: alice}
      stop: true
    - name: balance
      when: {queue: {is: general}}
      then: {assignee: least_open}
""")


def assignees(desk) -> list[str | None]:
    with desk.sessions() as s:
        return list(s.scalars(select(Ticket.assignee).order_by(Ticket.id)))


def assignees_in_commit_order(desk) -> list[str | None]:
    """Ticket ids come in per-daemon blocks on PostgreSQL; event ids are drawn at commit."""
    with desk.sessions() as s:
        first_event = (
            select(Event.ticket_id, func.min(Event.id).label("first"))
            .group_by(Event.ticket_id)
            .subquery()
        )
        query = (
            select(Ticket.assignee)
            .join(first_event, first_event.c.ticket_id == Ticket.id)
            .order_by(first_event.c.first)
        )
        return list(s.scalars(query))


def test_round_robin_is_fair_over_many_tickets_and_skips_away_agents(make_desk):
    desk = make_desk(rules=ROUND_ROBIN)
    for n in range(30):
        desk.pipeline.process_one(make_mail(subject=f"request {n}", sender=f"c{n}@example.org"))
    got = assignees(desk)
    assert Counter(got) == {"alice@example.com": 15, "bob@example.com": 15}  # erin is away
    assert got[:4] == ["alice@example.com", "bob@example.com"] * 2
    with desk.sessions() as s:
        state = s.get(AssignmentState, "general")
        assert state.last_agent == got[-1]


def test_round_robin_pointer_survives_a_restart(make_desk, tmp_path):
    desk = make_desk("rr", rules=ROUND_ROBIN)
    desk.pipeline.process_one(make_mail(subject="one"))
    desk.close()
    again = make_desk("rr")  # same folder and database: a restarted daemon
    again.pipeline.process_one(make_mail(subject="two"))
    assert assignees(again) == ["alice@example.com", "bob@example.com"]


def test_round_robin_in_one_batch_still_alternates(make_desk):
    desk = make_desk(rules=ROUND_ROBIN)
    batch = [(make_mail(subject=f"b{n}"), SourceInfo()) for n in range(6)]
    desk.pipeline.process_batch(batch)
    assert Counter(assignees(desk)) == {"alice@example.com": 3, "bob@example.com": 3}


def test_least_open_evens_out_open_tickets_and_skips_away_agents(make_desk):
    desk = make_desk(rules=LEAST_OPEN)
    for n in range(3):
        desk.pipeline.process_one(make_mail(subject=f"for alice {n}"))
    for n in range(7):
        desk.pipeline.process_one(make_mail(subject=f"anyone {n}"))
    got = assignees(desk)
    assert got[3:6] == ["bob@example.com"] * 3  # bob catches up first
    assert Counter(got) == {"alice@example.com": 5, "bob@example.com": 5}


def test_least_open_counts_only_unresolved_tickets(make_desk):
    desk = make_desk(rules=LEAST_OPEN)
    for n in range(2):
        desk.pipeline.process_one(make_mail(subject=f"for alice {n}"))
    with desk.sessions() as s, s.begin():
        for t in s.scalars(select(Ticket)):
            t.status = "resolved"
    desk.pipeline.process_one(make_mail(subject="next one"))
    assert assignees(desk)[-1] == "alice@example.com"  # 0 open each; alice is first in turn


def test_away_agent_set_by_reload_gets_no_more_tickets(make_desk):
    desk = make_desk(rules=ROUND_ROBIN)
    desk.pipeline.process_one(make_mail(subject="first"))
    rules_file = desk.config.rules
    rules_file.write_text(
        rules_file.read_text().replace(
            "bob: {address: bob@example.com, name: Bob}",
            "bob: {address: bob@example.com, name: Bob, away: true}",
        )
    )
    assert desk.rules.reload_if_changed()
    for n in range(3):
        desk.pipeline.process_one(make_mail(subject=f"after {n}"))
    assert assignees(desk) == ["alice@example.com"] * 4


FOLLOW_UPS = rules_text("""
    - name: urgent-words
      follow_ups: true
      when: {subject: {contains_word: [urgent, срочно, pilne]}}
      then: {priority: urgent, tags: [urgent], notify: carol}
    - name: invoices
      when: {subject: {contains_word: invoice}}
      then: {queue: billing}
""")


def test_follow_up_rules_raise_priority_and_are_recorded(make_desk):
    desk = make_desk(rules=FOLLOW_UPS)
    desk.pipeline.process_one(make_mail(subject="Printer broken", message_id="<p1@example.org>"))
    reply = make_mail(subject="Re: [MD-1] invoice - now pilne!", in_reply_to="<p1@example.org>")
    assert desk.pipeline.process_one(reply).ticket_ref == "MD-1"
    with desk.sessions() as s:
        detail = ticket_detail(s, "MD-1")
        notified = [o.to_addr for o in s.scalars(select(OutboxEntry))]
    assert (detail["priority"], detail["queue"]) == ("urgent", "general")  # invoices is new-only
    assert detail["tags"] == ["urgent"]
    assert detail["rules_fired"] == ["urgent-words"]
    assert any(e["kind"] == "priority" and "urgent-words" in e["reason"] for e in detail["events"])
    assert "carol@example.com" in notified


def test_follow_up_never_lowers_priority(make_desk):
    desk = make_desk(
        rules=rules_text("""
            - name: lower
              follow_ups: true
              when: {subject: {contains: thanks}}
              then: {priority: low}
            - name: urgent-new
              when: {subject: {contains: outage}}
              then: {priority: urgent}
        """)
    )
    desk.pipeline.process_one(make_mail(subject="outage", message_id="<o1@example.org>"))
    desk.pipeline.process_one(
        make_mail(subject="Re: [MD-1] thanks", in_reply_to="<o1@example.org>")
    )
    with desk.sessions() as s:
        assert s.scalars(select(Ticket.priority)).one() == "urgent"


def test_ticket_stores_rules_fired_sla_policy_and_due_times(make_desk, clock):
    clock.now = datetime(2026, 12, 24, 15, 0, tzinfo=UTC)  # Thu 16:00 Berlin; 25 Dec is a holiday
    desk = make_desk(
        rules=rules_text("""
            - name: urgent
              when: {subject: {contains: urgent}}
              then: {priority: urgent}
        """)
    )
    desk.pipeline.process_one(make_mail(subject="urgent: down"))
    with desk.sessions() as s:
        t = s.scalars(select(Ticket)).one()
        assert (t.sla_policy, t.rules_fired) == ("urgent", ["urgent"])
        assert t.first_response_due == datetime(2026, 12, 24, 16, 0, tzinfo=UTC)  # 1h: Thu 17:00
        assert t.resolution_due == datetime(2026, 12, 28, 11, 0, tzinfo=UTC)  # 4h: Mon 12:00


def test_tickets_show_prints_the_rules_that_fired(make_desk):
    desk = make_desk(rules=FOLLOW_UPS)
    desk.pipeline.process_one(make_mail(subject="Urgent: invoice missing"))
    config = desk.config.source
    result = CliRunner().invoke(cli, ["--config", config, "tickets", "show", "MD-1"])
    assert result.exit_code == 0, result.output
    assert "rules fired: urgent-words, invoices" in result.output
    assert "SLA urgent: first response due" in result.output


def test_spam_is_stored_and_nobody_is_told(make_desk):
    desk = make_desk(
        rules=rules_text("""
            - name: spam
              when: {header: {name: X-Spam-Flag, is: "YES"}}
              then: {spam: true}
              stop: true
        """)
    )
    result = desk.pipeline.process_one(make_mail(headers={"X-Spam-Flag": "YES"}))
    assert result.outcome == "created" and result.notifications == []
    with desk.sessions() as s:
        t = s.scalars(select(Ticket)).one()
        assert t.spam and t.rules_fired == ["spam"] and t.sla_policy is None


def test_ignored_mail_is_stored_tagged_and_only_notify_addresses_hear(make_desk):
    desk = make_desk(
        rules=rules_text("""
            - name: newsletters
              when: {header: {name: List-Id, exists: true}}
              then: {ignore: true, notify: [postmaster@example.com]}
        """)
    )
    desk.pipeline.process_one(make_mail(headers={"List-Id": "<news.shop.example>"}))
    with desk.sessions() as s:
        t = s.scalars(select(Ticket)).one()
        sent = [(o.template, o.to_addr) for o in s.scalars(select(OutboxEntry))]
    assert "ignored" in t.tags
    assert sent == [("new_ticket", "postmaster@example.com")]


def test_watchers_cc_and_notify_reach_the_ticket(make_desk):
    desk = make_desk(
        rules=rules_text("""
            - name: vip
              when: {from: {domain: example.org}}
              then:
                watchers: [carol]
                cc: [boss@example.org]
                notify: [ops@example.com]
        """)
    )
    desk.pipeline.process_one(make_mail())
    with desk.sessions() as s:
        roles = {p.address: p.role for p in s.scalars(select(Participant))}
        told = sorted(
            o.to_addr for o in s.scalars(select(OutboxEntry)) if o.template == "new_ticket"
        )
    assert roles["carol@example.com"] == "watcher"
    assert roles["boss@example.org"] == "cc"
    assert told == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "ops@example.com",
    ]

    # The watcher hears of the customer's later replies too (notify was for the new ticket).
    desk.pipeline.process_one(make_mail(subject="Re: [MD-1] Help please", body="More details"))
    with desk.sessions() as s:
        told = sorted(
            o.to_addr for o in s.scalars(select(OutboxEntry)) if o.template == "customer_reply"
        )
    assert told == ["alice@example.com", "bob@example.com", "carol@example.com"]


def test_mailbox_queue_from_the_source_is_the_starting_queue(make_desk):
    desk = make_desk(rules=rules_text(""))
    desk.pipeline.process_one(make_mail(), SourceInfo(source="billing-box", queue="billing"))
    with desk.sessions() as s:
        assert s.scalars(select(Ticket.queue)).one() == "billing"


@pytest.mark.postgres
def test_two_daemons_on_postgresql_share_round_robin_fairly(make_desk, postgres_url):
    desks = [make_desk(f"daemon{n}", database_url=postgres_url, rules=ROUND_ROBIN) for n in (1, 2)]

    def feed(desk, tag: str) -> None:
        for n in range(10):
            desk.pipeline.process_one(
                make_mail(subject=f"{tag} {n}", sender=f"{tag}{n}@example.org")
            )

    workers = [threading.Thread(target=feed, args=(d, f"d{i}")) for i, d in enumerate(desks)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    got = assignees_in_commit_order(desks[0])
    assert len(got) == 20
    assert Counter(got) == {"alice@example.com": 10, "bob@example.com": 10}
    assert all(a != b for a, b in pairwise(got))  # strictly alternating


# Billing has one agent; the help desk queue has two, carol first in turn.
TWO_QUEUES = rules_text(
    """
    - name: invoices
      when: {subject: {contains_word: invoice}}
      then: {queue: billing, assignee: least_open}
    - name: help
      when: {subject: {contains_word: help}}
      then: {queue: helpdesk, assignee: least_open}
    """,
    base=BASE.replace(
        "  billing: {agents: [carol]}\n",
        "  billing: {agents: [carol]}\n  helpdesk: {agents: [carol, alice]}\n",
    ),
)


def test_a_one_agent_assignment_earlier_in_the_batch_counts_for_least_open(make_desk):
    # The invoice goes to carol without the open-ticket counts being read (she is
    # billing's only agent); when the help request needs them, carol's new ticket counts.
    desk = make_desk(rules=TWO_QUEUES)
    batch = [(make_mail(subject=s), SourceInfo()) for s in ("invoice 1", "help me")]
    desk.pipeline.process_batch(batch)
    assert assignees(desk) == ["carol@example.com", "alice@example.com"]
    with desk.sessions() as s:  # only a real choice moves a queue's turn
        assert s.get(AssignmentState, "billing") is None
        assert s.get(AssignmentState, "helpdesk").last_agent == "alice@example.com"


def _second_waits_for_first(
    make_desk, postgres_url, subject: str, extra: str = ""
) -> tuple[bool, Counter]:
    """Two daemons on one PostgreSQL ingest three `subject` requests each; the second
    starts while the first's batch is still in its transaction. Did it have to wait for
    that commit? And who got the six tickets?"""
    first, second = (
        make_desk(f"daemon{n}", database_url=postgres_url, rules=TWO_QUEUES, extra=extra)
        for n in (1, 2)
    )

    def batch(tag: str) -> list:
        return [(make_mail(subject=f"{subject} {tag}{n}"), SourceInfo()) for n in range(3)]

    others: list[threading.Thread] = []

    def while_first_is_open(session, results) -> None:
        other = threading.Thread(target=second.pipeline.process_batch, args=(batch("b"),))
        other.start()
        other.join(timeout=5)
        others.append(other)

    first.pipeline.finish_batch(
        first.pipeline.start_batch(batch("a")), in_transaction=while_first_is_open
    )
    waited = others[0].is_alive()
    others[0].join(timeout=60)
    return waited, Counter(assignees(first))


@pytest.mark.postgres
def test_daemons_assigning_to_one_agent_queues_do_not_wait_for_each_other(make_desk, postgres_url):
    waited, got = _second_waits_for_first(make_desk, postgres_url, "invoice")
    assert not waited
    assert got == {"carol@example.com": 6}


@pytest.mark.postgres
def test_daemons_take_turns_when_least_open_has_a_choice(make_desk, postgres_url):
    # Otherwise both would read the same open tickets per agent: 4 to carol, 2 to alice.
    waited, got = _second_waits_for_first(make_desk, postgres_url, "help")
    assert waited
    assert got == {"carol@example.com": 3, "alice@example.com": 3}


@pytest.mark.postgres
def test_without_the_assignment_lock_daemons_choose_side_by_side(make_desk, postgres_url):
    """daemon.assignment_lock: false. The second daemon does not wait, not even for the
    round-robin pointer the first holds; each balances its own batch from the same
    counts, so the six tickets split 4/2 instead of 3/3 (corrected by later batches)."""
    unlocked = "daemon:\n  assignment_lock: false\n"
    waited, got = _second_waits_for_first(make_desk, postgres_url, "help", unlocked)
    assert not waited
    assert got == {"carol@example.com": 4, "alice@example.com": 2}


@pytest.mark.postgres
def test_without_the_assignment_lock_the_next_batch_evens_out(make_desk, postgres_url):
    unlocked = "daemon:\n  assignment_lock: false\n"
    _second_waits_for_first(make_desk, postgres_url, "help", unlocked)
    desk = make_desk("daemon3", database_url=postgres_url, rules=TWO_QUEUES, extra=unlocked)
    desk.pipeline.process_batch([(make_mail(subject=f"help c{n}"), SourceInfo()) for n in (1, 2)])
    assert Counter(assignees(desk)) == {"carol@example.com": 4, "alice@example.com": 4}


@pytest.mark.postgres
def test_without_the_assignment_lock_each_of_n_daemons_evens_out_its_nth(make_desk, postgres_url):
    """Two ingesting daemons (live heartbeats) read the same counts: carol 4 open
    tickets, alice none. Were each to even that out in full, together they would hand
    alice 8; each counts its own picks twice, so this batch gives alice 3 of 4."""
    unlocked = "daemon:\n  assignment_lock: false\n"
    desk = make_desk(database_url=postgres_url, rules=TWO_QUEUES, extra=unlocked)
    desk.pipeline.process_batch([(make_mail(subject=f"help a{n}"), SourceInfo()) for n in range(4)])
    with desk.sessions.begin() as s:
        s.execute(update(Ticket).values(assignee="carol@example.com"))
        for holder in ("node1:1:a", "node2:1:b"):
            leases.beat(s, holder, 60, mailboxes=1)
    desk.pipeline.process_batch([(make_mail(subject=f"help b{n}"), SourceInfo()) for n in range(4)])
    assert Counter(assignees(desk)[4:]) == {"alice@example.com": 3, "carol@example.com": 1}
