"""Exactly-once ingest of IMAP mailboxes, in-process, against a real Dovecot."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maildesk.common.errors import MailboxAuthError, SourceError
from maildesk.intake.imap import ImapSource
from maildesk.service.mailbox_ingest import MailboxIngest
from maildesk.store.models import MailboxState, Message, Receipt, Ticket
from tests.conftest import make_mail
from tests.daemon_helpers import mailbox_yaml

pytestmark = pytest.mark.dovecot


def count(desk, model) -> int:
    with desk.sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


@pytest.fixture
def mailbox(dovecot, make_desk, tmp_path):
    """Build (desk, MailboxIngest) for a fresh Dovecot user; extra kwargs go to the config."""
    ingests = []

    def build(user=None, *, name="support", desk=None, **options):
        user = user or dovecot.add_user(name)
        entry = mailbox_yaml(dovecot, user, tmp_path / "secrets", name=name, **options)
        desk = desk or make_desk(f"desk-{name}", extra="mailboxes:\n" + entry)
        config = next(m for m in desk.config.mailboxes if m.name == name)
        ingest = MailboxIngest(desk, config)
        ingests.append(ingest)
        return user, desk, ingest

    yield build
    for ingest in ingests:
        ingest.close()


def test_backlog_is_ingested_once_into_the_mailbox_queue_and_marked_seen(dovecot, mailbox):
    user, desk, ingest = mailbox(queue="billing", batch_size=3)
    for i in range(7):
        dovecot.deliver(user, make_mail(subject=f"Invoice question {i}"))
    ingest.open()
    assert ingest.sync() == 7
    assert ingest.sync() == 0
    assert all("\\Seen" in flags for flags in dovecot.flags(user).values())
    with desk.sessions() as s:
        assert set(s.scalars(select(Ticket.queue))) == {"billing"}
        state = s.get(MailboxState, "support")
        assert (state.last_uid, state.backlog, state.state) == (7, 0, "idle")
    assert count(desk, Ticket) == 7
    assert count(desk, Receipt) == 7


def test_first_start_takes_unread_mail_then_everything_new(dovecot, mailbox):
    user, desk, ingest = mailbox()
    dovecot.append(user, [make_mail(subject="old and read")], flags=["\\Seen"])
    dovecot.append(user, [make_mail(subject="old but unread")])
    ingest.open()
    assert ingest.sync() == 1
    # New mail counts even when someone read it in their mail client before we did.
    dovecot.append(user, [make_mail(subject="new, read by a colleague")], flags=["\\Seen"])
    assert ingest.sync() == 1
    with desk.sessions() as s:
        assert sorted(s.scalars(select(Message.subject))) == [
            "new, read by a colleague",
            "old but unread",
        ]


@pytest.mark.parametrize("move_to", [None, "Processed"])
def test_crash_between_commit_and_acknowledgement_neither_loses_nor_doubles(
    dovecot, mailbox, monkeypatch, move_to
):
    options = {"move_to": move_to} if move_to else {}
    user, desk, ingest = mailbox(batch_size=2, **options)
    for i in range(3):
        dovecot.deliver(user, make_mail(subject=f"before crash {i}"))
    ingest.open()

    def connection_drops(self, uids):
        raise SourceError("connection dropped")

    monkeypatch.setattr(ImapSource, "acknowledge", connection_drops)
    with pytest.raises(SourceError):
        ingest.sync()
    ingest.close()
    monkeypatch.undo()
    assert count(desk, Message) == 2  # the first batch was committed, not acknowledged
    assert not any("\\Seen" in f for f in dovecot.flags(user).values())
    assert dovecot.count(user) == 3

    dovecot.deliver(user, make_mail(subject="after the crash"))
    again = MailboxIngest(desk, ingest.config)
    again.open()
    try:
        assert again.sync() == 2  # the uncommitted one and the new one
    finally:
        again.close()
    assert count(desk, Message) == 4
    assert count(desk, Receipt) == 4
    if move_to:
        assert (dovecot.count(user), dovecot.count(user, move_to)) == (0, 4)
    else:
        assert all("\\Seen" in flags for flags in dovecot.flags(user).values())


def test_uidvalidity_change_rescans_and_recognises_stored_mail(dovecot, mailbox, caplog):
    user, desk, ingest = mailbox(folder="Support")
    first = [make_mail(subject=f"migrated {i}") for i in range(3)]
    dovecot.append(user, first, folder="Support")
    ingest.open()
    assert ingest.sync() == 3
    ingest.close()
    # The folder is rebuilt (as after a server migration): new UIDVALIDITY, same mail unread.
    with dovecot.client(user) as client:
        client.delete_folder("Support")
    dovecot.append(user, [*first, make_mail(subject="arrived after the move")], folder="Support")
    with caplog.at_level(logging.WARNING, logger="maildesk.service.mailbox_ingest"):
        ingest.open()
    assert "UIDVALIDITY changed" in caplog.text
    assert ingest.sync() == 4
    assert count(desk, Message) == 4
    assert count(desk, Ticket) == 4
    assert all("\\Seen" in flags for flags in dovecot.flags(user, "Support").values())


def test_message_in_two_mailboxes_makes_one_ticket(dovecot, mailbox, make_desk, tmp_path):
    support, billing = dovecot.add_user("support"), dovecot.add_user("billing")
    entries = mailbox_yaml(dovecot, support, tmp_path / "s", name="support", queue="general")
    entries += mailbox_yaml(dovecot, billing, tmp_path / "s", name="billing", queue="billing")
    desk = make_desk("shared", extra="mailboxes:\n" + entries)
    raw = make_mail(to=support, cc=billing, subject="Refund, please")
    dovecot.deliver(support, raw)
    dovecot.deliver(billing, raw)
    _, _, to_support = mailbox(support, name="support", desk=desk)
    _, _, to_billing = mailbox(billing, name="billing", desk=desk)
    for ingest in (to_billing, to_support):
        ingest.open()
        assert ingest.sync() == 1
    assert count(desk, Ticket) == 1
    assert count(desk, Message) == 1
    assert count(desk, Receipt) == 2  # both copies are accounted for
    for user in (support, billing):
        assert all("\\Seen" in f for f in dovecot.flags(user).values())


def test_move_to_takes_committed_mail_out_of_the_folder(dovecot, mailbox):
    user, desk, ingest = mailbox(move_to="Processed")
    for i in range(4):
        dovecot.deliver(user, make_mail(subject=f"to be moved {i}"))
    ingest.open()
    assert ingest.sync() == 4
    assert dovecot.count(user) == 0
    assert dovecot.count(user, "Processed") == 4
    assert count(desk, Ticket) == 4


def test_wrong_password_is_an_auth_error_naming_the_mailbox(own_dovecot, make_desk, tmp_path):
    user = own_dovecot.add_user("support")
    entry = mailbox_yaml(own_dovecot, user, tmp_path, password="not-the-password")
    desk = make_desk(extra="mailboxes:\n" + entry)
    ingest = MailboxIngest(desk, desk.config.mailboxes[0])
    with pytest.raises(MailboxAuthError) as caught:
        ingest.open()
    ingest.close()
    message = str(caught.value)
    assert message.startswith(f"mailbox support (127.0.0.1:{own_dovecot.imap_port}): login refused")
    assert user in message
    assert "[AUTHENTICATIONFAILED]" in message and "check the username and password" in message


def test_tls_with_a_custom_ca_file(dovecot, mailbox):
    user, _, ingest = mailbox(security="tls", port=dovecot.imaps_port, ca_file=dovecot.ca_file)
    dovecot.deliver(user, make_mail(subject="over TLS"))
    ingest.open()
    assert ingest.sync() == 1


def test_starttls_with_a_custom_ca_file(dovecot, mailbox):
    user, _, ingest = mailbox(security="starttls", ca_file=dovecot.ca_file)
    dovecot.deliver(user, make_mail(subject="over STARTTLS"))
    ingest.open()
    assert ingest.sync() == 1


def test_tls_certificate_is_verified_by_default(dovecot, mailbox):
    _, _, ingest = mailbox(security="tls", port=dovecot.imaps_port)
    with pytest.raises(SourceError, match=r"certificate not trusted .*set ca_file"):
        ingest.open()


def test_xoauth2_login_with_a_token_command(dovecot, make_desk, tmp_path):
    token = "ya29.test-access-token"
    user = dovecot.add_user("oauth", password=token)  # Dovecot checks the bearer token
    script = tmp_path / "get-token"
    script.write_text(f"#!/bin/sh\necho {token}\n")
    script.chmod(0o755)
    entry = f"""mailboxes:
  - name: gmail
    host: {dovecot.host}
    port: {dovecot.imap_port}
    security: none
    username: {user}
    oauth2_token: {{command: {script}}}
