"""IMAP ingest against a real Dovecot: backlog throughput and IDLE arrival-to-ticket latency.

    python bench/imap.py [--messages 5000] [--latency 50]

Needs root (the private Dovecot runs mail processes as another uid), Dovecot installed
and the test extras (the Dovecot helper lives in tests/servers.py). Prints:
  * the IMAP-side ceiling: UID FETCH BODY.PEEK[] of the whole backlog, nothing else;
  * the foundation's ingest: the same messages straight into Pipeline.process_batches;
  * maildesk's IMAP ingest of the backlog (what `maildesk run --once` does);
  * arrival-to-ticket latency while `maildesk run` IDLEs, one message at a time.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from maildesk.common.config_file import load_config  # noqa: E402
from maildesk.service.desk import Desk, settle_heap  # noqa: E402
from maildesk.service.ingest_results import SourceInfo  # noqa: E402
from maildesk.service.mailbox_ingest import MailboxIngest  # noqa: E402
from maildesk.store.db import make_engine, reader  # noqa: E402
from maildesk.store.models import Message  # noqa: E402
from tests.conftest import make_mail  # noqa: E402
from tests.daemon_helpers import desk_dir, mailbox_yaml  # noqa: E402
from tests.servers import DovecotServer, running_dovecot  # noqa: E402

BODY = ("The export to CSV stops at row 4096 and the file is cut off. " * 40).strip()


def messages(n: int, tag: str) -> list[bytes]:
    """n distinct ~3 KB messages from different customers."""
    return [
        make_mail(
            sender=f"Customer {i} <customer{i}@example.org>",
            subject=f"{tag} request {i}",
            body=BODY,
            message_id=f"<{tag}-{i}@example.org>",
        )
        for i in range(n)
    ]


def fresh_desk(base: Path, name: str, mailboxes: list[str]) -> Desk:
    config = load_config(desk_dir(base / name, mailboxes))
    desk = Desk.build(config)
    desk.pipeline.reader.start()  # as the daemon does at start-up
    settle_heap()
    return desk


def fetch_ceiling(server: DovecotServer, user: str, chunk: int = 500) -> tuple[float, float]:
    """msg/s and MB/s of UID FETCH BODY.PEEK[] of the whole folder, nothing else."""
    with server.client(user) as client:
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        started = time.perf_counter()
        size = 0
        for i in range(0, len(uids), chunk):
            for item in client.fetch(uids[i : i + chunk], ["BODY.PEEK[]"]).values():
                size += len(item[b"BODY[]"])
        elapsed = time.perf_counter() - started
    return len(uids) / elapsed, size / elapsed / 1e6


def pipeline_only(base: Path, raws: list[bytes], batch: int = 200) -> float:
    """The foundation's figure: Pipeline.process_batches on raw bytes, no IMAP."""
    desk = fresh_desk(base, "pipeline-only", [])
    started = time.perf_counter()
    batches = (
        [(raw, SourceInfo("bench")) for raw in raws[i : i + batch]]
        for i in range(0, len(raws), batch)
    )
    for _ in desk.pipeline.process_batches(batches):
        pass
    elapsed = time.perf_counter() - started
    desk.close()
    return len(raws) / elapsed


def imap_backlog(base: Path, server: DovecotServer, user: str, n: int) -> tuple[float, int]:
    """maildesk's IMAP ingest of the backlog: connect, fetch in batches, commit, mark \\Seen."""
    entry = mailbox_yaml(server, user, base / "secrets", batch_size=200)
    desk = fresh_desk(base, "imap-backlog", [entry])
    ingest = MailboxIngest(desk, desk.config.mailboxes[0])
    started = time.perf_counter()
    ingest.open()
    done = 0
    while count := ingest.sync():
        done += count
    elapsed = time.perf_counter() - started
    ingest.close()
    with desk.sessions() as session:
        stored = len(session.scalars(select(Message.id)).all())
    desk.close()
    assert done == n == stored, (done, n, stored)
    return n / elapsed, stored


def idle_latency(base: Path, server: DovecotServer, count: int, gap: float) -> list[float]:
    """Seconds from APPEND done to the message committed, while `maildesk run` IDLEs."""
    user = server.add_user("latency")
    entry = mailbox_yaml(server, user, base / "secrets")  # polls every 300 s: IDLE only
    config = desk_dir(base / "latency", [entry])
    engine = reader(make_engine(load_config(config).database_url()))
    log = (base / "latency" / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "maildesk", "--config", str(config), "run"],
        stdout=log,
        stderr=log,
        cwd=ROOT,
    )
    latencies = []
    try:
        time.sleep(3)  # started, connected and idling
        with server.client(user) as client:
            for i in range(count):
                mid = f"<latency-{i}-{time.time_ns()}@example.org>"
                raw = make_mail(subject=f"latency {i}", message_id=mid)
                ids = [mid, mid.strip("<>")]  # however the parser keeps it
                client.append("INBOX", raw)
                sent = time.perf_counter()
                deadline = sent + 30
                while True:
                    with engine.connect() as conn:
                        found = conn.scalar(select(Message.id).where(Message.message_id.in_(ids)))
                    if found or time.perf_counter() > deadline:
                        break
                    time.sleep(0.002)
                if not found:
                    raise SystemExit(f"message {i} never became a ticket; see {log.name}")
                latencies.append(time.perf_counter() - sent)
                time.sleep(gap)
    finally:
        daemon.terminate()
        daemon.wait(30)
        engine.dispose()
    return latencies


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="backlog size")
    parser.add_argument("--latency", type=int, default=50, help="messages for the latency run")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between those messages")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the desks go (default: a temp dir)"
    )
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="maildesk-bench-imap-"))
    with running_dovecot("bench") as server:
        raws = messages(args.messages, "backlog")
        user = server.add_user("backlog")
        started = time.perf_counter()
        server.append(user, raws)
        append_rate = len(raws) / (time.perf_counter() - started)
        ceiling, mbps = fetch_ceiling(server, user)
        foundation = pipeline_only(base, messages(args.messages, "direct"))
        ingest_rate, stored = imap_backlog(base, server, user, args.messages)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        latencies = idle_latency(base, server, args.latency, args.gap)
    size = sum(map(len, raws)) / len(raws)
    print(f"backlog: {args.messages} messages of {size:.0f} B, desks in {base}")
    print(f"  MULTIAPPEND into Dovecot (setup)        {append_rate:8.0f} msg/s")
    print(f"  IMAP ceiling: UID FETCH BODY.PEEK[]     {ceiling:8.0f} msg/s  ({mbps:.1f} MB/s)")
    print(f"  foundation: Pipeline.process_batches    {foundation:8.1f} msg/s")
    print(f"  maildesk IMAP ingest (run --once path)  {ingest_rate:8.1f} msg/s  ({stored} stored)")
    print(f"  peak RSS of this process                {rss:8.0f} MiB")
    print(
        f"IDLE arrival-to-ticket latency over {len(latencies)} messages (APPEND done -> committed):"
    )
    print(
        f"  median {statistics.median(latencies) * 1000:.0f} ms, "
        f"p90 {percentile(latencies, 90) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.0f} ms, "
        f"min {min(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )
    print("  (Dovecot waits 500 ms before it tells an IDLE client about new mail)")
    if args.dir is None:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
