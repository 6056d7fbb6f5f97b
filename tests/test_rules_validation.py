"""Loading rules.yaml reports every mistake at once, each with its line and a way to fix it."""

from __future__ import annotations

import textwrap

import pytest

from maildesk.common.errors import RulesError
from maildesk.common.resources import example_rules
from maildesk.rules import load_rules, parse_rules
from tests.rulekit import BASE, rules_text

BROKEN = textwrap.dedent("""\
    version: 1
    default:
      queue: general
      priority: normal
      calendar: office
    calendars:
      office:
        timezone: Europe/Berlln
        hours: {mon-fry: "09:00-17:00"}
        holidays: [2026-13-01]
    sla:
      policies:
        fast: {first_response: 2 days, resolution: 8h}
      by_priority: {urgent: fastest}
    queues:
      general: {agents: [alice, bobby]}
      billing: {agents: [carol], escalation: nobody}
    agents:
      alice: {address: alice@example.com}
      carol: {address: not-an-address}
    rules:
      - name: vip-customers
        when: {from: {domain: bigcorp.example}}
        then:
          prority: high
      - name: bad-operator
        when: {subject: {contain: urgent}}
        then: {priority: urgent}
      - name: bad-field
        when: {subjct: {contains: urgent}}
        then: {priority: urgent}
      - name: bad-regex
        when: {subject: {matches: "(unclosed"}}
        then: {priority: urgent}
      - name: bad-queue
        when: {subject: {contains: invoice}}
        then: {queue: biling}
      - name: bad-priority
        when: {subject: {contains: asap}}
        then: {priority: hihg}
      - name: bad-assignee
        when: {subject: {contains: printer}}
        then: {assignee: round_robbin}
      - name: yaml-boolean
        when: {header: {name: X-Spam-Flag, is: YES}}
        then: {spam: true}
      - name: domain-on-subject
        when: {subject: {domain: example.com}}
        then: {tags: [x]}
      - name: is-with-list
        when: {from: {is: [a@example.com, b@example.com]}}
        then: {tags: [x]}
      - name: backreference
        when: {body: {matches: '(a)\\1'}}
        then: {tags: [x]}
      - name: bad-policy
        when: {subject: {contains: vip}}
        then: {sla: gold}
      - name: vip-customers
        when: {subject: {contains: again}}
        then: {tags: [dup]}
      - when: {subject: {contains: nameless}}
        then: {tags: [x]}
      - name: empty-any
        when: {any: []}
        then: {tags: [x]}
      - name: no-then
        when: {subject: {contains: x}}
    """)


def line(marker: str, text: str = BROKEN) -> int:
    """The 1-based line of the only line containing `marker`."""
    found = [i for i, t in enumerate(text.splitlines(), 1) if marker in t]
    assert len(found) == 1, f"{marker!r} is on lines {found}"
    return found[0]


@pytest.fixture(scope="module")
def problems() -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(BROKEN, "rules.yaml")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("prority:", "unknown key 'prority' in rule 'vip-customers' — did you mean 'priority'?"),
        (
            "contain: urgent",
            "unknown operator 'contain' for 'subject' in rule 'bad-operator' — did you mean 'contains'?",
        ),
        ("subjct:", "unknown condition 'subjct' in rule 'bad-field' — did you mean 'subject'?"),
        ("(unclosed", "invalid regex '(unclosed': missing ): (unclosed in rule 'bad-regex'"),
        ("queue: biling", "unknown queue 'biling' in rule 'bad-queue' — did you mean 'billing'?"),
        ("priority: hihg", "unknown priority 'hihg' in rule 'bad-priority' — did you mean 'high'?"),
        (
            "round_robbin",
            "unknown assignee 'round_robbin' in rule 'bad-assignee' — did you mean 'round_robin'?",
        ),
        (
            "is: YES",
            "must be text, but YAML read the boolean true in rule 'yaml-boolean' — put the value in quotes",
        ),
        (
            "domain: example.com}}",
            "unknown operator 'domain' for 'subject' in rule 'domain-on-subject' — 'domain' works on address fields",
        ),
        ("is: [a@", "'is' takes one value in rule 'is-with-list' — use in: [a, b]"),
        (
            "(a)\\1",
            "invalid regex '(a)\\\\1': invalid escape sequence: \\1 in rule 'backreference' — RE2 syntax",
        ),
        ("sla: gold", "unknown SLA policy 'gold' in rule 'bad-policy' — defined: fast"),
        ("nameless", "missing 'name' in rule #14"),
        ("any: []", "'any' needs a non-empty list of conditions, not a list in rule 'empty-any'"),
        ("name: no-then", "missing 'then' in rule 'no-then'"),
        (
            "Europe/Berlln",
            "unknown timezone 'Europe/Berlln' in calendar 'office' — did you mean 'Europe/Berlin'?",
        ),
        ("mon-fry", "unknown day 'fry' in 'mon-fry' in calendar 'office' — did you mean 'fri'?"),
        ("2026-13-01", "holiday '2026-13-01' is not a date like 2026-12-25 in calendar 'office'"),
        (
            "2 days",
            "first_response '2 days' is not a duration in SLA policy 'fast' — write business hours and minutes",
        ),
        ("fastest", "unknown SLA policy 'fastest' in rules.yaml — did you mean 'fast'?"),
        ("bobby", "unknown agent 'bobby' in queue 'general'"),
        ("escalation: nobody", "unknown escalation target 'nobody' in queue 'billing'"),
        ("not-an-address", "address 'not-an-address' is not an email address in agent 'carol'"),
    ],
)
def test_each_mistake_is_reported_with_its_line_and_a_fix(problems, marker, expected):
    where = f"rules.yaml:{line(marker)}: "
    matching = [p for p in problems if p.startswith(where) and expected in p]
    assert matching, f"no problem at {where}with {expected!r}; got:\n" + "\n".join(problems)


