"""The sender killed with SIGKILL mid-run, again and again: how many notifications arrive twice?

    python bench/crash.py [--count 3000] [--kills 10] [--lease 1.0]

Queues COUNT acknowledgements (SQLite in a temporary folder), starts an SMTP server in
its own process that records every Message-ID it accepts, then runs the outbox sender
in a child process and kills it (SIGKILL) at a random moment, KILLS times, restarting
it each time; a last run sends the rest. Prints deliveries, losses and re-deliveries
per kill. A re-delivery is a message whose `250` reached the sender but whose "sent"
was not recorded before the kill; nothing may be lost.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench.outbox import free_port, make_desk, queue
from maildesk.outgoing.sender import build_sender
from maildesk.store.models import OutboxEntry

_SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Record:
    def __init__(self, path):
        self.out = open(path, "a", buffering=1)
    async def handle_DATA(self, server, session, envelope):
        for line in envelope.original_content.split(b"\\r\\n"):
            if line.lower().startswith(b"message-id:"):
                self.out.write(line.split(b":", 1)[1].strip().decode() + "\\n")
                break
        return "250 OK"
controller = Controller(Record(sys.argv[2]), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
asyncio.new_event_loop().run_forever()
"""


def send(root: Path, port: int, lease: float) -> None:
    """Child: drain the outbox (claims expire after `lease` seconds)."""
    desk = make_desk(root, port, None)
    sender = build_sender(desk.config, desk.sessions, batch_size=100, lease_seconds=lease)
    sender.prepare()
    asyncio.run(sender.drain_and_close())
    desk.close()


def delivered(received: Path) -> int:
    return received.read_text().count("\n") if received.exists() else 0


def pending(desk) -> int:
    with desk.sessions() as session:
        return session.scalar(
            select(func.count(OutboxEntry.id)).where(OutboxEntry.status != "sent")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        send(Path(args.child[0]), int(args.child[1]), args.lease)
        return
    root = Path(tempfile.mkdtemp(prefix="maildesk-bench-crash-"))
    port = free_port()
    received = root / "received.txt"
    sink = subprocess.Popen([sys.executable, "-c", _SINK, str(port), str(received)])
    time.sleep(1.0)
    desk = make_desk(root, port, None)
    rng = random.Random(7)
    try:
        queue(desk, args.count)
        child = [sys.executable, __file__, "--lease", str(args.lease), "--child", str(root)]
        kills = 0
        while kills < args.kills and pending(desk):
            proc = subprocess.Popen([*child, str(port)])
            before = delivered(received)
            # Kill it once it is sending: after its first deliveries, at a random moment.
            while delivered(received) == before and proc.poll() is None:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            time.sleep(args.lease + 0.2)  # the dead sender's claims expire
        while pending(desk):
            subprocess.run([*child, str(port)], check=True)
            time.sleep(args.lease + 0.2)
    finally:
        desk.close()
        sink.terminate()
        sink.wait(10)
    ids = Counter(received.read_text().split())
    shutil.rmtree(root, ignore_errors=True)
    twice = sum(n - 1 for n in ids.values())
    print(f"{args.count} notifications, {kills} SIGKILLs of the sender")
    print(f"delivered {sum(ids.values())}, distinct {len(ids)}, lost {args.count - len(ids)}")
    print(f"re-deliveries: {twice} in all, {twice / max(kills, 1):.1f} per kill")


if __name__ == "__main__":
    main()
