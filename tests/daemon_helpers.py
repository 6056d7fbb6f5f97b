"""Helpers for tests that run mailboxes against the test Dovecot: config and daemon processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from maildesk.common.config_file import load_config
from maildesk.store.db import make_engine, reader, upgrade
from maildesk.store.models import Lease, MailboxState, Message, Receipt, Ticket
from tests.conftest import write_config
from tests.servers import DovecotServer


def mailbox_yaml(
    server: DovecotServer,
    user: str,
    directory: Path,
    *,
    name: str = "support",
    password: str | None = None,
    **options: Any,
) -> str:
    """One `mailboxes:` entry for `user` (password in a file beside the config)."""
    secret = directory / f"{name}.password"
    directory.mkdir(parents=True, exist_ok=True)
    secret.write_text(password if password is not None else server.users[user])
    fields: dict[str, Any] = {
        "host": server.host,
        "port": server.imap_port,
        "security": "none",
        "username": user,
        "poll_seconds": 300,  # long: tests show that IDLE, not polling, brings the mail
        "timeout": 10,
        **options,
    }
    lines = [f"  - name: {name}"] + [f"    {k}: {v}" for k, v in fields.items()]
    lines.append(f"    password: {{file: {secret}}}")
    return "\n".join(lines) + "\n"


def desk_dir(
    directory: Path,
    mailboxes: list[str],
    *,
    database_url: str | None = None,
    lease_seconds: float = 60,
    config_name: str = "maildesk.yaml",
    node: str | None = None,
) -> Path:
    """A maildesk folder with the given mailbox entries and a migrated database."""
    extra = "log_level: info\nmailboxes:" + ("\n" + "".join(mailboxes) if mailboxes else " []\n")
    extra += f"daemon:\n  lease_seconds: {lease_seconds}\n  max_backoff_seconds: 2\n"
    if node:
        extra += f"  node: {node}\n"
    path = write_config(directory, database_url=database_url, extra=extra)
    if config_name != path.name:
        path = path.rename(path.with_name(config_name))
    engine = make_engine(load_config(path).database_url())
    upgrade(engine)
    engine.dispose()
    return path


def maildesk(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the maildesk CLI as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "maildesk", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class DaemonProcess:
    """`maildesk run` in a child process, its stderr kept in a log file."""

    def __init__(self, config: Path, log_name: str = "daemon.log"):
        self.config = config
        self.log_path = config.parent / log_name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        self.log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "maildesk", "--config", str(self.config), "run"],
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=self.log_file,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20, after: int = 0) -> None:
        """Wait until `text` appears in the log (after character `after`)."""
        wait_until(lambda: text in self.log()[after:], timeout, f"{text!r} in log", self)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log_file.close()

    def ensure_dead(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_until(
    check: Callable[[], Any], timeout: float, what: str, daemon: DaemonProcess | None = None
) -> Any:
    """Poll `check` until it is truthy; fail with the daemon's log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            log = daemon.log()[-3000:] if daemon else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log}")
        time.sleep(0.05)


class Db:
    """Read-only views of a desk's database, as `maildesk tickets` would see it."""

    def __init__(self, config: Path):
        self.engine = reader(make_engine(load_config(config).database_url()))

    def count(self, model: Any) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(model)) or 0

    def messages(self) -> int:
        return self.count(Message)

    def tickets(self) -> int:
        return self.count(Ticket)

    def subjects(self) -> list[str]:
        with self.engine.connect() as conn:
            return sorted(conn.scalars(select(Message.subject)))

    def message_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.scalars(select(Message.message_id)))

    def state(self, mailbox: str = "support") -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(MailboxState.state).where(MailboxState.name == mailbox))

    def receipts(self) -> list[tuple[str, int, int]]:
        with self.engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(select(Receipt.source, Receipt.uidvalidity, Receipt.uid))
            ]

    def lease_holder(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(Lease.holder).where(Lease.name == name))

    def close(self) -> None:
        self.engine.dispose()


def run_for(task, seconds: float) -> None:
    """Run a background task (`task(stop)`, as the daemon runs them) for `seconds`, then
    set its stop event and wait for it to finish."""
    import asyncio

    async def go() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(task(stop))
        await asyncio.sleep(seconds)
        stop.set()
        await running

    asyncio.run(go())
