"""Where an ingest's main-thread CPU goes, stage by stage, on SQLite or PostgreSQL.

    python bench/stages.py [--messages 2000] [--postgres] [--runs 1]

Ingests the bench/corpus.py mix from a Maildir as `maildesk ingest --maildir` does
(the example rules), with the stages below wrapped to add up the CPU time
(time.thread_time) of the thread that runs them. Prints microseconds of CPU per
message for each stage, inclusive of the stages it calls. CPU time of one thread
repeats far better than wall-clock rates on a shared machine, so this is the tool for
a before/after of a change to one stage; the parser children and the database server
are not in it (bench/postgres.py has them).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.postgres import bench_rules, fill_maildir

# (module, attribute looked up there): what each stage is called through.
STAGES = [
    ("maildesk.service.pipeline", "Pipeline.finish_batch"),
    ("maildesk.service.pipeline", "write_plans"),
    ("maildesk.service.batch_planner", "BatchPlanner.plan_batch"),
    ("maildesk.service.batch_planner", "screen_entry"),
    ("maildesk.service.batch_planner", "load_batch_state"),
    ("maildesk.service.batch_planner", "batch_languages"),
    ("maildesk.service.batch_planner", "BatchPlanner._set_aside"),
    ("maildesk.service.batch_planner", "BatchPlanner._find_ticket"),
    ("maildesk.service.batch_planner", "decide"),
    ("maildesk.rules.engine", "RuleSet.evaluate"),
    ("maildesk.service.batch_planner", "apply_decision"),
    ("maildesk.service.batch_planner", "address_notices"),
    ("maildesk.service.batch_planner", "BatchState.record"),
    ("maildesk.store.writer", "_write_plan"),
    ("maildesk.store.writer", "outbox_rows"),
    ("maildesk.store.writer", "Rows.insert"),
    ("maildesk.store.writer", "index_messages"),
    ("maildesk.store.writer", "_update_tickets"),
    ("maildesk.intake.message_reader", "MessageReader._read_chunk"),
]


class StageClock:
    """Adds up each wrapped stage's thread CPU time and calls."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def wrap(self, module_name: str, attribute: str) -> None:
        module = importlib.import_module(module_name)
        owner_name, _, name = attribute.rpartition(".")
        owner = getattr(module, owner_name) if owner_name else module
        original = getattr(owner, name, None)
        if original is None:
            raise SystemExit(f"bench/stages.py: {module_name} has no {attribute}; update STAGES")
        setattr(owner, name, self._timed(attribute, original))

    def _timed(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.thread_time() - started
                self.calls[label] += 1

        return timed

    def clear(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def ingest(url: str | None, messages: int, clock: StageClock) -> tuple[int, float, float]:
    """Messages ingested, wall seconds, main-process CPU seconds."""
    from bench.desks import bench_desk
    from maildesk.intake.maildir import Maildir
    from maildesk.service.desk import settle_heap
    from maildesk.service.file_ingest import ingest_paths
    from maildesk.service.ingest_results import SourceInfo

    work = Path(tempfile.mkdtemp(prefix="maildesk-bench-stages-"))
    try:
        fill_maildir(work / "box", messages, 1)
        (work / "desk").mkdir()
        database = f"database: {{url: '{url}'}}\n" if url else ""
        desk = bench_desk(
            work / "desk", database + "storage: {path: data}\n", bench_rules("example")
        )
        desk.pipeline.reader.start()
        settle_heap()
        box = Maildir(work / "box")
        waiting = box.waiting()
        clock.clear()
        cpu, wall = time.process_time(), time.perf_counter()
        done = sum(
            1
            for _ in ingest_paths(
                desk.pipeline, waiting, lambda _: SourceInfo(source="box"), committed=box.mark_seen
            )
        )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        desk.close()
        return done, wall, cpu
    finally:
        shutil.rmtree(work, ignore_errors=True)


def show(name: str, done: int, wall: float, cpu: float, clock: StageClock) -> None:
    print(
        f"{name}: {done} messages, {done / wall:.0f} msg/s, main process CPU "
        f"{cpu / done * 1e6:.0f} us/msg (load average {os.getloadavg()[0]:.1f})"
    )
    for label, seconds in clock.seconds.most_common():
        print(f"  {seconds / done * 1e6:8.1f} us/msg  {clock.calls[label]:6d} calls  {label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    clock = StageClock()
    for module_name, attribute in STAGES:
        clock.wrap(module_name, attribute)
    if not args.postgres:
        for _ in range(args.runs):
            show("SQLite", *ingest(None, args.messages, clock), clock)
        return
    from bench.pgserver import throwaway_postgres

    with throwaway_postgres() as cluster:
        for run in range(args.runs):
            url = cluster.create_database(f"stages_{run}")
            show("PostgreSQL", *ingest(url, args.messages, clock), clock)


if __name__ == "__main__":
    main()
