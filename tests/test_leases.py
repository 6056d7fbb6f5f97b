"""Leases decide which daemon owns a mailbox; on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import time

import pytest

from maildesk.common.errors import LeaseLost
from maildesk.store import leases


@pytest.fixture(params=["sqlite", "postgres"])
def sessions(request, make_desk):
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        return make_desk("pg", database_url=url).sessions
    return make_desk("lite").sessions


def take(sessions, holder, seconds=60.0, name="mailbox:support") -> bool:
    with sessions() as s, s.begin():
        return leases.acquire(s, name, holder, seconds)


def test_one_holder_at_a_time_until_release(sessions):
    assert take(sessions, "a")
    assert not take(sessions, "b")
    assert take(sessions, "a")  # the holder extends its own lease
    with sessions() as s, s.begin():
        leases.release(s, "mailbox:support", "a")
    assert take(sessions, "b")
    with sessions() as s:
        assert leases.current(s, "mailbox:support").holder == "b"


def test_expired_lease_is_taken_over_and_the_old_holder_is_fenced(sessions):
    assert take(sessions, "dead", seconds=0.2)
    time.sleep(0.3)
    assert take(sessions, "alive")
    with pytest.raises(LeaseLost, match="alive holds it"), sessions() as s, s.begin():
        leases.renew(s, "mailbox:support", "dead", 60)


def test_renew_keeps_a_live_lease(sessions):
    assert take(sessions, "a", seconds=0.5)
    for _ in range(3):
        time.sleep(0.2)
        with sessions() as s, s.begin():
            leases.renew(s, "mailbox:support", "a", 0.5)
    assert not take(sessions, "b")


def test_leases_are_per_mailbox(sessions):
    assert take(sessions, "a", name="mailbox:one")
    assert take(sessions, "b", name="mailbox:two")
    with sessions() as s:
        held = leases.all_leases(s)
    assert {n: lease.holder for n, lease in held.items()} == {
        "mailbox:one": "a",
        "mailbox:two": "b",
    }


def test_each_new_holder_gets_a_higher_fencing_token_and_old_tokens_are_refused(sessions):
    first = take(sessions, "a")
    assert take(sessions, "a") == first  # extending keeps the token
    with sessions() as s, s.begin():
        leases.release(s, "mailbox:support", "a")
    second = take(sessions, "b")
    with sessions() as s, s.begin():
        leases.release(s, "mailbox:support", "b", second)
    third = take(sessions, "a")
    assert first < second < third
    # "a" holds the mailbox again, but a batch begun under its first holding is fenced.
    with pytest.raises(LeaseLost, match="taken again"), sessions() as s, s.begin():
        leases.renew(s, "mailbox:support", "a", 60, first)
    with sessions() as s, s.begin():
        leases.renew(s, "mailbox:support", "a", 60, third)


def test_a_dead_daemons_leases_are_free_once_its_heartbeat_expires(sessions):
    assert take(sessions, "dead", seconds=0.3, name=leases.HEARTBEAT + "dead")
    assert take(sessions, "dead", seconds=60)  # the mailbox lease itself lasts a minute
    assert not take(sessions, "alive")
    time.sleep(0.4)  # the heartbeat runs out long before the mailbox lease would
    with sessions() as s:
        assert not leases.current(s, "mailbox:support").live
    assert take(sessions, "alive")
    with pytest.raises(LeaseLost), sessions() as s, s.begin():
        leases.renew(s, "mailbox:support", "dead", 60)
