"""Ingest a Maildir of N generated messages the way `maildesk ingest --maildir` does.

    python bench/maildir.py [N]

Writes the bench corpus (see bench/ingest.py) into a Maildir's new/, then times
`ingest_paths` with every file marked seen after its batch's commit. Prints
messages/s, per-message latency (batch time / batch size) and peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.corpus import generate
from bench.desks import bench_desk
from maildesk.intake.maildir import Maildir
from maildesk.service.desk import settle_heap
from maildesk.service.file_ingest import BATCH_SIZE, ingest_paths
from maildesk.service.ingest_results import SourceInfo


def fill_maildir(root: Path, n: int) -> int:
    """Write n messages into root/new; their total size."""
    for folder in ("cur", "new", "tmp"):
        (root / folder).mkdir(parents=True)
    size = 0
    for i, raw in enumerate(generate(n)):
        (root / "new" / f"{1_700_000_000 + i}.M{i}P1.bench").write_bytes(raw)
        size += len(raw)
    return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="maildesk-bench-maildir-"))
    try:
        size = fill_maildir(work / "Maildir", args.n)
        desk = bench_desk(work)
        desk.pipeline.reader.start()  # as the daemon would
        settle_heap()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        maildir = Maildir(work / "Maildir")
        started = batch_started = time.perf_counter()
        waiting = maildir.waiting()
        per_message: list[float] = []
        outcomes: dict[str, int] = {}
        results = ingest_paths(
            desk.pipeline,
            waiting,
            lambda _: SourceInfo(source="bench"),
            committed=maildir.mark_seen,
        )
        for count, (_, result) in enumerate(results, start=1):
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            if count % BATCH_SIZE == 0 or count == len(waiting):
                now = time.perf_counter()
                per_message.append((now - batch_started) / BATCH_SIZE * 1000)
                batch_started = now
        elapsed = time.perf_counter() - started
        desk.close()
        unseen = len(maildir.waiting())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    q = statistics.quantiles(per_message, n=100) if len(per_message) > 1 else per_message * 99
    print(f"messages        {args.n} ({size / 1e6:.1f} MB) in a Maildir's new/")
    print(f"outcomes        {outcomes}; left unseen: {unseen}")
    print(f"throughput      {args.n / elapsed:.0f} messages/s ({elapsed:.2f} s wall)")
    print(f"per message     p50 {q[49]:.2f} ms  p90 {q[89]:.2f} ms  p99 {q[98]:.2f} ms")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS        {peak:.0f} MB ({rss_before:.0f} MB before ingest)")


if __name__ == "__main__":
    main()
