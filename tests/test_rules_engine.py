"""Evaluation order, stop, the default route, follow-ups, business hours and SLA due times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from maildesk.common.domain import Priority, Status, TicketState
from tests.rulekit import BASE, facts, message, ruleset

PLAIN = message(subject="Printer question", body="How do I print?")


def ticket(queue: str = "general", priority: Priority = Priority.NORMAL) -> TicketState:
    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    return TicketState(
        id=1,
        ref="MD-1",
        subject="Printer question",
        status=Status.OPEN,
        priority=priority,
        queue=queue,
        assignee=None,
        requester="customer@example.org",
        requester_name="",
        created_at=now,
        updated_at=now,
        message_id="md-1.abc@example.com",
    )


def test_no_rule_matches_default_route_still_gives_queue_priority_sla_and_reply():
    rules = ruleset("""
        - name: never
          when: {subject: {is: nothing like this}}
          then: {queue: billing}
    """)
    r = rules.evaluate(PLAIN, ticket=None, facts=facts())
    assert (r.queue, r.priority, r.auto_reply, r.hits) == ("general", Priority.NORMAL, "ack", [])
    assert r.sla_policy == "standard"
    assert r.assignee is None


def test_a_file_without_rules_is_the_default_route():
    r = ruleset("").evaluate(PLAIN, ticket=None, facts=facts())
    assert (r.queue, r.priority, r.hits) == ("general", Priority.NORMAL, [])


def test_mailbox_queue_replaces_the_default_queue_and_rules_still_override_it():
    rules = ruleset("""
        - name: urgent-to-general
          when: {subject: {contains: urgent}}
          then: {queue: general}
    """)
    assert (
        rules.evaluate(PLAIN, ticket=None, facts=facts(mailbox_queue="billing")).queue == "billing"
    )
    urgent = message(subject="urgent")
    assert (
        rules.evaluate(urgent, ticket=None, facts=facts(mailbox_queue="billing")).queue == "general"
    )


def test_unknown_mailbox_queue_falls_back_to_the_default_and_says_so():
    explanation = ruleset("").explain(PLAIN, ticket=None, facts=facts(mailbox_queue="sales"))
    assert explanation.routing.queue == "general"
    assert any("sales" in note for note in explanation.notes)


def test_rules_apply_in_file_order_later_values_win_lists_collect():
    rules = ruleset("""
        - name: first
          when: {subject: {contains: printer}}
          then: {priority: high, queue: billing, tags: [one]}
        - name: second
          when: {subject: {contains: question}}
          then: {priority: low, tags: [two]}
    """)
    r = rules.evaluate(PLAIN, ticket=None, facts=facts())
    assert r.hits == ["first", "second"]
    assert (r.priority, r.queue, r.tags) == (Priority.LOW, "billing", ["one", "two"])


def test_stop_ends_evaluation_after_a_matching_rule():
    rules = ruleset("""
        - name: stopper
          when: {subject: {contains: printer}}
          then: {queue: billing}
          stop: true
        - name: after
          when: {subject: {contains: printer}}
          then: {queue: general, tags: [after]}
    """)
    r = rules.evaluate(PLAIN, ticket=None, facts=facts())
    assert (r.hits, r.queue, r.tags) == (["stopper"], "billing", [])
    skipped = rules.explain(PLAIN, ticket=None, facts=facts()).rules[1]
    assert skipped.status == "skipped" and "stopper" in skipped.reason


def test_stop_on_a_rule_that_does_not_match_changes_nothing():
    rules = ruleset("""
        - name: stopper
          when: {subject: {contains: invoice}}
          then: {queue: billing}
          stop: true
        - name: after
          when: {subject: {contains: printer}}
          then: {tags: [after]}
    """)
    assert rules.evaluate(PLAIN, ticket=None, facts=facts()).hits == ["after"]


def test_disabled_rule_never_fires():
    rules = ruleset("""
        - name: switched-off
          enabled: false
          when: {subject: {contains: printer}}
          then: {queue: billing}
    """)
    assert rules.evaluate(PLAIN, ticket=None, facts=facts()).queue == "general"


FOLLOW_UP_RULES = """
    - name: urgent-reply
      follow_ups: true
      when: {subject: {contains_word: urgent}}
      then: {priority: urgent, tags: [urgent], auto_reply: none, queue: billing}
    - name: new-only
      when: {subject: {contains_word: urgent}}
      then: {tags: [new-only]}
