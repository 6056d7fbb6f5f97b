"""`maildesk blobs migrate`: move blob files under storage.path into the database."""

from __future__ import annotations

import time

import click

from maildesk.cli.common import CliContext, echo, pass_cli

MB = 1024 * 1024


@click.group()
def blobs() -> None:
    """Where raw messages and attachments are stored."""


@blobs.command("migrate")
@pass_cli
def migrate_cmd(cli: CliContext) -> None:
    """Move the blob files under storage.path into PostgreSQL; daemons may keep running.

    Each file is checked against its SHA-256 and deleted once its copy has committed.
    Run it again after an interruption: it carries on where it stopped.
    """
    from maildesk.common.errors import MaildeskError
    from maildesk.store.blob_chunks import ChunkBlobs
    from maildesk.store.blob_files import FileBlobs
    from maildesk.store.blob_migrate import Step, Summary, migrate_files
    from maildesk.store.db import (
        make_engine,
        make_read_sessionmaker,
        make_sessionmaker,
        require_current_schema,
    )

    config = cli.config()
    if config.database.url.startswith("sqlite"):
        raise MaildeskError(
            "blobs stay files with SQLite: `maildesk blobs migrate` needs a PostgreSQL database.url"
        )
    if config.storage.backend_for(config.database.url) == "files":
        echo(
            "note: storage.backend is files, so daemons keep writing new blobs as files; "
            "remove it (or set database) and restart them, then migrate again",
            err=True,
        )
    engine = make_engine(config.database_url())
    try:
        require_current_schema(engine)
        chunks = ChunkBlobs(make_sessionmaker(engine), make_read_sessionmaker(engine))
        files = FileBlobs(config.storage.path)
        echo(f"moving blob files from {files.root} into the database")
        shown = [0.0]

        def progress(step: Step, done: Summary) -> None:
            # A line a second at most (and the first and last), however many files.
            now = time.monotonic()
            if step.done in (1, step.total) or now - shown[0] >= 1:
                shown[0] = now
                echo(
                    f"  {step.done}/{step.total} files: {done.moved} moved "
                    f"({done.moved_bytes / MB:.1f} MB), {done.already} there already, "
                    f"{len(done.failed)} failed"
                )

        summary = migrate_files(files, chunks, progress)
    finally:
        engine.dispose()
    echo(
        f"moved {summary.moved} blobs ({summary.moved_bytes / MB:.1f} MB) into the database; "
        f"{summary.already} were there already (their files deleted); "
        f"{len(summary.failed)} failed"
    )
    for sha256, why in summary.failed:
        echo(f"  kept {files.path_for(sha256)}: {why}", err=True)
    if summary.failed:
        raise SystemExit(1)


COMMANDS = {c.name: c for c in [blobs]}
