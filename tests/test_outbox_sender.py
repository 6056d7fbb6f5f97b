"""The outbox sender against a real SMTP server: nothing lost, nothing sent twice, failures shown."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from maildesk.cli import cli
from maildesk.common.backoff import Backoff
from maildesk.outgoing.sender import OutboxSender
from maildesk.store.db import make_engine, make_sessionmaker
from maildesk.store.models import OutboxEntry
from tests.conftest import make_mail
from tests.mailflow import outbox_rows, send_all, sender, signed_to
from tests.servers import SmtpSink


def ingest(desk, count: int, **mail) -> None:
    for n in range(count):
        desk.pipeline.process_one(
            make_mail(sender=f"Customer {n} <c{n}@example.org>", subject=f"Request {n}", **mail)
        )


def run_cli(desk, *args: str):
    result = CliRunner().invoke(cli, ["--config", desk.config.source, *args])
    return result


def test_one_connection_carries_every_notification(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config(extra="  sessions: 1\n"))
    ingest(desk, 10)
    assert send_all(desk) == 30  # an ack and two agent copies per request
    assert len(smtp_sink.received) == 30
    assert smtp_sink.sessions == 1


def test_two_sessions_share_the_sending_and_a_tickets_mail_keeps_its_order(make_desk, smtp_sink):
    # smtp.sessions: 2 (the default): both sessions send, each ticket's notifications
    # all through one of them, in the order they were queued.
    desk = make_desk(extra=smtp_sink.smtp_config())
    ingest(desk, 10)
    for n in range(0, 10, 2):  # a second message on half the tickets
        desk.pipeline.process_one(
            make_mail(sender=f"c{n}@example.org", subject=f"Re: [MD-{n + 1}] Request {n}")
        )
    queued = [(row.ticket_id, row.message_id) for row in outbox_rows(desk)]  # by id
    assert send_all(desk) == len(queued) == 40
    assert smtp_sink.sessions == 2
    arrived = {r.parsed()["Message-ID"].strip("<>"): (position, r.peer)
               for position, r in enumerate(smtp_sink.received)}  # fmt: skip
    assert len(arrived) == 40  # each once
    for ticket in {t for t, _ in queued}:
        mine = [arrived[message_id] for t, message_id in queued if t == ticket]
        assert [position for position, _ in mine] == sorted(position for position, _ in mine)
        assert len({peer for _, peer in mine}) == 1
    assert len({peer for _, peer in arrived.values()}) == 2


def test_sends_are_recorded_in_groups_not_one_transaction_each(make_desk, smtp_sink, monkeypatch):
    from maildesk.outgoing.mark_writer import MarkWriter

    # A mark waits LINGER for the next ones; longer here than the daemon's 10 ms, so the
    # grouping shows however slowly a loaded test machine sends.
    monkeypatch.setattr(MarkWriter, "LINGER", 0.5)
    desk = make_desk(extra=smtp_sink.smtp_config())
    ingest(desk, 15)
    outbox_sender = sender(desk)
    groups: list[int] = []
    write = outbox_sender._write_marks

    def counted(marks, token=None):
        groups.append(len(marks))
        write(marks, token)

    outbox_sender._write_marks = counted
    assert asyncio.run(outbox_sender.drain_and_close()) == 45
    assert sum(groups) == 45
    assert len(groups) <= 10
    assert {r.status for r in outbox_rows(desk)} == {"sent"}


def test_server_down_for_a_while_then_up_delivers_each_exactly_once(make_desk):
    sink = SmtpSink()  # not started yet: the port refuses connections
    desk = make_desk(extra=sink.smtp_config())
    ingest(desk, 4)
    outbox_sender = sender(desk, reconnect_seconds=(0.05, 0.2), poll_seconds=0.1)
    seen_while_down: list[str | None] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(outbox_sender.run(stop))
        await asyncio.sleep(0.6)  # several failed connection attempts
        seen_while_down.extend(r.last_error for r in outbox_rows(desk))
        sink.start()
        await asyncio.to_thread(sink.wait_for, 12)
        sink.stop()  # down again; more mail queues up meanwhile
        await asyncio.to_thread(ingest, desk, 2, body="second wave")
        outbox_sender.wake()
        await asyncio.sleep(0.5)
        sink.start()
        await asyncio.to_thread(sink.wait_for, 18)
        await asyncio.sleep(0.3)  # a duplicate would show up now
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(scenario())
    finally:
        sink.stop()
    counts = Counter(sink.message_ids())
    rows = outbox_rows(desk)
    assert len(rows) == 18
    assert set(counts) == {r.message_id for r in rows}
    assert set(counts.values()) == {1}
    assert {r.status for r in rows} == {"sent"}
    assert {r.attempts for r in rows} == {1}  # an unreachable server costs no attempts
    assert all(e and "cannot reach SMTP server" in e for e in seen_while_down)


def test_550_marks_the_notification_failed_and_visible(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config())
    smtp_sink.refuse["c0@example.org"] = "550 5.1.1 <c0@example.org>: no such user"
    ingest(desk, 1)
    assert send_all(desk) == 2  # the agents' copies still go
    (ack,) = [r for r in outbox_rows(desk) if r.template == "ack"]
    assert (ack.status, ack.attempts) == ("failed", 1)
    assert "550 5.1.1" in ack.last_error

    listed = run_cli(desk, "outbox", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert (row["id"], row["status"], row["ticket"], row["to"]) == (
        ack.id,
        "failed",
        "MD-1",
        ["c0@example.org"],
    )
    assert "no such user" in row["last_error"]
    table = run_cli(desk, "outbox", "list")
    assert "failed" in table.output and "550 5.1.1" in table.output

    del smtp_sink.refuse["c0@example.org"]  # the address was fixed
    retried = run_cli(desk, "outbox", "retry", str(ack.id))
    assert retried.exit_code == 0, retried.output
    assert f"notification {ack.id}: sent" in retried.output
    assert smtp_sink.message_ids().count(ack.message_id) == 1
    assert json.loads(run_cli(desk, "outbox", "list", "--json").output) == []


def test_temporary_failures_are_retried_with_backoff(make_desk, smtp_sink, clock):
    desk = make_desk(extra=smtp_sink.smtp_config(), rules=NO_AGENTS)
    smtp_sink.data_replies = ["451 4.3.0 try again later", "452 4.3.1 out of space"]
    ingest(desk, 1)
    assert send_all(desk) == 0
    (row,) = outbox_rows(desk)
    first_wait = row.next_attempt_at - clock()
    assert (row.status, row.attempts) == ("pending", 1)
    assert timedelta(seconds=30) <= first_wait <= timedelta(seconds=60)
    assert "451 4.3.0" in row.last_error

    assert send_all(desk) == 0  # not due yet: nothing is tried
    assert outbox_rows(desk)[0].attempts == 1
    clock.advance(seconds=61)
    assert send_all(desk) == 0
    (row,) = outbox_rows(desk)
    assert row.attempts == 2
    assert timedelta(seconds=60) <= row.next_attempt_at - clock() <= timedelta(seconds=120)
    clock.advance(seconds=121)
    assert send_all(desk) == 1
    (row,) = outbox_rows(desk)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert len(smtp_sink.received) == 1


def test_gives_up_after_max_attempts(make_desk, smtp_sink, clock):
    desk = make_desk(extra=smtp_sink.smtp_config(extra="  max_attempts: 2\n"), rules=NO_AGENTS)
    smtp_sink.data_replies = ["451 4.3.0 later"] * 5
    ingest(desk, 1)
    send_all(desk)
    clock.advance(hours=1)
    send_all(desk)
    (row,) = outbox_rows(desk)
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.last_error.startswith("gave up after 2 tries: ")


def test_crash_between_send_and_mark_resends_the_same_message(make_desk, smtp_sink, clock):
    desk = make_desk(extra=smtp_sink.smtp_config(), rules=NO_AGENTS)
    ingest(desk, 1)

    class Crash(BaseException):
        pass

    def crash(*args, **kwargs):
        raise Crash("killed after the server accepted the message")

    crashing = sender(desk)
    crashing._write_marks = crash  # the process dies before recording the send
    with pytest.raises(Crash):
        asyncio.run(crashing.drain())
    assert len(smtp_sink.received) == 1
    assert outbox_rows(desk)[0].status == "sending"

    assert send_all(desk) == 0  # another daemon waits for the lease to run out
    clock.advance(seconds=121)
    assert send_all(desk) == 1
    first, second = smtp_sink.received
    assert first.data == second.data  # same bytes, same Message-ID: a duplicate, not a loss
    assert outbox_rows(desk)[0].status == "sent"


def test_partially_refused_recipients(make_desk, smtp_sink, clock):
    desk = make_desk(extra=smtp_sink.smtp_config(), rules=NO_AGENTS)
    desk.pipeline.process_one(make_mail(cc="a@example.net, b@example.net"))
    smtp_sink.refuse["a@example.net"] = "550 5.1.1 unknown"
    smtp_sink.refuse["b@example.net"] = "450 4.2.1 mailbox busy"
    desk.pipeline.process_one(
        make_mail(
            sender="alice@example.com",
            to=signed_to(desk, "MD-1", "alice@example.com"),
            subject="Re: [MD-1] Help please",
            body="Answer",
        )
    )
    send_all(desk)
    relay = next(r for r in outbox_rows(desk) if r.template == "agent_reply")
    assert relay.status == "pending"
    assert relay.recipients == ["b@example.net"]  # only the one refused for now is retried
    assert "a@example.net: 550" in relay.last_error
    assert smtp_sink.received[-1].rcpt_tos == ["customer@example.org"]

    del smtp_sink.refuse["b@example.net"]
    clock.advance(minutes=5)
    send_all(desk)
    relay = next(r for r in outbox_rows(desk) if r.template == "agent_reply")
    assert relay.status == "sent"
    assert smtp_sink.received[-1].rcpt_tos == ["b@example.net"]


def test_tls_certificate_is_verified_by_default(make_desk, test_ca):
    sink = SmtpSink(tls_context=test_ca.server_context()).start()
    try:
        untrusting = make_desk("untrusting", extra=sink.smtp_config("starttls"))
        ingest(untrusting, 1)
        outbox_sender = sender(untrusting)
        assert asyncio.run(outbox_sender.drain()) == 0
        assert "not trusted" in outbox_sender.unavailable
        assert "smtp.ca_file" in outbox_sender.unavailable
        assert sink.received == []
        assert {r.attempts for r in outbox_rows(untrusting)} == {0}

        trusting = make_desk(
            "trusting", extra=sink.smtp_config("starttls", f"  ca_file: {test_ca.ca_file}\n")
        )
        ingest(trusting, 1)
        assert send_all(trusting) == 3
        assert len(sink.received) == 3
    finally:
        sink.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_with_the_password_secret(make_desk, monkeypatch):
    sink = SmtpSink(users={"support@example.com": "s3cret"}).start()
    login = "  username: support@example.com\n  password: {env: MAILDESK_TEST_SMTP_PW}\n"
    try:
        desk = make_desk(extra=sink.smtp_config(extra=login), rules=NO_AGENTS)
        ingest(desk, 1)
        monkeypatch.setenv("MAILDESK_TEST_SMTP_PW", "wrong")
        refused = sender(desk)
        assert asyncio.run(refused.drain()) == 0
        assert "refused the login of support@example.com" in refused.unavailable
        assert "s3cret" not in refused.unavailable and "wrong" not in refused.unavailable
        monkeypatch.setenv("MAILDESK_TEST_SMTP_PW", "s3cret")
        assert send_all(desk) == 1
        assert len(sink.received) == 1
    finally:
        sink.stop()


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_daemons_share_the_outbox_without_sending_twice(
    make_desk, smtp_sink, request, database
):
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    desk = make_desk(database_url=url, extra=smtp_sink.smtp_config())
    ingest(desk, 20)
    other_engine = make_engine(desk.config.database_url())  # the second daemon's own pool
    senders = [
        sender(desk, worker_id="one", batch_size=5),
        sender(desk, worker_id="two", batch_size=5),
    ]
    senders[1].queue.sessions = make_sessionmaker(other_engine)

    async def both() -> list[int]:
        try:
            return list(await asyncio.gather(*(s.drain() for s in senders)))
        finally:
            for s in senders:
                await s.close()

    try:
        counts = asyncio.run(both())
    finally:
        other_engine.dispose()
    assert sum(counts) == 60
    if database == "postgres":  # SKIP LOCKED lets both claim at once; SQLite takes turns
        assert all(c > 0 for c in counts), counts  # both did part of the work
    assert Counter(Counter(smtp_sink.message_ids()).values()) == {1: 60}


def test_send_command_reports_an_unreachable_server(make_desk):
    sink = SmtpSink()
    desk = make_desk(extra=sink.smtp_config())
    ingest(desk, 1)
    result = run_cli(desk, "outbox", "send")
    assert result.exit_code == 1
    assert "cannot reach SMTP server 127.0.0.1" in result.output
    assert "the rest stay queued" in result.output
    assert {r.status for r in outbox_rows(desk)} == {"pending"}


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    backoff = Backoff(base_seconds=60, cap_seconds=3600)
    assert backoff.delay(1, rand=lambda: 0.0) == timedelta(seconds=30)
    assert backoff.delay(1, rand=lambda: 1.0) == timedelta(seconds=60)
    assert backoff.delay(3, rand=lambda: 1.0) == timedelta(seconds=240)
    assert backoff.delay(12, rand=lambda: 1.0) == timedelta(seconds=3600)


def test_expired_claim_of_a_dead_sender_is_taken_over(make_desk, smtp_sink, clock):
    desk = make_desk(extra=smtp_sink.smtp_config(), rules=NO_AGENTS)
    ingest(desk, 1)
    with desk.sessions() as session, session.begin():
        session.execute(
            update(OutboxEntry).values(
                status="sending", claimed_by="dead:1", claimed_until=clock() + timedelta(seconds=5)
            )
        )
    assert send_all(desk) == 0
    clock.advance(seconds=6)
    assert send_all(desk) == 1


def test_wake_sends_new_mail_without_waiting_for_the_poll(make_desk, smtp_sink):
    desk = make_desk(extra=smtp_sink.smtp_config(), rules=NO_AGENTS)
    outbox_sender: OutboxSender = sender(desk, poll_seconds=30)
    arrived = threading.Event()

    async def scenario() -> float:
        stop = asyncio.Event()
        task = asyncio.create_task(outbox_sender.run(stop))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(ingest, desk, 1)
        started = datetime.now(UTC)
        outbox_sender.wake()
        await asyncio.to_thread(smtp_sink.wait_for, 1, 5)
        arrived.set()
        elapsed = (datetime.now(UTC) - started).total_seconds()
        stop.set()
        await asyncio.wait_for(task, 5)
        return elapsed

    elapsed = asyncio.run(scenario())
    assert arrived.is_set() and elapsed < 5


NO_AGENTS = """
version: 1
default: {queue: general, priority: normal, auto_reply: ack, language: en}
queues:
  general: {agents: []}
