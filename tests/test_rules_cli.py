"""`maildesk rules check`, `maildesk rules test` and `maildesk check` as an admin runs them."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import func, select

from maildesk.cli import cli
from maildesk.common.resources import sample_messages
from maildesk.store.models import OutboxEntry, Ticket
from tests.conftest import make_mail, write_config
from tests.rulekit import rules_text


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_rules_check_passes_on_the_example_file(tmp_path):
    config = write_config(tmp_path)
    result = run("--config", str(config), "rules", "check")
    assert result.exit_code == 0, result.output
    assert "ok — 10 rules, 3 queues, 4 agents, 4 SLA policies, 2 calendars" in result.output


def test_rules_check_lists_every_problem_and_exits_non_zero(tmp_path):
    rules = tmp_path / "rules.yaml"
    text = rules_text("""
        - name: vip-customers
          when: {from: {domain: bigcorp.example}}
          then: {prority: high}
        - name: typo-queue
          when: {subject: {contains: x}}
          then: {queue: biling}
    """)
    rules.write_text(text)
    result = run("rules", "check", "--file", str(rules))
    assert result.exit_code == 1
    prority_line = text.splitlines().index("    then: {prority: high}") + 1
    assert (
        f"{rules}:{prority_line}: unknown key 'prority' in rule 'vip-customers' — "
        "did you mean 'priority'?" in result.output
    )
    assert "unknown queue 'biling' in rule 'typo-queue'" in result.output
    assert "2 problem(s)" in result.output


def test_rules_check_finds_mailbox_queues_and_templates_rules_yaml_lacks(tmp_path):
    (tmp_path / "rules.yaml").write_text(
        rules_text("""
            - name: thanks
              when: {subject: {contains: thanks}}
              then: {auto_reply: thank_you}
        """)
    )
    extra = "mailboxes:\n  - {name: sales, host: imap.example.com, username: s@example.com, password: {env: MD_PW}, queue: sales}\n"
    config = write_config(tmp_path, extra=extra)
    result = run("--config", str(config), "rules", "check")
    assert result.exit_code == 1
    assert "mailbox 'sales' has queue 'sales', which rules.yaml does not define" in result.output
    assert "auto_reply template 'thank_you' in rule 'thanks' does not exist" in result.output
    check = run("--config", str(config), "check")
    assert check.exit_code == 1
    assert "FAIL rules" in check.output and "thank_you" in check.output


def test_maildesk_check_reports_rules_problems_with_lines(tmp_path):
    (tmp_path / "rules.yaml").write_text(rules_text().replace("priority: normal", "priority: hihg"))
    config = write_config(tmp_path)
    result = run("--config", str(config), "check")
    assert result.exit_code == 1
    assert (
        "rules.yaml:4: unknown priority 'hihg' in default — did you mean 'high'?" in result.output
    )


def test_rules_test_explains_and_touches_nothing(make_desk, tmp_path):
    desk = make_desk()  # the example rules.yaml
    russian = next(p for p in sample_messages() if "russian" in p.name)
    result = run(
        "--config", desk.config.source, "rules", "test", str(russian), "--at", "2026-11-28T12:00"
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "rule russian-speakers (rules.yaml:" in out and "MATCHED" in out
    assert "yes header Content-Language starts_with 'ru' — Content-Language is 'ru-RU'" in out
    assert "rule spam-flagged (rules.yaml:" in out and "not matched" in out
    assert "found 'срочно' in body" in out
    assert "queue        russian   (rule russian-speakers)" in out
    assert "priority     urgent   (rule urgent-keywords)" in out
    assert "assignee     dmitry@example.com by least_open" in out
    assert "business hours (office) closed — Sat 2026-11-28 13:00 Europe/Berlin" in out
    with desk.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0
        assert s.scalar(select(func.count()).select_from(OutboxEntry)) == 0


def test_rules_test_json_is_machine_readable(tmp_path):
    config = write_config(tmp_path)
    eml = tmp_path / "vip.eml"
    eml.write_bytes(
        make_mail(
            sender="Boss <boss@bigcorp.example>", subject="Invoice", headers={"Importance": "high"}
        )
    )
    result = run(
        "--config", str(config), "rules", "test", str(eml), "--json", "--at", "2026-11-23T10:00Z"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["fired"] == [
        "billing-words",
        "high-importance",
        "vip-customers",
        "assign-small-queues",
    ]
    decision = data["decision"]
    assert (decision["queue"], decision["priority"], decision["assignee"]) == (
        "billing",
        "high",
        "carol@example.com",
    )
    assert decision["sla_policy"] == "high"
    assert decision["first_response_due"] == "2026-11-23T14:00:00Z"
    assert decision["watchers"] == ["carol@example.com"]
    assert data["set_by"]["priority"] == "rule vip-customers"
    statuses = {r["name"]: r["status"] for r in data["rules"]}
    assert statuses["spam-flagged"] == "not matched"
    assert data["rules"][0]["conditions"]["detail"] == "no X-Spam-Flag header"


def test_rules_test_follow_up_runs_only_opted_in_rules(tmp_path):
    config = write_config(tmp_path)
    eml = tmp_path / "reply.eml"
    eml.write_bytes(make_mail(subject="Re: [MD-3] invoice still missing, urgent"))
    result = run("--config", str(config), "rules", "test", str(eml), "--follow-up", "--json")
    data = json.loads(result.output)
    assert data["follow_up"] is True
    assert data["fired"] == ["urgent-keywords"]
    statuses = {r["name"]: r for r in data["rules"]}
    assert statuses["billing-words"]["status"] == "skipped"
    assert data["decision"]["priority"] == "urgent"


def test_rules_test_with_a_mailbox_uses_its_queue(tmp_path):
    extra = "mailboxes:\n  - {name: ru-box, host: imap.example.com, username: r@example.com, password: {env: MD_PW}, queue: russian}\n"
    config = write_config(tmp_path, extra=extra)
    eml = tmp_path / "m.eml"
    eml.write_bytes(make_mail(subject="hello"))
    result = run(
        "--config", str(config), "rules", "test", str(eml), "--mailbox", "ru-box", "--json"
    )
    data = json.loads(result.output)
    assert data["decision"]["queue"] == "russian"
    assert data["set_by"]["queue"] == "mailbox ru-box"
    assert data["decision"]["language"] == "ru"


def test_rules_test_rejects_a_file_that_is_not_mail(tmp_path):
    config = write_config(tmp_path)
    junk = tmp_path / "junk.eml"
    junk.write_bytes(b"\x00\x01 not mail")
    result = run("--config", str(config), "rules", "test", str(junk))
    assert result.exit_code != 0
    assert "not an email message" in str(result.exception) + result.output
