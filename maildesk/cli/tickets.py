"""`maildesk tickets list|search|show|attachment`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from maildesk.cli.common import (
    CliContext,
    echo,
    fail,
    pass_cli,
    print_json,
    print_rows,
    write_bytes,
)
from maildesk.cli.search_output import print_hits, search_filters, search_hit_json

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
    # Without SQLAlchemy, whose import alone would take most of this command's time.
    from maildesk.store.listing import list_tickets
    from maildesk.store.read_only import connect_read_only

    with connect_read_only(cli.database_url()) as db:
        rows = list_tickets(db.connection, db.dialect, status=status, queue=queue, limit=limit)
    print_rows(rows, TICKET_COLUMNS, as_json=as_json, empty="no tickets")


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
    from maildesk.store.queries import ticket_detail

    with cli.read_session() as session:
        detail = ticket_detail(session, ref)
    if as_json:
        print_json(detail)
        return
    print_ticket(detail)


@tickets.command("attachment")
@click.argument("ref")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write the file here ('-': standard output).",
)
@click.option(
    "--message",
    "message_id",
    type=int,
    help="The message the file came with, when files of the same name differ "
    "(`tickets show` lists message ids).",
)
@pass_cli
def attachment_cmd(
    cli: CliContext, ref: str, name: str, output: Path, message_id: int | None
) -> None:
    """Write the attachment NAME of ticket REF to a file, byte for byte."""
    from maildesk.intake.message import human_size
    from maildesk.store.ticket_files import files_named

    desk = cli.desk()
    with desk.read_session() as session:
        exists, found = files_named(session, ref, name, message_id)
    if not exists:
        fail(f"there is no ticket {ref}")
    if not found:
        fail(f"{ref} has no attachment called {name!r}; `maildesk tickets show {ref}` lists them")
    if len({file.sha256 for _, file in found}) > 1:
        ids = ", ".join(str(mid) for mid, _ in found)
        fail(f"files called {name!r} differ (messages {ids}): choose one with --message ID")
    mid, file = found[-1]
    if str(output) == "-":
        write_bytes(desk.blobs.open(file.sha256))
        return
    with desk.blobs.open(file.sha256) as stream, output.open("wb") as fh:
        shutil.copyfileobj(stream, fh, 1 << 20)
    where = "standard output" if str(output) == "-" else str(output)
    echo(
        f"wrote {file.filename} ({human_size(file.size)}, message {mid}) to {where}",
        err=str(output) == "-",
    )


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
