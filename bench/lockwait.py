"""Does sending hold up ingest? Ingest latency on SQLite while the sender works through a backlog.

    python bench/lockwait.py [--backlog 10000] [--messages 300]

Queues BACKLOG notifications, then ingests MESSAGES new requests one at a time (each
its own transaction, as an MTA pipe delivers them) twice: once with the outbox sender
idle, once while a sender in another process sends the backlog to an aiosmtpd sink.
Prints ingest latency percentiles and the slowest ingest for both, and how many took
longer than 100 ms. The sender shares SQLite's single write lock with ingest.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.outbox import free_port, make_desk, percentile, queue, start_sink
from maildesk.outgoing.sender import build_sender
from maildesk.service.ingest_results import SourceInfo


def send_all(root: Path, port: int) -> None:
    """Child: send the whole backlog."""
    desk = make_desk(root, port, None)
    sender = build_sender(desk.config, desk.sessions, batch_size=100)
    sender.prepare()
    asyncio.run(sender.drain_and_close())
    desk.close()


def ingest_latencies(desk, count: int, tag: str) -> list[float]:
    """Milliseconds per message, each ingested in its own transaction."""
    latencies = []
    for n in range(count):
        raw = (
            f"From: Probe {n} <probe{n}@example.org>\r\nTo: support@example.com\r\n"
            f"Subject: Probe {tag} {n}\r\nMessage-ID: <probe-{tag}-{n}@example.org>\r\n"
            "Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n\r\nIs anybody there?\r\n"
        ).encode()
        started = time.perf_counter()
        desk.pipeline.process_one(raw, SourceInfo(source="probe"))
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)  # spread the probes over the sending
    return latencies


def report(name: str, ms: list[float]) -> None:
    slow = sum(1 for v in ms if v > 100)
    print(
        f"{name:26} p50 {percentile(ms, 50):6.1f}  p99 {percentile(ms, 99):6.1f}  "
        f"max {max(ms):7.1f} ms; over 100 ms: {slow} of {len(ms)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        send_all(Path(args.child[0]), int(args.child[1]))
        return
    root = Path(tempfile.mkdtemp(prefix="maildesk-bench-lockwait-"))
    port = free_port()
    sink = start_sink(port)
    desk = make_desk(root, port, None)
    try:
        queue(desk, args.backlog)
        desk.pipeline.reader.start()
        quiet = ingest_latencies(desk, args.messages, "quiet")
        sender = subprocess.Popen([sys.executable, __file__, "--child", str(root), str(port)])
        time.sleep(2.0)  # its start-up; then it is sending
        busy = ingest_latencies(desk, args.messages, "busy")
        still_sending = sender.poll() is None
        sender.wait()
    finally:
        desk.close()
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    print(f"backlog {args.backlog} notifications; {args.messages} probe messages each time")
    report("sender idle", quiet)
    report("sender sending the backlog", busy)
    if not still_sending:
        print("(the sender finished before the last probe: use a bigger --backlog)")


if __name__ == "__main__":
    main()