"""


def test_follow_up_runs_only_opted_in_rules_and_only_their_follow_up_fields():
    rules = ruleset(FOLLOW_UP_RULES)
    r = rules.evaluate(message(subject="Re: [MD-1] urgent now"), ticket=ticket(), facts=facts())
    assert r.hits == ["urgent-reply"]
    assert (r.priority, r.queue, r.tags) == (Priority.URGENT, "billing", ["urgent"])
    assert r.auto_reply is None and r.sla_policy is None and r.assignee is None


def test_follow_up_with_no_opted_in_match_leaves_everything_unchanged():
    rules = ruleset(FOLLOW_UP_RULES)
    r = rules.evaluate(message(subject="Re: [MD-1] thanks"), ticket=ticket(), facts=facts())
    assert (r.hits, r.queue, r.priority, r.tags) == ([], None, None, [])


def test_follow_up_queue_condition_sees_the_tickets_queue():
    rules = ruleset("""
        - name: billing-followups
          follow_ups: true
          when: {queue: {is: billing}}
          then: {tags: [billing-reply]}
    """)
    reply = message(subject="Re: [MD-1] more")
    assert rules.evaluate(reply, ticket=ticket("billing"), facts=facts()).tags == ["billing-reply"]
    assert rules.evaluate(reply, ticket=ticket("general"), facts=facts()).tags == []


AFTER_HOURS = """
    - name: after-hours
      when: {business_hours: false}
      then: {tags: [after-hours]}
