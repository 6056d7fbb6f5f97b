"""`maildesk outbox list|show|retry|send`: notifications waiting, sent or failed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import click
from sqlalchemy import select

from maildesk.cli.common import (
    CliContext,
    echo,
    fail,
    pass_cli,
    print_json,
    print_rows,
    write_bytes,
)
from maildesk.common.errors import NotFound
from maildesk.common.json_time import json_time
from maildesk.outgoing.render_jobs import render_entry
from maildesk.store.models import OutboxEntry, Ticket

STATUSES = ("pending", "sending", "sent", "failed", "bounced")
UNSENT = ("pending", "sending", "failed", "bounced")


def entry_row(entry: OutboxEntry, ref: str | None) -> dict[str, Any]:
    """The fields of `outbox list --json` (a stable, documented format)."""
    return {
        "id": entry.id,
        "ticket": ref,
        "template": entry.template,
        "audience": entry.audience,
        "status": entry.status,
        "to": list(entry.recipients),
        "subject": entry.subject,
        "message_id": entry.message_id,
        "created_at": json_time(entry.created_at),
        "attempts": entry.attempts,
        "next_attempt_at": json_time(entry.next_attempt_at) if entry.status == "pending" else None,
        "sent_at": json_time(entry.sent_at),
        "last_error": entry.last_error,
    }


@click.group()
def outbox() -> None:
    """Notifications: waiting, sent, failed; resend them."""


_COLUMNS = [
    ("id", "ID"),
    ("ticket", "TICKET"),
    ("status", "STATUS"),
    ("template", "TEMPLATE"),
    ("to_list", "TO"),
    ("attempts", "TRIES"),
    ("last_error", "LAST ERROR"),
]


@outbox.command("list")
@click.option(
    "--status",
    "statuses",
    type=click.Choice(STATUSES),
    multiple=True,
    help="Only this status (repeatable). Default: everything not sent yet.",
)
@click.option("--all", "show_all", is_flag=True, help="Every status, sent ones included.")
@click.option("--limit", type=int, default=200, show_default=True, help="Newest this many.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (format in README).")
@pass_cli
def list_cmd(
    cli: CliContext, statuses: tuple[str, ...], show_all: bool, limit: int, as_json: bool
) -> None:
    """List notifications, newest first."""
    desk = cli.desk()
    wanted = STATUSES if show_all else (statuses or UNSENT)
    with desk.sessions() as session:
        query = (
            select(OutboxEntry, Ticket.ref)
            .outerjoin(Ticket, Ticket.id == OutboxEntry.ticket_id)
            .where(OutboxEntry.status.in_(wanted))
            .order_by(OutboxEntry.id.desc())
            .limit(limit)
        )
        rows = [entry_row(e, ref) for e, ref in session.execute(query).all()]
    if not as_json:
        for row in rows:
            row["to_list"] = ", ".join(row["to"])
    empty = "no notifications" + ("" if show_all or statuses else " waiting or failed")
    print_rows(rows, _COLUMNS, as_json=as_json, empty=empty, max_width=60)


@outbox.command("show")
@click.argument("entry_id", type=int)
@click.option("--raw", is_flag=True, help="Print the message exactly as it is sent.")
@pass_cli
def show_cmd(cli: CliContext, entry_id: int, raw: bool) -> None:
    """Show one notification (or its raw RFC 5322 bytes)."""
    desk = cli.desk()
    with desk.sessions() as session, session.begin():
        entry, ref = _get(session, entry_id)
        if raw:
            # Rendered (and kept) now if the sender has not done it yet: same bytes later.
            write_bytes(render_entry(entry, desk.renderer, desk.config, desk.blobs))
            return
        print_json(entry_row(entry, ref))


@outbox.command("retry")
@click.argument("entry_id", type=int)
@click.option("--no-send", is_flag=True, help="Only queue it again; the daemon sends it.")
@pass_cli
def retry_cmd(cli: CliContext, entry_id: int, no_send: bool) -> None:
    """Queue notification ENTRY_ID again (same bytes, same Message-ID) and send it."""
    desk = cli.desk()
    now = datetime.now(UTC)
    with desk.sessions() as session, session.begin():
        entry, _ = _get(session, entry_id)
        if entry.status == "sending" and entry.claimed_until and entry.claimed_until > now:
            raise click.ClickException(f"notification {entry_id} is being sent right now")
        previous = entry.status
        entry.status = "pending"
        entry.attempts = 0
        entry.next_attempt_at = now
        entry.claimed_by = None
        entry.claimed_until = None
    echo(f"notification {entry_id} ({previous}) queued again")
    if no_send:
        return
    _drain(cli)
    with desk.sessions() as session:
        entry, _ = _get(session, entry_id)
        detail = f": {entry.last_error}" if entry.status != "sent" and entry.last_error else ""
        echo(f"notification {entry_id}: {entry.status}{detail}")
        if entry.status == "failed":
            raise SystemExit(1)


@outbox.command("send")
@pass_cli
def send_cmd(cli: CliContext) -> None:
    """Send every notification that is due now, then exit (the daemon does this itself)."""
    _drain(cli)


def _drain(cli: CliContext) -> None:
    from maildesk.outgoing.sender import build_sender

    desk = cli.desk()
    sender = build_sender(cli.config(), desk.sessions, blobs=desk.blobs)
    sent = asyncio.run(sender.drain_and_close())
    echo(f"sent {sent} notification(s)")
    if sender.unavailable:
        fail(f"{sender.unavailable}; the rest stay queued")


def _get(session: Any, entry_id: int) -> tuple[OutboxEntry, str | None]:
    row = session.execute(
        select(OutboxEntry, Ticket.ref)
        .outerjoin(Ticket, Ticket.id == OutboxEntry.ticket_id)
        .where(OutboxEntry.id == entry_id)
    ).first()
    if row is None:
        raise NotFound(f"no notification {entry_id}; see `maildesk outbox list --all`")
    return row[0], row[1]


COMMANDS = {c.name: c for c in [outbox]}
