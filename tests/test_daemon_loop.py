"""The daemon's supervisor in-process: background tasks, rules reload, backoff."""

from __future__ import annotations

import asyncio
import time

from maildesk.cli.daemon import background_tasks
from maildesk.common.backoff import Backoff
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
        await asyncio.sleep(0.2)
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