"""


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (datetime(2026, 11, 27, 15, 0, tzinfo=UTC), True),  # Friday 16:00 Berlin
        (datetime(2026, 11, 27, 16, 30, tzinfo=UTC), False),  # Friday 17:30, closed
        (datetime(2026, 11, 28, 12, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2026, 11, 29, 12, 0, tzinfo=UTC), False),  # Sunday
        (datetime(2026, 11, 30, 8, 30, tzinfo=UTC), True),  # Monday 09:30
        (datetime(2026, 12, 24, 10, 0, tzinfo=UTC), True),  # Thursday before the holiday
        (datetime(2026, 12, 25, 10, 0, tzinfo=UTC), False),  # Friday 25 Dec, a holiday
    ],
)
def test_business_hours_condition_across_a_weekend_and_a_holiday(moment, open_):
    r = ruleset(AFTER_HOURS).evaluate(PLAIN, ticket=None, facts=facts(now=moment))
    assert (r.tags == ["after-hours"]) is not open_


def test_business_hours_can_name_another_calendar():
    base_with_24x7 = ruleset("""
        - name: always
          when: {business_hours: 24x7}
          then: {tags: [open]}
    """)
    saturday = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    assert base_with_24x7.evaluate(PLAIN, ticket=None, facts=facts(now=saturday)).tags == ["open"]


def test_sla_due_times_count_business_hours_over_weekend_and_holiday():
    rules = ruleset("")
    thursday_4pm = datetime(2026, 12, 24, 15, 0, tzinfo=UTC)  # 16:00 Berlin, 25th is a holiday
    r = rules.evaluate(PLAIN, ticket=None, facts=facts(now=thursday_4pm))
    assert r.sla_policy == "standard"  # by_priority: normal -> standard (4h / 16h)
    assert r.first_response_due == datetime(2026, 12, 28, 11, 0, tzinfo=UTC)  # Mon 12:00
    assert r.resolution_due == datetime(2026, 12, 29, 15, 0, tzinfo=UTC)  # Tue 16:00


def test_sla_follows_the_final_priority_unless_a_rule_names_a_policy():
    rules = ruleset("""
        - name: urgent
          when: {subject: {contains: urgent}}
          then: {priority: urgent}
        - name: vip
          when: {from: {domain: vip.example}}
          then: {sla: standard}
    """)
    r = rules.evaluate(message(subject="urgent"), ticket=None, facts=facts())
    assert r.sla_policy == "urgent"
    assert r.first_response_due == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
    vip = message(subject="urgent", sender="x@vip.example")
    assert rules.evaluate(vip, ticket=None, facts=facts()).sla_policy == "standard"


def test_spam_and_ignore_are_kept_without_sla_and_marked():
    rules = ruleset("""
        - name: spam
          when: {header: {name: X-Spam-Flag, is: "YES"}}
          then: {spam: true}
        - name: newsletters
          when: {from: {starts_with: newsletter@}}
          then: {ignore: true}
    """)
    spam = rules.evaluate(message(headers={"X-Spam-Flag": "YES"}), ticket=None, facts=facts())
    assert spam.spam and spam.sla_policy is None
    news = rules.evaluate(message(sender="newsletter@shop.example"), ticket=None, facts=facts())
    assert news.ignore and "ignored" in news.tags and news.sla_policy is None


def test_language_comes_from_a_rule_else_the_queue_else_the_default():
    base = ruleset("").queues
    assert "general" in base
    rules = ruleset(
        """
        - name: ru
          when: {subject: {contains: привет}}
          then: {language: RU}
        """
    )
    assert rules.evaluate(message(subject="привет"), ticket=None, facts=facts()).language == "ru"
    assert rules.evaluate(PLAIN, ticket=None, facts=facts()).language == "en"


def test_watchers_cc_and_notify_resolve_agent_names_to_addresses():
    rules = ruleset("""
        - name: tell
          when: {subject: {contains: printer}}
          then:
            watchers: [carol, boss@example.com]
            cc: [manager@customer.example]
            notify: bob
    """)
    r = rules.evaluate(PLAIN, ticket=None, facts=facts())
    assert r.watchers == ["carol@example.com", "boss@example.com"]
    assert r.cc == ["manager@customer.example"]
    assert r.notify == ["bob@example.com"]


def test_explain_reports_each_condition_and_who_set_each_field():
    rules = ruleset("""
        - name: printers
          when:
            any:
              - subject: {contains: printer}
              - body: {contains: toner}
          then: {queue: billing}
    """)
    explanation = rules.explain(PLAIN, ticket=None, facts=facts())
    outcome = explanation.rules[0]
    assert outcome.status == "matched"
    assert outcome.line == len(BASE.splitlines()) + 2  # BASE, then "rules:", then this rule
    children = outcome.trace.children
    assert [c.result for c in children] == [True, False]
    assert "printer" in children[0].detail
    assert explanation.set_by["queue"] == "rule printers"
    assert explanation.set_by["priority"] == "default"
    data = explanation.to_dict()
    assert data["decision"]["queue"] == "billing"
    assert data["rules"][0]["conditions"]["children"][1]["result"] is False


def test_a_strategy_asks_for_assignment_facts_only_when_it_has_a_choice():
    # Reading open tickets per agent makes daemons take turns (PostgreSQL), so a batch
    # reads them only when a strategy must choose between available agents.
    from maildesk.rules import AssignmentFactsNeeded

    rules = ruleset("""
        - name: invoices
          when: {subject: {contains_word: invoice}}
          then: {queue: billing, assignee: least_open}
        - name: everyone-else
          when: {queue: {is: general}}
          then: {assignee: least_open}
    """)
    unread = facts(assignment_facts=False)
    billing = rules.evaluate(message(subject="invoice 7"), ticket=None, facts=unread)
    assert (billing.assignee, billing.assign_choice) == ("carol@example.com", False)
    with pytest.raises(AssignmentFactsNeeded):  # alice and bob (erin is away)
        rules.evaluate(PLAIN, ticket=None, facts=unread)
    counts = facts(open_counts={"alice@example.com": 3, "bob@example.com": 1})
    general = rules.evaluate(PLAIN, ticket=None, facts=counts)
    assert (general.assignee, general.assign_choice) == ("bob@example.com", True)
