"""`maildesk tickets list|search|show`."""

from __future__ import annotations

from typing import Any

import click

from maildesk.cli.common import CliContext, echo, pass_cli, print_json, print_table
from maildesk.cli.search_output import print_hits, search_filters, search_hit_json
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
    """List, search and show tickets."""


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


@tickets.command("search")
@click.argument("query")
@click.option(
    "--status",
    multiple=True,
    type=click.Choice(["new", "open", "pending", "resolved", "closed"], case_sensitive=False),
    help="Only tickets with this status (repeatable).",
)
@click.option("--queue", help="Only tickets in this queue.")
@click.option("--assignee", help="Only tickets assigned to this address ('none': unassigned).")
@click.option("--requester", help="Only tickets from this address.")
@click.option("--since", help="Only tickets created on or after this date (YYYY-MM-DD, UTC).")
@click.option("--until", help="Only tickets created on or before this date (YYYY-MM-DD, UTC).")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=20,
    show_default=True,
    help="At most N tickets.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (format in README).")
@pass_cli
def search_cmd(cli: CliContext, query: str, as_json: bool, **options: Any) -> None:
    """Find tickets by words in their subject, mail, addresses, ref or attachment names.

    Every word must match; "quoted words" match as a phrase. Newest activity first.
    """
    from maildesk.store.search import search_tickets

    with cli.read_session() as session:
        hits = search_tickets(session, query, search_filters(**options))
    if as_json:
        print_json([search_hit_json(h) for h in hits])
    elif hits:
        print_hits(hits)
    else:
        echo("no tickets match")


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
