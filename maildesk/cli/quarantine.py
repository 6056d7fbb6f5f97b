"""`maildesk quarantine list|show|retry`."""

from __future__ import annotations

import click
from sqlalchemy import select

from maildesk.cli.common import CliContext, echo, fail, pass_cli, print_rows, show_kept_mail
from maildesk.common.json_time import json_time
from maildesk.store.models import QuarantineEntry
from maildesk.store.quarantine import get_entry


@click.group()
def quarantine() -> None:
    """Messages that could not be processed, kept with the reason."""


def _row(e: QuarantineEntry) -> dict:
    return {
        "id": e.id,
        "received_at": json_time(e.received_at),
        "status": e.status,
        "stage": e.stage,
        "reason": e.reason,
        "source": e.source,
        "from": e.from_addr,
        "subject": e.subject,
        "size": e.raw_size,
        "attempts": e.attempts,
        "raw_sha256": e.raw_sha256,
        "ticket_ref": e.ticket_ref,
    }


_COLUMNS = [
    ("id", "ID"),
    ("received_at", "RECEIVED"),
    ("stage", "STAGE"),
    ("from", "FROM"),
    ("subject", "SUBJECT"),
    ("reason", "REASON"),
]


@quarantine.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include entries already released.")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def list_cmd(cli: CliContext, show_all: bool, as_json: bool) -> None:
    """List quarantined messages (held ones by default)."""
    with cli.read_session() as session:
        query = select(QuarantineEntry).order_by(QuarantineEntry.id)
        if not show_all:
            query = query.where(QuarantineEntry.status == "held")
        rows = [_row(e) for e in session.scalars(query)]
    print_rows(rows, _COLUMNS, as_json=as_json, empty="quarantine is empty")


@quarantine.command("retry")
@click.argument("entry_id", type=int)
@pass_cli
def retry_cmd(cli: CliContext, entry_id: int) -> None:
    """Run a quarantined message through the pipeline again."""
    from maildesk.service.quarantine_retry import retry_entry

    desk = cli.desk()
    result = retry_entry(desk, entry_id)
    if result.stored:
        echo(f"quarantine {entry_id}: {result.outcome} {result.ticket_ref}")
    else:
        fail(f"quarantine {entry_id}: still failing: {result.reason}")


@quarantine.command("show")
@click.argument("entry_id", type=int)
@click.option("--raw", is_flag=True, help="Print the raw message bytes.")
@pass_cli
def show_cmd(cli: CliContext, entry_id: int, raw: bool) -> None:
    """Show one quarantine entry (or its raw bytes)."""
    show_kept_mail(cli, entry_id, raw, get_entry, _row)


COMMANDS = {c.name: c for c in [quarantine]}
