"""`maildesk automatic list|show`: bounces, complaints and auto-replies that matched no ticket."""

from __future__ import annotations

import click

from maildesk.cli.common import CliContext, pass_cli, print_rows, show_kept_mail
from maildesk.common.json_time import json_time
from maildesk.store.models import AutomaticMail

KINDS = ("bounce", "delay", "complaint", "delivery", "auto_reply", "receipt", "own")


@click.group()
def automatic() -> None:
    """Automatic mail that matched no ticket: kept apart, never in the agents' queue."""


def _row(e: AutomaticMail) -> dict:
    details = e.details or {}
    return {
        "id": e.id,
        "received_at": json_time(e.received_at),
        "kind": e.kind,
        "from": e.from_addr,
        "subject": e.subject,
        "reason": e.reason,
        "source": e.source,
        "message_id": e.message_id,
        "size": e.raw_size,
        "raw_sha256": e.raw_sha256,
        "recipients": details.get("recipients", []),
        "original_message_id": details.get("original_message_id"),
    }


def _summary(row: dict) -> str:
    """Who failed and how, in one cell: `a@x.org 5.1.1`."""
    return ", ".join(
        f"{r['address']} {r.get('status') or r.get('action') or ''}".strip()
        for r in row["recipients"]
    )


_COLUMNS = [
    ("id", "ID"),
    ("received_at", "RECEIVED"),
    ("kind", "KIND"),
    ("from", "FROM"),
    ("subject", "SUBJECT"),
    ("report", "REPORT"),
]


@automatic.command("list")
@click.option("--kind", type=click.Choice(KINDS), help="Only this kind of automatic mail.")
@click.option("--limit", type=int, default=None, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True)
@pass_cli
def list_cmd(cli: CliContext, kind: str | None, limit: int | None, as_json: bool) -> None:
    """List automatic mail kept apart, newest first (kept limits.automatic_keep_days)."""
    from maildesk.store.automatic import list_automatic

    with cli.read_session() as session:
        rows = [_row(e) for e in list_automatic(session, kind=kind, limit=limit)]
    if not as_json:  # who failed and how, in one cell of the table
        for row in rows:
            row["report"] = _summary(row)
    print_rows(rows, _COLUMNS, as_json=as_json, empty="no automatic mail kept")


@automatic.command("show")
@click.argument("entry_id", type=int)
@click.option("--raw", is_flag=True, help="Print the raw message bytes.")
@pass_cli
def show_cmd(cli: CliContext, entry_id: int, raw: bool) -> None:
    """Show one automatic mail (or its raw bytes)."""
    from maildesk.store.automatic import get_automatic

    show_kept_mail(cli, entry_id, raw, get_automatic, _row)


COMMANDS = {c.name: c for c in [automatic]}