"""
    desk = make_desk("oauth", extra=entry)
    dovecot.deliver(user, make_mail(subject="via XOAUTH2"))
    ingest = MailboxIngest(desk, desk.config.mailboxes[0])
    try:
        ingest.open()
        assert ingest.sync() == 1
    finally:
        ingest.close()
    script.write_text("#!/bin/sh\nexit 3\n")
    broken = MailboxIngest(desk, desk.config.mailboxes[0])
    with pytest.raises(MailboxAuthError, match="token command exited 3"):
        broken.open()
    broken.close()


def test_password_and_token_together_are_rejected(tmp_path):
    from maildesk.common.config_file import load_config
    from maildesk.common.errors import ConfigError
    from tests.conftest import write_config

    path = write_config(
        tmp_path,
        extra="""mailboxes:
  - name: both
    host: imap.example.com
    username: u
    password: {env: X}
    oauth2_token: {command: get-token}
""",
    )
    with pytest.raises(ConfigError, match="exactly one of password: or oauth2_token:"):
        load_config(Path(path))


@pytest.mark.postgres
def test_a_daemon_whose_lease_was_taken_over_cannot_commit(
    dovecot, make_desk, postgres_url, tmp_path
):
    from maildesk.common.errors import LeaseLost
    from maildesk.service.source_ingest import lease_name
    from maildesk.store import leases

    user = dovecot.add_user("fenced")
    entry = mailbox_yaml(dovecot, user, tmp_path, batch_size=5)
    desk = make_desk("fenced", database_url=postgres_url, extra="mailboxes:\n" + entry)
    config = desk.config.mailboxes[0]
    dovecot.append(user, [make_mail(subject=f"fenced {i}") for i in range(10)])

    def owner(holder: str, seconds: float) -> MailboxIngest:
        with desk.sessions() as s, s.begin():
            assert leases.acquire(s, lease_name(config.name), holder, seconds)
        return MailboxIngest(desk, config, holder=holder, lease_seconds=seconds)

    stalled = owner("node-a:1:stalled", 0.3)
    stalled.open()
    batch = stalled.source.unacknowledged_uids(10)[:5]
    fetched = stalled.source.fetch(batch)  # node-a has a batch in hand ...
    time.sleep(0.5)  # ... and hangs past its lease; node-b takes the mailbox over
    taker = owner("node-b:2:taker", 60)
    taker.open()
    assert taker.sync() == 10
    with pytest.raises(LeaseLost, match="node-b:2:taker holds it"):
        stalled._commit(stalled._read(fetched, batch), backlog=5)  # refused: rolled back
    for ingest in (stalled, taker):
        ingest.close()
    assert count(desk, Message) == 10
    assert count(desk, Receipt) == 10


@pytest.mark.parametrize("security", ["none", "tls"])
def test_idle_wakes_up_for_new_mail(dovecot, mailbox, security):
    import threading

    options = {"security": security}
    if security == "tls":
        options.update(port=dovecot.imaps_port, ca_file=dovecot.ca_file)
    user, _, ingest = mailbox(**options)
    ingest.open()
    assert ingest.sync() == 0
    timer = threading.Timer(0.3, dovecot.deliver, (user, make_mail(subject="wake up")))
    timer.start()
    started = time.monotonic()
    ingest.wait(60, threading.Event())  # IDLE; nothing else would end it within 60 s
    waited = time.monotonic() - started
    timer.join()
    assert waited < 5
    assert ingest.sync() == 1


def test_idle_ends_promptly_when_interrupted(dovecot, mailbox):
    import threading

    _, _, ingest = mailbox()
    ingest.open()
    assert ingest.sync() == 0
    interrupt = threading.Event()
    threading.Timer(0.2, interrupt.set).start()
    started = time.monotonic()
    ingest.wait(60, interrupt)
    assert 0.2 <= time.monotonic() - started < 2.5  # SIGTERM is not kept waiting by IDLE


def test_big_message_is_fetched_in_pieces_and_stored_byte_exact(dovecot, mailbox):
    """A message over the spool threshold never sits in memory whole: fetched in pieces."""
    user, desk, ingest = mailbox()
    desk.pipeline.reader.skeleton_from = 200_000  # "big" for this test
    payload = bytes(range(256)) * 4000  # ~1 MB, base64 makes it ~1.4 MB on the wire
    raw = make_mail(
        subject="big logs", attachments=[("logs.bin", "application/octet-stream", payload)]
    )
    dovecot.append(user, [raw])
    fetched_pieces = []
    original = ImapSource.fetch

    def spy(self, uids, spool=None, big=4 << 20):
        fetched_pieces.append((list(uids), spool is not None))
        return original(self, uids, spool=spool, big=desk.pipeline.reader.skeleton_from)

    ImapSource.fetch = spy
    try:
        ingest.open()
        assert ingest.sync() == 1
    finally:
        ImapSource.fetch = original
    assert fetched_pieces and fetched_pieces[0][1]
    with desk.sessions() as s:
        message = s.scalars(select(Message)).one()
        (att,) = message.attachments
        assert att.filename == "logs.bin" and att.size == len(payload)
        assert desk.blobs.get(att.sha256, s) == payload
        assert desk.blobs.get(message.raw_sha256, s).replace(b"\r\n", b"\n") == raw.replace(
            b"\r\n", b"\n"
        )
    assert not list((desk.blobs.root / ".tmp").glob("spool-*"))  # spool files removed


def test_a_fetch_that_fails_after_a_big_message_leaves_no_spool_file(dovecot, mailbox, monkeypatch):
    # The batch is fetched again later; the big message spooled before the failure must
    # not stay behind in the blob store's .tmp (each retry would leave another copy).
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientAbortError

    user, desk, ingest = mailbox()
    desk.pipeline.reader.skeleton_from = 200_000
    payload = bytes(range(256)) * 4000
    big = make_mail(subject="big", attachments=[("a.bin", "application/octet-stream", payload)])
    dovecot.append(user, [big, make_mail(subject="small")])
    original_fetch, original_source_fetch = IMAPClient.fetch, ImapSource.fetch

    def failing(self, messages, data, *args, **kwargs):
        if list(data) == ["BODY.PEEK[]"]:  # the small messages, fetched after the big one
            raise IMAPClientAbortError("simulated: connection lost")
        return original_fetch(self, messages, data, *args, **kwargs)

    def small_threshold(self, uids, spool=None, big=4 << 20):
        return original_source_fetch(self, uids, spool=spool, big=200_000)

    monkeypatch.setattr(IMAPClient, "fetch", failing)
    monkeypatch.setattr(ImapSource, "fetch", small_threshold)
    ingest.open()
    with pytest.raises(SourceError, match="simulated"):
        ingest.sync()
    assert not list((desk.blobs.root / ".tmp").glob("spool-*"))


def test_a_message_the_server_will_not_fetch_does_not_hold_up_the_others(
    dovecot, mailbox, monkeypatch, caplog
):
    # Exchange answers NO for a corrupt item; the batch's other messages are fetched
    # one by one and ingested, and that one is asked for again at the next pass.
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError

    user, desk, ingest = mailbox()
    dovecot.append(user, [make_mail(subject=f"Mail {n}") for n in range(1, 4)])
    original_fetch = IMAPClient.fetch
    refused: list[int] = []

    def refusing(self, messages, data, *args, **kwargs):
        if list(data) == ["BODY.PEEK[]"] and 2 in list(messages):
            refused.append(2)
            raise IMAPClientError("FETCH failed: NO [UNAVAILABLE] Server Unavailable")
        return original_fetch(self, messages, data, *args, **kwargs)

    monkeypatch.setattr(IMAPClient, "fetch", refusing)
    ingest.open()
    with caplog.at_level(logging.ERROR, logger="maildesk.intake.imap"):
        ingest.sync()
    assert "UID 2 not fetched, the server says: FETCH failed: NO [UNAVAILABLE]" in caplog.text
    with desk.sessions() as s:
        assert sorted(s.scalars(select(Ticket.subject))) == ["Mail 1", "Mail 3"]
    monkeypatch.setattr(IMAPClient, "fetch", original_fetch)
    assert ingest.sync() == 1  # readable again: taken at the next pass
    with desk.sessions() as s:
        assert sorted(s.scalars(select(Ticket.subject))) == ["Mail 1", "Mail 2", "Mail 3"]


def test_a_server_that_refuses_every_message_fails_the_pass(dovecot, mailbox, monkeypatch):
    # One message refused is that message's trouble; all of them is the server's, and
    # the mailbox must show as failing rather than pass empty.
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError

    user, _, ingest = mailbox()
    dovecot.append(user, [make_mail(subject=f"Mail {n}") for n in range(1, 3)])
    original_fetch = IMAPClient.fetch

    def refusing_all(self, messages, data, *args, **kwargs):
        if list(data) == ["BODY.PEEK[]"]:
            raise IMAPClientError("FETCH failed: NO Server Unavailable")
        return original_fetch(self, messages, data, *args, **kwargs)

    monkeypatch.setattr(IMAPClient, "fetch", refusing_all)
    ingest.open()
    with pytest.raises(SourceError, match="Server Unavailable"):
        ingest.sync()
