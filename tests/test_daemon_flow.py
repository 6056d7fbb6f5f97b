"""The whole product as an admin runs it: `maildesk run` with Dovecot, an SMTP server and rules."""

from __future__ import annotations

import pytest

from tests.conftest import make_mail
from tests.daemon_helpers import DaemonProcess, Db, desk_dir, mailbox_yaml, wait_until

pytestmark = pytest.mark.dovecot

BILLING_RULE = """  - name: billing-words
    when:
      subject: {contains_word: [invoice, refund, billing, счёт, счет, faktura, фактура]}
    then:
      queue: billing
"""


@pytest.fixture
def running(dovecot, smtp_sink, tmp_path):
    user = dovecot.add_user("flow")
    config = desk_dir(tmp_path, [mailbox_yaml(dovecot, user, tmp_path, poll_seconds=1)])
    config.write_text(config.read_text() + smtp_sink.smtp_config())
    daemon = DaemonProcess(config).start()
    db = Db(config)
    wait_until(lambda: db.state() in ("idle", "polling"), 20, "the mailbox to be watched", daemon)
    yield dovecot, user, config, daemon, db
    daemon.ensure_dead()
    db.close()


def queue_of(db: Db, subject: str) -> str | None:
    from sqlalchemy import select

    from maildesk.store.models import Ticket

    with db.engine.connect() as conn:
        return conn.scalar(select(Ticket.queue).where(Ticket.subject == subject))


def test_running_daemon_picks_up_rules_and_keeps_the_last_good_ones(running):
    dovecot, user, config, daemon, db = running
    rules = config.parent / "rules.yaml"
    original = rules.read_text()
    assert BILLING_RULE in original

    dovecot.deliver(user, make_mail(subject="invoice one", sender="a@example.org"))
    wait_until(lambda: queue_of(db, "invoice one") is not None, 20, "the first ticket", daemon)
    assert queue_of(db, "invoice one") == "billing"

    # A valid change: invoices now go to the general queue.
    rules.write_text(
        original.replace(BILLING_RULE, BILLING_RULE.replace("queue: billing", "queue: general"))
    )
    daemon.wait_log("rules reloaded", timeout=15)
    dovecot.deliver(user, make_mail(subject="invoice two", sender="b@example.org"))
    wait_until(lambda: queue_of(db, "invoice two") is not None, 20, "the second ticket", daemon)
    assert queue_of(db, "invoice two") == "general"

    # An invalid change (a queue that does not exist) is rejected with file and line.
    seen = len(daemon.log())
    rules.write_text(
        original.replace(BILLING_RULE, BILLING_RULE.replace("queue: billing", "queue: biling"))
    )
    daemon.wait_log("rules.yaml:", timeout=15, after=seen)
    assert "biling" in daemon.log()[seen:]
    dovecot.deliver(user, make_mail(subject="invoice three", sender="c@example.org"))
    wait_until(lambda: queue_of(db, "invoice three") is not None, 20, "the third ticket", daemon)
    assert queue_of(db, "invoice three") == "general"  # the last good rules stay in force
    assert daemon.stop() == 0


def test_daemon_sends_the_acknowledgement_by_smtp(running, smtp_sink):
    dovecot, user, _config, daemon, _db = running
    dovecot.deliver(user, make_mail(subject="Please help", sender="Dana <dana@example.org>"))
    wait_until(
        lambda: any("dana@example.org" in r.rcpt_tos for r in smtp_sink.received),
        30,
        "the ack",
        daemon,
    )
    ack = next(r for r in smtp_sink.received if "dana@example.org" in r.rcpt_tos).parsed()
    assert "[MD-1]" in str(ack["Subject"]) and ack["Auto-Submitted"] == "auto-replied"
    assert daemon.stop() == 0
