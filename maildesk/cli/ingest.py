"""`maildesk ingest FILE... | -`: feed messages from files or stdin (for an MTA pipe)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError

from maildesk.cli.common import CliContext, pass_cli
from maildesk.errors import MaildeskError

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


@click.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--queue", help="Default queue for these messages.")
@pass_cli
def ingest(cli: CliContext, files: tuple[str, ...], queue: str | None) -> None:
    """Ingest .eml FILES, or `-` for one message on stdin.

    Exits 75 (EX_TEMPFAIL) when a message could not be stored, so an MTA retries.
    """
    from maildesk.pipeline import SourceInfo

    try:
        desk = cli.desk()
        failed = 0
        for name in files:
            source = SourceInfo(
                source="stdin" if name == "-" else f"file:{Path(name).name}", queue=queue
            )
            # Read as a stream: a big message is spooled to disk, never held whole.
            if name == "-":
                result = desk.pipeline.process_file(sys.stdin.buffer, source)
            else:
                result = desk.pipeline.process_file(_open(name), source)
            label = result.ticket_ref or f"quarantine #{result.quarantine_id}"
            detail = f" ({result.reason})" if result.reason else ""
            click.echo(f"{name}: {result.outcome} {label}{detail}")
            failed += not result.stored
    except (MaildeskError, OSError, OperationalError) as exc:
        click.echo(f"error: {exc}; the message was not stored, try again later", err=True)
        sys.exit(EX_TEMPFAIL)
    if failed:
        click.echo(f"{failed} message(s) quarantined; see `maildesk quarantine list`", err=True)


def _open(name: str) -> Path:
    path = Path(name)
    try:
        with path.open("rb"):
            return path
    except OSError as exc:
        raise click.ClickException(f"cannot read {name}: {exc.strerror}") from None


COMMANDS = [ingest]