agents:
  alice: {address: alice@example.com, name: Alice Archer}
"""


@pytest.mark.parametrize("smtputf8", [True, False])
def test_internationalised_address_goes_out_with_smtputf8(make_desk, smtputf8):
    sink = SmtpSink(smtputf8=smtputf8).start()
    try:
        desk = make_desk(extra=sink.smtp_config(), rules=NO_AGENTS)
        raw = make_mail(sender="Placeholder <p@example.org>", subject="Grüße")
        desk.pipeline.process_one(raw.replace(b"<p@example.org>", "<jürgen@example.org>".encode()))
        ingest(desk, 1)
        send_all(desk)
    finally:
        sink.stop()
    unicode_ack, ascii_ack = outbox_rows(desk)
    assert ascii_ack.status == "sent"  # never held up by the other one
    if smtputf8:
        assert unicode_ack.status == "sent"
        received = next(r for r in sink.received if r.rcpt_tos == ["jürgen@example.org"])
        # RFC 6532: the header is raw UTF-8 (the stdlib reads that back from text, not bytes).
        message = email.message_from_string(received.data.decode(), policy=email.policy.default)
        assert message["To"].addresses[0].addr_spec == "jürgen@example.org"
    else:
        assert unicode_ack.status == "failed"
        assert "does not take SMTPUTF8 addresses" in unicode_ack.last_error


def test_a_session_that_cannot_connect_stops_the_batch_and_the_rest_waits(make_desk, smtp_sink):
    # One of the two sessions finds no server: the other stops after the send in hand,
    # what was sent is recorded, the rest is given back, and nothing goes out twice.
    from maildesk.common.config import SmtpConfig
    from maildesk.outgoing.smtp import SmtpTransport
    from tests.servers import free_port

    desk = make_desk(extra=smtp_sink.smtp_config())
    ingest(desk, 10)
    half_down = sender(desk)
    nowhere = SmtpConfig(host="127.0.0.1", port=free_port(), security="none", timeout=2)
    half_down.transports[1] = SmtpTransport(nowhere)

    async def drain() -> int:
        try:
            return await half_down.drain()
        finally:
            await half_down.close()

    sent = asyncio.run(drain())
    assert half_down.unavailable and "cannot reach SMTP server" in half_down.unavailable
    rows = outbox_rows(desk)
    assert sent == len(smtp_sink.received) == sum(r.status == "sent" for r in rows) < 30
    waiting = [r for r in rows if r.status != "sent"]
    assert {r.status for r in waiting} == {"pending"} and not any(r.claimed_by for r in waiting)
    assert send_all(desk) == 30 - sent
    assert sorted(smtp_sink.message_ids()) == sorted(r.message_id for r in rows)


def test_a_server_that_stops_answering_is_left_and_the_mail_retried(make_desk, smtp_sink, clock):
    config = smtp_sink.smtp_config(extra="  sessions: 1\n").replace("timeout: 5", "timeout: 0.3")
    desk = make_desk(extra=config, rules=NO_AGENTS)
    ingest(desk, 2)
    smtp_sink.data_delays = [2.0]  # the first message's DATA gets no answer in time
    assert send_all(desk) == 1
    first, second = outbox_rows(desk)
    assert first.status == "pending"
    assert first.last_error.endswith("connection lost while sending: no answer within 0.3 s")
    # The late answer could be mistaken for the next command's: a new session was opened.
    assert (second.status, smtp_sink.sessions) == ("sent", 2)

    clock.advance(hours=1)
    assert send_all(desk) == 1
    assert outbox_rows(desk)[0].status == "sent"
    # aiosmtpd drops a transaction whose client went away; a server that kept it would
    # now hold a duplicate with the same Message-ID, never a second, different message.
    assert sorted(smtp_sink.message_ids()) == sorted([first.message_id, second.message_id])


def test_envelope_addresses_go_out_as_stored_and_odd_ones_are_refused(smtp_sink):
    from maildesk.common.config import SmtpConfig
    from maildesk.outgoing.smtp import SmtpTransport

    transport = SmtpTransport(SmtpConfig(host="127.0.0.1", port=smtp_sink.port, security="none"))
    recipients = ['"john smith"@example.org', "a>b@example.org", "plain@example.org"]

    async def send():
        try:
            return await transport.send(
                "support@example.com", recipients, b"Subject: x\r\n\r\nx\r\n"
            )
        finally:
            await transport.close()

    refused = asyncio.run(send())
    assert {a: str(r) for a, r in refused.items()} == {"a>b@example.org": "553 not a mail address"}
    (received,) = smtp_sink.received
    assert received.mail_from == "support@example.com"
    assert received.rcpt_tos == ['"john smith"@example.org', "plain@example.org"]


def _admin_ack(folder, body: str) -> str:
    """An admin template folder whose en/ack.txt.j2 has `body`; its `templates:` line."""
    (folder / "en").mkdir(parents=True)
    (folder / "en" / "ack.txt.j2").write_text(
        "{% block subject %}{{ ticket.subject }}{% endblock %}\n"
        f"{{% block body %}}\n{body}\n{{% endblock %}}\n"
    )
    return f"templates: {folder}\n"


def test_the_sender_reports_a_broken_admin_template_it_replaced(
    make_desk, smtp_sink, tmp_path, caplog
):
    templates = _admin_ack(tmp_path / "admin", "Hello {{ ticket.requester_nmae }}")
    desk = make_desk(extra=smtp_sink.smtp_config() + templates, rules=NO_AGENTS)
    ingest(desk, 1)
    with caplog.at_level("ERROR"):
        assert send_all(desk) == 1
    text = smtp_sink.received[0].parsed().get_body(("plain",)).get_content()
    assert "We have opened ticket MD-1 for your request" in " ".join(text.split())
    # Rendered in the child process; the reason still reaches the daemon's log.
    assert "en/ack.txt.j2:3" in caplog.text and "requester_nmae" in caplog.text
    assert "sending the shipped template instead" in caplog.text


def test_a_template_that_never_finishes_fails_only_its_notifications(
    make_desk, smtp_sink, tmp_path
):
    forever = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    templates = _admin_ack(tmp_path / "admin", forever)
    limits = "limits:\n  processing_seconds: 0.5\n"
    desk = make_desk(extra=smtp_sink.smtp_config() + templates + limits)
    ingest(desk, 1)
    assert send_all(desk) == 2  # the agents' copies
    with desk.sessions() as session:  # read as stored (outbox_rows would render it here)
        ack = session.scalars(select(OutboxEntry).where(OutboxEntry.template == "ack")).one()
    assert (ack.status, ack.raw) == ("failed", None)
    assert ack.last_error == "cannot render template ack: processing took longer than 0.5 s"
    assert {r.rcpt_tos[0] for r in smtp_sink.received} == {"alice@example.com", "bob@example.com"}


def test_without_a_render_process_the_sender_renders_itself(
    make_desk, smtp_sink, monkeypatch, caplog
):
    from maildesk.common.children import ChildUnavailable
    from maildesk.outgoing import render_jobs as rendering

    class NoChildren:
        def run(self, jobs, timeout):
            raise ChildUnavailable("the renderer process did not start")

    monkeypatch.setattr(rendering, "shared_pool", NoChildren)
    desk = make_desk(extra=smtp_sink.smtp_config(), rules=NO_AGENTS)
    ingest(desk, 2)
    with caplog.at_level("WARNING"):
        assert send_all(desk) == 2
    assert "rendering notifications in the daemon's process" in caplog.text


def test_a_send_is_recorded_only_under_the_claim_it_was_sent_with(make_desk, smtp_sink):
    # A sender thought dead whose rows another sender claimed since must not mark them:
    # they are the other sender's to record (and to send, if it has not yet).
    from maildesk.store.outbox_queue import SENT, Mark

    desk = make_desk(extra=smtp_sink.smtp_config())
    ingest(desk, 2)
    queue = sender(desk).queue
    token, rows = queue.claim()
    ids = [row.id for row in rows]
    with desk.sessions() as s, s.begin():  # another sender takes the first one over
        s.execute(update(OutboxEntry).where(OutboxEntry.id == ids[0]).values(claimed_by="b:1"))
    marks = [Mark(i, dict(SENT), delivered=True) for i in ids]
    assert queue.write_marks(marks, token) == len(ids) - 1
    by_id = {r.id: r for r in outbox_rows(desk)}
    assert (by_id[ids[0]].status, by_id[ids[0]].claimed_by) == ("sending", "b:1")
    assert {by_id[i].status for i in ids[1:]} == {"sent"}
    assert all(by_id[i].attempts == 1 and by_id[i].sent_at for i in ids[1:])
    assert queue.write_marks([marks[0]]) == 1  # without a claim to check: written
    assert {r.status for r in outbox_rows(desk) if r.id in ids} == {"sent"}


def test_a_batch_claimed_ahead_of_a_slow_one_is_sent_once(make_desk, smtp_sink, clock):
    # The next batch is claimed while the current one is sent. When that takes longer
    # than the lease (several SMTP timeouts), the claim ahead has run out by the time its
    # batch starts, and the claim after it would take the same rows back and send them
    # again.
    desk = make_desk(extra=smtp_sink.smtp_config(extra="  sessions: 1\n"))
    ingest(desk, 2)  # an acknowledgement and two agent copies each: two batches of three
    outbox_sender = sender(desk, batch_size=3, lease_seconds=120)
    claim, claims = outbox_sender._claim, []

    def counted_claim():
        claims.append(claim())
        return claims[-1]

    (transport,) = outbox_sender.transports
    send = transport.send

    async def slow_send(*args):
        while len(claims) < 2:  # the batch after this one has been claimed
            await asyncio.sleep(0.01)
        result = await send(*args)
        clock.advance(seconds=50)  # each send waits for a timeout
        return result

    outbox_sender._claim = counted_claim
    transport.send = slow_send
    assert asyncio.run(outbox_sender.drain_and_close()) == 6
    ids = Counter(r.parsed()["Message-ID"] for r in smtp_sink.received)
    assert sorted(ids.values()) == [1] * 6


def test_a_daemon_whose_heartbeat_may_lapse_leaves_its_claims_to_the_others(make_desk, smtp_sink):
    # Other daemons take a daemon's claims once its heartbeat lapses (it cannot reach
    # the database, say); sending them on would send them twice.
    from maildesk.outgoing.sender import HEARTBEAT_LAPSING

    desk = make_desk(extra=smtp_sink.smtp_config(extra="  sessions: 1\n"))
    ingest(desk, 2)  # six notifications, one batch
    holds = [True]
    outbox_sender = sender(desk, may_send=lambda: holds[0])
    (transport,) = outbox_sender.transports
    send = transport.send

    async def send_then_lapse(*args):
        holds[0] = False  # the heartbeat was not renewed during the first send
        return await send(*args)

    transport.send = send_then_lapse
    assert asyncio.run(outbox_sender.drain_and_close()) == 1
    assert outbox_sender.unavailable == HEARTBEAT_LAPSING
    rows = outbox_rows(desk)
    assert sorted(r.status for r in rows) == ["pending"] * 5 + ["sent"]
    assert {r.last_error for r in rows if r.status == "pending"} == {HEARTBEAT_LAPSING}
    assert all(r.claimed_by is None for r in rows)
    assert send_all(desk) == 5  # the next claim (here, ours again) sends the rest
    assert sorted(Counter(r.parsed()["Message-ID"] for r in smtp_sink.received).values()) == [1] * 6
