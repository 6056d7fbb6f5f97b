"""`maildesk rules check|test`: validate rules.yaml; dry-run a message through it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from maildesk.cli.common import CliContext, echo, pass_cli, print_json
from maildesk.common.domain import Status, TicketState
from maildesk.common.errors import FileProblems, MaildeskError, ParseError
from maildesk.common.json_time import json_time
from maildesk.intake.message import ParsedMessage
from maildesk.intake.parse import parse_message
from maildesk.rules import Explanation, RuleFacts, RuleSet, load_rules
from maildesk.rules.conditions import Trace

_FILE_OPTION = click.option(
    "--file",
    "rules_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The rules file (default: `rules:` in maildesk.yaml).",
)


@click.group()
def rules() -> None:
    """Check rules.yaml and try messages against it."""


@rules.command("check")
@_FILE_OPTION
@pass_cli
def check_cmd(cli: CliContext, rules_file: Path | None) -> None:
    """Validate rules.yaml; list every problem with its line; exit 1 on any."""
    from maildesk.service.checks import rules_cross_problems

    path = rules_file or cli.config().rules
    try:
        ruleset = load_rules(path)
    except FileProblems as exc:
        for problem in exc.problems:
            echo(str(problem), err=True)
        echo(f"{len(exc.problems)} problem(s); {path} was not loaded", err=True)
        raise SystemExit(1) from None
    problems = rules_cross_problems(cli.config(), ruleset)
    for problem in problems:
        echo(str(problem), err=True)
    if problems:
        echo(f"{len(problems)} problem(s) in {path}", err=True)
        raise SystemExit(1)
    echo(f"{path}: ok — {_summary(ruleset)}")


def _summary(ruleset: RuleSet) -> str:
    calendars = len(ruleset.calendars) - 1  # the built-in 24x7 is always there
    return (
        f"{len(ruleset.rules)} rules, {len(ruleset.queues)} queues, {len(ruleset.agents)} agents, "
        f"{len(ruleset.sla_policies)} SLA policies, {calendars} calendars"
    )


@rules.command("test")
@click.argument("message", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_FILE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (format in README).")
@click.option("--mailbox", help="Pretend the message came from this mailbox of maildesk.yaml.")
@click.option("--queue", help="Pretend the message came with this default queue.")
@click.option("--at", "at", help="Evaluate at this time (ISO 8601, e.g. 2026-12-24T15:00+01:00).")
@click.option("--follow-up", is_flag=True, help="Evaluate as a customer's follow-up.")
@pass_cli
def test_cmd(
    cli: CliContext,
    message: Path,
    rules_file: Path | None,
    as_json: bool,
    mailbox: str | None,
    queue: str | None,
    at: str | None,
    follow_up: bool,
) -> None:
    """Show which rules MESSAGE matches and why, and the decision; stores and sends nothing."""
    ruleset = load_rules(rules_file or cli.config().rules)
    try:
        msg = parse_message(message.read_bytes())
    except ParseError as exc:
        raise MaildeskError(f"{message}: {exc}") from None
    now = _moment(at)
    mailbox_queue = queue or _mailbox_queue(cli, mailbox)
    facts = RuleFacts(now=now, mailbox=mailbox or "cli", mailbox_queue=mailbox_queue)
    ticket = _pretend_ticket(ruleset, msg, facts) if follow_up else None
    explanation = ruleset.explain(msg, ticket=ticket, facts=facts)
    if as_json:
        data = explanation.to_dict()
        data["message"] = _message_summary(msg)
        data["at"] = json_time(now)
        data["rules_file"] = ruleset.source
        print_json(data)
        return
    _print_explanation(ruleset, msg, explanation, now)


def _moment(at: str | None) -> datetime:
    if not at:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise click.BadParameter(f"'{at}' is not an ISO 8601 time", param_hint="--at") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _mailbox_queue(cli: CliContext, mailbox: str | None) -> str | None:
    if mailbox is None:
        return None
    for box in cli.config().mailboxes:
        if box.name == mailbox:
            return box.queue
    known = ", ".join(b.name for b in cli.config().mailboxes) or "none configured"
    raise click.BadParameter(f"no mailbox '{mailbox}' (mailboxes: {known})", param_hint="--mailbox")


def _pretend_ticket(ruleset: RuleSet, msg: ParsedMessage, facts: RuleFacts) -> TicketState:
    """A ticket as this message would have opened it, for --follow-up."""
    routing = ruleset.evaluate(msg, ticket=None, facts=facts)
    return TicketState(
        id=0,
        ref="MD-0",
        subject=msg.subject,
        status=Status.OPEN,
        priority=ruleset.default_priority,
        queue=routing.queue or ruleset.default_queue,
        assignee=None,
        requester=msg.from_addr,
        requester_name="",
        created_at=facts.now,
        updated_at=facts.now,
        message_id="",
    )


def _message_summary(msg: ParsedMessage) -> dict[str, object]:
    return {
        "subject": msg.subject,
        "from": str(msg.sender) if msg.sender else "",
        "size": msg.size,
        "attachments": len(msg.attachments),
    }


def _print_explanation(
    ruleset: RuleSet, msg: ParsedMessage, explanation: Explanation, now: datetime
) -> None:
    kind = "a follow-up" if explanation.follow_up else "a new ticket"
    echo(f"rules: {ruleset.source} ({len(ruleset.rules)} rules)")
    echo(f"message: {msg.subject!r} from {msg.sender or '(no sender)'}, {msg.size} bytes")
    echo(f"evaluated as {kind} at {now:%Y-%m-%d %H:%M} UTC\n")
    for outcome in explanation.rules:
        where = f" ({Path(ruleset.source).name}:{outcome.line})" if outcome.line else ""
        status = outcome.status.upper() if outcome.status == "matched" else outcome.status
        reason = f" — {outcome.reason}" if outcome.reason else ""
        echo(f"rule {outcome.name}{where}: {status}{reason}")
        if outcome.trace is not None:
            _print_trace(outcome.trace, 4)
        for action in outcome.actions:
            echo(f"    -> {action}")
    if not ruleset.rules:
        echo("(no rules: the default route decides)")
    _print_decision(explanation)
    echo("\ndry run: nothing was stored or sent")


def _print_trace(trace: Trace, indent: int) -> None:
    mark = "yes" if trace.result else "no "
    detail = f" — {trace.detail}" if trace.detail else ""
    echo(f"{' ' * indent}{mark} {trace.condition}{detail}")
    for child in trace.children:
        _print_trace(child, indent + 2)


def _print_decision(explanation: Explanation) -> None:
    r, by = explanation.routing, explanation.set_by
    echo(f"\ndecision for {'the follow-up' if explanation.follow_up else 'a new ticket'}:")

    def row(label: str, value: object, key: str | None = None) -> None:
        source = by.get(key or label)
        shown = "-" if value in (None, "", []) else value
        echo(f"  {label:<12} {shown}" + (f"   ({source})" if source else ""))

    if explanation.follow_up:
        row("queue", r.queue or "(unchanged)")
        row("priority", f"{r.priority} (raised only)" if r.priority else "(unchanged)")
        row("tags", ", ".join(r.tags))
        row("notify", ", ".join(r.notify))
    else:
        row("queue", r.queue)
        row("priority", r.priority)
        assignee = r.assignee or ("(none available)" if r.assign_strategy else None)
        if r.assign_strategy:
            assignee = f"{assignee} by {r.assign_strategy}"
        row("assignee", assignee)
        sla = None
        if r.sla_policy:
            sla = f"{r.sla_policy}: first response by {_when(r.first_response_due)}, "
            sla += f"resolution by {_when(r.resolution_due)}"
        row("sla", sla)
        row("auto_reply", r.auto_reply or "none")
        row("language", r.language)
        row("tags", ", ".join(r.tags))
        for key in ("watchers", "cc", "notify"):
            if getattr(r, key):
                row(key, ", ".join(getattr(r, key)))
        if r.spam or r.ignore:
            row("spam" if r.spam else "ignore", "yes — stored, nobody notified")
    echo(f"  {'fired':<12} {', '.join(r.hits) or 'no rule (default route only)'}")
    for note in explanation.notes:
        echo(f"  note: {note}")


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"


COMMANDS = {c.name: c for c in [rules]}
