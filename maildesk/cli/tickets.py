"""`maildesk tickets list|show`."""

from __future__ import annotations

import click

from maildesk.cli.common import CliContext, echo, pass_cli, print_json, print_table
from maildesk.store.queries import list_tickets, ticket_detail

TICKET_COLUMNS = [
    ("ref", "REF"),
    ("status", "STATUS"),
    ("priority", "PRIORITY"),
    ("queue", "QUEUE"),
    ("assignee", "ASSIGNEE"),
    ("requester", "REQUESTER"),
    ("message_count", "MSGS"),
    ("subject", "SUBJECT"),
]


@click.group()
def tickets() -> None:
    """List and show tickets."""


@tickets.command("list")
@click.option(
    "--status", help="Only tickets with this status (new, open, pending, resolved, closed)."
)
@click.option("--queue", help="Only tickets in this queue.")
@click.option("--limit", type=int, help="At most this many tickets (newest first).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (format in README).")
@pass_cli
def list_cmd(
    cli: CliContext, status: str | None, queue: str | None, limit: int | None, as_json: bool
) -> None:
    """List tickets, newest first."""
    with cli.read_session() as session:
        rows = list_tickets(session, status=status, queue=queue, limit=limit)
    if as_json:
        print_json(rows)
    elif rows:
        print_table(rows, TICKET_COLUMNS)
    else:
        echo("no tickets")


@tickets.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object (format in README).")
@pass_cli
def show_cmd(cli: CliContext, ref: str, as_json: bool) -> None:
    """Show one ticket with its messages, attachments and events."""
    with cli.read_session() as session:
        detail = ticket_detail(session, ref)
    if as_json:
        print_json(detail)
        return
    print_ticket(detail)


def print_ticket(d: dict) -> None:
    echo(f"{d['ref']}  {d['subject']}")
    echo(
        f"  status {d['status']} · priority {d['priority']} · queue {d['queue']} · "
        f"assignee {d['assignee'] or '-'} · requester {d['requester']}"
    )
    echo(f"  rules fired: {', '.join(d['rules_fired']) or 'none (default route)'}")
    if d["sla_policy"]:
        echo(
            f"  SLA {d['sla_policy']}: first response due {d['first_response_due'] or '-'}, "
            f"resolution due {d['resolution_due'] or '-'}"
        )
    if d["tags"]:
        echo(f"  tags: {', '.join(d['tags'])}")
    bouncing = [p["address"] for p in d["participants"] if p["bouncing"]]
    if bouncing:
        echo(f"  mail to {', '.join(bouncing)} bounces")
    for m in d["messages"]:
        flag = " (internal)" if m["internal"] else ""
        echo(f"\n  --- message {m['id']} · {m['kind']} from {m['from']}{flag} · {m['received_at']}")
        for line in (m["text"] or "").strip().splitlines()[:20]:
            echo(f"  | {line}")
        for a in m["attachments"]:
            echo(f"  [attachment] {a['filename']} ({a['content_type']}, {a['size']} bytes)")
    if d["notifications"]:
        echo("\n  notifications:")
        for n in d["notifications"]:
            echo(f"    {n['status']:8} {n['template']:15} to {', '.join(n['to'])}: {n['subject']}")
    echo("\n  events:")
    for e in d["events"]:
        change = f" {e['old'] or ''} -> {e['new'] or ''}" if e["old"] or e["new"] else ""
        echo(f"    {e['at']} {e['actor']}: {e['kind']}{change} ({e['reason']})")


COMMANDS = {c.name: c for c in [tickets]}
