"""Attachments and formatting both ways with `maildesk run`, a real Dovecot and SMTP server.

The customer's mail and the agent's replies are delivered to the support mailbox in
Dovecot; the daemon reads them over IMAP and sends its mail to the SMTP server.
"""

from __future__ import annotations

import pytest

from tests.attachkit import agent_reply, customer_mail, files_of, pdf, png, quoting_html
from tests.daemon_helpers import DaemonProcess, Db, desk_dir, mailbox_yaml, wait_until
from tests.mailflow import parse
from tests.test_agents import body

pytestmark = pytest.mark.dovecot

LIMIT = 100_000
ALICE, CUSTOMER = "alice@example.com", "customer@example.org"


@pytest.fixture
def running(dovecot, smtp_sink, tmp_path):
    user = dovecot.add_user("files")
    config = desk_dir(tmp_path, [mailbox_yaml(dovecot, user, tmp_path, poll_seconds=1)])
    notify = f"notify:\n  attach_max_bytes: {LIMIT}\n"
    config.write_text(config.read_text() + smtp_sink.smtp_config() + notify)
    daemon = DaemonProcess(config).start()
    db = Db(config)
    wait_until(lambda: db.state() in ("idle", "polling"), 20, "the mailbox to be watched", daemon)
    yield dovecot, user, daemon, smtp_sink
    daemon.ensure_dead()
    db.close()


def mail_to(sink, address: str, daemon, count: int = 1, what: str = "") -> list:
    """The first `count` mails the SMTP server got for `address` (waiting for them)."""

    def arrived() -> list:
        return [parse(i.data) for i in sink.received if address in i.rcpt_tos]

    wait_until(lambda: len(arrived()) >= count, 30, what or f"mail to {address}", daemon)
    return arrived()[:count]


def test_files_and_formatting_go_both_ways(running):
    dovecot, user, daemon, sink = running
    shot, invoice = png(), pdf(pages=2)
    dovecot.deliver(
        user,
        customer_mail(
            files=[("screen.png", "image/png", shot), ("invoice.pdf", "application/pdf", invoice)]
        ),
    )
    (notice,) = mail_to(sink, ALICE, daemon, what="the agents' notification")
    assert files_of(notice) == {"screen.png": shot, "invoice.pdf": invoice}  # identical bytes

    answer, diagram = pdf(pages=3), png("blue", (50, 50))
    html = quoting_html(
        'Hello <b>Jane</b>, read <a href="https://example.com/fix">the fix</a>:'
        '<ul><li>unplug</li><li>wait</li></ul><img src="cid:diagram1"><script>alert(1)</script>'
    )
    reply = agent_reply(
        notice,
        "Hello Jane",
        html=html,
        inline=[("diagram1", diagram)],
        files=[("answer.pdf", "application/pdf", answer), ("screen.png", "image/png", shot)],
    )
    dovecot.deliver(user, reply, sender=ALICE)
    relayed = mail_to(sink, CUSTOMER, daemon, count=2, what="the agent's reply")[-1]
    assert "Hello Jane" in body(relayed)
    assert sorted(files_of(relayed).values()) == sorted([answer, diagram])  # not screen.png
    shown = relayed.get_body(("html",)).get_content()
    assert "<b>Jane</b>" in shown and '<a href="https://example.com/fix"' in shown
    assert "<ul><li>unplug</li><li>wait</li></ul>" in shown and 'src="cid:diagram1"' in shown
    assert "<script" not in shown and "alert(1)" not in shown
    assert daemon.stop() == 0


def test_an_over_limit_file_is_listed_then_fetched_by_mail(running):
    dovecot, user, daemon, sink = running
    big = pdf(filler=LIMIT + 50_000)
    dovecot.deliver(user, customer_mail(files=[("big.pdf", "application/pdf", big)]))
    (notice,) = mail_to(sink, ALICE, daemon, what="the agents' notification")
    assert files_of(notice) == {}
    text = " ".join(body(notice).split())
    assert "big.pdf (" in text and "over the size one mail carries" in text
    assert "#send-attachments" in text and "maildesk tickets attachment MD-1" in text

    dovecot.deliver(user, agent_reply(notice, "#send-attachments big.pdf"), sender=ALICE)
    fetched = mail_to(sink, ALICE, daemon, count=2, what="the file by mail")[-1]
    assert files_of(fetched) == {"big.pdf": big}
    assert len([i for i in sink.received if CUSTOMER in i.rcpt_tos]) == 1  # only the ack
    assert daemon.stop() == 0
