"""A new ticket's language: what the customer wrote in, unless a rule or queue says."""

from __future__ import annotations

import time

import pytest

from maildesk.triage.language import TEMPLATE_LANGUAGES, detect_language
from tests.decidekit import decide_mail, ticket
from tests.rulekit import BASE, ruleset

WRITTEN = {
    "en": "Hello, I cannot log in to my account since yesterday. Could you please help me?",
    "ru": "Здравствуйте! Не могу войти в личный кабинет со вчерашнего дня. Помогите, пожалуйста.",
    "uk": "Доброго дня! Не можу увійти до особистого кабінету з учорашнього дня. Допоможіть.",
    "bg": "Здравейте! Не мога да вляза в профила си от вчера. Моля, помогнете ми.",
    "pl": "Dzień dobry, od wczoraj nie mogę zalogować się do swojego konta. Proszę o pomoc.",
}


@pytest.mark.parametrize("language", sorted(WRITTEN))
def test_each_template_language_is_told_apart(language):
    assert detect_language(WRITTEN[language]) == language


def test_other_languages_short_text_and_addresses_alone_say_nothing():
    german = "Guten Tag, seit gestern kann ich mich nicht mehr in mein Konto einloggen."
    assert detect_language(german) is None  # no German templates: the default applies
    assert detect_language("Не работи") is None  # too short to tell
    assert detect_language("https://example.com/a/b/c/d maria.garcia@example.org 12345") is None
    assert detect_language(WRITTEN["pl"], languages=("en", "ru")) is None


def test_telling_a_message_takes_well_under_a_millisecond_per_hundred_characters():
    text = "\n".join(WRITTEN.values()) * 3
    detect_language(text)  # builds the detector
    started = time.perf_counter()
    for _ in range(200):
        detect_language(text)
    per_call = (time.perf_counter() - started) / 200
    assert per_call < 0.02, f"{per_call * 1000:.1f} ms per message"


def test_a_new_ticket_gets_the_language_its_customer_wrote_in():
    for language in TEMPLATE_LANGUAGES:
        d = decide_mail(subject="Pomoc" if language == "pl" else "Help", body=WRITTEN[language])
        assert d.new_ticket is not None and d.new_ticket.language == language


def test_short_or_foreign_mail_keeps_the_default_language():
    assert decide_mail(body="Thanks!").new_ticket.language == "en"
    rules = ruleset(
        base=BASE.replace("  calendar: office\n", "  calendar: office\n  language: ru\n")
    )
    german = "Guten Tag, seit gestern kann ich mich nicht mehr in mein Konto einloggen."
    assert decide_mail(body=german, rules=rules).new_ticket.language == "ru"


def test_a_rule_or_the_queue_names_the_language_before_detection_and_rules_can_test_it():
    rules = ruleset(
        """
        - name: polish customers to billing
          when: {language: {is: pl}}
          then: {queue: billing, language: en}
        """,
        base=BASE.replace("billing: {agents: [carol]}", "billing: {agents: [carol], language: bg}"),
    )
    polish = decide_mail(body=WRITTEN["pl"], rules=rules).new_ticket
    assert (polish.queue, polish.language) == ("billing", "en")  # the rule's language wins
    rules = ruleset(
        """
        - name: to billing
          when: {subject: {contains: invoice}}
          then: {queue: billing}
        """,
        base=BASE.replace("billing: {agents: [carol]}", "billing: {agents: [carol], language: bg}"),
    )
    russian = decide_mail(subject="invoice", body=WRITTEN["ru"], rules=rules).new_ticket
    assert (russian.queue, russian.language) == ("billing", "bg")  # then the queue's


def test_follow_up_rules_see_the_ticket_language():
    rules = ruleset(
        """
        - name: tag ukrainian follow-ups
          when: {language: {in: [uk, ru]}}
          follow_ups: true
          then: {tags: [ua]}
        """
    )
    on = ticket(language="uk")
    d = decide_mail(on, rules=rules, subject="Re: [MD-7] Printer on fire", body="Ok")
    assert "ua" in [c.value for c in d.changes if c.field == "tag"]
