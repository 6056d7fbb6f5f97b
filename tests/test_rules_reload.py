"""Hot reload: a changed rules.yaml takes effect at once; a broken one is refused and logged."""

from __future__ import annotations

import logging

from sqlalchemy import select

from maildesk.store.models import Ticket
from tests.conftest import make_mail
from tests.rulekit import rules_text

TO_BILLING = rules_text("""
    - name: invoices
      when: {subject: {contains: invoice}}
      then: {queue: billing}
""")


def queue_of(desk, ref: str) -> str:
    with desk.sessions() as s:
        return s.scalars(select(Ticket.queue).where(Ticket.ref == ref)).one()


def test_unchanged_file_is_not_reloaded(make_desk):
    desk = make_desk(rules=TO_BILLING)
    before = desk.rules.current
    assert desk.rules.reload_if_changed() is False
    assert desk.rules.current is before


def test_valid_change_is_applied_to_the_next_message(make_desk):
    desk = make_desk(rules=TO_BILLING)
    first = desk.pipeline.process_one(make_mail(subject="invoice 1"))
    assert queue_of(desk, first.ticket_ref) == "billing"
    desk.config.rules.write_text(TO_BILLING.replace("queue: billing}", "queue: general}"))
    assert desk.rules.reload_if_changed() is True
    second = desk.pipeline.process_one(make_mail(subject="invoice 2"))
    assert queue_of(desk, second.ticket_ref) == "general"
    assert desk.rules.last_error is None


def test_invalid_change_is_rejected_logged_and_old_rules_stay(make_desk, caplog):
    desk = make_desk(rules=TO_BILLING)
    good = desk.rules.current
    broken = TO_BILLING.replace("queue: billing}", "queue: biling}")
    desk.config.rules.write_text(broken)
    with caplog.at_level(logging.ERROR, logger="maildesk.service.desk"):
        assert desk.rules.reload_if_changed() is False
    assert desk.rules.current is good
    logged = caplog.text
    assert "keeping the last good rules" in logged
    line = broken.splitlines().index("    then: {queue: biling}") + 1
    assert f"rules.yaml:{line}: unknown queue 'biling' in rule 'invoices'" in logged
    assert "biling" in (desk.rules.last_error or "")
    result = desk.pipeline.process_one(make_mail(subject="invoice 3"))
    assert queue_of(desk, result.ticket_ref) == "billing"  # the old rules still route


def test_broken_file_is_logged_once_then_a_fix_is_picked_up(make_desk, caplog):
    desk = make_desk(rules=TO_BILLING)
    desk.config.rules.write_text("version: 1\ndefault: [oops\n")
    with caplog.at_level(logging.ERROR, logger="maildesk.service.desk"):
        desk.rules.reload_if_changed()
        desk.rules.reload_if_changed()  # the daemon polls every few seconds
    assert caplog.text.count("YAML syntax error") == 1
    desk.config.rules.write_text(TO_BILLING.replace("invoice}", "rechnung}"))
    assert desk.rules.reload_if_changed() is True
    result = desk.pipeline.process_one(make_mail(subject="Rechnung 7"))
    assert queue_of(desk, result.ticket_ref) == "billing"


def test_deleted_file_keeps_the_rules_in_force(make_desk, caplog):
    desk = make_desk(rules=TO_BILLING)
    desk.config.rules.unlink()
    with caplog.at_level(logging.ERROR, logger="maildesk.service.desk"):
        assert desk.rules.reload_if_changed() is False
    assert "file not found" in caplog.text
    result = desk.pipeline.process_one(make_mail(subject="invoice 4"))
    assert queue_of(desk, result.ticket_ref) == "billing"


def test_a_reload_naming_a_template_nobody_wrote_is_refused_as_rules_check_would(make_desk, caplog):
    # Accepted, every acknowledgement it chose would fail when rendered: no customer
    # would hear back. `maildesk rules check` refuses it; so does the running daemon.
    desk = make_desk(rules=TO_BILLING)
    good = desk.rules.current
    desk.config.rules.write_text(TO_BILLING.replace("queue: billing}", "auto_reply: ack-vip}"))
    with caplog.at_level(logging.ERROR, logger="maildesk.service.desk"):
        assert desk.rules.reload_if_changed() is False
    assert desk.rules.current is good
    assert "auto_reply template 'ack-vip' in rule 'invoices' does not exist" in caplog.text
    assert "rules not reloaded, keeping the last good rules" in caplog.text
    assert "ack-vip" in (desk.rules.last_error or "")
