"""The daemon's supervisor in-process: background tasks, rules reload, backoff."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from maildesk.cli.daemon import background_tasks
from maildesk.common.backoff import Backoff
from maildesk.common.children import ChildPool
from maildesk.intake.parser_children import shared_sandbox
from maildesk.outgoing.render_jobs import shared_pool as render_pool
from maildesk.service.daemon import Daemon
from tests.conftest import make_mail


def test_backoff_doubles_with_jitter_up_to_the_cap():
    low = Backoff(1, 10)
    assert [low.seconds(n, lambda: 0.0) for n in range(1, 7)] == [0.5, 1, 2, 4, 5, 5]
    high = Backoff(1, 10)
    assert [high.seconds(n, lambda: 1.0) for n in range(1, 6)] == [1, 2, 4, 8, 10]


def test_background_tasks_start_and_stop_with_the_daemon(desk):
    seen = []

    async def sender(stop: asyncio.Event) -> None:
        seen.append("started")
        await stop.wait()
        seen.append("stopped")

    async def main() -> int:
        daemon = Daemon(desk, tasks=[sender])
        running = asyncio.create_task(daemon.run())
        for _ in range(200):  # after the parser child and the language models are ready
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen == ["started"]
        daemon.stopping.set()
        return await running

    assert asyncio.run(main()) == 0
    assert seen == ["started", "stopped"]


def test_run_once_gives_background_tasks_one_round_with_stop_already_set(desk):
    rounds = []

    async def scheduler(stop: asyncio.Event) -> None:
        rounds.append(stop.is_set())

    assert asyncio.run(Daemon(desk, tasks=[scheduler]).run_once()) == 0
    assert rounds == [True]


def test_daemon_reloads_changed_rules_while_running(desk):
    rules = desk.rules.path
    changed = rules.read_text().replace("queue: general", "queue: billing", 1)
    assert changed != rules.read_text()

    async def main() -> str:
        daemon = Daemon(desk)
        running = asyncio.create_task(daemon.run())
        await asyncio.sleep(0.2)
        rules.write_text(changed)
        for _ in range(50):
            if desk.rules.current.default_queue == "billing":
                break
            await asyncio.sleep(0.1)
        daemon.stopping.set()
        await running
        return desk.rules.current.default_queue

    assert asyncio.run(main()) == "billing"


def test_notifications_go_out_as_soon_as_ingest_commits_them(make_desk, smtp_sink, tmp_path):
    """The sender polls every 5 s; a committed batch wakes it instead."""
    maildir = tmp_path / "Maildir"
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    maildirs = f"maildirs:\n  - {{name: inbox, path: {maildir}, poll_seconds: 0.1}}\n"
    desk = make_desk(extra=smtp_sink.smtp_config() + maildirs)

    async def main() -> float:
        daemon = Daemon(desk, tasks=background_tasks(desk, "node:1:test"), holder="node:1:test")
        running = asyncio.create_task(daemon.run())
        await asyncio.sleep(1.0)  # the sender found nothing and sleeps until its next poll
        (maildir / "new" / "1.M1P1.test").write_bytes(make_mail(subject="Wake up"))
        dropped = time.monotonic()
        while not smtp_sink.received and time.monotonic() - dropped < 10:
            await asyncio.sleep(0.02)
        waited = time.monotonic() - dropped
        daemon.stopping.set()
        await running
        return waited

    assert asyncio.run(main()) < 3.0  # the next poll would have come after 4 s
    assert "[MD-1]" in smtp_sink.received[0].parsed()["Subject"]


def _child_processes() -> list[int]:
    """This process's parser and render children (pids) that are running."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"child_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def test_an_idle_daemon_lets_its_children_go_and_new_mail_starts_them_again(
    make_desk, smtp_sink, tmp_path, monkeypatch
):
    """limits.child_idle_seconds: a quiet desk is one process; the next mail is still
    parsed and acknowledged (its parser and render children start again)."""
    monkeypatch.setattr(ChildPool, "idle_seconds", ChildPool.idle_seconds)  # put back after
    maildir = tmp_path / "Maildir"
    for folder in ("cur", "new", "tmp"):
        (maildir / folder).mkdir(parents=True)
    maildirs = f"maildirs:\n  - {{name: inbox, path: {maildir}, poll_seconds: 0.1}}\n"
    limits = "limits:\n  child_idle_seconds: 0.5\n"
    desk = make_desk(extra=smtp_sink.smtp_config() + maildirs + limits)

    async def wait_for(condition, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)

    def all_retired_since(counts: tuple[int, int]) -> bool:
        now = (shared_sandbox().retired, render_pool().retired)
        return all(a > b for a, b in zip(now, counts, strict=True)) and not _child_processes()

    async def main() -> None:
        daemon = Daemon(desk, tasks=background_tasks(desk, "node:1:test"), holder="node:1:test")
        counts = (shared_sandbox().retired, render_pool().retired)
        running = asyncio.create_task(daemon.run())
        # Started with the daemon (parser and renderer), they leave once it is quiet.
        await wait_for(lambda: all_retired_since(counts))
        counts = (shared_sandbox().retired, render_pool().retired)
        (maildir / "new" / "1.M1P1.test").write_bytes(make_mail(subject="After a quiet spell"))
        await wait_for(lambda: bool(smtp_sink.received))
        await wait_for(lambda: all_retired_since(counts))
        daemon.stopping.set()
        await running

    asyncio.run(main())
    assert "[MD-1]" in smtp_sink.received[0].parsed()["Subject"]
