"""`maildesk run [--once]` and `maildesk status`."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from maildesk.cli.common import CliContext, echo, pass_cli, print_json, print_table, setup_logging

if TYPE_CHECKING:
    from maildesk.common.liveness import Liveness
    from maildesk.service.daemon import BackgroundTask


@click.command()
@click.option("--once", is_flag=True, help="Ingest everything pending, then exit (for cron).")
@pass_cli
def run(cli: CliContext, once: bool) -> None:
    """Run the daemon in the foreground: ingest every mailbox; logs go to stderr.

    SIGTERM or SIGINT finish the batch in hand and exit; SIGHUP reloads maildesk.yaml.
    """
    from maildesk.common.freed_memory import share_thread_heaps
    from maildesk.common.liveness import Liveness
    from maildesk.service.daemon import Daemon
    from maildesk.store.leases import holder_id

    share_thread_heaps()  # before the daemon starts its threads
    config = cli.config()
    if logging.getLogger().level != logging.DEBUG:  # -v wins over log_level
        setup_logging(config.log_level)
        logging.getLogger("alembic").setLevel(logging.WARNING)  # schema check chatter
    if os.environ.get("JOURNAL_STREAM"):  # stderr goes to journald (systemd sets this)
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JournalFormatter())
    desk = cli.desk()  # refuses an out-of-date schema
    # One name for the daemon's leases, heartbeat and notification claims: when its
    # heartbeat stops, other daemons take all three over at once.
    holder = holder_id(config.daemon.node)
    liveness = Liveness()  # renewed by the daemon's heartbeat, watched by its sender
    daemon = Daemon(
        desk,
        config_path=cli.path if cli.path.exists() else None,
        tasks=background_tasks(desk, holder, liveness),
        holder=holder,
        liveness=liveness,
    )
    code = asyncio.run(daemon.run_once() if once else daemon.run())
    if once:
        for outcome in daemon.outcomes:
            if outcome.error:
                echo(f"{outcome.mailbox}: FAILED {outcome.error}", err=True)
            elif outcome.skipped:
                echo(f"{outcome.mailbox}: skipped, {outcome.skipped}")
            else:
                echo(f"{outcome.mailbox}: {outcome.ingested} message(s) ingested")
    sys.exit(code)


_PRIORITIES = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


class JournalFormatter(logging.Formatter):
    """Log lines for journald: a <priority> prefix it understands (so `journalctl -p err`
    works) and no timestamp, since the journal adds its own."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITIES.get(record.levelname, 6)}>{super().format(record)}"


