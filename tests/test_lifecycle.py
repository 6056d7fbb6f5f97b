from datetime import UTC, datetime, timedelta

from maildesk.common.domain import Status
from maildesk.decide.lifecycle import (
    auto_close_due,
    customer_reply_status,
    is_just_thanks,
    transition_problem,
)


def test_customer_reply_reopens_pending_and_resolved_but_not_for_thanks():
    assert (
        customer_reply_status(Status.PENDING, "here it is", thanks_keeps_resolved=True)
        is Status.OPEN
    )
    assert (
        customer_reply_status(Status.RESOLVED, "still broken!", thanks_keeps_resolved=True)
        is Status.OPEN
    )
    assert customer_reply_status(Status.RESOLVED, "Thank you!", thanks_keeps_resolved=True) is None
    assert (
        customer_reply_status(Status.RESOLVED, "Спасибо большое!", thanks_keeps_resolved=True)
        is None
    )
    assert (
        customer_reply_status(Status.RESOLVED, "Thanks", thanks_keeps_resolved=False) is Status.OPEN
    )
    assert customer_reply_status(Status.OPEN, "more info", thanks_keeps_resolved=True) is None


def test_thanks_detection_is_not_fooled_by_a_real_question():
    assert is_just_thanks("Thanks a lot!\nMaria")
    assert not is_just_thanks(
        "Thanks, but the export still fails with error 500 when I click save."
    )
    assert not is_just_thanks("")


def test_transitions():
    assert transition_problem(Status.OPEN, Status.PENDING) == ""
    assert "cannot become resolved" in transition_problem(Status.CLOSED, Status.RESOLVED)


def test_auto_close_after_n_days():
    resolved = datetime(2026, 11, 20, 12, tzinfo=UTC)
    assert not auto_close_due(resolved, resolved + timedelta(days=2, hours=23), 3)
    assert auto_close_due(resolved, resolved + timedelta(days=3), 3)
    assert not auto_close_due(None, resolved, 3)
    assert not auto_close_due(resolved, resolved + timedelta(days=30), 0)
