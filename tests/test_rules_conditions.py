"""Each `when` field, operator and combinator, tested against real parsed messages."""

from __future__ import annotations

import re
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maildesk.intake.parse import parse_message
from maildesk.rules.text_match import Words, make_matcher
from tests.rulekit import facts, fires, message, one_rule

URGENT = message(subject="URGENT: printer on fire", body="Please help.")
PLAIN = message(subject="Printer question", body="How do I print double-sided?")


# --- text operators -------------------------------------------------------------------


def test_is_matches_the_whole_value_case_insensitively():
    assert fires("{subject: {is: 'printer QUESTION'}}", PLAIN)
    assert not fires("{subject: {is: 'printer'}}", PLAIN)


def test_in_accepts_any_of_a_list():
    assert fires("{from: {in: [x@example.net, Customer@Example.org]}}", PLAIN)
    assert not fires("{from: {in: [x@example.net, y@example.net]}}", PLAIN)


def test_contains_finds_a_substring_of_any_listed_value():
    assert fires("{subject: {contains: [asap, urgent]}}", URGENT)
    assert not fires("{subject: {contains: [asap, urgent]}}", PLAIN)


def test_contains_word_needs_whole_words_also_in_cyrillic():
    assert fires("{subject: {contains_word: urgent}}", URGENT)
    assert not fires("{subject: {contains_word: urgent}}", message(subject="Non-urgently yours"))
    russian = message(subject="Очень СРОЧНО: не работает")
    assert fires("{subject: {contains_word: [срочно]}}", russian)
    assert not fires("{subject: {contains_word: [срочно]}}", message(subject="Несрочной вопрос"))


def test_starts_with_and_ends_with():
    assert fires("{subject: {starts_with: urgent}}", URGENT)
    assert not fires("{subject: {starts_with: fire}}", URGENT)
    assert fires("{subject: {ends_with: [on fire, smoke]}}", URGENT)
    assert not fires("{subject: {ends_with: printer}}", URGENT)


def test_matches_is_a_regex_search():
    order = message(subject="Order #12345 missing")
    assert fires(r"{subject: {matches: 'order #\d{5}\b'}}", order)
    assert not fires(r"{subject: {matches: '^#\d+'}}", order)


def test_domain_matches_the_domain_and_its_subdomains_only():
    assert fires("{from: {domain: example.org}}", PLAIN)
    assert fires("{from: {domain: example.org}}", message(sender="a@mail.EXAMPLE.org"))
    assert not fires("{from: {domain: example.org}}", message(sender="a@badexample.org"))
    assert not fires("{from: {domain: example.org}}", message(sender="a@example.org.evil.net"))


def test_case_sensitive_opt_in():
    assert not fires("{subject: {contains: urgent, case_sensitive: true}}", URGENT)
    assert fires("{subject: {contains: URGENT, case_sensitive: true}}", URGENT)
    assert not fires("{subject: {matches: 'urgent', case_sensitive: true}}", URGENT)
    assert fires("{subject: {matches: 'urgent'}}", URGENT)


# --- fields ---------------------------------------------------------------------------


def test_from_name_and_reply_to():
    msg = message(sender="Ivan Petrov <ivan@example.ru>", headers={"Reply-To": "desk@corp.example"})
    assert fires("{from_name: {contains: petrov}}", msg)
    assert fires("{reply_to: {domain: corp.example}}", msg)
    assert not fires("{from_name: {contains: petrov}}", PLAIN)


def test_to_cc_and_recipient_including_delivery_headers():
    msg = message(to="support@example.com", cc="billing@example.com")
    assert fires("{to: {is: support@example.com}}", msg)
    assert fires("{cc: {is: billing@example.com}}", msg)
    assert not fires("{to: {is: billing@example.com}}", msg)
    assert fires("{recipient: {is: billing@example.com}}", msg)
    bcc = message(to="someone@else.example", headers={"Delivered-To": "invoices@example.com"})
    assert fires("{recipient: {is: invoices@example.com}}", bcc)
    assert not fires("{to: {is: invoices@example.com}}", bcc)


def test_body_text():
    assert fires("{body: {contains: double-sided}}", PLAIN)
    assert not fires("{body: {contains: fire}}", PLAIN)


def test_header_value_and_presence():
    msg = message(headers={"X-Priority": "1 (Highest)", "X-Spam-Flag": "YES"})
    assert fires("{header: {name: x-priority, starts_with: '1'}}", msg)
    assert fires("{header: {name: X-Spam-Flag, is: 'yes'}}", msg)
    assert fires("{header: {name: X-Spam-Flag, exists: true}}", msg)
    assert not fires("{header: {name: X-Spam-Flag, exists: true}}", PLAIN)
    assert fires("{header: {name: X-Spam-Flag, exists: false}}", PLAIN)
    assert not fires("{header: {name: X-Priority, starts_with: '1'}}", PLAIN)


