"""Agents doing the whole job from their mail client, end to end: `maildesk run` on a real
Dovecot mailbox (IDLE), sending through a real SMTP server; agents answer the mail they
receive through its signed Reply-To, as their mail client would."""

from __future__ import annotations

import email.policy
import itertools
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from maildesk.common.config_file import load_config
from maildesk.rules import load_rules
from maildesk.store.models import Message, Ticket
from maildesk.triage.reply_tokens import forwarding_address, load_reply_keys
from tests.conftest import make_mail
from tests.daemon_helpers import DaemonProcess, Db, desk_dir, mailbox_yaml, wait_until
from tests.forward_samples import INLINE, ORIGINAL_DATE, forward, forward_as_attachment
from tests.mailflow import reply_to
from tests.servers import DovecotServer, SmtpSink

pytestmark = pytest.mark.dovecot

ALICE = "Alice Archer <alice@example.com>"
WATCH_RULE = """
  - name: watched-customer
    when:
      from: {domain: [watched.example]}
    then:
      watchers: [carol]
"""
_numbers = itertools.count(1)


@dataclass
class Desk:
    dovecot: DovecotServer
    user: str
    sink: SmtpSink
    config: Path
    daemon: DaemonProcess
    db: Db

    def deliver(self, raw: bytes) -> None:
        self.dovecot.deliver(self.user, raw)

    def mail_to(self, address: str, containing: str = "", timeout: float = 30) -> EmailMessage:
        """The first mail the SMTP server took for `address` whose text has `containing`."""

        def found() -> EmailMessage | None:
            for received in list(self.sink.received):
                if address in received.rcpt_tos:
                    msg = message_from_bytes(received.data, policy=email.policy.default)
                    if containing in body(msg):
                        return msg  # type: ignore[return-value]
            return None

        return wait_until(found, timeout, f"mail to {address} with {containing!r}", self.daemon)

    def ticket(self, requester: str) -> Ticket:
        """The requester's ticket, once the daemon has stored it."""

        def row() -> Ticket | None:
            with self.db.engine.connect() as conn:
                return conn.execute(select(Ticket).where(Ticket.requester == requester)).first()  # type: ignore[return-value]

        return wait_until(row, 30, f"a ticket for {requester}", self.daemon)


def body(msg: EmailMessage) -> str:
    return msg.get_body(("plain",)).get_content()


@pytest.fixture(scope="module")
def desk(dovecot, tmp_path_factory):
    root = tmp_path_factory.mktemp("agentflow")
    user = dovecot.add_user("agentflow")
    sink = SmtpSink().start()
    config = desk_dir(root, [mailbox_yaml(dovecot, user, root)])
    config.write_text(config.read_text() + sink.smtp_config())
    rules = root / "rules.yaml"
    rules.write_text(rules.read_text() + WATCH_RULE)
    daemon = DaemonProcess(config).start()
    db = Db(config)
    wait_until(lambda: db.state() == "idle", 20, "the mailbox to be watched", daemon)
    yield Desk(dovecot, user, sink, config, daemon, db)
    code = daemon.stop()
    db.close()
    sink.stop()
    assert code == 0, daemon.log()[-3000:]


def customer_writes(desk: Desk, domain: str = "example.org", **mail) -> str:
    """A new customer's request; returns their address."""
    address = f"customer{next(_numbers)}@{domain}"
    desk.deliver(make_mail(sender=f"Customer <{address}>", **mail))
    return address


@pytest.mark.parametrize("client", [*INLINE, "attached"])
def test_a_forward_from_each_client_opens_the_ticket_for_the_original_sender(desk, client):
    keys = load_reply_keys(load_config(desk.config).tickets)
    to = forwarding_address("support@example.com", "alice@example.com", keys.current)
    customer = f"{client}-dana@example.org"
    if client == "attached":
        desk.deliver(forward_as_attachment(to=to, customer=customer))
    else:
        desk.deliver(forward(client, to=to, customer=customer))
    ack = desk.mail_to(customer)  # the customer hears from the desk, not from Alice
    ticket = desk.ticket(customer)
    assert f"[{ticket.ref}]" in str(ack["Subject"])
    told = desk.mail_to("alice@example.com", f"New ticket {ticket.ref}")
    assert "Dana called me about this too" in body(told)  # her note, for the agents
    with desk.db.engine.connect() as conn:
        stored = conn.execute(
            select(Message.from_addr, Message.date, Message.internal).where(
                Message.ticket_id == ticket.id
            )
        ).all()
    assert (customer, ORIGINAL_DATE, False) in stored
    assert ("alice@example.com", None, True) in stored  # the note


def test_assign_tells_the_new_owner(desk):
    customer = customer_writes(desk, subject="VPN drops every hour", body="Since Monday.")
    ref = desk.ticket(customer).ref
    notice = desk.mail_to("alice@example.com", f"New ticket {ref}")
    desk.deliver(
        make_mail(
            sender=ALICE,
            subject=f"Re: {notice['Subject']}",
            body="#assign bob\n\nBob, you set up this VPN.",
            **reply_to(notice),
        )
    )
    told = desk.mail_to("bob@example.com", "assigned ticket")
    text = body(told)
    assert f"Alice Archer assigned ticket {ref} to you" in text
    assert "Since Monday." in text and "Bob, you set up this VPN." in text
    assert told["Reply-To"].addresses[0].addr_spec.startswith(f"support+{ref.lower()}.")
    assert desk.ticket(customer).assignee == "bob@example.com"


def test_a_watcher_gets_the_later_replies(desk):
    customer = customer_writes(desk, "watched.example", subject="Contract copy", body="Please.")
    ref = desk.ticket(customer).ref
    desk.mail_to("carol@example.com", f"New ticket {ref}")  # a rule made Carol a watcher
    desk.deliver(
        make_mail(
            sender=f"Customer <{customer}>", subject=f"Re: [{ref}] Contract copy", body="Any news?"
        )
    )
    desk.mail_to("carol@example.com", "Any news?")
    notice = desk.mail_to("alice@example.com", f"New ticket {ref}")
    desk.deliver(
        make_mail(
            sender=ALICE,
            subject=f"Re: {notice['Subject']}",
            body="Sent it a minute ago.",
            **reply_to(notice),
        )
    )
    copy = desk.mail_to("carol@example.com", "Sent it a minute ago.")
    assert "Alice Archer answered" in body(copy)
    desk.mail_to(customer, "Sent it a minute ago.")
    mine = [r for r in desk.sink.received if "alice@example.com" in r.rcpt_tos]
    assert not [r for r in mine if b"answered" in r.data]  # never her own reply back


def test_priority_urgent_moves_the_due_times_to_the_urgent_policys(desk):
    customer = customer_writes(desk, subject="Scanner is slow", body="Takes minutes.")
    before = desk.ticket(customer)
    assert before.sla_policy == "standard"
    notice = desk.mail_to("alice@example.com", f"New ticket {before.ref}")
    desk.deliver(
        make_mail(
            sender=ALICE,
            subject=f"Re: {notice['Subject']}",
            body="#priority urgent\n#note\n\nThe CFO needs it scanned today.",
            **reply_to(notice),
        )
    )
    wait_until(lambda: desk.ticket(customer).priority == "urgent", 30, "#priority", desk.daemon)
    after = desk.ticket(customer)
    urgent = load_rules(desk.config.parent / "rules.yaml").sla_policies["urgent"]
    first, resolution = urgent.due(after.created_at)
    assert after.sla_policy == "urgent"
    assert (after.first_response_due, after.resolution_due) == (first, resolution)
    assert after.resolution_due < before.resolution_due
