"""Outbox sender throughput: notifications per second to a local SMTP server.

    python bench/outbox.py [--count 3000] [--history 0] [--database-url URL] [--sessions 2]

Queues COUNT acknowledgements through the real pipeline (SQLite in a temporary folder
unless --database-url is given), starts an aiosmtpd sink in a separate process, then
times one `OutboxSender.drain()`: claim, send over SESSIONS SMTP connections, mark sent.
--history N first fills the outbox with N notifications marked sent (2.2 KB each), as
a desk that has run for a while keeps them: claiming must not slow down as they grow.
Prints notifications/s, CPU per notification (this process, the render process, the
SMTP sink), SMTP transaction latency percentiles and peak RSS (of this process and of
the render process).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.desks import bench_desk
from bench.procstat import cpu_seconds
from maildesk.outgoing.render_jobs import shared_pool
from maildesk.outgoing.sender import build_sender
from maildesk.service.desk import Desk, settle_heap
from maildesk.service.ingest_results import SourceInfo
from maildesk.store.models import OutboxEntry

RULES = """
version: 1
default: {queue: general, priority: normal, auto_reply: ack, language: en}
queues:
  general: {agents: []}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_desk(root: Path, port: int, database_url: str | None, sessions: int = 2) -> Desk:
    config = (
        f"database:\n  url: {database_url or 'sqlite:///maildesk.db'}\n"
        "tickets:\n  support_address: support@example.com\n  support_name: Example Support\n"
        f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n  sessions: {sessions}\n"
        # One requester per message, so the rate limit never holds an ack back.
        "limits:\n  auto_replies_per_hour: 1000000\n"
    )
    return bench_desk(root, config, RULES)


def queue(desk: Desk, count: int, prefix: str = "bench") -> float:
    """Ingest `count` requests (one acknowledgement each); seconds taken."""
    started = time.perf_counter()
    batch = []
    for n in range(count):
        raw = (
            f"From: Customer {n} <customer{n}@example.org>\r\nTo: support@example.com\r\n"
            f"Subject: Benchmark request {n}\r\nMessage-ID: <{prefix}-{n}@example.org>\r\n"
            "Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\n"
            "My printer is on fire. " * 20
        ).encode()
        batch.append((raw, SourceInfo(source="bench")))
        if len(batch) == 200:
            desk.pipeline.process_batch(batch)
            batch = []
    if batch:
        desk.pipeline.process_batch(batch)
    return time.perf_counter() - started


def start_sink(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c",
         "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the aiosmtpd sink did not start")


async def drain(desk: Desk) -> tuple[int, float, list[float]]:
    sender = build_sender(desk.config, desk.sessions, batch_size=100)
    sender.prepare()  # as `run` does when the daemon starts: the render process is up
    latencies: list[float] = []

    def timed(send):
        async def timed_send(envelope_from, recipients, raw):
            started = time.perf_counter()
            try:
                return await send(envelope_from, recipients, raw)
            finally:
                latencies.append(time.perf_counter() - started)

        return timed_send

    for transport in sender.transports:  # one per SMTP session (smtp.sessions)
        transport.send = timed(transport.send)  # type: ignore[method-assign]
    started = time.perf_counter()
    try:
        sent = await sender.drain()
    finally:
        await sender.close()
    return sent, time.perf_counter() - started, latencies


def peak_rss_mib(pid: int) -> float:
    """A live process's peak resident memory (Linux), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--history", type=int, default=0, help="sent notifications kept")
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    parser.add_argument("--sessions", type=int, default=2, help="smtp.sessions (default 2)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="maildesk-bench-outbox-"))
    port = free_port()
    sink = start_sink(port)
    desk = make_desk(root, port, args.database_url, args.sessions)
    try:
        if args.history:
            queue(desk, args.history, prefix="old")
            with desk.sessions() as session, session.begin():
                session.execute(update(OutboxEntry).values(status="sent", raw=b"x" * 2200))
        queued_in = queue(desk, args.count)
        with desk.sessions() as session:
            pending = session.scalar(
                select(func.count(OutboxEntry.id)).where(OutboxEntry.status == "pending")
            )
        settle_heap()  # as the daemon does once it has started
        # The sender renders each notification once, before its first attempt (in its
        # render process): timed here.
        shared_pool().prestart(1)  # its start-up is not counted
        renderers = [child.process.pid for child in shared_pool().idle]
        cpu, sink_cpu = time.process_time(), cpu_seconds(sink.pid)
        render_cpu = sum(cpu_seconds(pid) for pid in renderers)
        sent, seconds, latencies = asyncio.run(drain(desk))
        cpu, sink_cpu = time.process_time() - cpu, cpu_seconds(sink.pid) - sink_cpu
        render_cpu = sum(cpu_seconds(pid) for pid in renderers) - render_cpu
        render_rss = [peak_rss_mib(child.process.pid) for child in shared_pool().idle]
        with desk.sessions() as session:
            done = (
                session.scalar(
                    select(func.count(OutboxEntry.id)).where(OutboxEntry.status == "sent")
                )
                - args.history
            )
            size = session.scalar(
                select(func.avg(func.length(OutboxEntry.raw))).where(OutboxEntry.id > args.history)
            )
    finally:
        desk.close()
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    database = "PostgreSQL" if args.database_url else "SQLite"
    if args.history:
        print(f"outbox already holds {args.history} sent notifications")
    print(f"database: {database}; {pending} notifications queued in {queued_in:.1f} s "
          f"(avg {size:.0f} bytes each)")  # fmt: skip
    print(f"sent {sent} (marked sent: {done}) in {seconds:.2f} s over {args.sessions} SMTP session(s), "
          "rendering each notification before its first attempt included")  # fmt: skip
    print(f"throughput: {sent / seconds:.0f} notifications/s")
    print(
        f"CPU per notification: sender {cpu / sent * 1000:.3f} ms, render process "
        f"{render_cpu / sent * 1000:.3f} ms, SMTP sink "
        f"{sink_cpu / sent * 1000:.3f} ms"
    )
    ms = [v * 1000 for v in latencies]
    print(
        "SMTP transaction latency ms: "
        f"p50 {percentile(ms, 50):.2f}  p90 {percentile(ms, 90):.2f}  "
        f"p99 {percentile(ms, 99):.2f}  max {max(ms):.2f}  mean {statistics.fmean(ms):.2f}"
    )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"render process: {', '.join(f'{r:.0f}' for r in render_rss) or '-'} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
