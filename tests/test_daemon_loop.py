"""The daemon's supervisor in-process: background tasks, rules reload, backoff."""

from __future__ import annotations

import asyncio

from maildesk.common.backoff import Backoff
from maildesk.service.daemon import Daemon


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
