"""Every reply of the corpus reaches the customer as the agent wrote it (SOURCES.md)."""

from __future__ import annotations

import pytest

from tests.reply_corpus import cases, relayed, same_answer

CASES = cases()


def test_the_corpus_covers_eight_languages_and_every_reply_shape():
    languages = {c.name.split("-")[0] for c in CASES if not c.name.startswith("html-")}
    assert {"en", "ru", "pl", "bg", "uk", "de", "fr", "es"} <= languages
    assert any("bottom-posted" in c.name for c in CASES)
    assert sum("interleaved" in c.name for c in CASES) >= 6
    assert sum(c.html for c in CASES) >= 10


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_customer_receives_the_answer(case):
    got = relayed(case)
    assert same_answer(got, case.expected), got
