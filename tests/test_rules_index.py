"""The rule index: a message is tested only against rules it may match, with the same result.

Differential tests: indexed evaluate(), evaluate() testing every rule in turn, and
explain() (which always walks every rule) must decide the same for generated rule
sets and messages, for the example rules.yaml and for real mail.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maildesk.common.domain import Priority, Status, TicketState
from maildesk.common.errors import ParseError
from maildesk.common.resources import example_rules, sample_messages
from maildesk.intake.message import ParsedMessage
from maildesk.intake.parse import parse_message
from maildesk.rules import RuleFacts, RuleSet, load_rules, parse_rules
from maildesk.rules.index import RuleIndex
from maildesk.rules.message_view import MessageView
from maildesk.rules.text_match import PREPARE, compile_regex, make_matcher
from tests.conftest import make_mail
from tests.rulekit import MONDAY_MORNING, facts, message, rules_text, ruleset

SATURDAY = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
# Words that overlap, differ in case, fold (ß, Cyrillic), hold regex syntax, or are empty.
VOCAB = [
    "urgent",
    "URGENT",
    "Urgently",
    "invoice #12",
    "#1",
    "срочно",
    "СРОЧНО",
    "Straße",
    "STRASSE",
    "a.b",
    "(x)",
    "",
    "example.org",
]
REGEXES = [r"urg.nt", r"^re:", r"(?:order|invoice) #\d+", r"срочн", r"x$", r"a|b", r"\bx\b"]
DOMAINS = ["example.org", "mail.example.org", "example", "org", "@corp.example", "xample.org"]
SENDERS = [
    "Customer <customer@example.org>",
    "Bob <BOB@example.com>",
    "ivan@mail.example.org",
    "Robot 7 <robot@corp.example>",
    "x@xample.org",
]
# Subject and body most often: that is where mail and rules overlap most.
TEXT_FIELDS = ["subject", "body"] * 3 + ["from_name", "attachment_name", "mailbox", "mailbox_queue"]
ADDRESS_FIELDS = ["from", "to", "cc", "recipient", "reply_to"]
OPERATORS = ["is", "in", "contains", "contains_word", "starts_with", "ends_with", "matches"]
HEADERS = ["X-Priority", "X-Campaign", "Importance"]


@st.composite
def text_test(draw, field: str) -> dict:
    address = field in ADDRESS_FIELDS
    op = draw(st.sampled_from(OPERATORS + (["domain"] if address else [])))
    pool = REGEXES if op == "matches" else DOMAINS if op == "domain" else VOCAB + DOMAINS
    values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
    test = {op: values[0] if op == "is" else values}
    if draw(st.booleans()):
        test["case_sensitive"] = True
    return test


@st.composite
def leaf(draw) -> dict:
    kinds = ["text"] * 4 + ["address"] * 2 + ["queue", "header", "exists", "other"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("text", "address", "queue"):
        fields = {"text": TEXT_FIELDS, "address": ADDRESS_FIELDS, "queue": ["queue"]}[kind]
        field = draw(st.sampled_from(fields))
        return {field: draw(text_test(field))}
    if kind == "header":
        header = {"name": draw(st.sampled_from(HEADERS)), **draw(text_test("header"))}
        return {"header": header}
    if kind == "exists":
        return {"header": {"name": draw(st.sampled_from(HEADERS)), "exists": draw(st.booleans())}}
    return draw(
        st.sampled_from(
            [
                {"has_attachment": True},
                {"sender_is_agent": True},
                {"size": {"greater_than": "2KB"}},
                {"business_hours": False},
                {"business_hours": "24x7"},
            ]
        )
    )


def combine(children: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    several = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        several.map(lambda c: {"all": c}),
        several.map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
        st.tuples(children, children).map(lambda p: {**p[1], **p[0]}),  # keys must all hold
    )


conditions = st.recursive(leaf(), combine, max_leaves=6)


@st.composite
def rule_sets(draw) -> RuleSet:
    rules = []
    for index in range(draw(st.integers(min_value=1, max_value=16))):
        then: dict = {"tags": [f"t{index}"]}
        if draw(st.booleans()):  # later `queue:` conditions see the queue move
            then["queue"] = draw(st.sampled_from(["general", "billing"]))
        if draw(st.booleans()):
            then["priority"] = draw(st.sampled_from(["low", "high", "urgent"]))
        rule = {"name": f"r{index}", "when": draw(conditions), "then": then}
        for flag, chance in (("stop", 8), ("enabled", 8), ("follow_ups", 2)):
            if draw(st.integers(min_value=1, max_value=chance)) == 1:
                rule[flag] = flag != "enabled"
        rules.append(f"- {json.dumps(rule, ensure_ascii=False)}")
    return parse_rules(rules_text("\n".join(rules)))


def phrases(max_words: int) -> st.SearchStrategy[str]:
    words = st.lists(st.sampled_from([*VOCAB, "hello", "re:"]), max_size=max_words)
    return words.map(" ".join)


@st.composite
def messages(draw) -> dict:
    """make_mail's arguments (the mail itself is made in the test: MIME uses `random`)."""
    headers = draw(
        st.dictionaries(st.sampled_from(HEADERS), st.sampled_from(["1 (Highest)", *VOCAB[:6]]))
    )
    attachments = [("Invoice (x).PDF", "application/pdf", b"%PDF" * draw(st.integers(1, 900)))]
    return {
        "sender": draw(st.sampled_from(SENDERS)),
        "to": draw(st.sampled_from(["support@example.com", "billing@example.org"])),
        "cc": draw(st.sampled_from([None, "a.b@mail.example.org"])),
        "subject": draw(phrases(4)) or "(none)",
        "body": draw(phrases(8)) + "\n",
        "headers": {**headers, **({"Reply-To": "desk@example.org"} if draw(st.booleans()) else {})},
        "attachments": attachments if draw(st.booleans()) else None,
    }


