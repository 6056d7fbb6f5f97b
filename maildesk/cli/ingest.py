"""`maildesk ingest FILE... | -`: feed messages from files or stdin (for an MTA pipe)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy.exc import OperationalError

from maildesk.cli.common import CliContext, echo, pass_cli
from maildesk.common.errors import MaildeskError
from maildesk.intake.maildir import Maildir, MaildirError
from maildesk.service.file_ingest import ingest_paths
from maildesk.service.ingest_results import IngestResult, SourceInfo

if TYPE_CHECKING:
    from maildesk.service.desk import Desk

EX_TEMPFAIL = 75  # sysexits.h: the MTA keeps the message and tries again later


@click.command()
@click.argument("files", nargs=-1)
@click.option(
    "--maildir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Ingest the unseen messages of this Maildir and mark them seen.",
)
@click.option("--queue", help="Default queue for these messages.")
@pass_cli
def ingest(
    cli: CliContext, files: tuple[str, ...], maildir: Path | None, queue: str | None
) -> None:
    """Ingest .eml FILES, `-` for one message on stdin, or a Maildir's unseen messages.

    Files go in batches of 200, one transaction each. Exits 75 (EX_TEMPFAIL) when a
    message could not be stored, so an MTA retries; messages already committed stay.
    """
    if bool(files) == (maildir is not None):
        raise click.UsageError("give message FILES (or -) or --maildir DIR, one of them")
    if "-" in files and len(files) > 1:
        raise click.UsageError("- (a message on stdin) must be the only argument")
    try:
        box = Maildir(maildir) if maildir is not None else None
    except MaildirError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        desk = cli.desk()
        if files == ("-",):
            failed = _ingest_stdin(desk, queue)
        elif box is not None:
            failed = _ingest_maildir(desk, box, queue)
        else:
            failed = _ingest_files(desk, [_open(name) for name in files], queue)
    except (MaildeskError, OSError, OperationalError) as exc:
        echo(f"error: {exc}; the message was not stored, try again later", err=True)
        sys.exit(EX_TEMPFAIL)
    if failed:
        echo(f"{failed} message(s) quarantined; see `maildesk quarantine list`", err=True)


def _ingest_stdin(desk: Desk, queue: str | None) -> int:
    # Read as a stream: a big message is spooled to disk, never held whole.
    result = desk.pipeline.process_file(sys.stdin.buffer, SourceInfo(source="stdin", queue=queue))
    _report("-", result)
    return not result.stored


def _ingest_files(desk: Desk, paths: list[Path], queue: str | None) -> int:
    def source(path: Path) -> SourceInfo:
        return SourceInfo(source=f"file:{path.name}", queue=queue)

    failed = 0
    for path, result in ingest_paths(desk.pipeline, paths, source):
        _report(str(path), result)
        failed += not result.stored
    return failed


def _ingest_maildir(desk: Desk, maildir: Maildir, queue: str | None) -> int:
    waiting = maildir.waiting()
    source = SourceInfo(source=f"maildir:{maildir.root.resolve().name}", queue=queue)
    failed = 0
    for path, result in ingest_paths(
        desk.pipeline, waiting, lambda _: source, committed=maildir.mark_seen
    ):
        _report(f"{path.parent.name}/{path.name}", result)
        failed += not result.stored
    echo(f"{maildir.root}: {len(waiting)} unseen message(s) ingested and marked seen")
    return failed


def _report(name: str, result: IngestResult) -> None:
    label = result.ticket_ref or (
        f"automatic #{result.automatic_id}"
        if result.automatic_id is not None
        else f"quarantine #{result.quarantine_id}"
    )
    detail = f" ({result.reason})" if result.reason else ""
    echo(f"{name}: {result.outcome} {label}{detail}")


def _open(name: str) -> Path:
    path = Path(name)
    try:
        with path.open("rb"):
            return path
    except OSError as exc:
        raise click.ClickException(f"cannot read {name}: {exc.strerror}") from None


COMMANDS = {c.name: c for c in [ingest]}