def background_tasks(
    desk: Any, holder: str | None = None, liveness: Liveness | None = None
) -> list[BackgroundTask]:
    """The daemon's jobs besides the mailboxes: the outbox sender and the scheduler.

    Each is `async def task(stop: asyncio.Event)`; see maildesk.service.daemon.BackgroundTask.
    The Prometheus endpoint starts here too when `metrics_port` is set.
    """
    from maildesk.outgoing.sender import build_sender
    from maildesk.service import metrics_server
    from maildesk.service.scheduler import Scheduler
    from maildesk.store.outbox_signal import listen_conninfo

    if desk.config.metrics_port:
        metrics_server.serve(
            desk.config.metrics_port, desk.config.database_url(), desk.config.metrics_address
        )
    sender = build_sender(
        desk.config,
        desk.sessions,
        clock=desk.pipeline.clock,
        worker_id=holder,
        blobs=desk.blobs,
        may_send=liveness.holds if liveness is not None else None,
    )
    scheduler = Scheduler(desk, holder=holder)

    async def send(stop: asyncio.Event) -> None:
        if stop.is_set():  # --once: send what is due, then stop
            try:
                await sender.drain()
            finally:
                await sender.close()
            return
        # Ingest commits in worker threads; each batch that queued mail wakes the sender
        # here, and on PostgreSQL so does every other process's (LISTEN/NOTIFY).
        loop = asyncio.get_running_loop()

        def wake() -> None:
            loop.call_soon_threadsafe(sender.wake)

        desk.outbox_waiters.append(wake)
        try:
            await sender.run(stop, listen=listen_conninfo(desk.config.database_url()))
        finally:
            desk.outbox_waiters.remove(wake)

    async def schedule(stop: asyncio.Event) -> None:
        if stop.is_set():  # --once: one round
            await asyncio.to_thread(scheduler.run_once)
            return
        await scheduler.run(stop)

    return [send, schedule]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def status(cli: CliContext, as_json: bool) -> None:
    """Show each mailbox: state, owning daemon, last success, backlog and last error;
    for this machine's spool, the messages waiting in it and when the oldest came; then
    each daemon: how many mailboxes it holds, since when, whether it is alive.

    Exits 1 when a mailbox is failing, or mail waits in one no daemon holds (none runs,
    or it died), so a monitoring check can call it.
    """
    from sqlalchemy.orm import Session

    from maildesk.service.spool_ingest import spool_backlog
    from maildesk.store.db import reader
    from maildesk.store.leases import heartbeats
    from maildesk.store.mailboxes import mailbox_status

    desk = cli.desk()
    with Session(reader(desk.engine)) as session:
        rows = mailbox_status(session, desk.config)
        beats = heartbeats(session)
    spool = desk.config.spool_source
    waiting, oldest = spool_backlog(spool.path)
    for row in rows:  # what the spool holds now, not what the daemon last saw
        row["oldest_at"] = oldest if row["name"] == spool.name else None
        if row["name"] == spool.name:
            row["backlog"] = waiting
        if row["configured"] and not row["holder"] and row["backlog"]:
            row["failing"] = True  # mail is waiting and nothing takes it
    if as_json:
        print_json(rows)
    elif not rows:
        echo("no mailboxes configured")
    else:
        print_table(
            [_shown(r) for r in rows],
            [
                ("name", "MAILBOX"),
                ("state", "STATE"),
                ("daemon", "DAEMON"),
                ("last_success", "LAST SUCCESS"),
                ("backlog", "BACKLOG"),
                ("error", "LAST ERROR"),
            ],
            max_width=100,
        )
    if beats and not as_json:
        echo()
        print_table(_daemons(beats, rows), _DAEMON_COLUMNS, max_width=100)
    if any(r["failing"] for r in rows):
        sys.exit(1)


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    error = row["last_error"]
    prefix = f"mailbox {row['name']} ("
    if error and error.startswith(prefix) and "): " in error:
        error = error.partition("): ")[2]  # the table already names the mailbox
    if error and row["last_error_at"]:
        error = f"{_ago(row['last_error_at'], row['now'])}: {error}"
    backlog = row["backlog"]
    if row["oldest_at"] is not None:
        backlog = f"{backlog}, oldest {_ago(row['oldest_at'], row['now']) or 'now'}"
    return {
        **row,
        "daemon": row["holder"] or "-",
        "last_success": _ago(row["last_success_at"], row["now"]) or "never",
        "backlog": backlog,
        "error": error or "",
    }


_DAEMON_COLUMNS = [
    ("holder", "DAEMON"),
    ("mailboxes", "MAILBOXES"),
    ("share", "FAIR SHARE"),
    ("started", "STARTED"),
    ("state", "HEARTBEAT"),
]


def _daemons(beats: list[Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per daemon that registered a heartbeat: what it holds, whether it lives."""
    from maildesk.common.config import SPOOL_PREFIX
    from maildesk.service.balancer import fair_share

    now = rows[0]["now"] if rows else max(b.expires_at for b in beats)
    shared = [r for r in rows if not r["name"].startswith(SPOOL_PREFIX)]  # spools: per machine
    sharing = [b for b in beats if b.live and b.token > 0]  # token: mailboxes it serves
    share = fair_share(len(shared), len(sharing))
    shown = f"{share.low}" if share.low == share.high else f"{share.low}-{share.high}"
    lines = []
    for beat in beats:
        holder = beat.holder or "-"
        held = sum(r["holder"] == beat.holder for r in shared) if beat.live else 0
        lines.append(
            {
                "holder": holder,
                "mailboxes": held,
                "share": shown if beat in sharing else "-",
                "started": _ago(beat.acquired_at, now),
                "state": "alive" if beat.live else f"lapsed {_ago(beat.expires_at, now)}",
            }
        )
    return lines


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return ""
    seconds = max(0, int((now - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


COMMANDS = {c.name: c for c in [run, status]}
