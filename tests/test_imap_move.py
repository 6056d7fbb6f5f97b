"""move_to on servers without MOVE: only the messages maildesk took leave the folder."""

from __future__ import annotations

import logging

import pytest

from maildesk.service.mailbox_ingest import MailboxIngest
from tests.conftest import make_mail
from tests.daemon_helpers import mailbox_yaml
from tests.servers import running_dovecot

pytestmark = pytest.mark.dovecot

# What an older server offers after login: no MOVE (RFC 6851), with or without UIDPLUS.
OLD_SERVER = "IMAP4rev1 IDLE LITERAL+ NAMESPACE MULTIAPPEND"


@pytest.fixture(scope="module", params=["UIDPLUS", ""], ids=["uidplus", "no-uidplus"])
def old_dovecot(request):
    capabilities = f"{OLD_SERVER} {request.param}".strip()
    extra = f"protocol imap {{\n  imap_capability = {capabilities}\n}}\n"
    with running_dovecot(f"nomove-{request.param or 'plain'}", extra) as server:
        server.uidplus = bool(request.param)
        yield server


def test_moving_without_move_leaves_another_clients_deleted_mail_alone(
    old_dovecot, make_desk, tmp_path, caplog
):
    user = old_dovecot.add_user("support")
    # A colleague's mail client flagged this one \Deleted and has not expunged it (yet).
    old_dovecot.append(user, [make_mail(subject="Not ours")], flags=["\\Deleted"])
    for i in range(3):
        old_dovecot.deliver(user, make_mail(subject=f"To be moved {i}"))
    entry = mailbox_yaml(old_dovecot, user, tmp_path / "secrets", move_to="Processed")
    desk = make_desk(extra="mailboxes:\n" + entry)
    ingest = MailboxIngest(desk, desk.config.mailboxes[0])
    caplog.set_level(logging.INFO, logger="maildesk.intake.imap")
    try:
        ingest.open()
        assert ingest.sync() == 3
        assert ingest.sync() == 0  # copies left flagged \Deleted are not taken again
    finally:
        ingest.close()
    assert old_dovecot.count(user, "Processed") == 3
    inbox = old_dovecot.flags(user)
    assert "\\Deleted" in inbox[1]  # the colleague's message is still there
    told = "stays in INBOX flagged \\Deleted until a mail client expunges" in caplog.text
    if old_dovecot.uidplus:  # UID EXPUNGE removed exactly the three we moved
        assert sorted(inbox) == [1] and not told
    else:  # no way to expunge only ours: they stay, flagged \Deleted, and the log says so
        assert sorted(inbox) == [1, 2, 3, 4]
        assert all("\\Deleted" in flags for flags in inbox.values())
        assert told
