"""What relaying a big attachment costs: time and peak memory of the sender and its render process.

    python bench/attachments.py [--size-mb 25] [--count 3] [--database-url URL]

Ingests COUNT customer mails, each with one SIZE-MB random attachment, for a queue with
one agent (one notification per mail carries the file), starts an aiosmtpd sink in a
separate process, then times one `OutboxSender.drain()`. Prints the time per
notification, the peak RSS growth of this process during the drain (the sender: it
stores the rendered bytes, reads them back one at a time and sends them) and the peak
RSS of the render process (which reads the file and writes the message). On SQLite big
blobs are files the render process reads itself; on PostgreSQL (--database-url) they
are chunks the sender first copies to a spool file.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.desks import bench_desk
from bench.outbox import free_port, peak_rss_mib, start_sink
from maildesk.outgoing.render_jobs import shared_pool
from maildesk.outgoing.sender import build_sender
from maildesk.service.desk import Desk

RULES = """
version: 1
default: {queue: general, priority: normal, language: en}
queues:
  general: {agents: [alice]}
agents:
  alice: {address: alice@example.com, name: Alice Archer, queues: [general]}
"""
MB = 1024 * 1024


def make_desk(root: Path, port: int, size: int, database_url: str | None) -> Desk:
    config = (
        f"database:\n  url: {database_url or 'sqlite:///maildesk.db'}\n"
        "storage:\n  path: data\n"
        "tickets:\n  support_address: support@example.com\n  support_name: Example Support\n"
        f"smtp:\n  host: 127.0.0.1\n  port: {port}\n  security: none\n"
        f"limits:\n  max_message_bytes: {3 * size}\n  max_attachment_bytes: {2 * size}\n"
        f"notify:\n  attach_max_bytes: {2 * size}\n"
    )
    return bench_desk(root, config, RULES)


def write_mail(path: Path, n: int, size: int) -> None:
    """A customer's mail with one `size`-byte random file, written 1 MB at a time."""
    rng = random.Random(n)
    with path.open("wb") as fh:
        fh.write(
            f"From: Customer {n} <c{n}@example.org>\r\nTo: support@example.com\r\n"
            f"Subject: Logs {n}\r\nMessage-ID: <logs-{n}@example.org>\r\n"
            'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b0"\r\n\r\n'
            "--b0\r\nContent-Type: text/plain\r\n\r\nThe logs.\r\n--b0\r\n"
            "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
            'filename="logs.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'.encode()
        )
        left = size
        while left:
            block = rng.randbytes(min(left, 57 * 18000))
            fh.write(base64.encodebytes(block).replace(b"\n", b"\r\n"))
            left -= len(block)
        fh.write(b"--b0--\r\n")


def reset_peak() -> float:
    """Reset this process's peak RSS to now (Linux); the current RSS in MiB."""
    Path("/proc/self/clear_refs").write_text("5")
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def drain(desk: Desk) -> tuple[int, float]:
    sender = build_sender(desk.config, desk.sessions, blobs=desk.blobs)
    sender.prepare()
    started = time.perf_counter()
    try:
        sent = await sender.drain()
    finally:
        await sender.close()
    return sent, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=25)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    size = int(args.size_mb * MB)
    root = Path(tempfile.mkdtemp(prefix="maildesk-bench-attachments-"))
    port = free_port()
    sink = start_sink(port)
    desk = make_desk(root, port, size, args.database_url)
    try:
        for n in range(args.count):
            write_mail(root / "mail.eml", n, size)
            result = desk.pipeline.process_file(root / "mail.eml")
            assert result.outcome == "created", result
        before = reset_peak()
        sent, seconds = asyncio.run(drain(desk))
        sender_peak = peak_rss_mib(os.getpid())
        render_rss = [peak_rss_mib(child.process.pid) for child in shared_pool().idle]
    finally:
        desk.close()
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    database = "PostgreSQL (chunks)" if args.database_url else "SQLite (blob files)"
    print(f"{database}: {args.count} notifications with a {args.size_mb:g} MB file each "
          f"(and {sent - args.count} acknowledgements) rendered and sent in {seconds:.2f} s")  # fmt: skip
    print(f"sender peak RSS: +{sender_peak - before:.0f} MiB over {before:.0f} MiB; "
          f"render process peak: {', '.join(f'{r:.0f}' for r in render_rss) or '-'} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
