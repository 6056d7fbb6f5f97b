"""`maildesk ingest`: spool a message from stdin (an MTA pipe), or ingest files, a
Maildir, stdin at once (--now) or the spool (--spool)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from maildesk.cli.common import CliContext, echo, pass_cli
from maildesk.cli.mta_pipe import EX_TEMPFAIL, spool_stdin

if TYPE_CHECKING:
    from maildesk.intake.maildir import Maildir
    from maildesk.service.desk import Desk
    from maildesk.service.ingest_results import IngestResult


@click.command()
@click.argument("files", nargs=-1)
@click.option(
    "--maildir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Ingest the unseen messages of this Maildir and mark them seen.",
)
@click.option("--spool", is_flag=True, help="Ingest what `ingest -` spooled, then exit (cron).")
@click.option("--now", is_flag=True, help="With -: ingest stdin at once instead of spooling it.")
@click.option("--queue", help="Default queue for these messages.")
@pass_cli
def ingest(
    cli: CliContext,
    files: tuple[str, ...],
    maildir: Path | None,
    spool: bool,
    now: bool,
    queue: str | None,
) -> None:
    """Spool the message on stdin (`-`), or ingest .eml FILES, a Maildir or the spool.

    `-` writes the message durably into the spool and exits 0 (75, EX_TEMPFAIL, when
    it cannot, so an MTA retries); `maildesk run` or `ingest --spool` ingest it.
    `--now -` ingests stdin at once. Files go in batches of 200, one transaction each.
    Exits 75 when a message could not be stored; messages already committed stay.
    """
    if (bool(files) + (maildir is not None) + spool) != 1:
        raise click.UsageError("give message FILES (or -), --maildir DIR or --spool, one of them")
    if "-" in files and len(files) > 1:
        raise click.UsageError("- (a message on stdin) must be the only argument")
    if files == ("-",) and not now:
        sys.exit(spool_stdin(cli.config_path_arg, queue, sys.stdin.buffer, sys.stdout, sys.stderr))
    if spool and queue:
        raise click.UsageError("--queue goes with the message: `ingest --queue Q -`")
    box = _maildir(maildir) if maildir is not None else None
    _ingest_now(cli, files, box, spool, queue)


def _ingest_now(
    cli: CliContext, files: tuple[str, ...], box: Maildir | None, spool: bool, queue: str | None
) -> None:
    from sqlalchemy.exc import OperationalError

    from maildesk.common.errors import MaildeskError

    try:
        desk = cli.desk()
        if spool:
            failed = _ingest_spool(desk)
        elif files == ("-",):
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


def _maildir(path: Path) -> Maildir:
    from maildesk.intake.maildir import Maildir, MaildirError

    try:
        return Maildir(path)
    except MaildirError as exc:
        raise click.ClickException(str(exc)) from None


def _ingest_stdin(desk: Desk, queue: str | None) -> int:
    from maildesk.service.ingest_results import SourceInfo

    # Read as a stream: a big message is spooled to disk, never held whole.
    result = desk.pipeline.process_file(sys.stdin.buffer, SourceInfo(source="stdin", queue=queue))
    _report("-", result)
    return not result.stored


def _ingest_spool(desk: Desk) -> int:
    import asyncio
    import threading

    from maildesk.common.errors import TemporaryFailure
    from maildesk.service.mailbox_worker import MailboxWorker
    from maildesk.store.leases import holder_id

    # As `run --once` does it for the spool alone: skipped while a daemon drains it.
    holder = holder_id(desk.config.daemon.node)
    worker = MailboxWorker(desk, desk.config.spool_source, holder, threading.Lock())
    outcome = asyncio.run(worker.run_once())
    if outcome.error:
        raise TemporaryFailure(f"{outcome.mailbox}: {outcome.error}")
    if outcome.skipped:
        echo(f"{outcome.mailbox}: skipped, {outcome.skipped} (it drains the spool)")
    else:
        echo(f"{outcome.mailbox}: {outcome.ingested} message(s) ingested from the spool")
    return 0


def _ingest_files(desk: Desk, paths: list[Path], queue: str | None) -> int:
    from maildesk.service.file_ingest import ingest_paths
    from maildesk.service.ingest_results import SourceInfo

    def source(path: Path) -> SourceInfo:
        return SourceInfo(source=f"file:{path.name}", queue=queue)

    failed = 0
    for path, result in ingest_paths(desk.pipeline, paths, source):
        _report(str(path), result)
        failed += not result.stored
    return failed


def _ingest_maildir(desk: Desk, maildir: Maildir, queue: str | None) -> int:
    from maildesk.service.file_ingest import ingest_paths
    from maildesk.service.ingest_results import SourceInfo
    from maildesk.service.maildir_ingest import LISTED

    source = SourceInfo(source=f"maildir:{maildir.root.resolve().name}", queue=queue)
    failed = taken = 0
    for waiting in maildir.slices(LISTED):  # a backlog is never listed whole
        for path, result in ingest_paths(
            desk.pipeline, waiting, lambda _: source, committed=maildir.mark_seen
        ):
            _report(f"{path.parent.name}/{path.name}", result)
            failed += not result.stored
        taken += len(waiting)
    echo(f"{maildir.root}: {taken} unseen message(s) ingested and marked seen")
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
