"""Threads of a real mailing list reproduced as tickets (tests/corpus/lists, SOURCES.md).

The desk's support address is the list's posting address, so every post arrives with
the desk on To/Cc as it does for a desk that reads the list; the corpus is fed unchanged,
oldest first. The expected threads are the connected components of the
In-Reply-To/References graph within the corpus (tests/list_corpus.py).
"""

from __future__ import annotations

import pytest

from maildesk.common.resources import example_rules
from tests.list_corpus import (
    LIST_RULES,
    ingest,
    list_address,
    mbox_files,
    measure,
    read_corpus,
    threads,
)


@pytest.fixture(scope="module")
def mails():
    return read_corpus(mbox_files())


def run(make_desk, clock, mails, rules: str):
    desk = make_desk(support=list_address(mails), rules=rules)
    outcomes = ingest(desk, mails, lambda date: setattr(clock, "now", date))
    return measure(desk, mails, outcomes)


def test_the_corpus_is_what_sources_md_describes(mails):
    found = threads(mails)
    assert (len(mails), len(found), list_address(mails)) == (60, 20, "users@httpd.apache.org")
    assert sorted(len(t) for t in found if len(t) > 1) == [2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 7, 13]
    assert max(len({m.sender for m in t}) for t in found) == 7


def test_a_list_queue_reproduces_every_thread(make_desk, clock, mails):
    """`participants: list`: whoever answers a post joins its ticket."""
    figures = run(make_desk, clock, mails, LIST_RULES)
    assert figures.summary() == (
        "20 of 20 threads reproduced, 40 of 40 replies on their thread's ticket"
        " (0 more on a ticket linked to it), 20 tickets"
    )
    assert figures.outcomes == {"created": 20, "added": 40}


def test_by_default_only_proven_participants_join_the_others_get_linked_tickets(
    make_desk, clock, mails
):
    """With the example rules a reply joins its thread's ticket only when its sender was
    on From/To/Cc of the post they answer (a reply-all) or is on the ticket already; a
    subscriber who answers a post sent only To the list cannot prove they saw it (a
    customer's Message-ID can be guessed), so they get a ticket of their own, linked to
    the thread's, as a stranger naming the ticket would (README, "Token spoofing")."""
    figures = run(make_desk, clock, mails, example_rules().read_text())
    assert figures.summary() == (
        "7 of 20 threads reproduced, 12 of 40 replies on their thread's ticket"
        " (28 more on a ticket linked to it), 46 tickets"
    )
    assert all("(linked to MD-" in line for line in figures.missed)