def follow_up(queue: str) -> TicketState:
    return TicketState(
        id=1,
        ref="MD-1",
        subject="Earlier",
        status=Status.OPEN,
        priority=Priority.NORMAL,
        queue=queue,
        assignee=None,
        requester="customer@example.org",
        requester_name="",
        created_at=MONDAY_MORNING,
        updated_at=MONDAY_MORNING,
        message_id="md-1.abc@example.com",
    )


def assert_same_decisions(rules: RuleSet, msg: ParsedMessage, at: RuleFacts) -> None:
    """Indexed, every-rule and explained evaluation agree, for new mail and a follow-up."""
    every_rule = replace(rules, indexed=False)
    for ticket in (None, follow_up("billing")):
        indexed = rules.evaluate(msg, ticket=ticket, facts=at)
        reference = every_rule.evaluate(msg, ticket=ticket, facts=at)
        explained = rules.explain(msg, ticket=ticket, facts=at)
        assert indexed == reference
        assert indexed == explained.routing
        assert indexed.hits == [o.name for o in explained.rules if o.status == "matched"]


def assert_index_keeps_every_match(rules: RuleSet, msg: ParsedMessage, at: RuleFacts) -> None:
    """With every field searched however few rules look at it, no rule whose condition
    holds is left out of the candidates."""
    index = RuleIndex([rule.condition for rule in rules.rules], min_rules_per_scan=1)
    addresses = frozenset(agent.address for agent in rules.agents.values())
    view = MessageView(msg, at, addresses)
    view.current_queue = "billing"
    kept = set(index.candidates(view))
    for position, rule in enumerate(rules.rules):
        assert position in kept or not rule.condition.test(view), rule.name


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    rules=rule_sets(),
    msgs=st.lists(messages(), min_size=1, max_size=3),
    when=st.sampled_from([MONDAY_MORNING, SATURDAY]),
    mailbox_queue=st.sampled_from([None, "billing"]),
)
def test_indexed_evaluation_decides_like_testing_every_rule(rules, msgs, when, mailbox_queue):
    at = facts(now=when, mailbox="box", mailbox_queue=mailbox_queue)
    for kwargs in msgs:
        msg = parse_message(make_mail(**kwargs))
        assert_index_keeps_every_match(rules, msg, at)
        assert_same_decisions(rules, msg, at)


