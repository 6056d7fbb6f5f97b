"""Arrival of a request -> its acknowledgement accepted by the SMTP server, under IMAP IDLE.

    python bench/latency.py [--messages 50] [--gap 0.5] [--database-url URL]

Needs root (the private Dovecot runs mail processes as another uid), Dovecot installed
and the test extras. `maildesk run` runs in a child process, IDLEing on a real Dovecot
and sending through an SMTP server (aiosmtpd) in this process. Each request is APPENDed
to the mailbox one at a time, the next one `--gap` seconds after the previous one's
acknowledgement; the first, which also pays for what the daemon loads on first use, is
reported apart. For each it records (wall clock, all on this machine):

  * arrival: the APPEND was answered OK (the message is in the mailbox);
  * IDLE: a second client, IDLEing on the same folder, hears EXISTS. This is Dovecot's
    own delay (a fixed 500 ms, NOTIFY_DELAY_MSECS), which no client can avoid;
  * stored: the ticket's message row was written (`messages.created_at`);
  * accepted: the SMTP server answered 250 to the acknowledgement's DATA.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from maildesk.common.config import load_config  # noqa: E402
from maildesk.store.db import make_engine, reader  # noqa: E402
from maildesk.store.models import Message  # noqa: E402
from tests.conftest import make_mail  # noqa: E402
from tests.daemon_helpers import desk_dir, mailbox_yaml  # noqa: E402
from tests.servers import DovecotServer, SmtpSink, running_dovecot  # noqa: E402


class AckClock:
    """Records when the SMTP server accepted mail for each recipient."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}
        self.cond = threading.Condition()

    def __call__(self, item) -> None:  # SmtpSink.on_message, in the server's thread
        now = time.time()
        with self.cond:
            for rcpt in item.rcpt_tos:
                self.accepted.setdefault(rcpt.lower(), now)
            self.cond.notify_all()

    def wait(self, address: str, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: address in self.accepted, timeout)
            return self.accepted.get(address)


def start_daemon(base: Path, server: DovecotServer, sink: SmtpSink, url: str | None):
    user = server.add_user("latency")
    entry = mailbox_yaml(server, user, base / "secrets")  # polls every 300 s: IDLE only
    config = desk_dir(base / "desk", [entry], database_url=url)
    config.write_text(config.read_text() + sink.smtp_config())
    log = (base / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "maildesk", "--config", str(config), "run"],
        stdout=log,
        stderr=log,
        cwd=ROOT,
    )
    return user, config, daemon


def measure(server: DovecotServer, user: str, acks: AckClock, count: int, gap: float):
    """(arrival, IDLE heard, accepted, Message-ID) per request, one at a time."""
    rows = []
    with server.client(user) as sender, server.client(user) as watcher:
        watcher.select_folder("INBOX", readonly=True)
        for i in range(count):
            address = f"lat{i}@example.org"
            mid = f"<latency-{i}-{time.time_ns()}@example.org>"
            watcher.idle()
            sender.append("INBOX", make_mail(sender=address, subject=f"ping {i}", message_id=mid))
            arrival = time.time()
            heard = None
            deadline = arrival + 10
            while heard is None and time.time() < deadline:
                if any(r[1] == b"EXISTS" for r in watcher.idle_check(timeout=1)):
                    heard = time.time()
            watcher.idle_done()
            accepted = acks.wait(address, 30)
            if accepted is None or heard is None:
                raise SystemExit(f"request {i}: no acknowledgement (or no EXISTS) in time")
            rows.append((arrival, heard, accepted, mid.strip("<>")))
            time.sleep(gap)
    return rows


def stored_at(config: Path, message_ids: list[str]) -> dict[str, float]:
    engine = reader(make_engine(load_config(config).database_url()))
    try:
        with engine.connect() as conn:
            found = conn.execute(
                select(Message.message_id, Message.created_at).where(
                    Message.message_id.in_(message_ids + [f"<{m}>" for m in message_ids])
                )
            )
            return {mid.strip("<>"): at.timestamp() for mid, at in found}
    finally:
        engine.dispose()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {name:<34} median {statistics.median(ms):5.0f} ms  p90 {percentile(ms, 90):5.0f}"
        f"  p99 {percentile(ms, 99):5.0f}  min {min(ms):5.0f}  max {max(ms):5.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50, help="requests to time")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between requests")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="maildesk-bench-latency-"))
    acks = AckClock()
    sink = SmtpSink()
    sink.on_message = acks
    sink.start()
    try:
        with running_dovecot("latency") as server:
            user, config, daemon = start_daemon(base, server, sink, args.database_url)
            try:
                time.sleep(3)  # started, connected and idling
                rows = measure(server, user, acks, args.messages + 1, args.gap)
            finally:
                daemon.terminate()
                daemon.wait(30)
        stored = stored_at(config, [r[3] for r in rows])
    finally:
        sink.stop()
    first, rows = rows[0], rows[1:]  # the first after start-up also loads what ingest uses
    total = [accepted - arrival for arrival, _, accepted, _ in rows]
    idle = [heard - arrival for arrival, heard, _, _ in rows]
    to_ticket = [stored[mid] - arrival for arrival, _, _, mid in rows]
    to_smtp = [accepted - stored[mid] for _, _, accepted, mid in rows]
    database = "PostgreSQL" if args.database_url else "SQLite"
    print(f"{len(rows)} requests, one every {args.gap:g} s, {database}, `maildesk run` over IDLE")
    print(line("arrival -> ack accepted by SMTP", total))
    print(line("  Dovecot IDLE notification", idle))
    print(line("  arrival -> ticket stored", to_ticket))
    print(line("  ticket stored -> ack accepted", to_smtp))
    print(
        line("arrival -> ack, less IDLE delay", [t - i for t, i in zip(total, idle, strict=True)])
    )
    print(
        f"  (not counted: the first request after start-up, {(first[2] - first[0]) * 1000:.0f} ms)"
    )
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
