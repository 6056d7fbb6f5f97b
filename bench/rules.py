"""Rule evaluation cost per message with 10, 100 and 1,000 rules.

Run: python bench/rules.py [--messages 2000] [--repeat 3]

Prints, per rule count: load time (YAML + validation + compiling + the rule index,
once), evaluation throughput (messages/s), latency percentiles, how many regexes were
compiled while evaluating (must be 0: rules are compiled once, at load), and the
process's peak RSS. For contrast it also gives the throughput when every rule is
tested in turn (no index), and times loading the rules per message, which is what
"compiling per message" would cost.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import re2

from maildesk.intake.message import ParsedMessage
from maildesk.intake.parse import parse_message
from maildesk.rules import RuleFacts, RuleSet, parse_rules

HEADER = """\
version: 1
default: {queue: general, priority: normal, auto_reply: ack, calendar: office}
calendars:
  office: {timezone: Europe/Berlin, hours: {mon-fri: "09:00-17:00"}, holidays: [2026-12-25]}
sla:
  policies: {standard: {first_response: 4h, resolution: 16h}, urgent: {first_response: 1h, resolution: 4h}}
  by_priority: {normal: standard, high: standard, urgent: urgent}
queues:
  general: {agents: [alice, bob]}
  billing: {agents: [carol]}
agents:
  alice: {address: alice@example.com}
  bob: {address: bob@example.com}
  carol: {address: carol@example.com}
rules:
"""

# One rule of each shape; rule i uses shape i % len(SHAPES) with its own values.
SHAPES = [
    "{{subject: {{contains_word: [word{i}, term{i}, срочно{i}]}}}}",
    "{{from: {{domain: [customer{i}.example, partner{i}.example]}}}}",
    "{{body: {{contains: 'error code {i}'}}}}",
    "{{subject: {{matches: '(?:order|invoice) #{i}[0-9]+'}}}}",
    "{{any: [{{header: {{name: X-Campaign, is: 'c{i}'}}}}, {{to: {{is: 'team{i}@example.com'}}}}]}}",
    "{{all: [{{has_attachment: true}}, {{attachment_type: {{starts_with: application/x{i}}}}}]}}",
    "{{not: {{from_name: {{starts_with: 'robot {i}'}}}}, subject: {{ends_with: '#{i}'}}}}",
    "{{business_hours: false, subject: {{contains: 'after hours {i}'}}}}",
]
ACTIONS = [
    "{{tags: [t{i}]}}",
    "{{priority: high}}",
    "{{queue: billing}}",
    "{{queue: general, assignee: round_robin}}",
]


def rules_yaml(count: int) -> str:
    lines = [HEADER]
    for i in range(count):
        when = SHAPES[i % len(SHAPES)].format(i=i)
        then = ACTIONS[i % len(ACTIONS)].format(i=i)
        lines.append(f"  - name: rule-{i}\n    when: {when}\n    then: {then}\n")
    return "".join(lines)


def messages(n: int) -> list[ParsedMessage]:
    """A mix of messages; a few match some rules, most match none (as in real traffic)."""
    samples = []
    for k in range(n):
        msg = EmailMessage()
        msg["From"] = f"Customer {k} <c{k}@customer{k % 50}.example>"
        msg["To"] = "support@example.com"
        msg["Subject"] = ["Printer broken", f"Order #{k % 40}123 late", f"word{k % 30} help"][k % 3]
        msg["Message-ID"] = f"<bench-{k}@example.org>"
        msg.set_content(f"Hello, I see error code {k % 100} since Monday.\n" * 20)
        if k % 5 == 0:
            msg.add_attachment(
                b"%PDF-1.4" * 100, maintype="application", subtype="pdf", filename="a.pdf"
            )
        samples.append(parse_message(msg.as_bytes()))
    return samples


class CompileCounter:
    """Counts re2.compile calls made while active."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = re2.compile

    def __enter__(self) -> CompileCounter:
        def counting(*args, **kwargs):
            self.calls += 1
            return self._real(*args, **kwargs)

        re2.compile = counting
        return self

    def __exit__(self, *exc: object) -> None:
        re2.compile = self._real


def evaluate_all(rules: RuleSet, msgs: list[ParsedMessage], facts: RuleFacts) -> list[float]:
    latencies = []
    for msg in msgs:
        start = time.perf_counter()
        rules.evaluate(msg, ticket=None, facts=facts)
        latencies.append(time.perf_counter() - start)
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    msgs = messages(args.messages)
    facts = RuleFacts(now=datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    print(f"{len(msgs)} messages, median of {args.repeat} runs, Python {sys.version.split()[0]}")
    print(
        f"{'rules':>6} {'load ms':>9} {'msg/s':>9} {'p50 µs':>8} {'p95 µs':>8} {'p99 µs':>8}"
        f" {'compiles':>9} {'no-index msg/s':>15} {'reload/msg µs':>14}"
    )
    for count in (10, 100, 1000):
        text = rules_yaml(count)
        loads = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            rules = parse_rules(text)
            loads.append(time.perf_counter() - start)
        assert len(rules.rules) == count
        rates, lat = [], []
        with CompileCounter() as counter:
            for _ in range(args.repeat):
                start = time.perf_counter()
                lat = evaluate_all(rules, msgs, facts)
                rates.append(len(msgs) / (time.perf_counter() - start))
        every_rule = replace(rules, indexed=False)
        plain_rates = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            evaluate_all(every_rule, msgs, facts)
            plain_rates.append(len(msgs) / (time.perf_counter() - start))
        # What compiling per message would cost: load the file again for each of 50 messages.
        start = time.perf_counter()
        for msg in msgs[:50]:
            parse_rules(text).evaluate(msg, ticket=None, facts=facts)
        per_message_reload = (time.perf_counter() - start) / 50
        print(
            f"{count:>6} {statistics.median(loads) * 1e3:>9.1f} {statistics.median(rates):>9.0f}"
            f" {percentile(lat, 50) * 1e6:>8.0f} {percentile(lat, 95) * 1e6:>8.0f}"
            f" {percentile(lat, 99) * 1e6:>8.0f} {counter.calls:>9}"
            f" {statistics.median(plain_rates):>15.0f} {per_message_reload * 1e6:>14.0f}"
        )
        if counter.calls:
            raise SystemExit("regexes were compiled during evaluation: rules must compile once")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