def test_every_operator_on_every_kind_of_field_decides_like_testing_every_rule():
    written = []
    for field in ["subject", "body", "from", "header", "attachment_name"]:
        for op in [*OPERATORS, *(["domain"] if field == "from" else [])]:
            pool = REGEXES if op == "matches" else DOMAINS if op == "domain" else VOCAB
            for case_sensitive in (False, True):
                for value in pool:
                    test = {op: [value] if op == "in" else value, "case_sensitive": case_sensitive}
                    when = (
                        {"header": {"name": "X-Campaign", **test}}
                        if field == "header"
                        else {field: test}
                    )
                    rule = {"name": f"r{len(written)}", "when": when, "then": {"tags": ["t"]}}
                    written.append(f"- {json.dumps(rule, ensure_ascii=False)}")
    rules = parse_rules(rules_text("\n".join(written)))
    for number, word in enumerate([*VOCAB, "re: URGENTLY (X) invoice #123 a.b СРОЧНО"]):
        msg = message(
            subject=word or "-",
            body=f"see {word}!",
            sender=f"{word} <a@{DOMAINS[number % len(DOMAINS)].lstrip('@')}>",
            headers={"X-Campaign": word or "-"},
            attachments=[(f"{word}.pdf", "application/pdf", b"%PDF")],
        )
        at = facts()
        assert rules.evaluate(msg, ticket=None, facts=at) == replace(rules, indexed=False).evaluate(
            msg, ticket=None, facts=at
        )


def test_example_rules_decide_alike_on_sample_and_real_mail():
    rules = load_rules(example_rules())
    corpus = sorted((Path(__file__).parent / "corpus").glob("*.eml"))
    assert corpus
    for path in [*sample_messages(), *corpus]:
        try:
            msg = parse_message(path.read_bytes())
        except ParseError:  # the corpus holds some files that are not mail at all
            continue
        for at in (facts(), facts(now=SATURDAY, mailbox="ru-box", mailbox_queue="russian")):
            assert_same_decisions(rules, msg, at)


def test_only_rules_whose_prefilter_fires_are_candidates():
    rules = parse_rules(
        rules_text("""
            - name: invoices
              when: {subject: {contains_word: invoice}}
              then: {queue: billing}
            - name: refunds
              when: {body: {contains: refund}}
              then: {tags: [refund]}
            - name: not-urgent
              when: {not: {subject: {contains: urgent}}}
              then: {tags: [calm]}
            - name: campaign
              when: {header: {name: X-Campaign, in: [spring, autumn]}, has_attachment: false}
              then: {tags: [campaign]}
            - name: orders
              when: {any: [{subject: {matches: 'order #\\d+'}}, {from: {domain: shop.example}}]}
              then: {tags: [order]}
        """)
    )
    index = RuleIndex([rule.condition for rule in rules.rules], min_rules_per_scan=1)

    def candidates(msg: ParsedMessage) -> list[str]:
        view = MessageView(msg, facts(), frozenset())
        return [rules.rules[p].name for p in index.candidates(view)]

    assert candidates(message(subject="Invoice 7", body="hello")) == ["invoices", "not-urgent"]
    assert candidates(message(subject="x", body="Refund!", headers={"X-Campaign": "Spring"})) == [
        "refunds",
        "not-urgent",
        "campaign",
    ]
    assert candidates(message(subject="ORDER #5")) == ["not-urgent", "orders"]
    assert candidates(message(sender="a@eu.shop.example")) == ["not-urgent", "orders"]


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(
    op=st.sampled_from([*OPERATORS, "domain"]),
    values=st.lists(st.sampled_from([*VOCAB, *DOMAINS]), min_size=1, max_size=3),
    regexes=st.lists(st.sampled_from(REGEXES), min_size=1, max_size=2),
    case_sensitive=st.booleans(),
    text=phrases(4),
)
def test_what_a_match_needs_is_in_every_value_it_matches(op, values, regexes, case_sensitive, text):
    """The index's premise: a value a matcher finds something in has one of its needles."""
    matcher = make_matcher(op, regexes if op == "matches" else values, case_sensitive)
    if matcher.find(PREPARE[matcher.prep](text)) is None:
        return
    needles = matcher.needles
    value = text.casefold() if needles.prep == "folded" else text
    if needles.kind == "equal":
        assert value in needles.keys
    elif needles.kind == "substring":
        assert any(key in value for key in needles.keys)
    else:
        assert any(compile_regex(k, needles.case_sensitive).search(value) for k in needles.keys)


def test_rules_after_a_queue_move_see_the_new_queue_however_many_there_are():
    moves = "- name: move\n  when: {subject: {contains: invoice}}\n  then: {queue: billing}\n"
    billing = "".join(
        f"- name: b{n}\n  when: {{queue: {{is: billing}}}}\n  then: {{tags: [b{n}]}}\n"
        for n in range(12)
    )
    rules = ruleset(moves + billing)
    routing = rules.evaluate(message(subject="Invoice 7"), ticket=None, facts=facts())
    assert routing.queue == "billing"
    assert routing.tags == [f"b{n}" for n in range(12)]