def test_duplicate_rule_name_points_at_the_second_name(problems):
    second = line("contains: again") - 1
    assert any(
        p.startswith(
            f"rules.yaml:{second}: duplicate rule name (also rule #1) in rule 'vip-customers'"
        )
        for p in problems
    )


def test_all_problems_are_reported_in_one_go(problems):
    assert len(problems) >= 24
    assert all(p.startswith("rules.yaml:") for p in problems)


def test_a_valid_reference_to_a_broken_policy_is_not_reported_twice(problems):
    assert not [p for p in problems if "unknown SLA policy 'fast'" in p]


def test_yaml_syntax_error_has_a_line():
    text = "version: 1\ndefault:\n  queue: general\n   priority: normal\n"
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    (problem,) = caught.value.problems
    assert problem.line == 4 and "YAML syntax error" in problem.message


def test_duplicate_keys_are_rejected_not_silently_overridden():
    text = BASE.replace("  priority: normal\n", "  priority: normal\n  priority: high\n")
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    (problem,) = caught.value.problems
    assert problem.line == line("priority: high", text)
    assert "duplicate key 'priority'" in problem.message


def test_missing_default_route_and_version():
    text = "queues: {general: {}}\nagents: {}\n"
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    messages = [p.message for p in caught.value.problems]
    assert any("missing 'version'" in m for m in messages)
    assert any("no default route" in m for m in messages)


def test_default_route_needs_queue_and_priority():
    text = rules_text().replace("  priority: normal\n", "")
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    assert [p.message for p in caught.value.problems] == [
        "missing 'priority' in default — the default route needs a queue and a priority"
    ]


def test_unknown_top_level_key_gets_a_suggestion():
    with pytest.raises(RulesError) as caught:
        parse_rules(BASE + "rule:\n  - name: x\n")
    (problem,) = caught.value.problems
    assert problem.line == len(BASE.splitlines()) + 1
    assert "unknown key 'rule'" in problem.message and "did you mean 'rules'" in problem.message


def test_business_hours_without_any_calendar_is_a_problem():
    base = BASE.replace("  calendar: office\n", "")
    base = base.replace(
        "sla:\n  policies:\n    urgent: {first_response: 1h, resolution: 4h}\n    standard: {first_response: 4h, resolution: 16h}\n  by_priority: {urgent: urgent, normal: standard}\n",
        "",
    )
    with pytest.raises(RulesError) as caught:
        parse_rules(
            rules_text(
                "- name: late\n  when: {business_hours: false}\n  then: {tags: [late]}\n", base
            )
        )
    (problem,) = caught.value.problems
    assert "'business_hours' needs a calendar in rule 'late'" in problem.message


def test_quoting_a_yaml_boolean_name_is_suggested():
    with pytest.raises(RulesError) as caught:
        parse_rules(
            rules_text("- name: off\n  when: {subject: {contains: x}}\n  then: {tags: [x]}\n")
        )
    assert "YAML read the boolean false" in str(caught.value)


def test_example_rules_file_is_valid_and_complete():
    rules = load_rules(example_rules())
    assert set(rules.queues) >= {"general", "billing", "russian"}
    assert {a.address for a in rules.agents.values()} >= {
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dmitry@example.com",
    }
    assert rules.sla_policies and rules.sla_by_priority
    assert any(rule.follow_ups for rule in rules.rules)


@pytest.mark.parametrize(
    ("hours", "says"),
    [
        (
            '["09:00-13:00", "12:00-17:00"]',
            "opening hours 09:00-13:00, 12:00-17:00 overlap; join them into one span",
        ),
        (
            '"22:00-06:00"',
            "opening hours '22:00-06:00' must look like \"09:00-17:00\" in calendar 'office' — "
            "a span cannot pass midnight: end it at 24:00 and start the next day at 00:00",
        ),
    ],
)
def test_opening_hours_that_would_count_time_twice_or_wrap_are_refused(hours, says):
    # Overlapping spans were counted twice: an 8-hour target came due an hour early.
    text = BASE.replace('hours: {mon-fri: "09:00-17:00"}', f"hours: {{mon-fri: {hours}}}")
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    (problem,) = caught.value.problems
    assert says in problem.message
    assert problem.line == BASE.splitlines().index('    hours: {mon-fri: "09:00-17:00"}') + 1