def test_attachment_presence_type_and_name():
    pdf = message(attachments=[("Invoice.PDF", "application/pdf", b"%PDF-1.4")])
    assert fires("{has_attachment: true}", pdf)
    assert not fires("{has_attachment: true}", PLAIN)
    assert fires("{has_attachment: false}", PLAIN)
    assert fires("{attachment_type: {is: application/pdf}}", pdf)
    assert fires(
        "{attachment_type: {starts_with: image/}}",
        message(attachments=[("a.png", "image/png", b"png")]),
    )
    assert fires("{attachment_name: {ends_with: .pdf}}", pdf)
    assert not fires("{attachment_type: {is: application/pdf}}", PLAIN)


def test_size_greater_and_less_than():
    big = message(attachments=[("big.bin", "application/octet-stream", b"x" * 300_000)])
    assert fires("{size: {greater_than: 200KB}}", big)
    assert not fires("{size: {greater_than: 200KB}}", PLAIN)
    assert fires("{size: {less_than: 10000}}", PLAIN)
    assert not fires(
        "{size: {less_than: 1MB}}",
        message(attachments=[("b", "application/octet-stream", b"x" * 2_000_000)]),
    )


def test_sender_is_agent():
    assert fires("{sender_is_agent: true}", message(sender="Bob <BOB@example.com>"))
    assert not fires("{sender_is_agent: true}", PLAIN)
    assert fires("{sender_is_agent: false}", PLAIN)


def test_mailbox_and_mailbox_queue_come_from_the_source():
    assert fires("{mailbox: {is: billing-box}}", PLAIN, mailbox="billing-box")
    assert fires("{mailbox_queue: {is: billing}}", PLAIN, mailbox="b", mailbox_queue="billing")
    assert not fires("{mailbox_queue: {is: billing}}", PLAIN, mailbox="cli")


def test_queue_sees_what_earlier_rules_chose():
    rules = one_rule("{queue: {is: billing}}")
    assert rules.evaluate(PLAIN, ticket=None, facts=facts()).hits == []
    assert rules.evaluate(PLAIN, ticket=None, facts=facts(mailbox_queue="billing")).hits == [
        "probe"
    ]


# --- combinators ----------------------------------------------------------------------


def test_several_keys_in_one_mapping_must_all_hold():
    assert fires("{subject: {contains: urgent}, from: {domain: example.org}}", URGENT)
    assert not fires("{subject: {contains: urgent}, from: {domain: example.net}}", URGENT)


def test_all():
    assert fires("{all: [{subject: {contains: urgent}}, {body: {contains: help}}]}", URGENT)
    assert not fires("{all: [{subject: {contains: urgent}}, {body: {contains: fire}}]}", URGENT)


def test_any():
    assert fires("{any: [{subject: {contains: nothing}}, {body: {contains: help}}]}", URGENT)
    assert not fires("{any: [{subject: {contains: nothing}}, {body: {contains: fire}}]}", URGENT)


def test_not():
    assert fires("{not: {subject: {contains: urgent}}}", PLAIN)
    assert not fires("{not: {subject: {contains: urgent}}}", URGENT)


def test_nested_combinators():
    when = "{any: [{all: [{from: {domain: example.org}}, {not: {body: {contains: help}}}]}, {subject: {is: x}}]}"
    assert fires(when, PLAIN)
    assert not fires(when, URGENT)


# --- safety ---------------------------------------------------------------------------


def test_catastrophic_backtracking_regex_returns_quickly():
    # With Python's re, `(a+)+$` against 50,000 a's and a '!' would run for longer than
    # the universe; RE2 is linear in the input.
    raw = b"From: x@example.org\r\nSubject: " + b"a" * 50_000 + b"!\r\n\r\nbody\r\n"
    crafted = parse_message(raw)
    rules = one_rule("{subject: {matches: '(a+)+$'}}")
    outcome: list[list[str]] = []
    worker = threading.Thread(
        target=lambda: outcome.append(rules.evaluate(crafted, ticket=None, facts=facts()).hits),
        daemon=True,
    )
    started = time.monotonic()
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "evaluation hung on a crafted subject"
    assert outcome == [[]]
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("subject", ["a" * 20_000 + "!", "ab" * 10_000])
def test_explain_of_a_crafted_subject_is_also_fast(subject):
    crafted = parse_message(f"From: x@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n".encode())
    rules = one_rule("{subject: {matches: '(a|aa)+$'}}")
    trace = rules.explain(crafted, ticket=None, facts=facts()).rules[0].trace
    assert trace is not None and trace.result is False


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    text=st.text(alphabet="ab_ 1,.-срочноÄß\n", max_size=60),
    word=st.text(alphabet="ab_1срочноÄß", min_size=1, max_size=4),
)
def test_word_search_agrees_with_splitting_into_words(text, word):
    """The text search used for the first lookups finds exactly the split words."""
    split = set(re.findall(r"\w+", text))
    matcher = make_matcher("contains_word", [word], case_sensitive=True)
    assert (matcher.find(Words(text)) == word) is (word in split)
    many = Words(text)
    many.words_for(Words.SCAN_LIMIT)  # the scan allowance used up by other rules
    assert (matcher.find(many) == word) is (word in split)  # now looked up in the set
