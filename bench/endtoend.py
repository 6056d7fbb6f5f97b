"""End to end: `maildesk run` ingests N messages from a Maildir and sends every notification.

    python bench/endtoend.py [N] [--postgres] [--rules example|acks] [--sessions 2]

Starts an aiosmtpd sink in its own process and `maildesk run` (one daemon, SQLite
unless --postgres: a throwaway cluster as in bench/postgres.py) on an empty Maildir.
Once the daemon has looked at the Maildir, the N messages of bench/corpus.py are moved
into its new/ at once; the clock runs until every message is stored and every
notification it caused has been accepted by the sink. Prints messages/s for the whole,
notifications/s, CPU per message of the daemon (with its parser and render children)
and of the sink, and the daemon's peak RSS summed over its processes, while working,
idle 2 s after the last send, and idle once its children have left (the bench sets
`limits.child_idle_seconds` to 5 s). `--rules acks` keeps only the acknowledgement
(no agent notifications).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text

from bench.corpus import generate
from bench.outbox import RULES as ACK_RULES
from bench.outbox import free_port, start_sink
from bench.procstat import TreeSampler, rss_bytes, tree
from maildesk.common.resources import example_rules
from maildesk.store.db import make_engine, upgrade

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 1800
UNSENT = "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')"


def write_desk(work: Path, url: str, port: int, rules: str, sessions: int) -> Path:
    (work / "Maildir").mkdir()
    for folder in ("cur", "new", "tmp"):
        (work / "Maildir" / folder).mkdir()
    (work / "rules.yaml").write_text(rules)
    (work / "maildesk.yaml").write_text(
        f"database: {{url: '{url}'}}\nstorage: {{path: data}}\nrules: rules.yaml\n"
        "tickets:\n  support_address: support@example.com\n  support_name: Example Support\n"
        f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  sessions: {sessions}\n"
        # Every acknowledgement goes out, however often a customer writes.
        "limits:\n  auto_replies_per_hour: 1000000\n"
        # Children leave after 5 s without work (60 by default), so the bench shows the
        # idle daemon without them too without waiting a minute.
        "  child_idle_seconds: 5\n"
        "maildirs:\n  - {name: inbox, path: Maildir, poll_seconds: 0.2}\n"
    )
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return work / "maildesk.yaml"


def stage(work: Path, n: int) -> tuple[list[Path], int]:
    """The corpus written to a staging folder on the Maildir's file system; total size."""
    staging = work / "staging"
    staging.mkdir()
    paths, size = [], 0
    for i, raw in enumerate(generate(n)):
        path = staging / f"{1_700_000_000 + i}.M{i}P1.bench"
        path.write_bytes(raw)
        paths.append(path)
        size += len(raw)
    return paths, size


def wait_for(check, timeout: float = TIMEOUT, every: float = 0.05) -> float:
    """Poll `check()` until true; the time it became true (perf_counter)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(every)
    return time.perf_counter()


@contextlib.contextmanager
def database(postgres: bool, work: Path) -> Iterator[str]:
    if not postgres:
        yield f"sqlite:///{work}/maildesk.db"
        return
    from bench.pgserver import throwaway_postgres

    with throwaway_postgres() as cluster:
        yield cluster.create_database("endtoend")


def run(args: argparse.Namespace, work: Path, url: str) -> None:
    port = free_port()
    rules = ACK_RULES if args.rules == "acks" else example_rules().read_text()
    config = write_desk(work, url, port, rules, args.sessions)
    paths, size = stage(work, args.n)
    sink = start_sink(port)
    command = [sys.executable, "-m", "maildesk", "--config", str(config), "run"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's maildesk
    log = work / "daemon.log"
    daemon = subprocess.Popen(command, cwd=work, env=env, stderr=log.open("w"))
    watch = create_engine(url)

    def scalar(sql: str) -> int:
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited:\n{log.read_text()[-2000:]}")
        with watch.connect() as conn:
            return conn.scalar(text(sql)) or 0

    try:
        wait_for(lambda: scalar("SELECT count(*) FROM mailbox_state WHERE state = 'idle'") > 0)
        time.sleep(0.5)  # the daemon's children and sender are up
        idle_before = sum(rss_bytes(pid) for pid in tree(daemon.pid))
        work_sampler, sink_sampler = TreeSampler(daemon.pid), TreeSampler(sink.pid)
        work_sampler.start()
        sink_sampler.start()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        for path in paths:
            path.rename(work / "Maildir" / "new" / path.name)
        ingested = wait_for(lambda: scalar("SELECT count(*) FROM messages") >= args.n)
        done = wait_for(lambda: scalar(UNSENT) == 0)
        daemon_cpu, sink_cpu = work_sampler.stop(), sink_sampler.stop()
        ledger = work_sampler.ledger
        main_cpu = ledger.last[daemon.pid] - ledger.first[daemon.pid]
        sent = scalar("SELECT count(*) FROM outbox WHERE status = 'sent'")
        failed = scalar("SELECT count(*) FROM outbox WHERE status <> 'sent'")
        time.sleep(2.0)  # idle
        idle_after = sum(rss_bytes(pid) for pid in tree(daemon.pid))
        processes = len(tree(daemon.pid))
        wait_for(lambda: len(tree(daemon.pid)) == 1)
        idle_alone = rss_bytes(daemon.pid)
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        sink.terminate()
        sink.wait(10)
        watch.dispose()
    whole, n, daemon_pid = done - started, args.n, daemon.pid
    print(
        f"database: {'PostgreSQL' if args.postgres else 'SQLite'}; rules: {args.rules}; "
        f"SMTP sessions: {args.sessions}"
    )
    print(f"messages: {n} ({size / 1e6:.1f} MB); notifications sent {sent}, not sent {failed}")
    print(f"ingest done after {ingested - started:.2f} s; everything sent after {whole:.2f} s")
    print(
        f"end to end: {n / whole:.0f} messages/s, {sent / whole:.0f} notifications/s "
        f"(load average {load:.1f})"
    )
    print(
        f"CPU per message: daemon {daemon_cpu / n * 1000:.3f} ms (main process "
        f"{main_cpu / n * 1000:.3f}, children {(daemon_cpu - main_cpu) / n * 1000:.3f}); "
        f"SMTP sink {sink_cpu / n * 1000:.3f} ms"
    )
    print(
        f"daemon RSS, all {processes} processes: peak {work_sampler.peak_rss / 2**20:.0f} MiB "
        f"(PSS {work_sampler.peak_pss / 2**20:.0f} MiB) while working; idle {idle_before / 2**20:.0f} MiB before, "
        f"{idle_after / 2**20:.0f} MiB after, {idle_alone / 2**20:.0f} MiB once its children left"
    )
    main_peak = work_sampler.peaks.pop(daemon_pid, 0)
    children = ", ".join(f"{v / 2**20:.0f}" for v in sorted(work_sampler.peaks.values()))
    print(f"  peaks: main process {main_peak / 2**20:.0f} MiB; children {children} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=2000)
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL")
    parser.add_argument("--rules", choices=["example", "acks"], default="example")
    parser.add_argument("--sessions", type=int, default=2, help="smtp.sessions (default 2)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maildesk-bench-e2e-"))
    try:
        with database(args.postgres, work) as url:
            run(args, work, url)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
